"""Raw webhook bodies: stored losslessly before they are acknowledged, parsed later.

``raw_webhook_events`` keeps the exact bytes a vendor sent (the receiver and the consume-once
pollers write here) and each body's parse state (:class:`ParseState`), which the parse loop
(``webhooks/ingest.py``) moves on.
"""

from __future__ import annotations

import base64
import hashlib
from enum import StrEnum
from typing import Any

import pendulum

from latam_messaging.warehouse import schema

RAW_EVENTS = schema.raw_webhook_events
BASE64_PREFIX = "base64:"


class ParseState(StrEnum):
    PENDING = "pending"
    PARSED = "parsed"
    PARTIAL = "partial"  # some items of the body landed, the others are listed in parse_error
    ERROR = "error"


def body_text(raw: bytes) -> str:
    """UTF-8 text as sent; anything a text column cannot hold exactly (bytes that are not UTF-8, a
    NUL, which PostgreSQL text refuses, or text that itself starts with the prefix) as ``base64:``."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    if text is None or "\x00" in text or text.startswith(BASE64_PREFIX):
        return BASE64_PREFIX + base64.b64encode(raw).decode()
    return text


def body_bytes(stored: str) -> bytes:
    """The exact bytes the vendor sent (inverse of :func:`body_text`)."""
    if stored.startswith(BASE64_PREFIX):
        return base64.b64decode(stored[len(BASE64_PREFIX) :])
    return stored.encode("utf-8")


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
        "parse_state": ParseState.PENDING.value,
    }
