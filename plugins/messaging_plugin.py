"""Airflow plugin: the **Messaging** page (delivery funnel, unknown sends, rejects, ITD credits, inbound).

A FastAPI app mounted on the API server at ``/messaging`` (logged-in Airflow users only; the warehouse
is read in read-only transactions) and an entry in the UI's navigation that shows it. The work is in
the ``latam_messaging.page`` package; this file only registers it.
"""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin

from latam_messaging.page.app import URL_PREFIX, create_app


class MessagingPlugin(AirflowPlugin):
    name = "latam_messaging"
    fastapi_apps = [{"app": create_app(), "url_prefix": URL_PREFIX, "name": "Messaging"}]
    external_views = [
        {
            "name": "Messaging",
            "href": f"{URL_PREFIX}/",
            "url_route": "messaging",
            "destination": "nav",
            "nav_top_level": True,
        }
    ]
