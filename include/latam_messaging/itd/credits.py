"""ITD credits: the balance, the burn per day and the days left at that pace.

One arithmetic (:func:`read_credits`) for every reader: the Messaging page (its credits card, through
the registry's ``page_panels``: :func:`page_panel`), the rendered report (the same panel's summary
measures and note) and the ``itd_poll`` DAG (:func:`latest_balance`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from latam_messaging.page.panels import Card, Detail, Panel
from latam_messaging.warehouse import schema
from latam_messaging.warehouse.db import Warehouse

#: Days of the daily view (``report_itd_credits_daily``) the burn is measured over.
BURN_DAYS = 8
SNAPSHOTS = schema.itd_credit_snapshots


@dataclass(frozen=True)
class ItdCredits:
    #: The newest snapshot's balance (None before the first snapshot).
    credits: int | None = None
    #: When the newest snapshot was taken (UTC, to the second).
    taken_at: str | None = None
    #: Credits used per day over the last :data:`BURN_DAYS` days with a snapshot: (the oldest day's
    #: max − the newest day's min) / (days − 1), never negative, 1 decimal; None with fewer than 2 days.
    burn_per_day: float | None = None
    #: ``credits / burn_per_day``, 1 decimal; None when the burn is 0 or unknown.
    days_left: float | None = None


def _text(value: Any) -> str:
    """Timestamps come back as ``datetime`` (PostgreSQL) or text (SQLite)."""
    return value.isoformat() if hasattr(value, "isoformat") else str(value)


def _newest(conn: sa.Connection) -> sa.Row | None:
    return conn.execute(sa.select(SNAPSHOTS.c.taken_at, SNAPSHOTS.c.credits).order_by(SNAPSHOTS.c.taken_at.desc()).limit(1)).first()


def read_credits(conn: sa.Connection) -> ItdCredits:
    """The balance, burn per day and days left (see :class:`ItdCredits`), from the snapshots."""
    latest = _newest(conn)
    if latest is None:
        return ItdCredits()
    daily = conn.execute(
        sa.text(f"SELECT day, max_credits, min_credits FROM report_itd_credits_daily ORDER BY day DESC LIMIT {BURN_DAYS}")
    ).all()[::-1]
    burn = days_left = None
    if len(daily) >= 2:
        used = float(daily[0].max_credits - daily[-1].min_credits)
        burn = round(max(used / (len(daily) - 1), 0.0), 1)
        days_left = round(float(latest.credits) / burn, 1) if burn else None
    return ItdCredits(int(latest.credits), _text(latest.taken_at)[:19], burn, days_left)


def latest_balance(warehouse: Warehouse) -> int | None:
    """The balance of the newest snapshot (None before the first), in a read-only transaction."""
    with warehouse.read_only() as conn:
        latest = _newest(conn)
    return None if latest is None else int(latest.credits)


def _shown(value: Any) -> str:
    return "n/a" if value is None else str(value)


def page_panel(conn: sa.Connection) -> Panel:
    """The credits card of the Messaging page (JSON key ``itd_credits``) and the report's measures."""
    credits = read_credits(conn)
    return Panel(
        key="itd_credits",
        data=dataclasses.asdict(credits),
        cards=(
            Card(
                "ITD credits",
                credits.credits,
                "credits",
                (Detail("days left", credits.days_left, "credits-days-left"), Detail("burn/day", credits.burn_per_day)),
            ),
        ),
        report_summary={
            "itd_credits": credits.credits,
            "itd_credit_burn_per_day": credits.burn_per_day,
            "itd_days_of_credit_left": credits.days_left,
        },
        report_notes=(
            f"Burn: {_shown(credits.burn_per_day)} credits/day; days of credit left: {_shown(credits.days_left)}.",
        ),
    )
