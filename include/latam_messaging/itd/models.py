"""Typed results of the ITD hook."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pendulum

from latam_messaging.common.timeparse import from_epoch_ms, parse_vendor_local
from latam_messaging.itd.contract import STATUS_MAP, VENDOR_TIMEZONE
from latam_messaging.lifecycle import DeliveryStatus


@dataclass(frozen=True)
class ItdMessage:
    """What ``sendWhatsapp`` takes. ``phone`` is E.164 digits; the hook splits the prefix off."""

    content_type: str
    content: str
    phone: str
    caption: str | None = None
    description: str | None = None
    url_thumb: str | None = None


def _tolerant(parse, value: Any) -> pendulum.DateTime | None:
    """A vendor time, or None when it is missing or unreadable (one odd field never loses the item)."""
    if value in (None, ""):
        return None
    try:
        return parse(value)
    except (TypeError, ValueError, OverflowError, OSError):
        return None


def _local(value: Any) -> pendulum.DateTime:
    return parse_vendor_local(str(value), VENDOR_TIMEZONE)


@dataclass(frozen=True)
class ItdStatus:
    key: str
    raw_status: str
    status: str | None  # normalised (vendor-apis.md §4); unrecognised ("unknown") for a text it lacks; None when empty
    sent_at: pendulum.DateTime | None
    delivered_at: pendulum.DateTime | None
    credit_usage: int | None

    @classmethod
    def from_api(cls, key: str, data: dict[str, Any]) -> ItdStatus:
        value = data.get("status")
        raw = "" if value is None else str(value)  # documented as an int, printed as a string
        return cls(
            key=key,
            raw_status=raw,
            status=(STATUS_MAP.get(raw.strip().upper(), DeliveryStatus.UNRECOGNISED) if raw.strip() else None),
            sent_at=_tolerant(_local, data.get("sent_at")),
            delivered_at=_tolerant(_local, data.get("delivered_at")),
            credit_usage=_tolerant(int, data.get("credit_usage")),
        )


@dataclass(frozen=True)
class ItdInbound:
    """A message of ``recievedWhatsapp``. ``direction`` is kept as sent: the legend says 0 = input,
    1 = output, yet the document's received-message examples carry 1 — nothing is decided from it."""

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
            direction=_tolerant(int, item.get("direction")),
            created_at=_tolerant(from_epoch_ms, item.get("createdAt")),
            sent_at=_tolerant(from_epoch_ms, item.get("sendAt")),
            raw=item,
        )
