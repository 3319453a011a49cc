"""Start date and schedules of the DAGs: fixed, time-zone aware, the same in every environment.

Nothing here reads the environment (DAG files are parsed by the dag-processor, which should not need
the project's variables). Schedules are cron expressions in :data:`settings.SCHEDULE_TIMEZONE`
(Buenos Aires), given as explicit ``CronTriggerTimetable`` so the UI shows them in that zone.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import CronTriggerTimetable

from latam_messaging.settings import SCHEDULE_TIMEZONE

#: Before any real run; with ``catchup=False`` only the latest interval is ever scheduled.
START_DATE = pendulum.datetime(2026, 1, 1, tz=SCHEDULE_TIMEZONE)

EVERY_5_MINUTES = "*/5 * * * *"
EVERY_15_MINUTES = "*/15 * * * *"
HOURLY = "0 * * * *"


def cron(expression: str) -> CronTriggerTimetable:
    """A cron schedule in the project's schedule time zone."""
    return CronTriggerTimetable(expression, timezone=SCHEDULE_TIMEZONE)
