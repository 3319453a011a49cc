"""Wavy's callbacks (status callback, DLR, MO) and its polled status and MO pages."""

from __future__ import annotations

import dataclasses
from typing import Any

import pendulum

from latam_messaging.common.timeparse import epoch_s_or_ms
from latam_messaging.lifecycle import DeliveryStatus
from latam_messaging.status import StatusEvent
from latam_messaging.wavy import contract
from latam_messaging.wavy.models import DELIVERED_AT_KEYS, SENT_AT_KEYS, SmsInbound, SmsStatus, stage_time
from latam_messaging.webhooks.parsers import (
    Parsed,
    UnparseableEvent,
    inbound_row,
    items_of,
    vendor_time,
)


def status_events(status: SmsStatus, source: str, received_at: pendulum.DateTime) -> list[StatusEvent]:
    """A Wavy status record (callback, DLR or polled) as events: sent, then delivered/failed.
    Codes Wavy does not document are ``unknown`` events with the code and text kept. Each stage is
    there when its status code is (a record without ``sentAt``/``deliveredAt`` still says what
    happened): without its time, the stage is placed at ``received_at`` (when we learned it), with a note."""
    stages = (
        (status.sent_status_code, status.sent_status, SENT_AT_KEYS, contract.SENT_STATUSES, DeliveryStatus.SENT),
        (
            status.delivered_status_code,
            status.delivered_status,
            DELIVERED_AT_KEYS,
            contract.DELIVERED_STATUSES,
            DeliveryStatus.DELIVERED,
        ),
    )
    events = []
    for code, text, time_keys, known, success in stages:
        if code is None:
            continue
        value = stage_time(status.raw, *time_keys)
        if value is None:
            at, note = received_at, "no vendor time for this stage: receive time used"
        else:
            at, note = dataclasses.astuple(vendor_time(value, received_at, epoch_s_or_ms))
        if code not in known:
            normalised = DeliveryStatus.UNRECOGNISED
        else:
            normalised = success if code in (contract.SENT_SUCCESS, contract.DELIVERED_SUCCESS) else DeliveryStatus.FAILED
        raw = text or str(code)
        opt_out = code in contract.OPT_OUT_CODES or (text or "").strip().upper() in contract.OPT_OUT_TEXTS
        events.append(
            StatusEvent(
                "wavy", status.id, normalised, raw, at, source, message_key=status.correlation_id, note=note, opt_out=opt_out
            )
        )
    return events


def inbound_message(message: SmsInbound, received_at: pendulum.DateTime) -> dict[str, Any]:
    """An MO as an inbound row; without a usable ``receivedAt`` it is placed when we learned it, with a note."""
    when = vendor_time(message.raw.get("receivedAt"), received_at, epoch_s_or_ms)
    return inbound_row(
        "wavy",
        message.id,
        from_phone=message.source,
        to_account=message.short_code,
        message_type="sms",
        text=message.text,
        received_at=when.at,
        in_reply_to=message.mt_correlation_id,
        raw=message.raw,
        note=when.note,
    )


def parse_callback(body: Any, channel: str | None, received_at: pendulum.DateTime) -> Parsed:
    """A Wavy callback, DLR or MO body, or a polled status/MO page stored raw first."""
    if channel == "status_list" and isinstance(body, dict):  # a polled page (wavy_poll)
        parsed = Parsed("status_list")
        return items_of(
            parsed,
            body.get("smsStatuses") or [],
            lambda item: parsed.statuses.extend(status_events(SmsStatus.from_api(item), "poll", received_at)),
        )
    if channel in ("receive_list", "receive_search") and isinstance(body, dict):
        parsed = Parsed(channel)
        return items_of(
            parsed, body.get("messages") or [], lambda m: parsed.inbound.append(inbound_message(SmsInbound.from_api(m), received_at))
        )
    if not isinstance(body, dict) or "id" not in body:
        raise UnparseableEvent("Wavy webhooks are JSON objects with an id")
    if channel == "mo" or "messageText" in body:
        parsed = Parsed("mo")
        return items_of(parsed, [body], lambda m: parsed.inbound.append(inbound_message(SmsInbound.from_api(m), received_at)))
    status = SmsStatus.from_api(body)
    events = status_events(status, "webhook", received_at)
    if not events:
        raise UnparseableEvent("Wavy status without a status code")
    return Parsed("dlr" if status.delivered_status_code is not None else "callback", statuses=events)
