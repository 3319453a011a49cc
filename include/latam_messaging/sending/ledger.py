"""``outbound_messages``: the ledger that makes every send happen at most once.

States and the moves between them belong to ``latam_messaging.lifecycle`` (``MessageState``,
``move``); this module decides *when* rows move: claims, answers, leases, operators' decisions.

**Claims.** A row leaves ``pending`` only through :meth:`Ledger.claim`: one statement that moves at
most one request's worth of rows to ``sending`` for one owner and returns exactly those rows
(``FOR UPDATE SKIP LOCKED`` on PostgreSQL; on SQLite a single ``UPDATE … RETURNING`` takes the
database's write lock before it reads, as ``BEGIN IMMEDIATE`` would). A run sends only what it
claimed, so any number of dispatchers — threads, processes, Celery workers — send each row once.

**Consent.** The claim reads ``suppressions`` in the same statement: a pending row whose phone is
suppressed for this vendor (scope ``all``, the vendor or its channel) becomes ``suppressed`` with the
reason instead of ``sending`` — unless the row carries an explicit ``consent_exempt``. A row past its
``expires_at`` is never claimed; :meth:`Ledger.expire_overdue` fails it.

**Leases.** Each dispatcher holds a row in ``send_leases`` renewed by a heartbeat while it lives.
A row still ``sending`` whose owner's lease has expired was in flight when that run died: it becomes
``unknown`` and is never re-sent automatically (callbacks, status searches or an operator resolve
it). A live run's rows are never touched.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pendulum
import sqlalchemy as sa

from latam_messaging.common.lease import Heartbeat, new_owner
from latam_messaging.consent import suppressions
from latam_messaging.lifecycle import ANSWERS, OUTBOUND, MessageState, check_move, move, resolve_in_doubt
from latam_messaging.warehouse import schema
from latam_messaging.warehouse.db import Warehouse, update_each

log = logging.getLogger(__name__)
LEASES = schema.send_leases
KEY_CHUNK = 900
DEFAULT_LEASE_S = 60.0

__all__ = ["DEFAULT_LEASE_S", "Claimed", "Ledger", "MessageState", "SendLease", "SendOutcome", "SendRow", "new_owner"]


@dataclass(frozen=True, slots=True)
class SendRow:
    """What a send needs of a ledger row: the columns the vendor adapters read."""

    message_key: str
    phone: str
    account_id: int | None = None
    template_id: int | None = None
    params: list[str] | None = None
    content_type: str | None = None
    content: str | None = None
    caption: str | None = None
    description: str | None = None
    url_thumb: str | None = None


#: The ledger columns a claim returns, derived from :class:`SendRow`.
SEND_COLUMNS = tuple(f.name for f in dataclasses.fields(SendRow))


class Claimed(list):
    """The rows one claim took to send (a list of :class:`SendRow`), and how many pending rows it found
    suppressed instead (``suppressed``: they became ``suppressed``, never sent)."""

    suppressed: int = 0


@dataclass
class SendOutcome:
    """What became of one row after a send attempt."""

    message_key: str
    state: MessageState  # accepted | rejected | failed | unknown | pending (not sent after all)
    vendor_message_id: str | None = None
    error: str | None = None
    vendor_answer: str | None = None
    #: When the vendor's answer arrived (``accepted_at``); the recording time if not set.
    answered_at: pendulum.DateTime | None = None


def _chunks(items: Sequence[Any], size: int = KEY_CHUNK) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


class SendLease:
    """One dispatcher's lease: a ``send_leases`` row renewed by a heartbeat thread until released."""

    def __init__(self, warehouse: Warehouse, vendor: str, *, lease_s: float = DEFAULT_LEASE_S):
        self.warehouse = warehouse
        self.vendor = vendor
        self.owner = new_owner(vendor)
        self.lease_s = lease_s
        self._heartbeat = Heartbeat(
            lambda: self.renew(),
            lease_s,
            name=f"lease-{vendor}",
            errors=(sa.exc.SQLAlchemyError,),  # the warehouse is away: the lease may lapse
            logger=log,
            what=f"send lease {self.owner}",
        )

    @property
    def _thread(self):
        return self._heartbeat.thread

    def _until(self) -> pendulum.DateTime:
        return pendulum.now("UTC").add(seconds=self.lease_s)

    def renew(self) -> None:
        with self.warehouse.begin() as conn:
            conn.execute(sa.update(LEASES).where(LEASES.c.owner == self.owner).values(lease_until=self._until()))

    def __enter__(self) -> SendLease:
        with self.warehouse.begin() as conn:
            conn.execute(
                LEASES.insert().values(
                    owner=self.owner, vendor=self.vendor, started_at=pendulum.now("UTC"), lease_until=self._until()
                )
            )
        self._heartbeat.__enter__()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._heartbeat.__exit__(None, None, None)
        with contextlib.suppress(sa.exc.SQLAlchemyError), self.warehouse.begin() as conn:
            conn.execute(sa.delete(LEASES).where(LEASES.c.owner == self.owner))


