"""A message's life, in one place: its send state, its delivery status, and the one function that
moves it from state to state.

**Send state** (``outbound_messages.state``, :class:`MessageState`) is what *we* did with a row:
``staged`` (its file is still being read) → ``scheduled`` (due later or outside the send window) →
``pending`` → ``sending`` (claimed by one dispatcher) → ``accepted`` / ``rejected`` / ``failed``.
``unknown`` means **in doubt**: the request may or may not have reached the vendor (in flight when a
run died, or a 5xx/timeout after sending). An in-doubt row is never re-sent on its own: a vendor
event or status search proves it was accepted (:func:`resolve_in_doubt`), or an operator releases it
after checking with the vendor. ``suppressed`` is final: the phone had opted out (``consent``) when the
row was claimed, so it was never sent. ``cancelled`` is final too: an operator cancelled the row's
campaign while it waited (``scheduled``/``pending``); a run in flight cannot claim it any more.

**Delivery status** (``outbound_messages.delivery_status`` and ``message_status_events.status``,
:class:`DeliveryStatus`) is what the *vendor* says happened after acceptance (vendor-apis.md §4):
``accepted`` < ``enqueued`` < ``sent`` < ``delivered`` < ``read``; ``failed`` is terminal. A status
text the vocabulary does not know is **unrecognised**: stored as ``unknown`` with the vendor's own
text (counted by the ``report_unrecognised_statuses`` view), it never moves a message. The two
"unknown"s share a stored word for compatibility and nothing else: in code they are
``MessageState.UNKNOWN`` (in doubt) and ``DeliveryStatus.UNRECOGNISED``.

**Moves.** Every change of ``outbound_messages.state`` is a statement built by :func:`move`, which
refuses a move :data:`MOVES` does not allow and only touches rows still in the state it moves from,
so two writers racing for one row cannot both move it. The ledger (``sending/ledger.py``) and status
application (``status.py``) both use it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from enum import StrEnum
from typing import Any

import pendulum
import sqlalchemy as sa

from latam_messaging.warehouse import schema
from latam_messaging.warehouse.db import update_each

OUTBOUND = schema.outbound_messages


class MessageState(StrEnum):
    """``outbound_messages.state``: what we did with a row."""

    STAGED = "staged"
    SCHEDULED = "scheduled"
    PENDING = "pending"
    SENDING = "sending"
    ACCEPTED = "accepted"
    REJECTED = "rejected"
    FAILED = "failed"
    #: In doubt: the request may have reached the vendor. Never re-sent automatically.
    UNKNOWN = "unknown"
    #: Never sent: its phone was suppressed (opted out) when it was claimed. Final.
    SUPPRESSED = "suppressed"
    #: Never sent: an operator cancelled its campaign while it waited. Final.
    CANCELLED = "cancelled"


class DeliveryStatus(StrEnum):
    """The normalised delivery status vocabulary (vendor-apis.md §4)."""

    ACCEPTED = "accepted"
    ENQUEUED = "enqueued"
    SENT = "sent"
    DELIVERED = "delivered"
    READ = "read"
    FAILED = "failed"
    #: The recipient deleted the message (Meta's ``deleted``): recorded, never moves a message.
    DELETED = "deleted"
    #: A status text the vocabulary does not know (stored with the vendor's text); never moves a message.
    UNRECOGNISED = "unknown"


#: Statuses that are stored as events but never change a message's current status.
NOT_PROGRESS = frozenset({DeliveryStatus.UNRECOGNISED, DeliveryStatus.DELETED})
#: Order of the delivery statuses that follow one another (``failed`` is terminal, outside the order).
RANK = {
    DeliveryStatus.ACCEPTED: 0,
    DeliveryStatus.ENQUEUED: 1,
    DeliveryStatus.SENT: 2,
    DeliveryStatus.DELIVERED: 3,
    DeliveryStatus.READ: 4,
}


def advances(current: str | None, new: str) -> bool:
    """Whether delivery status ``new`` may replace ``current`` (an unrecognised text or a deletion never does)."""
    if new in NOT_PROGRESS:
        return False
    if current is None:
        return True
    if current == DeliveryStatus.FAILED:
        return False
    if new == DeliveryStatus.FAILED:
        return True
    return RANK.get(new, -1) > RANK.get(current, -1)


_S = MessageState
#: The send-state moves there are; anything else is a bug. A vendor's answer (accepted, rejected,
#: failed, or unknown when the answer is ambiguous) is written for rows ``sending`` and also for rows
#: already marked ``unknown`` by a watcher while their owner was still waiting for the answer. A claim
#: makes a pending row ``sending``, or ``suppressed`` when its phone opted out; a row whose time to be
#: sent ran out (``expires_at``) fails unsent; a waiting row of a cancelled campaign is ``cancelled``.
MOVES: dict[MessageState, frozenset[MessageState]] = {
    _S.STAGED: frozenset({_S.SCHEDULED, _S.PENDING}),
    _S.SCHEDULED: frozenset({_S.PENDING, _S.FAILED, _S.CANCELLED}),
    _S.PENDING: frozenset({_S.SENDING, _S.SUPPRESSED, _S.FAILED, _S.CANCELLED}),
    _S.SENDING: frozenset({_S.PENDING, _S.ACCEPTED, _S.REJECTED, _S.FAILED, _S.UNKNOWN}),
    _S.UNKNOWN: frozenset({_S.PENDING, _S.ACCEPTED, _S.REJECTED, _S.FAILED, _S.UNKNOWN}),
    _S.ACCEPTED: frozenset(),
    _S.REJECTED: frozenset(),
    _S.FAILED: frozenset(),
    _S.SUPPRESSED: frozenset(),
    _S.CANCELLED: frozenset(),
}
#: What a vendor's answer to a send may make of a row.
ANSWERS = frozenset({_S.ACCEPTED, _S.REJECTED, _S.FAILED, _S.UNKNOWN})


class ForbiddenMove(ValueError):
    """A move :data:`MOVES` does not allow."""


def check_move(sources: Iterable[MessageState], target: MessageState) -> None:
    for source in sources:
        if target not in MOVES[source]:
            raise ForbiddenMove(f"a message cannot move from {source!s} to {target!s}")


def move(
    sources: MessageState | Iterable[MessageState],
    target: MessageState | sa.ColumnElement[Any],
    *where: Any,
    **values: Any,
) -> sa.Update:
    """``UPDATE outbound_messages SET state = target, **values WHERE state IN sources AND *where``.

    ``target`` may be a column when one statement writes many answers (``db.update_each``), or
    a ``CASE`` choosing among states: the caller then checks each possible target with :func:`check_move`."""
    sources = (sources,) if isinstance(sources, MessageState) else tuple(sources)
    if isinstance(target, MessageState):
        check_move(sources, target)
    state = OUTBOUND.c.state
    # OR of equalities, not IN: an IN list is an 'expanding' parameter, which executemany refuses
    in_sources = sa.or_(*(state == source for source in sources))
    return sa.update(OUTBOUND).where(in_sources, *where).values(state=target, **values)


def resolve_in_doubt(conn: sa.Connection, found: Mapping[str, str | None], now: pendulum.DateTime) -> int:
    """In-doubt rows the vendor turned out to have (a status event names them, or a status search
    found them): ``{message_key: vendor_message_id or None}`` → ``accepted``. Rows no longer in
    doubt are left alone. Returns how many moved."""
    return update_each(
        conn,
        [{"k": key, "v": vendor_id} for key, vendor_id in found.items()],
        {"k": sa.String(), "v": sa.String()},
        lambda row: move(
            MessageState.UNKNOWN,
            MessageState.ACCEPTED,
            OUTBOUND.c.message_key == row["k"],
            vendor_message_id=sa.func.coalesce(row["v"], OUTBOUND.c.vendor_message_id),
            error=None,
            accepted_at=sa.func.coalesce(OUTBOUND.c.accepted_at, sa.literal(now, schema.UtcDateTime())),
            updated_at=now,
        ),
        ("k", OUTBOUND.c.message_key),
    )
