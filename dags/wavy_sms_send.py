"""Airflow DAG: CSV drops in `wavy_sms/` sent via Wavy SMS (send-bulk-sms, up to 1000 per request; unknown sends are looked up by correlationId)."""

from __future__ import annotations

from airflow.sdk import dag

from latam_messaging import schedules
from latam_messaging.dag_defaults import dag_defaults
from latam_messaging.sending.tasks import send_doc, send_params, send_pipeline


@dag(
    dag_id="wavy_sms_send",
    schedule=schedules.cron(schedules.EVERY_15_MINUTES),
    start_date=schedules.START_DATE,
    catchup=False,
    max_active_runs=1,
    tags=["messaging", "wavy", "send"],
    doc_md=send_doc(
        "wavy_sms_send",
        "wavy_sms",
        "Wavy SMS (send-bulk-sms, up to 1000 per request; unknown sends are looked up by correlationId)",
    ),
    params=send_params(),
    default_args=dag_defaults(),
)
def wavy_sms_send():
    send_pipeline("wavy")


wavy_sms_send()
