"""Airflow DAG: retention — raw webhook bodies archived then purged, old drop archives pruned."""

from __future__ import annotations

from airflow.sdk import Param, dag, get_current_context, task

from latam_messaging import schedules
from latam_messaging.dag_defaults import dag_defaults
from latam_messaging.maintenance.kept_tables import NAMES as KEPT_TABLES

DOC = """
### messaging_maintenance

Daily at 03:00 local time, so that a year of history costs what a month does:

* **check** — what is due: raw bodies a run would archive now and within a day (by vendor and parse
  state), parts a killed run left, bodies still `pending` (never purged).
* **archive_raw_bodies** — `raw_webhook_events` bodies parsed more than `MESSAGING_RAW_RETENTION_DAYS`
  (30) days ago, or that parsed with errors more than `MESSAGING_RAW_ERROR_RETENTION_DAYS` (180) days
  ago, are written as gzip JSON lines under `MESSAGING_ARCHIVE_URL` (default `data/archive`; a local
  folder or an object store such as `s3://bucket/prefix` through Airflow's ObjectStoragePath),
  `raw_webhook_events/<vendor>/<day received>/part-<first id>-<last id>.jsonl.gz`, and only once a part
  is durably written are its rows' bodies emptied (`purged_at`, `archive_path` set; the rows, their ids
  and hashes stay). 5,000 rows a transaction; a re-run or a run after a kill archives nothing twice.
* **aggregates_checked** — `message_counts` (what `report_delivery_funnel` and the page read, kept by
  triggers as rows change) compared with a `GROUP BY` over `outbound_messages`; any key that differs is
  repaired in the same statement's snapshot, then each key's rows are folded into one. Reports the keys
  that drifted (0 unless someone wrote the counts by hand) and the rows folded.
* **answers_checked** — `campaign_answers` (the campaigns' sends answered by a reply or an opt-out, kept by
  triggers) compared with the pairs the inbound rows, opt-outs and sends make now; a pair missing is added,
  one held without reason removed, in the check's transaction. Reports both counts (0 unless a reply and
  its send's acceptance committed at the same moment on PostgreSQL, or someone wrote the table by hand).
* **failures_checked** — `failed_messages` and `failure_counts` (what `report_failure_reasons` counts the
  messages that failed per reason from, kept by triggers on the status events) compared with the failed
  events; a row missing is added, one without a failed event removed, a count that differs given its
  difference, then each reason's rows are folded into one. Reports the rows that drifted (0 unless someone
  wrote the tables or deleted events by hand) and the rows folded.
* **skipped_checked** — `skipped_counts` (what `report_suppressed_rows` counts the rows skipped for
  consent per file and source from, kept by triggers on `drop_rejects` and `outbound_messages`) compared
  with a `GROUP BY` over those rows; a key that differs is given its difference, then each key's rows are
  folded into one. Reports the keys that drifted (0 unless someone wrote the counts by hand).
* **delivery_times_checked** — `delivery_times` (each send's first event and first delivery, what
  `report_time_to_deliver` reads, kept by triggers on the status events) compared with a `GROUP BY` over the
  events; a message whose row differs is made again from its events. Reports the messages that drifted (0
  unless someone wrote the table by hand, or deleted an event while another of its message was inserted).
* **prune_drop_archives** — files in `<drop folder>/archive/` and `failed/` archived more than
  `MESSAGING_DROP_ARCHIVE_DAYS` (90) days ago are deleted (symlinks never followed).

Each task returns (and logs) its counts: rows purged, bytes archived, files deleted.
"""


@dag(
    dag_id="messaging_maintenance",
    schedule=schedules.cron("0 3 * * *"),
    start_date=schedules.START_DATE,
    catchup=False,
    max_active_runs=1,
    tags=["messaging", "maintenance"],
    doc_md=DOC,
    params={
        "max_batches": Param(
            None,
            type=["null", "integer"],
            minimum=1,
            description="Stop archiving after this many batches of 5,000 rows (empty: everything due).",
        ),
        "dry_run": Param(False, type="boolean", description="Only report what would be archived and pruned."),
    },
    default_args=dag_defaults(retries=2, retry_delay_minutes=5),
)
def messaging_maintenance():
    @task
    def check() -> dict:
        from latam_messaging.maintenance.drop_archives import prune_drop_archives
        from latam_messaging.maintenance.raw_retention import RetentionPolicy
        from latam_messaging.maintenance.raw_retention import check as raw_check
        from latam_messaging.settings import current
        from latam_messaging.warehouse.db import open_warehouse

        settings = current()
        report = raw_check(open_warehouse(), RetentionPolicy.from_settings(settings))
        drops = prune_drop_archives(settings.drop_dir, settings.drop_archive_days, dry_run=True)
        report["drop_files_due"] = drops.files_deleted
        print(f"maintenance check: {report}")
        return report

    @task
    def archive_raw_bodies() -> dict:
        from latam_messaging.maintenance.archive import ArchiveStore
        from latam_messaging.maintenance.raw_retention import RetentionPolicy, archive_and_purge
        from latam_messaging.settings import current
        from latam_messaging.warehouse.db import open_warehouse

        params = get_current_context()["params"]
        if params["dry_run"]:
            return {"dry_run": True}
        settings = current()
        stats = archive_and_purge(
            open_warehouse(),
            ArchiveStore(settings.archive_url),
            RetentionPolicy.from_settings(settings),
            max_batches=params["max_batches"],
        )
        summary = stats.summary()
        print(f"raw bodies archived to {settings.archive_url}: {summary}")
        return summary

    @task
    def prune_drop_archives() -> dict:
        from latam_messaging.maintenance.drop_archives import prune_drop_archives as prune
        from latam_messaging.settings import current

        params = get_current_context()["params"]
        settings = current()
        stats = prune(settings.drop_dir, settings.drop_archive_days, dry_run=params["dry_run"])
        print(f"drop archives pruned under {settings.drop_dir}: {stats.summary()}")
        return stats.summary()

    @task
    def kept_checked(name: str) -> dict:
        from latam_messaging.maintenance.kept_tables import maintain
        from latam_messaging.warehouse.db import open_warehouse

        return maintain(name, open_warehouse())

    kept = [kept_checked.override(task_id=f"{name}_checked")(name) for name in KEPT_TABLES]
    check() >> [archive_raw_bodies(), prune_drop_archives(), *kept]


messaging_maintenance()
