"""What every vendor's connection form shares (each form is ``<vendor>/connection.py``).

Airflow 3.2+ reads these declaratively from ``get_provider_info()`` (``conn-fields`` and
``ui-field-behaviour``); the hooks derive ``get_ui_field_behaviour`` and the legacy
``get_connection_form_widgets`` from the same data so older UIs show the same form.
This module is plain data: importing it must stay cheap (the providers manager does at start-up).

The port field is hidden for every vendor: the port belongs inside the Base URL (``https://host:8443``).
A visible, empty port field is posted by the UI's connection **Test** as ``port: 0``, which the API
server reads as "a different endpoint than the stored connection" and refuses with 400.
"""

from __future__ import annotations

from typing import Any

COMMON_FIELDS: dict[str, dict[str, Any]] = {
    "timeout": {
        "label": "Timeout (s)",
        "schema": {"type": ["integer", "null"], "default": 30, "minimum": 1},
        "description": "Seconds to wait for the vendor's answer.",
    },
    "max_retries": {
        "label": "Retries on transient errors",
        "schema": {"type": ["integer", "null"], "default": 5, "minimum": 0},
        "description": "Retries with exponential backoff on connection errors, timeouts, 429 and 5xx.",
    },
}

def ui_field_behaviour(form: dict[str, Any]) -> dict[str, Any]:
    """The snake_case form Airflow's ``get_ui_field_behaviour`` returns."""
    spec = form["ui-field-behaviour"]
    return {
        "hidden_fields": list(spec["hidden-fields"]),
        "relabeling": dict(spec["relabeling"]),
        "placeholders": dict(spec["placeholders"]),
    }


def form_widgets(form: dict[str, Any]) -> dict[str, Any]:
    """Legacy wtforms widgets (Airflow < 3.2 UIs) built from the declarative fields."""
    from flask_appbuilder.fieldwidgets import BS3TextFieldWidget
    from flask_babel import lazy_gettext
    from wtforms import IntegerField, StringField

    widgets: dict[str, Any] = {}
    for name, field in form["conn-fields"].items():
        kind = IntegerField if "integer" in field["schema"]["type"] else StringField
        widgets[name] = kind(
            lazy_gettext(field["label"]),
            widget=BS3TextFieldWidget(),
            default=field["schema"].get("default"),
            description=field.get("description", ""),
        )
    return widgets
