"""Status events applied to the ledger (the vocabulary itself is ``latam_messaging.lifecycle``'s).

``accepted`` < ``enqueued`` < ``sent`` < ``delivered`` < ``read``; ``failed`` is terminal; a status text
the vocabulary does not know is *unrecognised* (stored as ``unknown`` with the vendor's text): it never
moves a message. An event is stored once: the same status text of the same message seen again (a vendor retry, or the
webhook and the poll of one ITD status with different time precision) is the same event. The message's
current status only moves forward, so late, duplicate and out-of-order events change nothing. An event
for a send in doubt (state ``unknown``) proves the vendor has it: the row becomes ``accepted`` through
``lifecycle.resolve_in_doubt``, the same move a status search or the ledger makes. Events link to
our sends by every id they carry (Teleprom V1/V3 ``gs_id`` and ``id``).
"""

from __future__ import annotations

import dataclasses
import itertools
import operator
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

import pendulum
import sqlalchemy as sa

from latam_messaging.consent import suppressions
from latam_messaging.consent.suppressions import Source, Suppression
from latam_messaging.lifecycle import NOT_PROGRESS, RANK, MessageState, advances, resolve_in_doubt
from latam_messaging.warehouse import schema
from latam_messaging.warehouse.db import Warehouse, in_values, update_each

RAW_STATUS_CHARS = 128
OUTBOUND = schema.outbound_messages
EVENTS = schema.message_status_events
KEY_CHUNK = 500


@dataclass(frozen=True)
class EventCost:
    """Meta's ``pricing`` and ``conversation`` objects of a status event (the cost data)."""

    billable: bool | None = None
    pricing_category: str | None = None
    pricing_model: str | None = None
    conversation_id: str | None = None
    conversation_origin: str | None = None
    conversation_expires_at: pendulum.DateTime | None = None

    def columns(self) -> dict[str, object]:
        return dataclasses.asdict(self)


#: The cost columns of ``message_status_events``, empty.
NO_COST = EventCost().columns()


@dataclass
class StatusEvent:
    vendor: str
    vendor_message_id: str | None
    status: str  # normalised
    raw_status: str
    event_at: pendulum.DateTime
    source: str  # webhook | poll
    message_key: str | None = None  # when the event names our key (Teleprom identificador, Wavy correlationId)
    raw_event_id: int | None = None
    vendor_ids: list[str] = field(default_factory=list)  # every id the event carries, tried in turn
    note: str | None = None
    #: the vendor time is truncated to this many seconds (ITD webhooks: minutes); 0 = exact
    precision_s: int = 0
    #: why it failed, as the vendor's first error ``<code>: <title>`` (Meta ``errors[]``); None otherwise
    reason: str | None = None
    #: what the vendor will charge (Meta ``pricing`` / ``conversation``), when it says
    cost: EventCost | None = None
    #: the message's send time as the vendor reports it with this event (ITD's ``sent_at``), not the event's
    message_sent_at: pendulum.DateTime | None = None
    #: the vendor says the recipient opted out (Wavy 204, Meta 131050): the phone is suppressed for this vendor
    opt_out: bool = False


def _candidates(event: StatusEvent) -> list[str]:
    return list(dict.fromkeys([*event.vendor_ids, *([event.vendor_message_id] if event.vendor_message_id else [])]))


class _Sent(NamedTuple):
    """What applying events needs of a linked send, read once with the link."""

    state: str
    delivery_status: str | None
    vendor_message_id: str | None
    accepted_at: object
    phone: str


_SENT = (OUTBOUND.c.state, OUTBOUND.c.delivery_status, OUTBOUND.c.vendor_message_id, OUTBOUND.c.accepted_at, OUTBOUND.c.phone)


