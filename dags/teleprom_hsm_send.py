"""Airflow DAG: CSV drops in `teleprom_hsm/` sent via Teleprom HSM templates (MessageWpp batches of up to 500 destinations per account and template)."""

from __future__ import annotations

import pendulum
from airflow.sdk import dag

from latam_messaging import settings
from latam_messaging.notify import dag_defaults
from latam_messaging.sending.tasks import send_doc, send_params, send_pipeline


@dag(
    dag_id="teleprom_hsm_send",
    schedule="*/15 * * * *",
    start_date=pendulum.datetime(2026, 1, 1, tz=settings.timezone()),
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
