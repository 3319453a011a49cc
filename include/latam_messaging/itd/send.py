"""Sending ITD WhatsApp drops: the row validator (content types, URLs, blank fields) and the
sendWhatsapp adapter (one message a request; ITD takes no client id, so its ``uuid`` is the link)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import sqlalchemy as sa

from latam_messaging.drops.validation import RowRejected, RowValidator
from latam_messaging.itd.contract import CONTENT_TYPES
from latam_messaging.itd.hook import ItdHook
from latam_messaging.itd.models import ItdMessage
from latam_messaging.lifecycle import MessageState
from latam_messaging.sending.adapters import Row, SendAdapter
from latam_messaging.sending.ledger import SendOutcome


class ItdRowValidator(RowValidator):
    """ITD rows: content_type TEXT, IMAGE, LINK or FILE; media content is a URL; the documented
    blank fields stay blank."""

    vendor = "itd"
    required_columns = frozenset({"phone", "content_type", "content"})

    def vendor_fields(self, values: dict[str, str]) -> dict[str, Any]:
        content_type = values.get("content_type", "").upper()
        if content_type not in CONTENT_TYPES:
            raise RowRejected(f"content_type {values.get('content_type')!r} must be one of {', '.join(CONTENT_TYPES)}")
        content = values.get("content", "")
        if not content:
            raise RowRejected("content is empty")
        if content_type != "TEXT" and not content.startswith(("http://", "https://")):
            raise RowRejected(f"content of a {content_type} message must be an http(s) URL")
        if content_type == "TEXT":
            filled = [f for f in ("caption", "description", "url_thumb") if values.get(f)]
            if filled:
                raise RowRejected(f"{', '.join(filled)} must be blank for TEXT messages")
        if content_type == "IMAGE" and values.get("url_thumb"):
            raise RowRejected("url_thumb must be blank for IMAGE messages")
        return {
            "content_type": content_type,
            "content": content,
            "caption": values.get("caption") or None,
            "description": values.get("description") or None,
            "url_thumb": values.get("url_thumb") or None,
        }


class ItdAdapter(SendAdapter):
    """sendWhatsapp, one message per request; ITD takes no client id, so its ``uuid`` is the link."""

    vendor = "itd"
    folder = "itd_whatsapp"
    channel = "whatsapp"
    validator = ItdRowValidator
    batch_size = 1
    concurrency = 8
    requests_per_s = 50.0

    def make_hook(self, pool_size: int) -> ItdHook:
        return ItdHook(pool_size=pool_size)

    def confirmation_fields(self, conn: sa.Connection, message: Mapping[str, Any]) -> dict[str, Any]:
        """A TEXT message (ITD sends from the account of the API token: nothing to choose)."""
        return {"content_type": "TEXT"}

    def send_batch(self, hook: ItdHook, rows: Sequence[Row]) -> list[SendOutcome]:
        outcomes = []
        for row in rows:
            message = ItdMessage(row.content_type, row.content, row.phone, row.caption, row.description, row.url_thumb)
            outcomes.append(SendOutcome(row.message_key, MessageState.ACCEPTED, hook.send(message)))
        return outcomes
