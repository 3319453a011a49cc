"""Airflow provider for three Latin-American messaging vendors: Teleprom, ITD Chile and Wavy."""

from __future__ import annotations

__version__ = "0.1.0"


def get_provider_info() -> dict:
    """Provider entry point: makes the connection types appear in the Airflow UI."""
    from latam_messaging.vendors import VENDORS, load

    forms = {vendor.conn_type: load(vendor.connection) for vendor in VENDORS.values()}
    return {
        "package-name": "airflow-provider-latam-messaging",
        "name": "LatAm Messaging (Teleprom, ITD Chile, Wavy)",
        "description": "Hooks for Teleprom WhatsApp, ITD Chile WhatsApp and Wavy SMS.",
        "versions": [__version__],
        "hooks": [
            {
                "integration-name": vendor,
                "python-modules": [form["hook-class-name"].rsplit(".", 1)[0]],
            }
            for vendor, form in forms.items()
        ],
        "connection-types": [{"connection-type": conn_type, **form} for conn_type, form in forms.items()],
    }