def _link(conn: sa.Connection, events: Sequence[StatusEvent]) -> dict[str, _Sent]:
    """Fill ``message_key`` and ``vendor_message_id`` from the ledger where the event lacks one; returns
    the sends the events now name, by key (one read of the ledger per chunk serves both)."""
    by_key = sorted({e.message_key for e in events if e.message_key})
    by_id = sorted({(e.vendor, c) for e in events if not e.message_key for c in _candidates(e)})
    sent: dict[str, _Sent] = {}
    for start in range(0, len(by_key), KEY_CHUNK):
        chunk = by_key[start : start + KEY_CHUNK]
        query = sa.select(OUTBOUND.c.message_key, *_SENT).where(in_values(conn, OUTBOUND.c.message_key, chunk))
        for key, *row in conn.execute(query):
            sent[key] = _Sent(*row)
    ids: dict[tuple[str, str], str] = {}
    for vendor, chunk in _by_vendor(by_id):
        query = sa.select(OUTBOUND.c.vendor_message_id, OUTBOUND.c.message_key, *_SENT).where(
            OUTBOUND.c.vendor == vendor, in_values(conn, OUTBOUND.c.vendor_message_id, chunk)
        )
        for vendor_id, key, *row in conn.execute(query):
            ids[(vendor, vendor_id)] = key
            sent[key] = _Sent(*row)
    for event in events:
        if event.message_key:
            if event.message_key in sent:
                # an 'unknown' send has no vendor id yet: the event is then filed under our key
                known_id = sent[event.message_key].vendor_message_id
                event.vendor_message_id = event.vendor_message_id or known_id or event.message_key
            else:
                event.vendor_message_id = event.vendor_message_id or event.message_key
                event.message_key = None  # not one of ours (or not yet in this warehouse)
            continue
        for candidate in _candidates(event):
            if (event.vendor, candidate) in ids:
                event.vendor_message_id, event.message_key = candidate, ids[(event.vendor, candidate)]
                break
    return sent


def _already_stored(conn: sa.Connection, events: Sequence[StatusEvent]) -> set[tuple[str, str, str, str]]:
    """(vendor, vendor_message_id, status, raw_status) of the events already in the table."""
    pairs = sorted({(e.vendor, e.vendor_message_id) for e in events if e.vendor_message_id})
    seen: set[tuple[str, str, str, str]] = set()
    for vendor, chunk in _by_vendor(pairs):
        query = sa.select(EVENTS.c.vendor, EVENTS.c.vendor_message_id, EVENTS.c.status, EVENTS.c.raw_status).where(
            EVENTS.c.vendor == vendor, in_values(conn, EVENTS.c.vendor_message_id, chunk)
        )
        seen.update(tuple(r) for r in conn.execute(query))
    return seen


def _by_vendor(pairs: Sequence[tuple[str, str]]) -> Iterator[tuple[str, list[str]]]:
    """Sorted (vendor, id) pairs → (vendor, up to ``KEY_CHUNK`` ids). Queried as ``vendor = … AND id IN
    (…)``, which both databases answer from the (vendor, id, …) index; PostgreSQL reads a row-value
    ``(vendor, id) IN (…)`` list by scanning the whole table, which grows with every event stored."""
    for vendor, group in itertools.groupby(pairs, key=operator.itemgetter(0)):
        ids = [vendor_id for _, vendor_id in group]
        for start in range(0, len(ids), KEY_CHUNK):
            yield vendor, ids[start : start + KEY_CHUNK]


def _not_before_acceptance(events: Sequence[StatusEvent], accepted: dict[str, object]) -> None:
    """A coarse vendor time (ITD: to the minute) never places an event before the acceptance it follows."""
    for event in events:
        start = accepted.get(event.message_key) if event.message_key else None
        if not event.precision_s or start is None:
            continue
        start = pendulum.instance(start)
        if event.event_at < start <= event.event_at.add(seconds=event.precision_s):
            event.event_at = start
            event.note = f"vendor time precise to {event.precision_s} s: placed at the acceptance it follows"


