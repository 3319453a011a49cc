"""One status vocabulary for the three vendors (vendor-apis.md §4) and its application to the ledger.

``accepted`` < ``enqueued`` < ``sent`` < ``delivered`` < ``read``; ``failed`` is terminal. Events are
stored once each (unique per vendor, message, status and time); the message's current status only
moves forward, so late, duplicate and out-of-order events change nothing. An event for a send in
state ``unknown`` proves the vendor has it: the row becomes ``accepted``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pendulum
import sqlalchemy as sa

from latam_messaging.warehouse import schema
from latam_messaging.warehouse.db import Warehouse

RANK = {"accepted": 0, "enqueued": 1, "sent": 2, "delivered": 3, "read": 4}
FAILED = "failed"
T = schema.outbound_messages
KEY_CHUNK = 500


def advances(current: str | None, new: str) -> bool:
    """Whether ``new`` may replace ``current`` as a message's status."""
    if current is None:
        return True
    if current == FAILED:
        return False
    if new == FAILED:
        return True
    return RANK.get(new, -1) > RANK.get(current, -1)


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


def _link(conn: sa.Connection, events: Sequence[StatusEvent]) -> None:
    """Fill ``message_key`` and ``vendor_message_id`` from the ledger where the event lacks one."""
    by_key = [e.message_key for e in events if e.message_key]
    by_id = {(e.vendor, e.vendor_message_id) for e in events if not e.message_key and e.vendor_message_id}
    known_keys: dict[str, str | None] = {}
    for start in range(0, len(by_key), KEY_CHUNK):
        chunk = by_key[start : start + KEY_CHUNK]
        for key, vendor_id in conn.execute(
            sa.select(T.c.message_key, T.c.vendor_message_id).where(T.c.message_key.in_(chunk))
        ):
            known_keys[key] = vendor_id
    ids: dict[tuple[str, str], str] = {}
    pairs = sorted(by_id)
    for start in range(0, len(pairs), KEY_CHUNK):
        chunk = pairs[start : start + KEY_CHUNK]
        query = sa.select(T.c.vendor, T.c.vendor_message_id, T.c.message_key).where(
            sa.tuple_(T.c.vendor, T.c.vendor_message_id).in_(chunk)
        )
        for vendor, vendor_id, key in conn.execute(query):
            ids[(vendor, vendor_id)] = key
    for event in events:
        if event.message_key:
            if event.message_key in known_keys:
                # an 'unknown' send has no vendor id yet: the event is then filed under our key
                event.vendor_message_id = event.vendor_message_id or known_keys[event.message_key] or event.message_key
            else:
                event.vendor_message_id = event.vendor_message_id or event.message_key
                event.message_key = None  # not one of ours (or not yet in this warehouse)
        elif event.vendor_message_id:
            event.message_key = ids.get((event.vendor, event.vendor_message_id))


def apply_status_events(warehouse: Warehouse, conn: sa.Connection, events: Sequence[StatusEvent]) -> int:
    """Store events (duplicates ignored) and move linked messages forward. Returns events stored."""
    if not events:
        return 0
    _link(conn, events)
    now = pendulum.now("UTC")
    rows = [
        {
            "vendor": e.vendor,
            "vendor_message_id": e.vendor_message_id,
            "message_key": e.message_key,
            "status": e.status,
            "raw_status": e.raw_status,
            "event_at": e.event_at,
            "recorded_at": now,
            "source": e.source,
            "raw_event_id": e.raw_event_id,
        }
        for e in events
        if e.vendor_message_id
    ]
    stored = warehouse.insert_new(conn, schema.message_status_events, rows, count=True)

    linked: dict[str, list[StatusEvent]] = {}
    for event in events:
        if event.message_key:
            linked.setdefault(event.message_key, []).append(event)
    keys = list(linked)
    current: dict[str, tuple[str, str | None, str | None]] = {}
    for start in range(0, len(keys), KEY_CHUNK):
        query = sa.select(T.c.message_key, T.c.state, T.c.delivery_status, T.c.vendor_message_id).where(
            T.c.message_key.in_(keys[start : start + KEY_CHUNK])
        )
        for key, state, status, vendor_id in conn.execute(query):
            current[key] = (state, status, vendor_id)
    updates = []
    for key, key_events in linked.items():
        if key not in current:
            continue
        state, status, vendor_id = current[key]
        new_status, status_at = status, None
        for event in sorted(key_events, key=lambda e: (e.event_at, RANK.get(e.status, 9))):
            if advances(new_status, event.status):
                new_status, status_at = event.status, event.event_at
        resolved = state == "unknown"
        if status_at is None and not resolved:
            continue
        updates.append(
            {
                "k": key,
                "state": "accepted" if resolved else state,
                "status": new_status,
                "status_at": status_at,
                "vid": vendor_id or next((e.vendor_message_id for e in key_events if e.vendor_message_id), None),
            }
        )
    if updates:
        statement = (
            sa.update(T)
            .where(T.c.message_key == sa.bindparam("k"))
            .values(
                state=sa.bindparam("state"),
                delivery_status=sa.bindparam("status"),
                delivery_status_at=sa.func.coalesce(
                    sa.bindparam("status_at", type_=schema.UtcDateTime()), T.c.delivery_status_at
                ),
                vendor_message_id=sa.bindparam("vid"),
                updated_at=now,
            )
        )
        conn.execute(statement, updates)
    return stored
