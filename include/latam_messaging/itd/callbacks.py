"""ITD Chile's webhooks (status change, received message) and its received-message rows."""

from __future__ import annotations

from typing import Any

import pendulum

from latam_messaging.common.timeparse import parse_day_month_year_minutes
from latam_messaging.itd import contract
from latam_messaging.lifecycle import DeliveryStatus
from latam_messaging.status import StatusEvent
from latam_messaging.webhooks.parsers import (
    Parsed,
    UnparseableEvent,
    When,
    epoch_ms,
    inbound_row,
    items_of,
    text_or_none,
    vendor_time,
)


def status_of(raw: Any) -> DeliveryStatus:
    """ITD's status text (documented as an int, printed as a string) → the vocabulary."""
    return DeliveryStatus(contract.STATUS_MAP.get(str(raw).strip().upper(), DeliveryStatus.UNRECOGNISED))


def _direction(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def parse_callback(body: Any, channel: str | None, received_at: pendulum.DateTime) -> Parsed:
    """An ITD webhook body: a status change or a received message.

    ITD's document defines the status webhook's ``sent_at`` as "Fecha de envío", the message's send date
    (to the minute): it is kept as ``message_sent_at``, and it is the event's time only for the SENT
    status; any other status (DELIVERED, READ, ...) is placed at the receive time, when we learned it."""
    if not isinstance(body, dict):
        raise UnparseableEvent("ITD webhooks are JSON objects")
    if "status" in body and "uuid" in body:
        parsed = Parsed("status")

        def one(item: dict[str, Any]) -> None:
            if item["uuid"] in (None, ""):
                raise UnparseableEvent("status without uuid")
            raw = text_or_none(item["status"]) or ""
            status = status_of(raw)
            sent = vendor_time(
                item.get("sent_at"), received_at, lambda v: parse_day_month_year_minutes(v, contract.VENDOR_TIMEZONE)
            )
            sent_at = sent.at if sent.note is None else None
            if status == DeliveryStatus.SENT and sent_at is not None:
                at, precision, note = sent_at, 60, None  # the send time is this status's own time (to the minute)
            elif status == DeliveryStatus.SENT:  # its own time is unusable: when we learned it, said so
                at, precision, note = received_at, 0, sent.note
            else:  # ITD documents sent_at as the send date: a later status is placed when we learned it
                at, precision = received_at, 0
                note = None if sent.note is None or item.get("sent_at") in (None, "") else sent.note
            parsed.statuses.append(
                StatusEvent(
                    "itd",
                    str(item["uuid"]),
                    status,
                    raw,
                    at,
                    "webhook",
                    note=note,
                    precision_s=precision,  # dd/MM/yyyy HH:mm
                    message_sent_at=sent_at,
                )
            )

        return items_of(parsed, [body], one)
    if "senderPhone" in body and "uuid" in body:
        parsed = Parsed("inbound")

        def one_inbound(item: dict[str, Any]) -> None:
            when = vendor_time(item.get("sendAt"), received_at, epoch_ms)
            parsed.inbound.append(inbound_message(item, when))

        return items_of(parsed, [body], one_inbound)
    raise UnparseableEvent("neither an ITD status nor an inbound message")


def inbound_message(item: dict[str, Any], when: When) -> dict[str, Any]:
    """An ITD message (webhook or ``recievedWhatsapp``) as an inbound row, whatever its ``direction``."""
    return inbound_row(
        "itd",
        item.get("uuid"),
        from_phone=text_or_none(item.get("senderPhone")),
        to_account=text_or_none(item.get("accountPhone")),
        message_type=text_or_none(item.get("messageType")),
        text=text_or_none(item.get("content")) or text_or_none(item.get("caption")),
        media_url=text_or_none(item.get("url")),
        received_at=when.at,
        direction=_direction(item.get("direction")),
        raw=item,
        note=when.note,
    )
