"""Polling Wavy: the status and MO consume-once queues (spooled, then stored raw, see ``polling.py``),
MO windows a failed drain left open searched again, and status search by correlationId for sends
still open or unknown."""

from __future__ import annotations

import logging

import pendulum
import sqlalchemy as sa

from latam_messaging.lifecycle import DeliveryStatus, MessageState
from latam_messaging.polling import replay_spool, spool, spool_dir, store_raw_page, watermarks
from latam_messaging.status import StatusEvent, apply_status_events
from latam_messaging.warehouse import schema
from latam_messaging.warehouse.db import Warehouse
from latam_messaging.wavy.callbacks import status_events
from latam_messaging.wavy.hook import WavyHook

log = logging.getLogger(__name__)
OUTBOUND = schema.outbound_messages
WATERMARKS = schema.poll_watermarks



MO_WINDOW = ("wavy_receive_list", "open_since")
MO_SEARCH_MARGIN = pendulum.duration(minutes=5)
MO_SEARCH_MAX = pendulum.duration(days=5)


def _mo_window(warehouse: Warehouse) -> str | None:
    return watermarks(warehouse, MO_WINDOW[0]).get(MO_WINDOW[1])


def _set_mo_window(warehouse: Warehouse, value: str | None) -> None:
    with warehouse.begin() as conn:
        if value is None:
            conn.execute(sa.delete(WATERMARKS).where(WATERMARKS.c.source == MO_WINDOW[0], WATERMARKS.c.item == MO_WINDOW[1]))
        else:
            row = {"source": MO_WINDOW[0], "item": MO_WINDOW[1], "value": value, "updated_at": pendulum.now("UTC")}
            warehouse.insert_new(conn, WATERMARKS, [row], keys=["source", "item"])  # the earliest open window stays


def reconcile_mo(warehouse: Warehouse, hook: WavyHook) -> int:
    """Search MO for the window a failed drain left open; the page found is stored raw. Returns MO found."""
    opened = _mo_window(warehouse)
    if opened is None:
        return 0
    end = pendulum.now("UTC")
    start = max(pendulum.parse(opened).subtract(seconds=MO_SEARCH_MARGIN.total_seconds()), end - MO_SEARCH_MAX)
    found = hook.inbound_search(start, end)
    if found:
        store_raw_page(warehouse, "wavy", "receive_search", {"messages": [m.raw for m in found]})
    log.info("MO window left open since %s searched again: %d message(s)", opened, len(found))
    return len(found)


def drain_wavy_queue(warehouse: Warehouse, hook: WavyHook, channel: str, *, max_pages: int = 50) -> int:
    """Fetch pages of ``status_list`` or ``receive_list`` until empty; each page spooled, then stored raw."""
    fetch = hook.status_queue_page if channel == "status_list" else hook.inbound_queue_page
    key = "smsStatuses" if channel == "status_list" else "messages"
    replay_spool(warehouse, "wavy", channel)
    if channel == "receive_list":
        reconcile_mo(warehouse, hook)
        _set_mo_window(warehouse, pendulum.now("UTC").to_iso8601_string())
    items = 0
    for _ in range(max_pages):
        page = fetch()
        if not page.get(key):
            break
        spooled = spool(spool_dir("wavy", channel), page)
        store_raw_page(warehouse, "wavy", channel, page)
        spooled.unlink()
        items += len(page[key])
    if channel == "receive_list":
        _set_mo_window(warehouse, None)  # every page fetched in the window is committed
    return items


def search_open_wavy(warehouse: Warehouse, hook: WavyHook, *, open_after_minutes: int = 30, limit: int = 1000) -> int:
    """Wavy sends still open after a while, and unknown ones: search by correlationId (our key)."""
    cutoff = pendulum.now("UTC").subtract(minutes=open_after_minutes)
    query = (
        sa.select(OUTBOUND.c.message_key)
        .where(
            OUTBOUND.c.vendor == "wavy",
            sa.or_(
                OUTBOUND.c.state == MessageState.UNKNOWN,
                sa.and_(
                    OUTBOUND.c.state == MessageState.ACCEPTED,
                    OUTBOUND.c.accepted_at <= cutoff,
                    sa.or_(OUTBOUND.c.delivery_status.is_(None), OUTBOUND.c.delivery_status.not_in([DeliveryStatus.DELIVERED, DeliveryStatus.FAILED])),
                ),
            ),
        )
        .order_by(OUTBOUND.c.message_key)
        .limit(limit)
    )
    keys = [r["message_key"] for r in warehouse.rows(query)]
    events: list[StatusEvent] = []
    for start in range(0, len(keys), 100):
        asked_at = pendulum.now("UTC")
        for status in hook.status_search(correlation_ids=keys[start : start + 100]):
            events.extend(status_events(status, "poll", asked_at))
    with warehouse.begin() as conn:
        return apply_status_events(warehouse, conn, events)
