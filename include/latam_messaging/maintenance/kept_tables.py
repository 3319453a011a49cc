"""The tables the database keeps as data arrives (``warehouse.aggregates``, ``campaigns.answers``,
``warehouse.failures``, ``views.skipped_counts``, ``warehouse.delivery_times``), checked and mended daily
by ``messaging_maintenance``: one task each, named ``<name>_checked``, through :func:`maintain`."""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple


class Kept(NamedTuple):
    what: str  # logged: what was checked against what
    maintain: Callable[[object], dict[str, int]]  # of the warehouse: check, mend, fold; returns the counts


def _kept() -> dict[str, Kept]:
    from latam_messaging.campaigns import answers
    from latam_messaging.warehouse import aggregates, delivery_times, failures, views

    return {
        "aggregates": Kept("message_counts checked against outbound_messages", aggregates.maintain),
        "answers": Kept("campaign_answers checked against the replies, opt-outs and sends", answers.maintain),
        "failures": Kept("failed_messages and failure_counts checked against message_status_events", failures.maintain),
        "delivery_times": Kept("delivery_times checked against message_status_events", delivery_times.maintain),
        "skipped": Kept(
            "skipped_counts checked against drop_rejects and outbound_messages",
            lambda warehouse: views.skipped_counts(warehouse.dialect).maintain(warehouse),
        ),
    }


#: The names of the kept tables' checks, in the DAG's order.
NAMES = ("aggregates", "answers", "failures", "skipped", "delivery_times")


def maintain(name: str, warehouse) -> dict[str, int]:
    """Check and mend the kept table ``name`` (one of :data:`NAMES`); logs and returns what it found and did."""
    kept = _kept()[name]
    result = kept.maintain(warehouse)
    print(f"{kept.what}: {result}")
    return result
