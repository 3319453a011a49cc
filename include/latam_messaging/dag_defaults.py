"""``default_args`` every messaging DAG shares: retries with exponential backoff, and the failure alert."""

from __future__ import annotations

import pendulum

from latam_messaging.notify import MessagingAlertNotifier


def dag_defaults(retries: int = 2, retry_delay_minutes: float = 2) -> dict:
    """``default_args`` for a messaging DAG: ``retries`` tries ``retry_delay_minutes`` apart (doubling),
    and :class:`MessagingAlertNotifier` on failure."""
    return {
        "retries": retries,
        "retry_delay": pendulum.duration(minutes=retry_delay_minutes),
        "retry_exponential_backoff": True,
        "on_failure_callback": [MessagingAlertNotifier()],
    }
