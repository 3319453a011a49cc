"""Airflow DAG: CSV drops in `teleprom_hsm/` sent via Teleprom HSM templates (MessageWpp batches of up to 500 destinations per account and template)."""

from __future__ import annotations

from airflow.sdk import dag

from latam_messaging import schedules
from latam_messaging.dag_defaults import dag_defaults
from latam_messaging.sending.tasks import send_doc, send_params, send_pipeline


@dag(
    dag_id="teleprom_hsm_send",
    schedule=schedules.cron(schedules.EVERY_15_MINUTES),
    start_date=schedules.START_DATE,
    catchup=False,
    max_active_runs=1,
    tags=["messaging", "teleprom", "send"],
    doc_md=send_doc(
        "teleprom_hsm_send",
        "teleprom_hsm",
        "Teleprom HSM templates (MessageWpp batches of up to 500 destinations per account and template)",
    ),
    params=send_params(),
    default_args=dag_defaults(),
)
def teleprom_hsm_send():
    send_pipeline("teleprom")


teleprom_hsm_send()
