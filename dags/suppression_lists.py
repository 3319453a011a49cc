"""Airflow DAG: suppression lists (`suppressions/`) and do-not-contact registry exports
(`suppressions/registries/<name>/`) loaded into `suppressions`."""

from __future__ import annotations

from dataclasses import asdict

from airflow.sdk import dag, task

from latam_messaging import assets, schedules
from latam_messaging.dag_defaults import dag_defaults

DOC = """
### suppression_lists

Loads who must not be sent to from drop folders under `MESSAGING_DROP_DIR` into **`suppressions`**
(a send to a suppressed phone is rejected at ingest, `suppressed: <source> (<evidence>)`, and a row
already pending becomes `suppressed` when claimed).

1. **load_suppression_files**: `suppressions/*.csv` with `phone`, optional `reason`, `scope` (`all`, a
   vendor or a channel: `whatsapp`, `sms`; default `all`) and `action` (`add` or `remove`; default
   `add`). Source `manual`. A `remove` ends the phone's `manual`, `keyword` and `vendor_status`
   suppressions of that scope, never a registry's.
2. **load_registry_exports**: `suppressions/registries/<name>/*.csv` or `*.txt`, one folder per
   registry (`<name>`: 1 to 40 of `a-z 0-9 _ -`; any other folder is skipped with an error in the log).
   One phone per line without a header, or a CSV with any phone column name (`Nro_Linea`, `MSISDN`,
   `celular`…), optional `action`. Source `registry:<name>`, scope `all`. **A phone missing from an
   export keeps its suppression**: only a `remove` row lifts one (exports may be partial). An export
   without one usable row fails.

Every file: same claim, fingerprint (the same content twice is loaded once) and all-or-nothing rules
as the send drops; the file's last row per phone and scope wins; bad rows (phone, scope, action) →
`drop_rejects` with the reason; a file that cannot be read goes to `failed/`. Each entry's evidence
is `drop_files <sha256> row <n>`. The task logs print what was added, ended, already active and
rejected, and the files that failed.
"""


@dag(
    dag_id="suppression_lists",
    schedule=schedules.cron(schedules.EVERY_15_MINUTES),
    start_date=schedules.START_DATE,
    catchup=False,
    max_active_runs=1,
    tags=["messaging", "consent"],
    doc_md=DOC,
    default_args=dag_defaults(retries=2, retry_delay_minutes=1),
)
def suppression_lists():
    @task(outlets=[assets.changes(assets.SUPPRESSIONS)])
    def load_suppression_files() -> dict[str, int]:
        from latam_messaging import settings
        from latam_messaging.consent.lists import load_lists
        from latam_messaging.vendors import suppression_scopes
        from latam_messaging.warehouse.db import open_warehouse

        stats = load_lists(
            open_warehouse(), settings.drop_dir(), scopes=suppression_scopes(), region=settings.default_region()
        )
        print(f"suppressions/: {asdict(stats)}")
        assets.emit_changes({assets.SUPPRESSIONS: stats.added + stats.ended})
        return asdict(stats)

    @task(outlets=[assets.changes(assets.SUPPRESSIONS)])
    def load_registry_exports() -> dict[str, int]:
        from latam_messaging import settings
        from latam_messaging.consent.lists import load_registries
        from latam_messaging.warehouse.db import open_warehouse

        loads = load_registries(open_warehouse(), settings.drop_dir(), region=settings.default_region())
        for name, stats in loads.by_registry.items():
            print(f"registry {name}: {asdict(stats)}")
        total = loads.total()
        print(f"registries: {asdict(total)}")
        assets.emit_changes({assets.SUPPRESSIONS: total.added + total.ended})
        return asdict(total)

    load_suppression_files() >> load_registry_exports()


suppression_lists()
