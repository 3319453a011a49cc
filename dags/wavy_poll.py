"""Airflow DAG: Wavy status and inbound (MO) queues, and a status search for sends still open."""

from __future__ import annotations

from dataclasses import asdict

from airflow.sdk import Param, dag, get_current_context, task

from latam_messaging import assets, schedules
from latam_messaging.dag_defaults import dag_defaults
from latam_messaging.vendors import POOLS

DOC = """
### wavy_poll

* **drain_queues**: `GET /v1/sms/status/list` and `/v1/sms/receive/list` are consume-once queues.
  Each raw page is committed to `raw_webhook_events` (channel `status_list` / `receive_list`)
  *before* it is parsed, so a crash after the call loses nothing.
* **parse_pages** parses them (like `webhook_ingest`) into `message_status_events`,
  `inbound_messages` and the current status in `outbound_messages`.
* **search_open** asks `status/search` by correlationId (our `message_key`) for sends still open
  after `open_after_minutes`, and for `unknown` sends (which become `accepted` if Wavy has them).

Status queries are paced to Wavy's 1 request/s; 429 answers are backed off.
"""


@dag(
    dag_id="wavy_poll",
    schedule=schedules.cron(schedules.EVERY_15_MINUTES),
    start_date=schedules.START_DATE,
    catchup=False,
    max_active_runs=1,
    tags=["messaging", "wavy", "poll"],
    doc_md=DOC,
    params={
        "open_after_minutes": Param(
            30, type="integer", minimum=0, description="Search sends still open after this long."
        ),
        "max_pages": Param(50, type="integer", minimum=1, description="Queue pages per run at most."),
    },
    default_args=dag_defaults(retries=2, retry_delay_minutes=1),
)
def wavy_poll():
    @task(pool=POOLS["wavy"])
    def drain_queues() -> dict[str, int]:
        from latam_messaging.warehouse.db import open_warehouse
        from latam_messaging.wavy.hook import WavyHook
        from latam_messaging.wavy.poller import drain_wavy_queue

        params = get_current_context()["params"]
        warehouse, hook = open_warehouse(), WavyHook()
        counts = {
            channel: drain_wavy_queue(warehouse, hook, channel, max_pages=params["max_pages"])
            for channel in ("status_list", "receive_list")
        }
        print(f"queued items stored raw: {counts}")
        return counts

    @task(
        trigger_rule="all_done",
        outlets=[assets.changes(assets.MESSAGE_STATUS_EVENTS), assets.changes(assets.INBOUND_MESSAGES)],
    )
    def parse_pages() -> dict[str, int]:
        from latam_messaging.vendors import callback_parsers, consent_rules
        from latam_messaging.warehouse.db import open_warehouse
        from latam_messaging.webhooks.ingest import ingest_pending

        stats = ingest_pending(open_warehouse(), callback_parsers(), consent=consent_rules())
        print(f"parsed: {asdict(stats)}")
        assets.emit_changes({assets.MESSAGE_STATUS_EVENTS: stats.statuses, assets.INBOUND_MESSAGES: stats.inbound})
        return asdict(stats)

    @task(
        trigger_rule="all_done",
        outlets=[assets.changes(assets.MESSAGE_STATUS_EVENTS)],
        pool=POOLS["wavy"],
    )
    def search_open() -> int:
        from latam_messaging.warehouse.db import open_warehouse
        from latam_messaging.wavy.hook import WavyHook
        from latam_messaging.wavy.poller import search_open_wavy

        stored = search_open_wavy(
            open_warehouse(), WavyHook(), open_after_minutes=get_current_context()["params"]["open_after_minutes"]
        )
        print(f"{stored} new status event(s) from status search")
        assets.emit_changes({assets.MESSAGE_STATUS_EVENTS: stored})
        return stored

    drain_queues() >> parse_pages() >> search_open()


wavy_poll()
