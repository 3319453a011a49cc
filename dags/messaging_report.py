"""Airflow DAG: refresh the reporting views and render the daily messaging report."""

from __future__ import annotations

from airflow.sdk import AssetOrTimeSchedule, dag, task

from latam_messaging import assets, schedules
from latam_messaging.dag_defaults import dag_defaults

DOC = """
### messaging_report

Runs daily at 07:00 local time **and** whenever the send, poll or webhook DAGs update the warehouse
tables (Assets). The reporting views (`report_delivery_funnel`, `report_failure_reasons`,
`report_time_to_deliver`, `report_rejects_by_reason`, `report_itd_credits_daily`,
`report_inbound_daily`, `report_risky_share`, and for consent `report_active_suppressions`,
`report_optouts_daily`, `report_suppressed_rows`, `report_optout_keywords`, `report_consent_exempt`)
are live SQL views, kept current by the warehouse migrations; this DAG renders
**`reports/<date>/index.html`** with PNG charts (funnel, rejects, inbound), time-to-deliver
percentiles, ITD credit burn and days left, the risky-number share and a Consent section (the
Messaging page's numbers) — readable without opening the warehouse. `MESSAGING_REPORT_DIR` changes
where (default `reports/`).
"""


@dag(
    dag_id="messaging_report",
    schedule=AssetOrTimeSchedule(
        timetable=schedules.cron("0 7 * * *"),
        assets=(
            assets.OUTBOUND_MESSAGES
            | assets.MESSAGE_STATUS_EVENTS
            | assets.INBOUND_MESSAGES
            | assets.ITD_CREDIT_SNAPSHOTS
        ),
    ),
    start_date=schedules.START_DATE,
    catchup=False,
    max_active_runs=1,
    tags=["messaging", "report"],
    doc_md=DOC,
    default_args=dag_defaults(retries=1),
)
def messaging_report():
    @task
    def render() -> dict:
        from latam_messaging.reporting import render_report
        from latam_messaging.sending.tasks import sync_prices
        from latam_messaging.settings import current
        from latam_messaging.vendors import page_panels
        from latam_messaging.warehouse.db import open_warehouse

        warehouse = open_warehouse()
        sync_prices(warehouse)  # the campaigns' costs follow MESSAGING_PRICES
        result = render_report(warehouse, current().report_dir, panels=page_panels())
        print(f"report written to {result.html.resolve()}: {result.summary}")
        return {"html": str(result.html.resolve()), **result.summary}

    render()


messaging_report()
