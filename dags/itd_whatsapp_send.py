"""Airflow DAG: CSV drops in `itd_whatsapp/` sent via ITD Chile WhatsApp (sendWhatsapp, one message per request; 502 NOT ENOUGH CREDITS stops sending and keeps the rest pending)."""

from __future__ import annotations

import pendulum
from airflow.sdk import dag

from latam_messaging import settings
from latam_messaging.notify import dag_defaults
from latam_messaging.sending.tasks import send_doc, send_params, send_pipeline


@dag(
    dag_id="itd_whatsapp_send",
    schedule="*/15 * * * *",
    start_date=pendulum.datetime(2026, 1, 1, tz=settings.timezone()),
    catchup=False,
    max_active_runs=1,
    tags=["messaging", "itd", "send"],
    doc_md=send_doc(
        "itd_whatsapp_send",
        "itd_whatsapp",
        "ITD Chile WhatsApp (sendWhatsapp, one message per request; 502 NOT ENOUGH CREDITS stops sending and keeps the rest pending)",
    ),
    params=send_params(),
    default_args=dag_defaults(),
)
def itd_whatsapp_send():
    send_pipeline("itd")


itd_whatsapp_send()
