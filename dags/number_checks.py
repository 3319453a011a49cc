"""Airflow DAG: Sim Swap and NumberLookup checks of phones from CSV drops or a warehouse query."""

from __future__ import annotations

from dataclasses import asdict

from airflow.sdk import Param, dag, get_current_context, task

from latam_messaging import assets, schedules, settings
from latam_messaging.dag_defaults import dag_defaults
from latam_messaging.vendors import POOLS

DOC = """
### number_checks

Phones come from CSV drops in **`number_checks/`** (`phone`, optional `max_age_hours`; bad rows →
`drop_rejects`) and, optionally, from the param `phones_query`: SQL over the warehouse returning a
`phone` column, e.g. `SELECT DISTINCT phone FROM outbound_messages WHERE created_at > CURRENT_DATE - 7`.

Each distinct phone not checked within `recheck_hours` (each check costs money) gets a NumberLookup
and a Sim Swap GetChange, concurrently under `requests_per_second`. Results → **`number_lookups`**
and **`sim_swap_checks`** with the raw answer; a failed check is recorded on its row, never stops the
batch. The **`risky_numbers`** view (invalid, landline, SIM changed within the window) lets a send
folder hold such numbers: list it in `MESSAGING_HOLD_RISKY_FOLDERS`.
"""


@dag(
    dag_id="number_checks",
    schedule=schedules.cron("30 6 * * *"),
    start_date=schedules.START_DATE,
    catchup=False,
    max_active_runs=1,
    tags=["messaging", "teleprom", "number-checks"],
    doc_md=DOC,
    params={
        "phones_query": Param(None, type=["null", "string"], description="SQL returning a phone column (optional)."),
        "max_age_hours": Param(
            240, type="integer", minimum=1, maximum=8760, description="Sim Swap window for phones without one."
        ),
        "recheck_hours": Param(
            24, type="integer", minimum=0, description="Do not check a phone again within this many hours."
        ),
        "requests_per_second": Param(
            10, type="number", minimum=0, description="Ceiling of requests per second (0 = none)."
        ),
    },
    default_args=dag_defaults(retries=2, retry_delay_minutes=2),
)
def number_checks():
    @task
    def queue_phones() -> dict[str, int]:
        from latam_messaging.teleprom.number_checks import CheckStats, queue_from_drops, queue_from_query
        from latam_messaging.warehouse.db import open_warehouse

        params = get_current_context()["params"]
        warehouse, stats = open_warehouse(), CheckStats()
        queue_from_drops(
            warehouse,
            settings.drop_dir(),
            region=settings.default_region(),
            default_max_age_hours=params["max_age_hours"],
            stats=stats,
        )
        if params.get("phones_query"):
            queue_from_query(
                warehouse, params["phones_query"], default_max_age_hours=params["max_age_hours"], stats=stats
            )
        print(f"queued: {asdict(stats)}")
        return asdict(stats)

    @task(
        outlets=[assets.changes(assets.SIM_SWAP_CHECKS), assets.changes(assets.NUMBER_LOOKUPS)],
        pool=POOLS["teleprom"],
    )
    def check_phones() -> dict[str, int]:
        from latam_messaging.teleprom.hook import TelepromHook
        from latam_messaging.teleprom.number_checks import run_checks
        from latam_messaging.warehouse.db import open_warehouse

        params = get_current_context()["params"]
        stats = run_checks(
            open_warehouse(),
            TelepromHook(),
            recheck_hours=params["recheck_hours"],
            requests_per_s=params["requests_per_second"],
        )
        print(f"checked: {asdict(stats)}")
        assets.emit_changes({assets.SIM_SWAP_CHECKS: stats.checked, assets.NUMBER_LOOKUPS: stats.checked})
        return asdict(stats)

    queue_phones() >> check_phones()


number_checks()
