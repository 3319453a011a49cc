"""Airflow DAG: parse the raw webhook bodies the receiver stored into status events and inbound messages."""

from __future__ import annotations

from dataclasses import asdict

from airflow.sdk import Param, dag, get_current_context, task

from latam_messaging import assets, schedules
from latam_messaging.dag_defaults import dag_defaults

DOC = """
### webhook_ingest

The webhook receiver stores every authenticated vendor callback raw in **`raw_webhook_events`**
(`parse_state = pending`). This DAG parses them:

* Teleprom V0 bulk arrays, V1 `STATUS` and V3 `INCOMING` envelopes; ITD status and inbound
  messages; Wavy Callback, DLR (both timestamp spellings) and MO.
* Statuses → **`message_status_events`** (normalised, raw value kept), linked to
  `outbound_messages` (Teleprom `identificador` = our `message_key`, ITD `uuid`, Wavy
  `correlationId`); the message's `delivery_status` only moves forward; an `unknown` send that
  gets a status becomes `accepted`.
* Inbound → **`inbound_messages`**, read for opt-out/opt-in keywords (`suppressions`); a new opt-out
  gets its confirmation reply queued in `outbound_messages` when `MESSAGING_CONSENT_CONFIRM` lists the
  vendor (sent by the vendor's send DAG).

Unparseable bodies keep `parse_state = error` with the reason; nothing is deleted and reprocessing
is idempotent (param `reparse_errors` retries the errors after a parser fix).
"""


@dag(
    dag_id="webhook_ingest",
    schedule=schedules.cron(schedules.EVERY_5_MINUTES),
    start_date=schedules.START_DATE,
    catchup=False,
    max_active_runs=1,
    tags=["messaging", "webhooks"],
    doc_md=DOC,
    params={"reparse_errors": Param(False, type="boolean", description="Parse again the bodies that failed before.")},
    default_args=dag_defaults(retries=2, retry_delay_minutes=1),
)
def webhook_ingest():
    @task(outlets=[assets.changes(assets.MESSAGE_STATUS_EVENTS), assets.changes(assets.INBOUND_MESSAGES)])
    def parse_pending() -> dict[str, int]:
        from latam_messaging.vendors import callback_parsers, consent_rules
        from latam_messaging.warehouse.db import open_warehouse
        from latam_messaging.webhooks.ingest import ingest_pending

        params = get_current_context()["params"]
        stats = ingest_pending(
            open_warehouse(), callback_parsers(), reparse_errors=params["reparse_errors"], consent=consent_rules()
        )
        print(f"webhook ingest: {asdict(stats)}")
        assets.emit_changes({assets.MESSAGE_STATUS_EVENTS: stats.statuses, assets.INBOUND_MESSAGES: stats.inbound})
        return asdict(stats)

    parse_pending()


webhook_ingest()
