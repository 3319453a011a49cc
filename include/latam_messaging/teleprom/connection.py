"""The ``teleprom`` connection form (Airflow reads it from ``get_provider_info()``; the hook derives its
form methods from it). Plain data: importing it must stay cheap."""

from __future__ import annotations

from typing import Any

from latam_messaging.common.connection_form import COMMON_FIELDS

CONN_TYPE = "teleprom"
FORM: dict[str, Any] = {
    "hook-class-name": "latam_messaging.teleprom.hook.TelepromHook",
    "hook-name": "Teleprom (WhatsApp)",
    "conn-fields": {
        **COMMON_FIELDS,
        "batch_size": {
            "label": "Batch size",
            "schema": {"type": ["integer", "null"], "default": 500, "minimum": 1},
            "description": "Destinations per MessageWpp request.",
        },
        "default_account": {
            "label": "Default account",
            "schema": {"type": ["integer", "null"], "minimum": 1},
            "description": "Account id (ruteo) that sends opt-out confirmations when the customer's reply names "
            "neither one of our accounts nor one of our messages.",
        },
        "shorten_links": {
            "label": "Shorten links",
            "schema": {"type": ["boolean", "null"], "default": False},
            "description": "Replace each http(s) link of a campaign's template parameters by a Teleprom short "
            "link (once per campaign and link) when its file is ingested; clicks are imported daily.",
        },
    },
    "ui-field-behaviour": {
        "hidden-fields": ["schema", "port", "extra"],
        "relabeling": {"host": "Base URL", "login": "Username", "password": "Password"},
        "placeholders": {"host": "https://mayten.cloud", "login": "user given by Teleprom"},
    },
}
