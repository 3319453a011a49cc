"""Airflow DAG: CSV drops in `itd_whatsapp/` sent via ITD Chile WhatsApp (sendWhatsapp, one message per request; 502 NOT ENOUGH CREDITS stops sending and keeps the rest pending)."""

from __future__ import annotations

from airflow.sdk import dag

from latam_messaging import schedules
from latam_messaging.dag_defaults import dag_defaults
from latam_messaging.sending.tasks import send_doc, send_params, send_pipeline


@dag(
    dag_id="itd_whatsapp_send",
    schedule=schedules.cron(schedules.EVERY_15_MINUTES),
    start_date=schedules.START_DATE,
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
