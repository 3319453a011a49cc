"""Typed requests and results of the Wavy hook."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pendulum

from latam_messaging.common.timeparse import epoch_s_or_ms
from latam_messaging.wavy.contract import normalised_status


@dataclass(frozen=True)
class SmsMessage:
    destination: str  # E.164 digits
    text: str | None = None
    correlation_id: str | None = None
    extra_info: str | None = None
    flash: bool = False

    def to_api(self) -> dict[str, Any]:
        body: dict[str, Any] = {"destination": self.destination}
        if self.text is not None:
            body["messageText"] = self.text
        if self.correlation_id is not None:
            body["correlationId"] = self.correlation_id
        if self.extra_info is not None:
            body["extraInfo"] = self.extra_info
        if self.flash:
            body["flashSMS"] = True
        return body


@dataclass(frozen=True)
class SmsReceipt:
    """Wavy took the message (acceptance is not delivery: failures arrive later as statuses)."""

    id: str
    correlation_id: str | None


#: Where each status stage's time is (the vendor's own example spells the sent time sentStatusAt; the
#: field list says sentAt).
SENT_AT_KEYS = ("sentStatusAt", "sentAt")
DELIVERED_AT_KEYS = ("deliveredAt",)


def stage_time(item: dict[str, Any], *names: str) -> Any:
    """The first of ``names`` present in ``item`` (as sent), or None."""
    return next((item[name] for name in names if item.get(name) not in (None, "")), None)


def _epoch(item: dict[str, Any], *names: str) -> pendulum.DateTime | None:
    """An epoch time (milliseconds, or seconds), or None when absent or not a number (the callbacks'
    parser says why, and places the event at the receive time)."""
    value = stage_time(item, *names)
    try:
        return epoch_s_or_ms(value) if value is not None else None
    except (TypeError, ValueError, OverflowError, OSError):
        return None


@dataclass(frozen=True)
class SmsStatus:
    """One entry of status search/list, or a Callback/DLR webhook body."""

    id: str
    correlation_id: str | None
    destination: str | None
    sent_status_code: int | None
    sent_status: str | None
    sent_at: pendulum.DateTime | None
    delivered_status_code: int | None
    delivered_status: str | None
    delivered_at: pendulum.DateTime | None
    carrier: str | None
    raw: dict[str, Any] = field(repr=False, default_factory=dict)

    @property
    def status(self) -> str | None:
        return normalised_status(self.sent_status_code, self.delivered_status_code)

    @classmethod
    def from_api(cls, item: dict[str, Any]) -> SmsStatus:
        def code(name: str) -> int | None:
            return int(item[name]) if item.get(name) not in (None, "") else None

        return cls(
            id=str(item["id"]),
            correlation_id=item.get("correlationId"),
            destination=item.get("destination"),
            sent_status_code=code("sentStatusCode"),
            sent_status=item.get("sentStatus"),
            sent_at=_epoch(item, *SENT_AT_KEYS),
            delivered_status_code=code("deliveredStatusCode"),
            delivered_status=item.get("deliveredStatus"),
            delivered_at=_epoch(item, *DELIVERED_AT_KEYS),
            carrier=item.get("carrierName"),
            raw=item,
        )


@dataclass(frozen=True)
class SmsInbound:
    """An MO (mobile-originated) message."""

    id: str
    source: str | None
    short_code: str | None
    text: str | None
    received_at: pendulum.DateTime | None
    mt_correlation_id: str | None
    raw: dict[str, Any] = field(repr=False, default_factory=dict)

    @classmethod
    def from_api(cls, item: dict[str, Any]) -> SmsInbound:
        mt = item.get("mt") or {}
        return cls(
            id=str(item["id"]),
            source=item.get("source"),
            short_code=item.get("shortCode"),
            text=item.get("messageText"),
            received_at=_epoch(item, "receivedAt"),
            mt_correlation_id=mt.get("correlationId"),
            raw=item,
        )
