"""The ``itd_chile`` connection form (Airflow reads it from ``get_provider_info()``; the hook derives its
form methods from it). Plain data: importing it must stay cheap."""

from __future__ import annotations

from typing import Any

from latam_messaging.common.connection_form import COMMON_FIELDS

CONN_TYPE = "itd_chile"
FORM: dict[str, Any] = {
    "hook-class-name": "latam_messaging.itd.hook.ItdHook",
    "hook-name": "ITD Chile (WhatsApp)",
    "conn-fields": {
        **COMMON_FIELDS,
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
}
