"""Airflow DAG: ITD Chile credits snapshot, received messages and statuses of open sends."""

from __future__ import annotations

from dataclasses import asdict

from airflow.sdk import Param, dag, get_current_context, task

from latam_messaging import assets, schedules, settings
from latam_messaging.dag_defaults import dag_defaults
from latam_messaging.vendors import POOLS

DOC = """
### itd_poll

* **credits_snapshot** → `itd_credit_snapshots`; **check_credit_threshold** (last) **fails the run
  loudly** below the low-credit threshold (param, default `MESSAGING_ITD_LOW_CREDITS` or 100), so the
  failure notifier, if configured, warns before sends start failing with 502.
* **poll_received** → `inbound_messages`: for each phone of interest (phones sent to via ITD in the
  last `lookback_days`, plus param `phones`), each Chilean day since its watermark. `503 NO WHATSAPP
  MESSAGES` is an empty day; duplicates are ignored by `uuid`; the watermark moves only after commit.
  Replies are read for opt-out/opt-in keywords; a new opt-out's confirmation is queued when
  `MESSAGING_CONSENT_CONFIRM` lists `itd`.
* **poll_statuses** → `message_status_events` and the current status of open ITD sends (not read or
  failed), concurrently and bounded per run.
"""


@dag(
    dag_id="itd_poll",
    schedule=schedules.cron(schedules.HOURLY),
    start_date=schedules.START_DATE,
    catchup=False,
    max_active_runs=1,
    tags=["messaging", "itd", "poll"],
    doc_md=DOC,
    params={
        "low_credit_threshold": Param(
            None,
            type=["null", "integer"],
            minimum=0,
            description="Fail when credits fall below this (empty: MESSAGING_ITD_LOW_CREDITS, default 100).",
        ),
        "lookback_days": Param(
            7, type="integer", minimum=0, maximum=60, description="Days of sends whose phones are polled."
        ),
        "phones": Param(
            [],
            type=["null", "array"],
            items={"type": "string", "pattern": "^[0-9]{8,15}$"},
            description="More phones (E.164 digits).",
        ),
        "max_status_checks": Param(5000, type="integer", minimum=0, description="Status look-ups per run at most."),
    },
    default_args=dag_defaults(retries=2, retry_delay_minutes=2),
)
def itd_poll():
    @task(outlets=[assets.changes(assets.ITD_CREDIT_SNAPSHOTS)], pool=POOLS["itd"])
    def credits_snapshot() -> int:
        from latam_messaging.itd.credits import latest_balance
        from latam_messaging.itd.hook import ItdHook
        from latam_messaging.itd.poller import snapshot_credits
        from latam_messaging.warehouse.db import open_warehouse

        warehouse = open_warehouse()
        before = latest_balance(warehouse)
        credits = snapshot_credits(warehouse, ItdHook())
        print(f"ITD credits: {credits} (previous snapshot: {before})")
        assets.emit_changes({assets.ITD_CREDIT_SNAPSHOTS: int(credits != before)})  # the balance moved
        return credits

    @task(trigger_rule="all_done")
    def check_credit_threshold(credits: int | None) -> None:
        """Last, so that a low balance fails the run (and calls its notifier) after the polls ran."""
        from airflow.sdk.exceptions import AirflowFailException

        threshold = get_current_context()["params"]["low_credit_threshold"]
        if threshold is None:
            threshold = settings.itd_low_credits()
        if credits is None:
            raise AirflowFailException("no ITD credits snapshot was taken in this run: see credits_snapshot")
        if credits < threshold:
            raise AirflowFailException(
                f"ITD credits are low: {credits} left, threshold {threshold}. Top up before sends fail."
            )

    @task(trigger_rule="all_done", outlets=[assets.changes(assets.INBOUND_MESSAGES)], pool=POOLS["itd"])
    def poll_received() -> dict[str, int]:
        from latam_messaging.itd.hook import ItdHook
        from latam_messaging.itd.poller import phones_of_interest, poll_itd_received
        from latam_messaging.vendors import consent_rules
        from latam_messaging.warehouse.db import open_warehouse

        params = get_current_context()["params"]
        warehouse = open_warehouse()
        phones = phones_of_interest(warehouse, params["lookback_days"], params["phones"] or [])
        stats = poll_itd_received(
            warehouse, ItdHook(), phones, lookback_days=params["lookback_days"], consent=consent_rules()
        )
        print(f"received: {asdict(stats)}")
        assets.emit_changes({assets.INBOUND_MESSAGES: stats.new_messages})
        return asdict(stats)

    @task(
        trigger_rule="all_done",
        outlets=[assets.changes(assets.MESSAGE_STATUS_EVENTS)],
        pool=POOLS["itd"],
    )
    def poll_statuses() -> int:
        from latam_messaging.itd.hook import ItdHook
        from latam_messaging.itd.poller import poll_itd_statuses
        from latam_messaging.warehouse.db import open_warehouse

        stored = poll_itd_statuses(
            open_warehouse(), ItdHook(), limit=get_current_context()["params"]["max_status_checks"]
        )
        print(f"{stored} new status event(s)")
        assets.emit_changes({assets.MESSAGE_STATUS_EVENTS: stored})
        return stored

    credits = credits_snapshot()
    polls = [poll_received(), poll_statuses()]
    credits >> polls >> check_credit_threshold(credits)


itd_poll()
