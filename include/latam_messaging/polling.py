"""Polling the vendors for what webhooks may have missed: ITD credits, inbound and statuses; Wavy
status and inbound queues, and status search for messages still open.

Wavy's ``status/list`` and ``receive/list`` are consume-once queues. A fetched page is first
spooled to a local file (fsynced, under ``MESSAGING_SPOOL_DIR``), then committed raw to
``raw_webhook_events`` (channel ``status_list`` / ``receive_list``), then its file is removed: a
warehouse failure after the fetch loses nothing, and the next run replays the spool first. While MO
pages are being drained, an open window is recorded in ``poll_watermarks``; a run that did not
close it (the worker died, the spool was lost) is followed by a ``receive/search`` of that window,
so MO lost that way are searched again (statuses are searched by correlationId in any case).

ITD received messages are all stored, whatever their ``direction`` (kept as a column): the
document's legend says 1 = outbound, yet its received-message examples carry 1.
"""

from __future__ import annotations

import json
import logging
import os
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
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
from latam_messaging.webhooks.ingest import check_inbound, raw_event_row, store_inbound
from latam_messaging.webhooks.parsers import When, itd_inbound_row, wavy_status_events

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
            for item in hook.received(phone, day, top=1000):  # every direction: nothing dropped by value
                at = item.sent_at or item.created_at
                when = When(at) if at else When(pendulum.now("UTC"), "no vendor time: poll time used")
                messages.append(itd_inbound_row(item.raw, when))
        return phone, days, messages

    with ThreadPoolExecutor(max_workers=workers) as pool:
        for phone, days, messages in pool.map(fetch, plans):
            stats.requests += len(days)
            messages, problems = check_inbound(messages)
            if problems:  # reasons name fields and ids only, never content
                log.warning("ITD received messages of one phone not stored: %s", "; ".join(problems)[:500])
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
    """A polled ITD status with a time that does not change from poll to poll (so repeats dedupe).
    A status text the vocabulary does not know is an ``unknown`` event with the text kept."""
    if status.status is None:  # no status text at all
        return None
    at = (
        {
            "enqueued": accepted_at,
            "sent": status.sent_at,
            "delivered": status.delivered_at,
            "read": status.delivered_at or status.sent_at,
            "failed": status.sent_at or accepted_at,
        }.get(status.status)
        or status.delivered_at
        or status.sent_at
        or accepted_at
    )
    return StatusEvent(
        "itd",
        status.key,
        status.status,
        status.raw_status,
        pendulum.instance(at).in_tz(UTC),
        "poll",
        precision_s=1,  # "2020-04-16 10:26:13.0"
    )


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
        except (KeyError, TypeError, ValueError) as exc:  # one odd answer costs only that message
            log.warning("ITD status of %s not readable (%s)", row["vendor_message_id"], type(exc).__name__)
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


def spool_dir(channel: str) -> Path:
    root = Path(os.environ.get("MESSAGING_SPOOL_DIR") or Path("data") / "spool")
    return root / "wavy" / channel


def _spool(directory: Path, page: dict[str, Any]) -> Path:
    """Write the page to a file that survives the process (fsynced, renamed into place)."""
    directory.mkdir(parents=True, exist_ok=True)
    final = directory / f"{pendulum.now('UTC').format('YYYYMMDDHHmmssSSSSSS')}-{uuid.uuid4().hex}.json"
    part = final.with_suffix(".part")
    with part.open("wb") as handle:
        handle.write(json.dumps(page, ensure_ascii=False, sort_keys=True).encode())
        handle.flush()
        os.fsync(handle.fileno())
    part.rename(final)
    return final


def replay_spool(warehouse: Warehouse, vendor: str, channel: str) -> int:
    """Commit the pages a failed run spooled but did not store; returns how many."""
    directory = spool_dir(channel)
    if not directory.is_dir():
        return 0
    replayed = 0
    for path in sorted(directory.glob("*.json")):
        store_raw_page(warehouse, vendor, channel, json.loads(path.read_bytes()))
        path.unlink()
        replayed += 1
    if replayed:
        log.info("%d spooled %s page(s) committed", replayed, channel)
    return replayed


MO_WINDOW = ("wavy_receive_list", "open_since")
MO_SEARCH_MARGIN = pendulum.duration(minutes=5)
MO_SEARCH_MAX = pendulum.duration(days=5)


def _mo_window(warehouse: Warehouse) -> str | None:
    return _watermarks(warehouse, MO_WINDOW[0]).get(MO_WINDOW[1])


def _set_mo_window(warehouse: Warehouse, value: str | None) -> None:
    with warehouse.begin() as conn:
        if value is None:
            conn.execute(sa.delete(W).where(W.c.source == MO_WINDOW[0], W.c.item == MO_WINDOW[1]))
        else:
            row = {"source": MO_WINDOW[0], "item": MO_WINDOW[1], "value": value, "updated_at": pendulum.now("UTC")}
            warehouse.insert_new(conn, W, [row], keys=["source", "item"])  # the earliest open window stays


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
        spooled = _spool(spool_dir(channel), page)
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
