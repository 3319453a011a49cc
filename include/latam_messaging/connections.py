"""Connection form definitions of the three vendors, in one place.

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

_COMMON_FIELDS: dict[str, dict[str, Any]] = {
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

CONNECTION_TYPES: dict[str, dict[str, Any]] = {
    "teleprom": {
        "hook-class-name": "latam_messaging.teleprom.hook.TelepromHook",
        "hook-name": "Teleprom (WhatsApp)",
        "conn-fields": {
            **_COMMON_FIELDS,
            "batch_size": {
                "label": "Batch size",
                "schema": {"type": ["integer", "null"], "default": 500, "minimum": 1},
                "description": "Destinations per MessageWpp request.",
            },
        },
        "ui-field-behaviour": {
            "hidden-fields": ["schema", "port", "extra"],
            "relabeling": {"host": "Base URL", "login": "Username", "password": "Password"},
            "placeholders": {"host": "https://mayten.cloud", "login": "user given by Teleprom"},
        },
    },
    "itd_chile": {
        "hook-class-name": "latam_messaging.itd.hook.ItdHook",
        "hook-name": "ITD Chile (WhatsApp)",
        "conn-fields": {
            **_COMMON_FIELDS,
            "auth_scheme": {
                "label": "Authorization scheme",
                "schema": {"type": ["string", "null"], "default": "Bearer"},
                "description": "Word before the token in the Authorization header.",
            },
        },
        "ui-field-behaviour": {
            "hidden-fields": ["schema", "port", "login", "extra"],
            "relabeling": {"host": "Base URL", "password": "API token (JWT)"},
            "placeholders": {"host": "https://ida.itdchile.cl"},
        },
    },
    "wavy": {
        "hook-class-name": "latam_messaging.wavy.hook.WavyHook",
        "hook-name": "Wavy (SMS)",
        "conn-fields": dict(_COMMON_FIELDS),
        "ui-field-behaviour": {
            "hidden-fields": ["schema", "port", "extra"],
            "relabeling": {"host": "Base URL", "login": "UserName", "password": "AuthenticationToken"},
            "placeholders": {"host": "https://api-messaging.wavy.global", "login": "user or e-mail"},
        },
    },
}


def ui_field_behaviour(conn_type: str) -> dict[str, Any]:
    """The snake_case form Airflow's ``get_ui_field_behaviour`` returns."""
    spec = CONNECTION_TYPES[conn_type]["ui-field-behaviour"]
    return {
        "hidden_fields": list(spec["hidden-fields"]),
        "relabeling": dict(spec["relabeling"]),
        "placeholders": dict(spec["placeholders"]),
    }


def form_widgets(conn_type: str) -> dict[str, Any]:
    """Legacy wtforms widgets (Airflow < 3.2 UIs) built from the declarative fields."""
    from flask_appbuilder.fieldwidgets import BS3TextFieldWidget
    from flask_babel import lazy_gettext
    from wtforms import IntegerField, StringField

    widgets: dict[str, Any] = {}
    for name, field in CONNECTION_TYPES[conn_type]["conn-fields"].items():
        kind = IntegerField if "integer" in field["schema"]["type"] else StringField
        widgets[name] = kind(
            lazy_gettext(field["label"]),
            widget=BS3TextFieldWidget(),
            default=field["schema"].get("default"),
            description=field.get("description", ""),
        )
    return widgets