def _cancel_if_campaign_cancelled(conn: sa.Connection, keys: list[str], now: pendulum.DateTime) -> int:
    """Rows handed back unsent whose campaign was cancelled while they were in flight are ``cancelled``
    (the cancel could not take them: they were ``sending``). The campaigns' rows are read-locked first,
    so a cancel at this moment is waited for and seen (or waits for this transaction and takes them)."""
    C = schema.campaign_files.c
    files = sa.select(OUTBOUND.c.file_sha256).where(OUTBOUND.c.message_key.in_(keys), OUTBOUND.c.file_sha256.is_not(None))
    locked = sa.select(C.file_sha256, C.state, C.cancelled_by).where(C.file_sha256.in_(files)).with_for_update(read=True)
    cancelled = {sha: by for sha, state, by in conn.execute(locked) if state == "cancelled"}
    rows = 0
    for sha, by in cancelled.items():
        statement = move(
            MessageState.PENDING,
            MessageState.CANCELLED,
            OUTBOUND.c.message_key.in_(keys),
            OUTBOUND.c.file_sha256 == sha,
            updated_at=now,
            error=f"campaign cancelled by {by or 'an operator'}",
        )
        rows += conn.execute(statement).rowcount
    return rows


#: One answer's values, named as :func:`_answered` reads them, and their types.
_ANSWER = {
    "k": sa.String(), "s": sa.String(), "v": sa.String(), "e": sa.Text(), "a": sa.Text(), "t": schema.UtcDateTime()
}


def _text(value: str | None) -> str | None:
    """A vendor's text as both warehouses can hold it: PostgreSQL refuses NUL, which a JSON answer may carry
    (an escaped zero character); one such answer must not fail the answers recorded with it."""
    return value.replace("\x00", "\ufffd") if value else value


def _answer(outcome: SendOutcome, now: pendulum.DateTime) -> dict[str, Any]:
    return {
        "k": outcome.message_key,
        "s": str(outcome.state),
        "v": outcome.vendor_message_id,
        "e": _text(outcome.error),
        "a": _text(outcome.vendor_answer),
        "t": outcome.answered_at or now,  # kept only for an accepted row
    }


def _answered(answer: Mapping[str, Any], now: pendulum.DateTime, owner: str) -> sa.Update:
    """The ``UPDATE`` writing an answer (``answer``: the columns of :data:`_ANSWER`) to its row, if this
    owner still holds it ``sending`` (or ``unknown``)."""
    return move(
        (MessageState.SENDING, MessageState.UNKNOWN),
        answer["s"],  # each one of ANSWERS, checked by the caller
        OUTBOUND.c.message_key == answer["k"],
        OUTBOUND.c.claimed_by == owner,
        vendor_message_id=answer["v"],
        error=answer["e"],
        vendor_answer=answer["a"],
        accepted_at=sa.case((answer["s"] == str(MessageState.ACCEPTED), answer["t"])),
        updated_at=now,
    )


