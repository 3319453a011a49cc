"""Polling ITD: credits snapshots, received messages per phone and day (every ``direction`` kept, as
a column: the document's legend says 1 = outbound, yet its received-message examples carry 1), and
the status of sends still open."""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import pendulum
import sqlalchemy as sa

from latam_messaging.common.timeparse import UTC
from latam_messaging.consent.replies import ConsentRules
from latam_messaging.itd import contract
from latam_messaging.itd.callbacks import inbound_message
from latam_messaging.itd.contract import VENDOR_TIMEZONE as ITD_TZ
from latam_messaging.itd.hook import ItdHook, ItdNotFoundError
from latam_messaging.itd.models import ItdInbound, ItdStatus
from latam_messaging.lifecycle import DeliveryStatus, MessageState
from latam_messaging.polling import watermarks
from latam_messaging.status import StatusEvent, apply_status_events
from latam_messaging.warehouse import schema
from latam_messaging.warehouse.db import Warehouse
from latam_messaging.webhooks.inbound import check_inbound, store_inbound
from latam_messaging.webhooks.parsers import When

log = logging.getLogger(__name__)
OUTBOUND = schema.outbound_messages
WATERMARKS = schema.poll_watermarks



def snapshot_credits(warehouse: Warehouse, hook: ItdHook) -> int:
    credits = hook.credits()
    with warehouse.begin() as conn:
        conn.execute(schema.itd_credit_snapshots.insert().values(taken_at=pendulum.now("UTC"), credits=credits))
    return credits


def phones_of_interest(warehouse: Warehouse, lookback_days: int, extra: list[str]) -> list[str]:
    since = pendulum.now("UTC").subtract(days=lookback_days)
    query = sa.select(OUTBOUND.c.phone).where(OUTBOUND.c.vendor == "itd", OUTBOUND.c.created_at >= since).distinct()
    with warehouse.engine.connect() as conn:
        phones = set(conn.execute(query).scalars())
    return sorted(phones | set(extra))


@dataclass
class ReceivedStats:
    phones: int = 0
    requests: int = 0
    new_messages: int = 0
    #: answers that filled ``top`` (asked again with a larger one)
    full_pages: int = 0
    #: (phone, day) still full at ``contract.RECEIVED_TOP_MAX``: older messages may be missing; polled again next run
    truncated_days: int = 0


def received_day(hook: ItdHook, phone: str, day: pendulum.Date) -> tuple[list[ItdInbound], int, bool]:
    """Every message of one phone on one day: a full page (``top`` answers) may hide older ones, so
    ask again with ``top`` doubled until the answer is shorter than asked, or the cap is reached.
    Returns the messages, the requests made, and whether the day is still possibly truncated."""
    top, requests, before = contract.RECEIVED_TOP, 0, -1
    while True:
        items = hook.received(phone, day, top=top)
        requests += 1
        capped = len(items) <= before  # a larger top brought no more: the server caps the page itself
        if len(items) < top and not capped:
            return items, requests, False
        if top >= contract.RECEIVED_TOP_MAX or capped:
            log.warning(
                "ITD received: %d messages (the most it answers) for phone …%s on %s: older ones may be missing; "
                "the day is polled again next run",
                len(items),
                phone[-4:],
                day.isoformat(),
            )
            return items, requests, True
        log.warning(
            "ITD received: a full page of %d for phone …%s on %s: asking again with top=%d",
            len(items),
            phone[-4:],
            day.isoformat(),
            min(top * 2, contract.RECEIVED_TOP_MAX),
        )
        top, before = min(top * 2, contract.RECEIVED_TOP_MAX), len(items)


