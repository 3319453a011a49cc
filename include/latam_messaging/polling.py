"""Polling the vendors for what webhooks may have missed: ITD credits, inbound and statuses; Wavy
status and inbound queues, and status search for messages still open.

Wavy's ``status/list`` and ``receive/list`` are consume-once queues: each raw page is committed to
``raw_webhook_events`` (channel ``status_list`` / ``receive_list``) before it is parsed, so a crash
after the call loses nothing — the page is parsed by the next run or by ``webhook_ingest``.
"""

from __future__ import annotations

import json
import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import pendulum
import sqlalchemy as sa

from latam_messaging.common.timeparse import UTC
from latam_messaging.itd.contract import VENDOR_TIMEZONE as ITD_TZ
from latam_messaging.itd.hook import ItdHook, ItdNotFoundError
from latam_messaging.itd.models import ItdStatus
from latam_messaging.status import StatusEvent, apply_status_events
from latam_messaging.warehouse import schema
from latam_messaging.warehouse.db import Warehouse
from latam_messaging.wavy.hook import WavyHook
from latam_messaging.webhooks.ingest import raw_event_row, store_inbound
from latam_messaging.webhooks.parsers import wavy_status_events

log = logging.getLogger(__name__)
T = schema.outbound_messages
W = schema.poll_watermarks


# ---- ITD -------------------------------------------------------------------------------------------
def snapshot_credits(warehouse: Warehouse, hook: ItdHook) -> int:
    credits = hook.credits()
    with warehouse.begin() as conn:
        conn.execute(schema.itd_credit_snapshots.insert().values(taken_at=pendulum.now("UTC"), credits=credits))
    return credits


def phones_of_interest(warehouse: Warehouse, lookback_days: int, extra: list[str]) -> list[str]:
    since = pendulum.now("UTC").subtract(days=lookback_days)
    query = sa.select(T.c.phone).where(T.c.vendor == "itd", T.c.created_at >= since).distinct()
    with warehouse.engine.connect() as conn:
        phones = set(conn.execute(query).scalars())
    return sorted(phones | set(extra))


def _watermarks(warehouse: Warehouse, source: str) -> dict[str, str]:
    with warehouse.engine.connect() as conn:
        return dict(conn.execute(sa.select(W.c.item, W.c.value).where(W.c.source == source)).all())


@dataclass
class ReceivedStats:
    phones: int = 0
    requests: int = 0
    new_messages: int = 0


def poll_itd_received(
    warehouse: Warehouse,
    hook: ItdHook,
    phones: list[str],
    *,
    lookback_days: int = 7,
    workers: int = 4,
    max_requests: int = 2000,
) -> ReceivedStats:
    """Each phone, each Chilean day from its watermark to today. The watermark (the last day fully
    polled) moves only after that phone's messages are committed; today is polled again next time."""
    today = pendulum.now(ITD_TZ).date()
    marks = _watermarks(warehouse, "itd_received")
    plans, budget = [], max_requests
    for phone in phones:
        start = pendulum.Date.fromisoformat(marks[phone]) if phone in marks else today.subtract(days=lookback_days)
        days = [start.add(days=n) for n in range((today - start).days + 1)][:budget]
        budget -= len(days)
        if days:
            plans.append((phone, days))
    stats = ReceivedStats(phones=len(plans))

    def fetch(plan: tuple[str, list]) -> tuple[str, list, list]:
        phone, days = plan
        messages = []
        for day in days:
            for item in hook.received(phone, day, top=1000):
                if item.direction == 0:
                    messages.append(
                        {
                            "vendor": "itd",
                            "vendor_message_id": item.uuid,
                            "from_phone": item.sender_phone,
                            "to_account": item.account_phone,
                            "message_type": item.message_type,
                            "text": item.content,
                            "received_at": item.sent_at or item.created_at,
                            "raw": item.raw,
                        }
                    )
        return phone, days, messages

    with ThreadPoolExecutor(max_workers=workers) as pool:
        for phone, days, messages in pool.map(fetch, plans):
            stats.requests += len(days)
            with warehouse.begin() as conn:
                stats.new_messages += store_inbound(warehouse, conn, messages, "poll")
                completed = days[-1].subtract(days=1) if days[-1] == today else days[-1]
                mark = {
                    "source": "itd_received",
                    "item": phone,
                    "value": max(completed, days[0]).isoformat(),
                    "updated_at": pendulum.now("UTC"),
                }
                warehouse.upsert(conn, W, [mark], keys=["source", "item"])
    return stats


