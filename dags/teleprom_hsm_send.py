"""Airflow DAG: CSV drops in `teleprom_hsm/` sent via Teleprom HSM templates (MessageWpp batches of up to 500 destinations per account and template)."""

from __future__ import annotations

import pendulum
from airflow.sdk import dag

from latam_messaging import settings
from latam_messaging.notify import dag_defaults
from latam_messaging.sending.tasks import send_params, send_pipeline

DOC = """
### teleprom_hsm_send

Sends the CSV drops of **`teleprom_hsm/`** (under `MESSAGING_DROP_DIR`) via Teleprom HSM templates (MessageWpp batches of up to 500 destinations per account and template).

1. **ingest_drops** claims each ready `*.csv` (never a `.part`), fingerprints it (SHA-256: the same
   content dropped again sends nothing), validates every row (bad rows → `drop_rejects` with the
   reason) and writes `outbound_messages` as `pending` or `scheduled` (`send_at` in the future
   or outside the send window). The file moves to `archive/`, or `failed/` if unreadable.
2. **send_due** sends due rows concurrently. Each row is committed as `sending` before its request;
   a row still `sending` when a run starts was in flight when a run died and becomes `unknown`:
   it is never re-sent automatically. To release unknown rows you checked were not sent, trigger
   with the param `release_unknown`.

Columns: see README (CSV drops). Connections: the vendor's `*_default` and `messaging_warehouse`.
"""


@dag(
    dag_id="teleprom_hsm_send",
    schedule="*/15 * * * *",
    start_date=pendulum.datetime(2026, 1, 1, tz=settings.timezone()),
    catchup=False,
    max_active_runs=1,
    tags=["messaging", "teleprom", "send"],
    doc_md=DOC,
    params=send_params(),
    default_args=dag_defaults(),
)
def teleprom_hsm_send():
    send_pipeline("teleprom")


teleprom_hsm_send()
