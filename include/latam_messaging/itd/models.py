"""Typed results of the ITD hook."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pendulum

from latam_messaging.common.timeparse import from_epoch_ms, parse_vendor_local
from latam_messaging.itd.contract import STATUS_MAP, VENDOR_TIMEZONE


@dataclass(frozen=True)
class ItdMessage:
    """What ``sendWhatsapp`` takes. ``phone`` is E.164 digits; the hook splits the prefix off."""

    content_type: str
    content: str
    phone: str
    caption: str | None = None
    description: str | None = None
    url_thumb: str | None = None


@dataclass(frozen=True)
class ItdStatus:
    key: str
    raw_status: str
    status: str | None  # normalised (vendor-apis.md §4); None when the text is unknown
    sent_at: pendulum.DateTime | None
    delivered_at: pendulum.DateTime | None
    credit_usage: int | None

    @classmethod
    def from_api(cls, key: str, data: dict[str, Any]) -> ItdStatus:
        raw = str(data.get("status") or "")
        return cls(
            key=key,
            raw_status=raw,
            status=STATUS_MAP.get(raw.upper()),
            sent_at=parse_vendor_local(data["sent_at"], VENDOR_TIMEZONE) if data.get("sent_at") else None,
            delivered_at=parse_vendor_local(data["delivered_at"], VENDOR_TIMEZONE)
            if data.get("delivered_at")
            else None,
            credit_usage=int(data["credit_usage"]) if data.get("credit_usage") not in (None, "") else None,
        )


@dataclass(frozen=True)
class ItdInbound:
    """A message of ``recievedWhatsapp``; ``direction`` 0 = inbound, 1 = outbound."""

    uuid: str
    account_phone: str | None
    sender_phone: str | None
    sender_name: str | None
    content: str | None
    message_type: str | None
    direction: int | None
    created_at: pendulum.DateTime | None
    sent_at: pendulum.DateTime | None
    raw: dict[str, Any] = field(repr=False, default_factory=dict)

    @classmethod
    def from_api(cls, item: dict[str, Any]) -> ItdInbound:
        return cls(
            uuid=str(item["uuid"]),
            account_phone=item.get("accountPhone"),
            sender_phone=item.get("senderPhone"),
            sender_name=item.get("senderName"),
            content=item.get("content"),
            message_type=item.get("messageType"),
            direction=int(item["direction"]) if item.get("direction") is not None else None,
            created_at=from_epoch_ms(item["createdAt"]) if item.get("createdAt") else None,
            sent_at=from_epoch_ms(item["sendAt"]) if item.get("sendAt") else None,
            raw=item,
        )