def _suppress_opt_outs(
    warehouse: Warehouse,
    conn: sa.Connection,
    events: Sequence[StatusEvent],
    phones: dict[str, str],
    now: pendulum.DateTime,
) -> int:
    """The phones of our messages a vendor reported as opted out are suppressed for that vendor, with
    the stored event as evidence. An event not linked to one of our sends names no phone: nothing."""
    items = []
    for event in events:
        phone = phones.get(event.message_key) if event.message_key else None
        if phone is None or not event.vendor_message_id:
            continue
        event_id = conn.execute(
            sa.select(EVENTS.c.id)
            .where(
                EVENTS.c.vendor == event.vendor,
                EVENTS.c.vendor_message_id == event.vendor_message_id,
                EVENTS.c.status == str(event.status),
                EVENTS.c.raw_status == event.raw_status[:RAW_STATUS_CHARS],
            )
            .order_by(EVENTS.c.id)
            .limit(1)
        ).scalar()
        items.append(
            Suppression(
                phone=phone,
                scope=event.vendor,
                source=Source.VENDOR_STATUS,
                evidence=f"message_status_events {event_id}",
                since=event.event_at,
                created_by=f"status {event.source}",
                reason=f"{event.vendor}: {event.reason or event.raw_status}",
            )
        )
    return len(suppressions.add(warehouse, conn, items, now))


def apply_status_events(warehouse: Warehouse, conn: sa.Connection, events: Sequence[StatusEvent]) -> int:
    """Store events (duplicates ignored) and move linked messages forward. Returns events stored."""
    if not events:
        return 0
    sent = _link(conn, events)
    _not_before_acceptance(events, {key: row.accepted_at for key, row in sent.items()})
    phones = {key: row.phone for key, row in sent.items()}
    now = pendulum.now("UTC")
    seen = _already_stored(conn, events)
    rows = []
    for e in events:
        raw_status = e.raw_status[:RAW_STATUS_CHARS]
        identity = (e.vendor, e.vendor_message_id, str(e.status), raw_status)
        if not e.vendor_message_id or identity in seen:
            continue
        seen.add(identity)
        rows.append(
            {
                "vendor": e.vendor,
                "vendor_message_id": e.vendor_message_id,
                "message_key": e.message_key,
                "status": str(e.status),
                "raw_status": raw_status,
                "raw_text": e.raw_status if len(e.raw_status) > RAW_STATUS_CHARS else None,
                "vendor_ids": e.vendor_ids or None,
                "note": e.note,
                "reason": e.reason,
                "message_sent_at": e.message_sent_at,
                **(e.cost.columns() if e.cost else NO_COST),
                "event_at": e.event_at,
                "recorded_at": now,
                "source": e.source,
                "raw_event_id": e.raw_event_id,
            }
        )
    # in message order: the statement triggers (``delivery_times``) lock each chunk's messages in key order,
    # so two writers of the same messages never hold them crosswise across chunks
    rows.sort(key=lambda row: (row["message_key"] is None, row["message_key"] or ""))
    stored = warehouse.bulk_insert_new(conn, schema.message_status_events, rows, keys=schema.STATUS_EVENT_KEY)
    _suppress_opt_outs(warehouse, conn, [e for e in events if e.opt_out], phones, now)

    linked: dict[str, list[StatusEvent]] = {}
    for event in events:
        if event.message_key and event.status not in NOT_PROGRESS:  # an unrecognised text never moves the ledger
            linked.setdefault(event.message_key, []).append(event)
    updates, in_doubt = [], {}
    for key, key_events in linked.items():
        if key not in sent:
            continue
        state, status, vendor_id = sent[key].state, sent[key].delivery_status, sent[key].vendor_message_id
        new_status, status_at = status, None
        for event in sorted(key_events, key=lambda e: (e.event_at, RANK.get(e.status, 9))):
            if advances(new_status, event.status):
                new_status, status_at = event.status, event.event_at
        vendor_id = vendor_id or next((e.vendor_message_id for e in key_events if e.vendor_message_id), None)
        if state == MessageState.UNKNOWN:
            in_doubt[key] = vendor_id
        if status_at is None:
            continue
        updates.append({"k": key, "status": str(new_status), "status_at": status_at, "vid": vendor_id})
    resolve_in_doubt(conn, in_doubt, now)
    update_each(
        conn,
        updates,
        {"k": sa.String(), "status": sa.String(), "status_at": schema.UtcDateTime(), "vid": sa.String()},
        lambda row: sa.update(OUTBOUND)
        .where(OUTBOUND.c.message_key == row["k"])
        .values(delivery_status=row["status"], delivery_status_at=row["status_at"], vendor_message_id=row["vid"], updated_at=now),
        ("k", OUTBOUND.c.message_key),
    )
    return stored
