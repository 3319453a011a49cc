"""The ``suppressions`` table: adding, ending and looking up who must not be sent to.

A suppression blocks a send when it is **active** (``ended_at`` is NULL) and its scope is ``all``, the
send's vendor or the send's channel (:func:`scopes_of`). It is checked twice: when a file is ingested
(:func:`screen`: the row becomes a reject ``suppressed: …``) and when a row is claimed for sending
(:func:`blocker`, inside the claim's one statement: the row becomes ``suppressed``), so an opt-out that
lands while a campaign waits or is mid-send stops the rest of it.

Every row names its evidence; adding the same evidence again changes nothing, and at most one row is
active per (phone, scope, source), so a customer who replies "BAJA" twice has one entry. Ending a row
(an opt-in, a ``remove`` line) sets ``ended_*``: history is never deleted. An end only closes rows whose
evidence is not newer than the end's (``since <= at``): a late-processed old opt-in never undoes a
newer opt-out.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Any

import pendulum
import sqlalchemy as sa

from latam_messaging.warehouse import schema
from latam_messaging.warehouse.db import Warehouse

SUPPRESSIONS = schema.suppressions
#: The scope that blocks every vendor and channel.
ALL = "all"
#: Phones looked up per statement when screening a file's chunk.
SCREEN_CHUNK = 5000
EVIDENCE_CHARS = 300


class Source(StrEnum):
    KEYWORD = "keyword"  # the customer replied an opt-out keyword
    VENDOR_STATUS = "vendor_status"  # the vendor reported the destination opted out (Wavy 204, Meta 131050)
    MANUAL = "manual"  # a line of a file in suppressions/, or a person

    @staticmethod
    def registry(name: str) -> str:
        """``registry:<name>``: a line of a national do-not-contact registry's export."""
        return f"registry:{name}"


#: Sources an opt-in reply ends: only what a customer's own words started.
ENDED_BY_OPT_IN = (Source.KEYWORD,)


def scopes_of(vendor: str, channel: str | None = None) -> tuple[str, ...]:
    """The scopes a send by ``vendor`` over ``channel`` falls under."""
    return tuple(dict.fromkeys(s for s in (ALL, vendor, channel) if s))


@dataclass(frozen=True)
class Suppression:
    phone: str
    scope: str
    source: str
    evidence: str
    since: pendulum.DateTime
    created_by: str
    reason: str | None = None

    def row(self, now: pendulum.DateTime) -> dict[str, Any]:
        values = asdict(self)
        values["evidence"] = values["evidence"][:EVIDENCE_CHARS]
        return {**values, "created_at": now}


def add(warehouse: Warehouse, conn: sa.Connection, items: Sequence[Suppression], now: pendulum.DateTime) -> list[Suppression]:
    """Add suppressions; those already recorded (same evidence), or whose (phone, scope, source) is
    already active, change nothing. Returns the ones that are new."""
    new = []
    statement = warehouse.insert(SUPPRESSIONS).on_conflict_do_nothing().returning(SUPPRESSIONS.c.id)
    for item in items:  # one by one: opt-outs are few, and the caller needs to know which were new
        if conn.execute(statement, item.row(now)).first() is not None:
            new.append(item)
    return new


def end(
    conn: sa.Connection,
    phone: str,
    *,
    sources: Iterable[str],
    at: pendulum.DateTime,
    by: str,
    evidence: str,
    scope: str | None = None,
) -> int:
    """End the active suppressions of ``phone`` from ``sources`` (of one ``scope``, or all) whose
    evidence is not newer than ``at``. Returns how many ended."""
    where = [
        SUPPRESSIONS.c.phone == phone,
        SUPPRESSIONS.c.ended_at.is_(None),
        SUPPRESSIONS.c.source.in_(list(sources)),
        SUPPRESSIONS.c.since <= at,
    ]
    if scope is not None:
        where.append(SUPPRESSIONS.c.scope == scope)
    statement = (
        sa.update(SUPPRESSIONS).where(*where).values(ended_at=at, ended_by=by, end_evidence=evidence[:EVIDENCE_CHARS])
    )
    return conn.execute(statement).rowcount


def reason_text(source: sa.ColumnElement[Any], evidence: sa.ColumnElement[Any]) -> sa.ColumnElement[str]:
    """``suppressed: <source> (<evidence>)``: the reason a skipped row carries."""
    return sa.literal("suppressed: ") + source + sa.literal(" (") + evidence + sa.literal(")")


def blocker(phone: sa.ColumnElement[str], scopes: Sequence[str]) -> sa.ScalarSelect[Any]:
    """A correlated subquery: the reason the send to ``phone`` is blocked, or NULL. Read inside the
    claim's statement, so the check is as late as it can be (the request leaves right after)."""
    s = SUPPRESSIONS.alias("blocking")
    return (
        sa.select(reason_text(s.c.source, s.c.evidence))
        .where(s.c.phone == phone, s.c.ended_at.is_(None), sa.or_(*(s.c.scope == scope for scope in scopes)))
        .order_by(s.c.id)
        .limit(1)
        .scalar_subquery()
    )


def screen(conn: sa.Connection, phones: Iterable[str], scopes: Sequence[str]) -> dict[str, str]:
    """``{phone: reason}`` for the phones an active suppression of ``scopes`` blocks (the oldest one)."""
    wanted = sorted(set(phones))
    found: dict[str, str] = {}
    for start in range(0, len(wanted), SCREEN_CHUNK):
        query = (
            sa.select(SUPPRESSIONS.c.phone, reason_text(SUPPRESSIONS.c.source, SUPPRESSIONS.c.evidence))
            .where(
                SUPPRESSIONS.c.phone.in_(wanted[start : start + SCREEN_CHUNK]),
                SUPPRESSIONS.c.ended_at.is_(None),
                SUPPRESSIONS.c.scope.in_(list(scopes)),
            )
            .order_by(SUPPRESSIONS.c.id.desc())  # the oldest last: it wins below
        )
        for phone, reason in conn.execute(query):
            found[phone] = reason
    return found


def active(conn: sa.Connection, phone: str) -> list[dict[str, Any]]:
    """The active suppressions of one phone, oldest first (for people and tests)."""
    query = (
        sa.select(SUPPRESSIONS)
        .where(SUPPRESSIONS.c.phone == phone, SUPPRESSIONS.c.ended_at.is_(None))
        .order_by(SUPPRESSIONS.c.id)
    )
    return [dict(r._mapping) for r in conn.execute(query)]