class Ledger:
    """One vendor's rows of ``outbound_messages``; every state change is a :func:`lifecycle.move`."""

    def __init__(self, warehouse: Warehouse, vendor: str, channel: str | None = None):
        self.warehouse = warehouse
        self.vendor = vendor
        #: The suppression scopes a send of this ledger falls under (``all``, the vendor, its channel).
        self.scopes = suppressions.scopes_of(vendor, channel)

    # ---- loading a file: staged rows, promoted all at once -------------------------------------
    def stage(self, conn: sa.Connection, rows: list[dict[str, Any]]) -> None:
        """Rows of a file still being read: invisible to sending. Re-adding the same keys changes nothing."""
        self.warehouse.bulk_insert_new(conn, OUTBOUND, rows, keys=["message_key"])

    def promote_file(self, conn: sa.Connection, sha256: str, now: pendulum.DateTime, *, window_open: bool) -> int:
        """A whole file's staged rows become ``pending`` (due) or ``scheduled``, in the caller's
        transaction; returns how many are ``scheduled``."""
        of_file = OUTBOUND.c.file_sha256 == sha256
        if window_open:
            due = sa.or_(OUTBOUND.c.send_at.is_(None), OUTBOUND.c.send_at <= now)
            conn.execute(move(MessageState.STAGED, MessageState.PENDING, of_file, due, updated_at=now))
        return conn.execute(move(MessageState.STAGED, MessageState.SCHEDULED, of_file, updated_at=now)).rowcount

    def discard_file(self, conn: sa.Connection, sha256: str) -> int:
        """A failed file's staged rows are removed: nothing of it is ever sent."""
        return conn.execute(
            sa.delete(OUTBOUND).where(OUTBOUND.c.file_sha256 == sha256, OUTBOUND.c.state == MessageState.STAGED)
        ).rowcount

    # ---- state changes -------------------------------------------------------------------------
    def mark_in_flight_unknown(self, now: pendulum.DateTime) -> int:
        """Rows left ``sending`` by a run whose lease expired: they may have gone out, so never
        re-send them. Rows of a live run (its lease current) are left alone."""
        live = sa.select(LEASES.c.owner).where(LEASES.c.lease_until > now)
        with self.warehouse.begin() as conn:
            conn.execute(sa.delete(LEASES).where(LEASES.c.vendor == self.vendor, LEASES.c.lease_until <= now))
            statement = move(
                MessageState.SENDING,
                MessageState.UNKNOWN,
                OUTBOUND.c.vendor == self.vendor,
                sa.or_(OUTBOUND.c.claimed_by.is_(None), OUTBOUND.c.claimed_by.not_in(live)),
                updated_at=now,
                error="in flight when a run stopped: not re-sent automatically",
            )
            return conn.execute(statement).rowcount

    def release_unknown(self, keys: Sequence[str], now: pendulum.DateTime) -> list[str]:
        """An operator's decision, after checking with the vendor, that these were not sent.
        Returns the keys released (only rows of this vendor that are ``unknown``)."""
        released: list[str] = []
        with self.warehouse.begin() as conn:
            for chunk in _chunks(list(dict.fromkeys(keys))):
                statement = move(
                    MessageState.UNKNOWN,
                    MessageState.PENDING,
                    OUTBOUND.c.message_key.in_(chunk),
                    OUTBOUND.c.vendor == self.vendor,
                    updated_at=now,
                    claimed_by=None,
                    error="released by an operator",
                ).returning(OUTBOUND.c.message_key)
                moved = list(conn.execute(statement).scalars())
                _cancel_if_campaign_cancelled(conn, moved, now)  # released, but their campaign was cancelled
                released.extend(moved)
        return released

    def promote_due(self, now: pendulum.DateTime) -> int:
        """``scheduled`` rows whose time has come become ``pending``."""
        with self.warehouse.begin() as conn:
            statement = move(
                MessageState.SCHEDULED,
                MessageState.PENDING,
                OUTBOUND.c.vendor == self.vendor,
                sa.or_(OUTBOUND.c.send_at.is_(None), OUTBOUND.c.send_at <= now),
                updated_at=now,
            )
            return conn.execute(statement).rowcount

    def expire_overdue(self, now: pendulum.DateTime) -> int:
        """Rows not sent before their ``expires_at`` (e.g. a reply after WhatsApp's 24-hour window
        closed) fail unsent."""
        with self.warehouse.begin() as conn:
            statement = move(
                (MessageState.PENDING, MessageState.SCHEDULED),
                MessageState.FAILED,
                OUTBOUND.c.vendor == self.vendor,
                OUTBOUND.c.expires_at <= now,
                updated_at=now,
                error="expired before it could be sent (expires_at)",
            )
            return conn.execute(statement).rowcount

    def count_state(self, state: MessageState) -> int:
        return self.warehouse.count(OUTBOUND, sa.and_(OUTBOUND.c.vendor == self.vendor, OUTBOUND.c.state == state))

    def claim(self, owner: str, limit: int) -> Claimed:
        """Atomically move up to ``limit`` pending rows to ``sending`` for ``owner`` and return them.
        Committed before any request for them leaves: the heart of 'never twice'. In the same
        statement, rows whose phone is suppressed become ``suppressed`` (counted, not returned)."""
        now = pendulum.now("UTC")
        candidates = (
            sa.select(OUTBOUND.c.message_key)
            .where(
                OUTBOUND.c.vendor == self.vendor,
                OUTBOUND.c.state == MessageState.PENDING,
                sa.or_(OUTBOUND.c.expires_at.is_(None), OUTBOUND.c.expires_at > now),
            )
            .order_by(OUTBOUND.c.message_key)
            .limit(limit)
        )
        returned = [OUTBOUND.c[name] for name in SEND_COLUMNS]
        if self.warehouse.dialect == "postgresql":
            # A materialised CTE locks and picks the rows once; an ``IN (SELECT … LIMIT … SKIP LOCKED)``
            # subquery may be run again while the UPDATE goes, and then claim more than ``limit``.
            picked = candidates.with_for_update(skip_locked=True).cte("picked").prefix_with("MATERIALIZED")
            chosen = OUTBOUND.c.message_key == picked.c.message_key
        else:  # one UPDATE statement holds SQLite's write lock from before it reads until it commits
            chosen = OUTBOUND.c.message_key.in_(candidates.scalar_subquery())
        check_move((MessageState.PENDING,), MessageState.SENDING)
        check_move((MessageState.PENDING,), MessageState.SUPPRESSED)
        blocked_by = suppressions.blocker(suppressions.consent_key_of(OUTBOUND.c.phone), self.scopes)
        blocked = sa.and_(OUTBOUND.c.consent_exempt.is_(None), blocked_by.is_not(None))
        statement = move(
            MessageState.PENDING,
            sa.case((blocked, sa.literal(MessageState.SUPPRESSED.value)), else_=sa.literal(MessageState.SENDING.value)),
            chosen,
            claimed_by=owner,
            request_started_at=sa.case((blocked, None), else_=sa.literal(now, schema.UtcDateTime())),
            error=sa.case((blocked, blocked_by), else_=OUTBOUND.c.error),
            updated_at=now,
        ).returning(*returned, OUTBOUND.c.state)
        with self.warehouse.begin() as conn:
            taken = conn.execute(statement).all()
        claimed = Claimed(sorted((SendRow(*r[:-1]) for r in taken if r[-1] == MessageState.SENDING), key=lambda r: r.message_key))
        claimed.suppressed = len(taken) - len(claimed)
        if claimed.suppressed:
            log.info("%d claimed row(s) were suppressed (the phone opted out): not sent", claimed.suppressed)
        return claimed

    def record(self, outcomes: Sequence[SendOutcome], now: pendulum.DateTime, owner: str) -> None:
        """The vendor's answers, in one transaction; only rows this owner claimed are written."""
        if not outcomes:
            return
        for outcome in outcomes:
            if outcome.state != MessageState.PENDING and outcome.state not in ANSWERS:
                check_move((MessageState.SENDING,), outcome.state)  # raises: not an answer
        answered = [o for o in outcomes if o.state != MessageState.PENDING]
        answers = list({o.message_key: o for o in reversed(answered)}.values())  # a key's first answer
        if len(answers) < len(answered):
            log.warning("a row was answered twice in one batch: its first answer is recorded")
        back = [o.message_key for o in outcomes if o.state == MessageState.PENDING]
        with self.warehouse.begin() as conn:
            update_each(
                conn, [_answer(o, now) for o in answers], _ANSWER,
                lambda answer: _answered(answer, now, owner), ("k", OUTBOUND.c.message_key),
            )
            for keys in _chunks(back):
                # claimed but never sent (the run stopped first): pending again, unclaimed
                conn.execute(
                    move(
                        MessageState.SENDING, MessageState.PENDING,
                        OUTBOUND.c.message_key.in_(keys), OUTBOUND.c.claimed_by == owner,
                        claimed_by=None, request_started_at=None, updated_at=now,
                    )
                )
                _cancel_if_campaign_cancelled(conn, list(keys), now)

    def unknown_keys(self, page: int = 1000) -> Iterator[list[str]]:
        """Every ``unknown`` row's key, page by page (keyset: rows resolved meanwhile do not shift it)."""
        after = ""
        while True:
            query = (
                sa.select(OUTBOUND.c.message_key)
                .where(
                    OUTBOUND.c.vendor == self.vendor,
                    OUTBOUND.c.state == MessageState.UNKNOWN,
                    OUTBOUND.c.message_key > after,
                )
                .order_by(OUTBOUND.c.message_key)
                .limit(page)
            )
            with self.warehouse.engine.connect() as conn:
                keys = list(conn.execute(query).scalars())
            if not keys:
                return
            yield keys
            after = keys[-1]

    def resolve_unknown(self, found: dict[str, str], now: pendulum.DateTime) -> int:
        """Unknown rows the vendor turned out to have accepted: ``{message_key: vendor_message_id}``."""
        if not found:
            return 0
        with self.warehouse.begin() as conn:
            return resolve_in_doubt(conn, found, now)
