"""The ``suppressions`` table: adding, ending and looking up who must not be sent to.

A suppression blocks a send when it is **active** (``ended_at`` is NULL) and its scope is ``all``, the
send's vendor or the send's channel (:func:`scopes_of`). It is checked twice: when a file is ingested
(:func:`screen`: the row becomes a reject ``suppressed: …``) and when a row is claimed for sending
(:func:`blocker`, inside the claim's one statement: the row becomes ``suppressed``), so an opt-out that
lands while a campaign waits or is mid-send stops the rest of it.

Phones are matched by :func:`~latam_messaging.common.phones.consent_key`: the two valid ways of writing
one Argentine, Mexican or Brazilian mobile are one key, so an opt-out under one form blocks the other
(``suppressions.phone`` holds the key; the claim computes each row's key in SQL, :func:`consent_key_of`).

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

from latam_messaging.common.phones import consent_key
from latam_messaging.warehouse import schema
from latam_messaging.warehouse.db import Warehouse, in_values

SUPPRESSIONS = schema.suppressions
#: The scope that blocks every vendor and channel.
ALL = "all"
#: Phones looked up per statement when screening a file's chunk: each an index lookup.
SCREEN_CHUNK = 500  # PostgreSQL plans a 5,000-phone IN list against 1M suppressions as a scan (5 s a 100k file)
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
        values["phone"] = consent_key(self.phone)
        return {**values, "created_at": now, "last_seen_at": self.since}


def add(warehouse: Warehouse, conn: sa.Connection, items: Sequence[Suppression], now: pendulum.DateTime) -> list[Suppression]:
    """Add suppressions; those already recorded (same evidence) change nothing. One whose (phone, scope,
    source) is already active is not added, but renews the active row (``last_seen_at``: the newest
    evidence time), so an opt-in older than this evidence never ends it. Returns the ones that are new."""
    new = []
    statement = warehouse.insert(SUPPRESSIONS).on_conflict_do_nothing().returning(SUPPRESSIONS.c.id)
    seen = SUPPRESSIONS.c.last_seen_at
    renew = (
        sa.update(SUPPRESSIONS)
        .where(
            SUPPRESSIONS.c.phone == sa.bindparam("p"),
            SUPPRESSIONS.c.scope == sa.bindparam("sc"),
            SUPPRESSIONS.c.source == sa.bindparam("so"),
            SUPPRESSIONS.c.ended_at.is_(None),
            sa.or_(seen.is_(None), seen < sa.bindparam("at", type_=schema.UtcDateTime())),
        )
        .values(last_seen_at=sa.bindparam("at", type_=schema.UtcDateTime()))
    )
    for item in items:  # one by one: opt-outs are few, and the caller needs to know which were new
        row = item.row(now)
        if conn.execute(statement, row).first() is not None:
            new.append(item)
        else:
            conn.execute(renew, {"p": row["phone"], "sc": item.scope, "so": item.source, "at": item.since})
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
    """End the active suppressions of ``phone`` from ``sources`` (of one ``scope``, or all) none of
    whose evidence is newer than ``at``. Returns how many ended."""
    where = [
        SUPPRESSIONS.c.phone == consent_key(phone),
        SUPPRESSIONS.c.ended_at.is_(None),
        SUPPRESSIONS.c.source.in_(list(sources)),
        sa.func.coalesce(SUPPRESSIONS.c.last_seen_at, SUPPRESSIONS.c.since) <= at,
    ]
    if scope is not None:
        where.append(SUPPRESSIONS.c.scope == scope)
    statement = (
        sa.update(SUPPRESSIONS).where(*where).values(ended_at=at, ended_by=by, end_evidence=evidence[:EVIDENCE_CHARS])
    )
    return conn.execute(statement).rowcount


def opted_in_after(conn: sa.Connection, phone: str, at: pendulum.DateTime) -> bool:
    """Whether an opt-in reply newer than ``at`` already ended a keyword suppression of ``phone``: an
    opt-out reply of ``at`` read only now (a late delivery) is then not the customer's last word."""
    query = sa.select(SUPPRESSIONS.c.id).where(
        SUPPRESSIONS.c.phone == consent_key(phone),
        SUPPRESSIONS.c.source == Source.KEYWORD,
        SUPPRESSIONS.c.ended_at > at,
        SUPPRESSIONS.c.end_evidence.like("inbound_messages %"),
    )
    return conn.execute(query.limit(1)).first() is not None


