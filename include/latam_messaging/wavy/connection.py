"""The ``wavy`` connection form (Airflow reads it from ``get_provider_info()``; the hook derives its
form methods from it). Plain data: importing it must stay cheap."""

from __future__ import annotations

from typing import Any

from latam_messaging.common.connection_form import COMMON_FIELDS

CONN_TYPE = "wavy"
FORM: dict[str, Any] = {
    "hook-class-name": "latam_messaging.wavy.hook.WavyHook",
    "hook-name": "Wavy (SMS)",
    "conn-fields": dict(COMMON_FIELDS),
    "ui-field-behaviour": {
        "hidden-fields": ["schema", "port", "extra"],
        "relabeling": {"host": "Base URL", "login": "UserName", "password": "AuthenticationToken"},
        "placeholders": {"host": "https://api-messaging.wavy.global", "login": "user or e-mail"},
    },
}
