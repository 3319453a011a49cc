"""Parsers of stored webhook bodies: Teleprom V0/V1/V3, ITD status and inbound, Wavy Callback/DLR/MO.

Each parser returns the status events and inbound messages a body carries, or raises
:class:`UnparseableEvent` with a reason that is kept beside the raw body.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import pendulum

from latam_messaging.common.timeparse import from_epoch_ms, parse_day_month_year_minutes, parse_iso
from latam_messaging.itd import contract as itd
from latam_messaging.status import StatusEvent
from latam_messaging.teleprom import contract as teleprom
from latam_messaging.wavy.models import SmsInbound, SmsStatus

TELEPROM_STATUSES = {"enqueued", "sent", "delivered", "read", "failed"}


class UnparseableEvent(ValueError):
    pass


@dataclass
class Parsed:
    format_version: str
    statuses: list[StatusEvent] = field(default_factory=list)
    inbound: list[dict[str, Any]] = field(default_factory=list)


def _inbound(vendor: str, message_id: str, **fields: Any) -> dict[str, Any]:
    return {"vendor": vendor, "vendor_message_id": str(message_id), **fields}


def _epoch_s(value: Any) -> pendulum.DateTime:
    return pendulum.from_timestamp(int(value), tz="UTC")


# ---- Teleprom ----------------------------------------------------------------------------------------
def _teleprom_v0(items: list[Any]) -> Parsed:
    parsed = Parsed("V0")
    for item in items:
        if not isinstance(item, dict) or "resultado" not in item or "fechaHora" not in item:
            raise UnparseableEvent("V0 item without resultado/fechaHora")
        result = str(item["resultado"]).lower()
        at = parse_iso(item["fechaHora"], teleprom.VENDOR_TIMEZONE)
        if result == "received":
            parsed.inbound.append(
                _inbound(
                    "teleprom",
                    item.get("identificador") or f"{item.get('telefono')}@{item['fechaHora']}",
                    from_phone=item.get("telefono"),
                    to_account=item.get("empresa"),
                    message_type="text",
                    text=item.get("mensaje"),
                    received_at=at,
                    raw=item,
                )
            )
        elif result in TELEPROM_STATUSES:
            parsed.statuses.append(
                StatusEvent(
                    "teleprom",
                    None,
                    result,
                    item["resultado"],
                    at,
                    "webhook",
                    message_key=str(item.get("identificador") or ""),
                )
            )
        else:
            raise UnparseableEvent(f"V0 resultado {item['resultado']!r} is not a known status")
    return parsed


def _changes(payload: dict[str, Any]) -> list[dict[str, Any]]:
    return [change.get("value") or {} for entry in payload.get("entry") or [] for change in entry.get("changes") or []]


def _teleprom_envelope(body: dict[str, Any]) -> Parsed:
    version, kind = str(body.get("Version")), str(body.get("Type", "")).upper()
    payload = body.get("Payload")
    if not isinstance(payload, dict):
        raise UnparseableEvent("envelope without a Payload object")
    parsed = Parsed(f"V{version}")
    if kind == "STATUS":
        for value in _changes(payload):
            for status in value.get("statuses") or []:
                raw = str(status.get("status", ""))
                if raw.lower() not in TELEPROM_STATUSES:
                    raise UnparseableEvent(f"status {raw!r} is not a known status")
                parsed.statuses.append(
                    StatusEvent(
                        "teleprom",
                        str(status.get("gs_id") or status.get("id")),
                        raw.lower(),
                        raw,
                        _epoch_s(status["timestamp"]),
                        "webhook",
                    )
                )
    elif kind == "INCOMING":
        for value in _changes(payload):
            account = (value.get("metadata") or {}).get("display_phone_number")
            for message in value.get("messages") or []:
                kind_of = message.get("type")
                text = (message.get("text") or {}).get("body") or (message.get("button") or {}).get("text")
                media = (message.get(kind_of) or {}) if kind_of in ("image", "video", "document", "audio") else {}
                parsed.inbound.append(
                    _inbound(
                        "teleprom",
                        message["id"],
                        from_phone=message.get("from"),
                        to_account=account,
                        message_type=kind_of,
                        text=text,
                        media_url=media.get("url") or media.get("link"),
                        received_at=_epoch_s(message["timestamp"]),
                        in_reply_to=(message.get("context") or {}).get("gs_id")
                        or (message.get("context") or {}).get("id"),
                        raw=message,
                    )
                )
    else:
        raise UnparseableEvent(f"envelope Type {kind!r} is not STATUS or INCOMING")
    return parsed


def parse_teleprom(body: Any) -> Parsed:
    if isinstance(body, list):
        return _teleprom_v0(body)
    if isinstance(body, dict) and "Version" in body:
        return _teleprom_envelope(body)
    if isinstance(body, dict) and "resultado" in body:  # a single V0 object, as in the seed's examples
        return _teleprom_v0([body])
    raise UnparseableEvent("neither a V0 array nor a V1/V3 envelope")


# ---- ITD ----------------------------------------------------------------------------------------------
def parse_itd(body: Any) -> Parsed:
    if not isinstance(body, dict):
        raise UnparseableEvent("ITD webhooks are JSON objects")
    if "status" in body and "uuid" in body:
        raw = str(body["status"])
        status = itd.STATUS_MAP.get(raw.upper())
        if status is None:
            raise UnparseableEvent(f"ITD status {raw!r} is not known")
        at = parse_day_month_year_minutes(body["sent_at"], itd.VENDOR_TIMEZONE)
        return Parsed("status", statuses=[StatusEvent("itd", str(body["uuid"]), status, raw, at, "webhook")])
    if "senderPhone" in body and "uuid" in body:
        parsed = Parsed("inbound")
        if int(body.get("direction") or 0) == 0:  # 1 = our own outbound message echoed back
            parsed.inbound.append(
                _inbound(
                    "itd",
                    body["uuid"],
                    from_phone=body.get("senderPhone"),
                    to_account=body.get("accountPhone"),
                    message_type=body.get("messageType"),
                    text=body.get("content") or body.get("caption"),
                    media_url=body.get("url") or None,
                    received_at=from_epoch_ms(body["sendAt"]) if body.get("sendAt") else None,
                    raw=body,
                )
            )
        return parsed
    raise UnparseableEvent("neither an ITD status nor an inbound message")


# ---- Wavy ---------------------------------------------------------------------------------------------
def wavy_status_events(status: SmsStatus, source: str) -> list[StatusEvent]:
    """A Wavy status record (callback, DLR or polled) as events: sent, then delivered/failed."""
    stages = (
        (status.sent_status_code, status.sent_status, status.sent_at, 2, "sent"),
        (status.delivered_status_code, status.delivered_status, status.delivered_at, 4, "delivered"),
    )
    return [
        StatusEvent(
            "wavy",
            status.id,
            success if code == success_code else "failed",
            text or str(code),
            at,
            source,
            message_key=status.correlation_id,
        )
        for code, text, at, success_code, success in stages
        if code is not None and at is not None
    ]


def wavy_inbound(message: SmsInbound) -> dict[str, Any]:
    return _inbound(
        "wavy",
        message.id,
        from_phone=message.source,
        to_account=message.short_code,
        message_type="sms",
        text=message.text,
        received_at=message.received_at,
        in_reply_to=message.mt_correlation_id,
        raw=message.raw,
    )


def parse_wavy(body: Any, channel: str | None) -> Parsed:
    if channel == "status_list" and isinstance(body, dict):  # a polled page (wavy_poll)
        events = [
            e for item in body.get("smsStatuses", []) for e in wavy_status_events(SmsStatus.from_api(item), "poll")
        ]
        return Parsed("status_list", statuses=events)
    if channel == "receive_list" and isinstance(body, dict):
        return Parsed("receive_list", inbound=[wavy_inbound(SmsInbound.from_api(m)) for m in body.get("messages", [])])
    if not isinstance(body, dict) or "id" not in body:
        raise UnparseableEvent("Wavy webhooks are JSON objects with an id")
    if channel == "mo" or "messageText" in body:
        return Parsed("mo", inbound=[wavy_inbound(SmsInbound.from_api(body))])
    status = SmsStatus.from_api(body)
    events = wavy_status_events(status, "webhook")
    if not events:
        raise UnparseableEvent("Wavy status without a status code and time")
    return Parsed("dlr" if status.delivered_status_code is not None else "callback", statuses=events)


def parse_body(vendor: str, channel: str | None, text: str) -> Parsed:
    """Parse a stored body as JSON whatever its Content-Type said (Teleprom V3 sends form-encoded)."""
    try:
        body = json.loads(text)
    except ValueError as exc:
        raise UnparseableEvent(f"body is not JSON: {exc}") from exc
    try:
        if vendor == "teleprom":
            return parse_teleprom(body)
        if vendor == "itd":
            return parse_itd(body)
        if vendor == "wavy":
            return parse_wavy(body, channel)
    except (KeyError, TypeError, ValueError) as exc:
        if isinstance(exc, UnparseableEvent):
            raise
        raise UnparseableEvent(f"{type(exc).__name__}: {exc}") from exc
    raise UnparseableEvent(f"unknown vendor {vendor!r}")
