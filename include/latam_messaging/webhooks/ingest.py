"""Parse stored webhook bodies into status events and inbound messages (the ``webhook_ingest`` DAG).

Pending events are taken in id order, in batches; each batch's results and its events' new
``parse_state`` commit together, so a crash re-parses at most one batch, and re-parsing is
idempotent. Unparseable bodies stay, with ``parse_state = error`` and the reason.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pendulum
import sqlalchemy as sa

from latam_messaging.status import StatusEvent, apply_status_events
from latam_messaging.warehouse import schema
from latam_messaging.warehouse.db import Warehouse
from latam_messaging.webhooks.parsers import UnparseableEvent, parse_body

R = schema.raw_webhook_events
BATCH = 1000


@dataclass
class WebhookIngestStats:
    events: int = 0
    parsed: int = 0
    errors: int = 0
    statuses: int = 0
    inbound: int = 0


def body_text(raw: bytes) -> str:
    """UTF-8 text as sent; anything else kept losslessly as ``base64:``."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return "base64:" + base64.b64encode(raw).decode()


def raw_event_row(
    vendor: str, channel: str | None, raw: bytes, content_type: str | None, format_version: str | None = None
) -> dict[str, Any]:
    """A ``raw_webhook_events`` row, waiting to be parsed (webhooks and polled queue pages alike)."""
    return {
        "vendor": vendor,
        "channel": channel,
        "format_version": format_version,
        "received_at": pendulum.now("UTC"),
        "content_type": (content_type or "")[:200],
        "body_sha256": hashlib.sha256(raw).hexdigest(),
        "body": body_text(raw),
        "parse_state": "pending",
    }


def store_inbound(warehouse: Warehouse, conn: sa.Connection, messages: Sequence[dict[str, Any]], source: str) -> int:
    """Insert inbound messages once per (vendor, vendor_message_id); returns how many were new."""
    if not messages:
        return 0
    now = pendulum.now("UTC")
    rows = [
        {
            "from_phone": None,
            "to_account": None,
            "message_type": None,
            "text": None,
            "media_url": None,
            "received_at": None,
            "in_reply_to": None,
            "raw": None,
            **m,
            "recorded_at": now,
            "source": source,
        }
        for m in messages
    ]
    return warehouse.insert_new(conn, schema.inbound_messages, rows, keys=["vendor", "vendor_message_id"], count=True)


def _text(body: str) -> str:
    if body.startswith("base64:"):
        raise UnparseableEvent("body is not UTF-8 text")
    return body


def ingest_pending(
    warehouse: Warehouse, *, reparse_errors: bool = False, limit: int | None = None
) -> WebhookIngestStats:
    stats = WebhookIngestStats()
    states = ["pending", "error"] if reparse_errors else ["pending"]
    last_id = 0
    while limit is None or stats.events < limit:
        query = sa.select(R.c.id, R.c.vendor, R.c.channel, R.c.body).where(
            R.c.parse_state.in_(states), R.c.id > last_id
        )
        batch = warehouse.rows(query.order_by(R.c.id).limit(BATCH))
        if not batch:
            break
        last_id = batch[-1]["id"]
        events: list[StatusEvent] = []
        inbound: list[dict[str, Any]] = []
        outcomes = []
        for item in batch:
            try:
                parsed = parse_body(item["vendor"], item["channel"], _text(item["body"]))
            except UnparseableEvent as exc:
                outcomes.append({"i": item["id"], "s": "error", "e": str(exc)[:1000], "v": None})
                continue
            for event in parsed.statuses:
                event.raw_event_id = item["id"]
            events.extend(parsed.statuses)
            inbound.extend(parsed.inbound)
            outcomes.append({"i": item["id"], "s": "parsed", "e": None, "v": parsed.format_version})
        now = pendulum.now("UTC")
        with warehouse.begin() as conn:
            stats.statuses += apply_status_events(warehouse, conn, events)
            stats.inbound += store_inbound(warehouse, conn, inbound, "webhook")
            conn.execute(
                sa.update(R)
                .where(R.c.id == sa.bindparam("i"))
                .values(
                    parse_state=sa.bindparam("s"),
                    parse_error=sa.bindparam("e"),
                    format_version=sa.func.coalesce(sa.bindparam("v"), R.c.format_version),
                    parsed_at=now,
                ),
                outcomes,
            )
        stats.events += len(batch)
        stats.parsed += sum(1 for o in outcomes if o["s"] == "parsed")
        stats.errors += sum(1 for o in outcomes if o["s"] == "error")
    return stats