def poll_itd_received(
    warehouse: Warehouse,
    hook: ItdHook,
    phones: list[str],
    *,
    lookback_days: int = 7,
    workers: int = 4,
    max_requests: int = 2000,
    consent: ConsentRules | None = None,
) -> ReceivedStats:
    """Each phone, each Chilean day from its watermark to today. The watermark (the last day fully
    polled) moves only after that phone's messages are committed; today is polled again next time.
    ``consent``: the rules replies are read with, and the send adapters that confirm opt-outs (from
    the top; default: the settings' rules, which confirm nothing)."""
    consent = consent or ConsentRules.from_settings()
    today = pendulum.now(ITD_TZ).date()
    marks = watermarks(warehouse, "itd_received")
    plans, budget = [], max_requests
    for phone in phones:
        start = pendulum.Date.fromisoformat(marks[phone]) if phone in marks else today.subtract(days=lookback_days)
        days = [start.add(days=n) for n in range((today - start).days + 1)][:budget]
        budget -= len(days)
        if days:
            plans.append((phone, days))
    stats = ReceivedStats(phones=len(plans))

    def fetch(plan: tuple[str, list]) -> tuple[str, list, list, int, list]:
        phone, days = plan
        messages, requests, truncated = [], 0, []
        for day in days:
            items, asked, cut = received_day(hook, phone, day)
            requests += asked
            if cut:
                truncated.append(day)
            for item in items:  # every direction: nothing dropped by value
                at = item.sent_at or item.created_at
                when = When(at) if at else When(pendulum.now("UTC"), "no vendor time: poll time used")
                messages.append(inbound_message(item.raw, when))
        return phone, days, messages, requests, truncated

    with ThreadPoolExecutor(max_workers=workers) as pool:
        for phone, days, messages, requests, truncated in pool.map(fetch, plans):
            stats.requests += requests
            stats.full_pages += requests - len(days)
            stats.truncated_days += len(truncated)
            messages, problems = check_inbound(messages)
            if problems:  # reasons name fields and ids only, never content
                log.warning("ITD received messages of one phone not stored: %s", "; ".join(problems)[:500])
            with warehouse.begin() as conn:
                stats.new_messages += store_inbound(warehouse, conn, messages, "poll", consent=consent)
                completed = max(days[-1].subtract(days=1) if days[-1] == today else days[-1], days[0])
                if truncated:  # a day that may miss messages is polled again until it does not
                    completed = min(completed, truncated[0])
                mark = {
                    "source": "itd_received",
                    "item": phone,
                    "value": completed.isoformat(),
                    "updated_at": pendulum.now("UTC"),
                }
                warehouse.upsert(conn, WATERMARKS, [mark], keys=["source", "item"])
    return stats


def _itd_event(status: ItdStatus, polled_at: pendulum.DateTime) -> StatusEvent | None:
    """A polled ITD status. Its time is the vendor's time for that status where ITD gives one
    (``sent_at`` for SENT, ``delivered_at`` for DELIVERED), else when we learned it (the poll); the send
    time is kept as ``message_sent_at``. The same status polled again, or also seen by webhook, is one
    event (stored once whatever its time). A status text the vocabulary does not know is an
    unrecognised event with the text kept."""
    if status.status is None:  # no status text at all
        return None
    own = {DeliveryStatus.SENT: status.sent_at, DeliveryStatus.DELIVERED: status.delivered_at}.get(status.status)
    at, precision = (own, 1) if own is not None else (polled_at, 0)  # "2020-04-16 10:26:13.0"
    return StatusEvent(
        "itd",
        status.key,
        status.status,
        status.raw_status,
        pendulum.instance(at).in_tz(UTC),
        "poll",
        precision_s=precision,
        message_sent_at=pendulum.instance(status.sent_at).in_tz(UTC) if status.sent_at else None,
    )


def poll_itd_statuses(
    warehouse: Warehouse, hook: ItdHook, *, limit: int = 5000, workers: int = 8, max_age_days: int = 3
) -> int:
    """Status of ITD sends not yet final (read or failed), newest first, bounded per run."""
    since = pendulum.now("UTC").subtract(days=max_age_days)
    query = (
        sa.select(OUTBOUND.c.vendor_message_id, OUTBOUND.c.accepted_at)
        .where(
            OUTBOUND.c.vendor == "itd",
            OUTBOUND.c.state == MessageState.ACCEPTED,
            OUTBOUND.c.vendor_message_id.is_not(None),
            OUTBOUND.c.accepted_at >= since,
            sa.or_(OUTBOUND.c.delivery_status.is_(None), OUTBOUND.c.delivery_status.not_in([DeliveryStatus.READ, DeliveryStatus.FAILED])),
        )
        .order_by(OUTBOUND.c.accepted_at.desc())
        .limit(limit)
    )
    open_sends = warehouse.rows(query)

    def fetch(row: dict[str, Any]) -> StatusEvent | None:
        try:
            answer = hook.status(row["vendor_message_id"])
            return _itd_event(answer, pendulum.now("UTC"))
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
