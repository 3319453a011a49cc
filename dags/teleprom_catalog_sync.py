"""Daily copy of Teleprom's templates (HSM) and WhatsApp accounts into the warehouse."""

from __future__ import annotations

from dataclasses import asdict

from airflow.sdk import dag, task

from latam_messaging import assets, schedules
from latam_messaging.dag_defaults import dag_defaults
from latam_messaging.vendors import POOLS

DOC = """
### Teleprom catalogue sync

Fetches every HSM template (`GetTemplates`) and WhatsApp account (`GetAllRuteos`) and upserts them
into **`teleprom_templates`** and **`teleprom_accounts`**.

* New items get `first_seen_at`; every run moves `last_seen_at`.
* An item that disappears is marked `active = false` (with `deactivated_at`), never deleted.
* Status, name and account changes are recorded in `teleprom_catalog_changes`.
* Both tables change in one transaction: a failed run leaves the previous catalogue intact.

**import_clicks** (beside the catalogue, independent of it): Teleprom's click export
(`ExportDataClicks`) sets `clicks` and `clicks_updated_at` of our `short_links` (links of campaigns'
template parameters, shortened when `teleprom_default` has `shorten_links` on), by short URL; a re-run
sets the same counts; links we did not make are counted in the log and ignored.

Connections: `teleprom_default`, `messaging_warehouse`. The send DAGs validate rows against this table.
"""


@dag(
    dag_id="teleprom_catalog_sync",
    schedule=schedules.cron("0 6 * * *"),
    start_date=schedules.START_DATE,
    catchup=False,
    max_active_runs=1,
    tags=["messaging", "teleprom", "catalog"],
    doc_md=DOC,
    default_args=dag_defaults(retries=3, retry_delay_minutes=5),
)
def teleprom_catalog_sync():
    @task(
        outlets=[assets.changes(assets.TELEPROM_TEMPLATES), assets.changes(assets.TELEPROM_ACCOUNTS)],
        pool=POOLS["teleprom"],
    )
    def sync_catalog() -> dict[str, int]:
        """Fetch both lists in full first, then write them together."""
        from latam_messaging.teleprom.catalog import sync_catalog as write_catalog
        from latam_messaging.teleprom.hook import TelepromHook
        from latam_messaging.warehouse.db import open_warehouse

        hook = TelepromHook()
        accounts = hook.get_accounts()
        templates = hook.get_templates()
        stats = write_catalog(open_warehouse(), templates, accounts)
        print(f"Catalogue synced: {asdict(stats)}")
        changed = stats.added + stats.removed + stats.changed  # last_seen_at alone is no change
        assets.emit_changes({assets.TELEPROM_TEMPLATES: changed, assets.TELEPROM_ACCOUNTS: changed})
        return asdict(stats)

    @task(pool=POOLS["teleprom"])
    def import_clicks() -> dict[str, int]:
        """The clicks of our short links, from Teleprom's click export."""
        from latam_messaging.teleprom.hook import TelepromHook
        from latam_messaging.teleprom.links import import_clicks as write_clicks
        from latam_messaging.warehouse.db import open_warehouse

        stats = write_clicks(open_warehouse(), TelepromHook().click_export())
        print(f"Clicks imported: {asdict(stats)} (ignored: links of the export we did not make)")
        return asdict(stats)

    sync_catalog()
    import_clicks()


teleprom_catalog_sync()