def keyword_opt_outs_since(conn: sa.Connection, phone: str, since: pendulum.DateTime) -> int:
    """How many opt-out replies of ``phone`` were recorded since ``since`` (ended ones too)."""
    query = sa.select(sa.func.count()).where(
        SUPPRESSIONS.c.phone == consent_key(phone),
        SUPPRESSIONS.c.source == Source.KEYWORD,
        SUPPRESSIONS.c.created_at >= since,
    )
    return int(conn.execute(query).scalar() or 0)


def reason_text(source: sa.ColumnElement[Any], evidence: sa.ColumnElement[Any]) -> sa.ColumnElement[str]:
    """``suppressed: <source> (<evidence>)``: the reason a skipped row carries."""
    return sa.literal("suppressed: ") + source + sa.literal(" (") + evidence + sa.literal(")")


def consent_key_of(phone: sa.ColumnElement[str]) -> sa.ColumnElement[str]:
    """:func:`~latam_messaging.common.phones.consent_key` in SQL (the same on SQLite and PostgreSQL), for
    the claim: whoever wrote a ledger row, its phone is matched by its key. Tests check the two agree."""
    length, head = sa.func.length(phone), sa.func.substr(phone, 1, 3)
    rest = sa.func.substr(phone, 4)
    return sa.case(
        (sa.and_(length == 13, head == "549"), sa.literal("54") + rest),
        (sa.and_(length == 13, head == "521"), sa.literal("52") + rest),
        (
            sa.and_(length == 12, sa.func.substr(phone, 1, 2) == "55", sa.func.substr(phone, 5, 1).in_(["6", "7", "8", "9"])),
            sa.func.substr(phone, 1, 4) + sa.literal("9") + sa.func.substr(phone, 5),
        ),
        else_=phone,
    )


def blocker(phone: sa.ColumnElement[str], scopes: Sequence[str]) -> sa.ScalarSelect[Any]:
    """A correlated subquery: the reason the send to ``phone`` (a column holding the consent key) is
    blocked, or NULL. Read inside the claim's statement, so the check is as late as it can be (the
    request leaves right after)."""
    s = SUPPRESSIONS.alias("blocking")
    return (
        sa.select(reason_text(s.c.source, s.c.evidence))
        .where(s.c.phone == phone, s.c.ended_at.is_(None), sa.or_(*(s.c.scope == scope for scope in scopes)))
        # no ORDER BY: any active entry blocks, and ordering by id lets PostgreSQL walk the primary key
        .limit(1)
        .scalar_subquery()
    )


def screen(conn: sa.Connection, phones: Iterable[str], scopes: Sequence[str]) -> dict[str, str]:
    """``{phone: reason}`` for the phones an active suppression of ``scopes`` blocks (the oldest one)."""
    by_key: dict[str, list[str]] = {}
    for phone in set(phones):
        by_key.setdefault(consent_key(phone), []).append(phone)
    wanted = sorted(by_key)
    found: dict[str, str] = {}
    for start in range(0, len(wanted), SCREEN_CHUNK):
        query = (
            sa.select(SUPPRESSIONS.c.phone, reason_text(SUPPRESSIONS.c.source, SUPPRESSIONS.c.evidence))
            .where(
                in_values(conn, SUPPRESSIONS.c.phone, wanted[start : start + SCREEN_CHUNK]),
                SUPPRESSIONS.c.ended_at.is_(None),
                SUPPRESSIONS.c.scope.in_(list(scopes)),
            )
            .order_by(SUPPRESSIONS.c.id.desc())  # the oldest last: it wins below
        )
        for key, reason in conn.execute(query):
            for phone in by_key[key]:
                found[phone] = reason
    return found


def active(conn: sa.Connection, phone: str) -> list[dict[str, Any]]:
    """The active suppressions of one phone, oldest first (for people and tests)."""
    query = (
        sa.select(SUPPRESSIONS)
        .where(SUPPRESSIONS.c.phone == consent_key(phone), SUPPRESSIONS.c.ended_at.is_(None))
        .order_by(SUPPRESSIONS.c.id)
    )
    return [dict(r._mapping) for r in conn.execute(query)]