def _itd_event(status: ItdStatus, accepted_at: Any) -> StatusEvent | None:
    """A polled ITD status with a time that does not change from poll to poll (so repeats dedupe)."""
    if status.status is None:
        return None
    at = {
        "enqueued": accepted_at,
        "sent": status.sent_at,
        "delivered": status.delivered_at,
        "read": status.delivered_at or status.sent_at,
        "failed": status.sent_at or accepted_at,
    }.get(status.status) or accepted_at
    return StatusEvent("itd", status.key, status.status, status.raw_status, pendulum.instance(at).in_tz(UTC), "poll")


def poll_itd_statuses(
    warehouse: Warehouse, hook: ItdHook, *, limit: int = 5000, workers: int = 8, max_age_days: int = 3
) -> int:
    """Status of ITD sends not yet final (read or failed), newest first, bounded per run."""
    since = pendulum.now("UTC").subtract(days=max_age_days)
    query = (
        sa.select(T.c.vendor_message_id, T.c.accepted_at)
        .where(
            T.c.vendor == "itd",
            T.c.state == "accepted",
            T.c.vendor_message_id.is_not(None),
            T.c.accepted_at >= since,
            sa.or_(T.c.delivery_status.is_(None), T.c.delivery_status.not_in(["read", "failed"])),
        )
        .order_by(T.c.accepted_at.desc())
        .limit(limit)
    )
    open_sends = warehouse.rows(query)

    def fetch(row: dict[str, Any]) -> StatusEvent | None:
        try:
            return _itd_event(hook.status(row["vendor_message_id"]), row["accepted_at"])
        except ItdNotFoundError:
            log.warning("ITD does not know message %s", row["vendor_message_id"])
            return None

    with ThreadPoolExecutor(max_workers=workers) as pool:
        events = [e for e in pool.map(fetch, open_sends) if e is not None]
    with warehouse.begin() as conn:
        return apply_status_events(warehouse, conn, events)


# ---- Wavy ------------------------------------------------------------------------------------------
def store_raw_page(warehouse: Warehouse, vendor: str, channel: str, page: dict[str, Any]) -> None:
    """Commit a consume-once page before anything else is done with it."""
    body = json.dumps(page, ensure_ascii=False, sort_keys=True).encode()
    row = raw_event_row(vendor, channel, body, "application/json", format_version="poll")
    with warehouse.begin() as conn:
        warehouse.insert_new(conn, schema.raw_webhook_events, [row])


def drain_wavy_queue(warehouse: Warehouse, hook: WavyHook, channel: str, *, max_pages: int = 50) -> int:
    """Fetch pages of ``status_list`` or ``receive_list`` until empty; each page stored raw first."""
    fetch = hook.status_queue_page if channel == "status_list" else hook.inbound_queue_page
    key = "smsStatuses" if channel == "status_list" else "messages"
    items = 0
    for _ in range(max_pages):
        page = fetch()
        if not page.get(key):
            break
        store_raw_page(warehouse, "wavy", channel, page)
        items += len(page[key])
    return items


def search_open_wavy(warehouse: Warehouse, hook: WavyHook, *, open_after_minutes: int = 30, limit: int = 1000) -> int:
    """Wavy sends still open after a while, and unknown ones: search by correlationId (our key)."""
    cutoff = pendulum.now("UTC").subtract(minutes=open_after_minutes)
    query = (
        sa.select(T.c.message_key)
        .where(
            T.c.vendor == "wavy",
            sa.or_(
                T.c.state == "unknown",
                sa.and_(
                    T.c.state == "accepted",
                    T.c.accepted_at <= cutoff,
                    sa.or_(T.c.delivery_status.is_(None), T.c.delivery_status.not_in(["delivered", "failed"])),
                ),
            ),
        )
        .order_by(T.c.message_key)
        .limit(limit)
    )
    keys = [r["message_key"] for r in warehouse.rows(query)]
    events: list[StatusEvent] = []
    for start in range(0, len(keys), 100):
        for status in hook.status_search(correlation_ids=keys[start : start + 100]):
            events.extend(wavy_status_events(status, "poll"))
    with warehouse.begin() as conn:
        return apply_status_events(warehouse, conn, events)
