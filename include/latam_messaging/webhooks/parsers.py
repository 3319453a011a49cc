"""Parsers of stored webhook bodies: Teleprom V0/V1/V3, ITD status and inbound, Wavy Callback/DLR/MO.

Nothing is dropped because of a value: every item of a body becomes a status event or an inbound
message, or an item error with its reason (kept beside the raw body). One bad item costs only
that item. Statuses the vocabulary does not know are events with status ``unknown`` and the
vendor's text; placeholder or absurd timestamps fall back to the receive time, with a note.
Bodies too large or too deeply nested are refused before ``json.loads``; trailing commas (as in
ITD's printed example) are tolerated.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import pendulum

from latam_messaging.common.timeparse import from_epoch_ms, parse_day_month_year_minutes, parse_iso
from latam_messaging.itd import contract as itd
from latam_messaging.status import DeliveryStatus, StatusEvent
from latam_messaging.teleprom import contract as teleprom
from latam_messaging.wavy import contract as wavy
from latam_messaging.wavy.models import SmsInbound, SmsStatus

TELEPROM_STATUSES = {"enqueued", "sent", "delivered", "read", "failed"}
#: Larger bodies are refused before parsing (the receiver stores at most 1 MiB).
MAX_BODY_CHARS = 1024 * 1024
#: Deeper nesting is refused before ``json.loads`` (the vendors' bodies nest 8 levels at most).
MAX_DEPTH = 64
#: Vendor times outside this range are not believed (placeholders, 1e20, zero).
EARLIEST = pendulum.datetime(2000, 1, 1, tz="UTC")
FUTURE_SLACK = pendulum.duration(days=1)


class UnparseableEvent(ValueError):
    pass


@dataclass
class Parsed:
    format_version: str
    statuses: list[StatusEvent] = field(default_factory=list)
    inbound: list[dict[str, Any]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)  # one reason per item that could not be used


def _items(parsed: Parsed, items: Iterable[Any], one: Callable[[Any], None]) -> Parsed:
    """Apply ``one`` to each item; an item that fails is recorded as an error, its neighbours stay."""
    for number, item in enumerate(items, start=1):
        try:
            one(item)
        except (UnparseableEvent, KeyError, TypeError, ValueError, AttributeError, OverflowError) as exc:
            parsed.errors.append(f"item {number}: {_reason(exc)}")
    return parsed


def _reason(exc: BaseException) -> str:
    text = str(exc) if isinstance(exc, UnparseableEvent) else f"{type(exc).__name__}"
    return text[:300]


def _inbound(vendor: str, message_id: Any, **fields: Any) -> dict[str, Any]:
    if message_id in (None, ""):
        raise UnparseableEvent("message without an id")
    return {"vendor": vendor, "vendor_message_id": str(message_id), **fields}


@dataclass(frozen=True)
class When:
    at: pendulum.DateTime
    note: str | None = None


def _when(value: Any, received_at: pendulum.DateTime, parse: Callable[[Any], pendulum.DateTime]) -> When:
    """The vendor's time, or the receive time (with a note) when it is missing, a placeholder or absurd."""
    try:
        at = parse(value)
    except (TypeError, ValueError, OverflowError, OSError, AttributeError, KeyError):
        at = None
    if at is not None and EARLIEST <= at <= received_at + FUTURE_SLACK:
        return When(at)
    shown = repr(value)[:40]
    return When(received_at, f"vendor time {shown} unusable: receive time used")


def _epoch_s(value: Any) -> pendulum.DateTime:
    return pendulum.from_timestamp(int(str(value).strip()), tz="UTC")


def _epoch_ms(value: Any) -> pendulum.DateTime:
    return from_epoch_ms(int(str(value).strip()) if not isinstance(value, int | float) else value)


def _text_or_none(value: Any) -> str | None:
    if value is None or value == "":
        return None
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


# ---- Teleprom ----------------------------------------------------------------------------------------
def teleprom_status(raw: Any) -> DeliveryStatus:
    """Teleprom's text → the vocabulary; ``failed: <cause>`` is a failure (the cause is in ``resultado``)."""
    text = str(raw).strip().lower()
    if text in TELEPROM_STATUSES:
        return DeliveryStatus(text)
    if text.startswith("failed"):
        return DeliveryStatus.FAILED
    return DeliveryStatus.UNKNOWN


def _reply_id(item: dict[str, Any]) -> str:
    """V0 ``received`` events carry the send's ``identificador``, shared by every reply to it: the
    identity adds a digest of the event itself, so two replies differ and a vendor retry does not."""
    digest = hashlib.sha256(json.dumps(item, sort_keys=True, ensure_ascii=False).encode()).hexdigest()[:20]
    return f"{str(item.get('identificador') or '')[:200]}#{digest}"


def _teleprom_v0(items: list[Any], received_at: pendulum.DateTime) -> Parsed:
    parsed = Parsed("V0")

    def one(item: Any) -> None:
        if not isinstance(item, dict) or "resultado" not in item:
            raise UnparseableEvent("V0 item without resultado")
        raw = _text_or_none(item["resultado"]) or ""
        when = _when(item.get("fechaHora"), received_at, lambda v: parse_iso(v, teleprom.VENDOR_TIMEZONE))
        key = item.get("identificador")
        if raw.strip().lower() == "received":
            in_reply = str(key) if key not in (None, "") and len(str(key)) <= 128 else None
            parsed.inbound.append(
                _inbound(
                    "teleprom",
                    _reply_id(item),
                    from_phone=_text_or_none(item.get("telefono")),
                    to_account=_text_or_none(item.get("empresa")),
                    message_type="text",
                    text=_text_or_none(item.get("mensaje")),
                    received_at=when.at,
                    in_reply_to=in_reply,
                    raw=item,
                    note=when.note,
                )
            )
            return
        if key in (None, ""):
            raise UnparseableEvent("V0 status without identificador")
        parsed.statuses.append(
            StatusEvent(
                "teleprom",
                None,
                teleprom_status(raw),
                raw,
                when.at,
                "webhook",
                message_key=str(key),
                note=when.note,
            )
        )

    return _items(parsed, items, one)


def _changes(payload: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        change.get("value") or {}
        for entry in payload.get("entry") or []
        if isinstance(entry, dict)
        for change in entry.get("changes") or []
        if isinstance(change, dict)
    ]


def _ids(*values: Any) -> list[str]:
    return list(dict.fromkeys(str(v) for v in values if v not in (None, "")))


def _teleprom_envelope(body: dict[str, Any], received_at: pendulum.DateTime) -> Parsed:
    version, kind = str(body.get("Version")), str(body.get("Type", "")).upper()
    payload = body.get("Payload")
    if not isinstance(payload, dict):
        raise UnparseableEvent("envelope without a Payload object")
    parsed = Parsed(f"V{version}"[:16])
    values = _changes(payload)
    if kind == "STATUS":

        def status_item(status: Any) -> None:
            ids = _ids(status.get("gs_id"), status.get("id"))
            if not ids:
                raise UnparseableEvent("status without gs_id or id")
            raw = _text_or_none(status.get("status")) or ""
            when = _when(status.get("timestamp"), received_at, _epoch_s)
            parsed.statuses.append(
                StatusEvent(
                    "teleprom",
                    ids[0],
                    teleprom_status(raw),
                    raw,
                    when.at,
                    "webhook",
                    vendor_ids=ids,
                    note=when.note,
                )
            )

        return _items(parsed, [s for v in values for s in (v.get("statuses") or [])], status_item)
    if kind == "INCOMING":

        def message_item(pair: tuple[Any, dict[str, Any]]) -> None:
            account, message = pair
            kind_of = message.get("type")
            text = (message.get("text") or {}).get("body") or (message.get("button") or {}).get("text")
            media = (message.get(kind_of) or {}) if kind_of in ("image", "video", "document", "audio") else {}
            context = message.get("context") or {}
            when = _when(message.get("timestamp"), received_at, _epoch_s)
            parsed.inbound.append(
                _inbound(
                    "teleprom",
                    message.get("id"),
                    from_phone=_text_or_none(message.get("from")),
                    to_account=_text_or_none(account),
                    message_type=_text_or_none(kind_of),
                    text=_text_or_none(text),
                    media_url=_text_or_none(media.get("url") or media.get("link")),
                    received_at=when.at,
                    in_reply_to=_text_or_none(context.get("gs_id") or context.get("id")),
                    raw=message,
                    note=when.note,
                )
            )

        pairs = [
            ((v.get("metadata") or {}).get("display_phone_number"), m) for v in values for m in v.get("messages") or []
        ]
        return _items(parsed, pairs, message_item)
    raise UnparseableEvent(f"envelope Type {kind[:40]!r} is not STATUS or INCOMING")


def parse_teleprom(body: Any, received_at: pendulum.DateTime) -> Parsed:
    if isinstance(body, list):
        return _teleprom_v0(body, received_at)
    if isinstance(body, dict) and "Version" in body:
        return _teleprom_envelope(body, received_at)
    if isinstance(body, dict) and "resultado" in body:  # a single V0 object, as in the seed's examples
        return _teleprom_v0([body], received_at)
    raise UnparseableEvent("neither a V0 array nor a V1/V3 envelope")


# ---- ITD ----------------------------------------------------------------------------------------------
def itd_status(raw: Any) -> DeliveryStatus:
    """ITD's status text (documented as an int, printed as a string) → the vocabulary."""
    return DeliveryStatus(itd.STATUS_MAP.get(str(raw).strip().upper(), DeliveryStatus.UNKNOWN))


def _direction(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def parse_itd(body: Any, received_at: pendulum.DateTime) -> Parsed:
    if not isinstance(body, dict):
        raise UnparseableEvent("ITD webhooks are JSON objects")
    if "status" in body and "uuid" in body:
        parsed = Parsed("status")

        def one(item: dict[str, Any]) -> None:
            if item["uuid"] in (None, ""):
                raise UnparseableEvent("status without uuid")
            raw = _text_or_none(item["status"]) or ""
            when = _when(
                item.get("sent_at"), received_at, lambda v: parse_day_month_year_minutes(v, itd.VENDOR_TIMEZONE)
            )
            parsed.statuses.append(
                StatusEvent(
                    "itd",
                    str(item["uuid"]),
                    itd_status(raw),
                    raw,
                    when.at,
                    "webhook",
                    note=when.note,
                    precision_s=60 if when.note is None else 0,  # dd/MM/yyyy HH:mm
                )
            )

        return _items(parsed, [body], one)
    if "senderPhone" in body and "uuid" in body:
        parsed = Parsed("inbound")

        def one_inbound(item: dict[str, Any]) -> None:
            when = _when(item.get("sendAt"), received_at, _epoch_ms)
            parsed.inbound.append(itd_inbound_row(item, when))

        return _items(parsed, [body], one_inbound)
    raise UnparseableEvent("neither an ITD status nor an inbound message")


def itd_inbound_row(item: dict[str, Any], when: When) -> dict[str, Any]:
    """An ITD message (webhook or ``recievedWhatsapp``) as an inbound row, whatever its ``direction``."""
    return _inbound(
        "itd",
        item.get("uuid"),
        from_phone=_text_or_none(item.get("senderPhone")),
        to_account=_text_or_none(item.get("accountPhone")),
        message_type=_text_or_none(item.get("messageType")),
        text=_text_or_none(item.get("content")) or _text_or_none(item.get("caption")),
        media_url=_text_or_none(item.get("url")),
        received_at=when.at,
        direction=_direction(item.get("direction")),
        raw=item,
        note=when.note,
    )


# ---- Wavy ---------------------------------------------------------------------------------------------
def wavy_status_events(status: SmsStatus, source: str) -> list[StatusEvent]:
    """A Wavy status record (callback, DLR or polled) as events: sent, then delivered/failed.
    Codes Wavy does not document are ``unknown`` events with the code and text kept."""
    stages = (
        (status.sent_status_code, status.sent_status, status.sent_at, wavy.SENT_STATUSES, DeliveryStatus.SENT),
        (
            status.delivered_status_code,
            status.delivered_status,
            status.delivered_at,
            wavy.DELIVERED_STATUSES,
            DeliveryStatus.DELIVERED,
        ),
    )
    events = []
    for code, text, at, known, success in stages:
        if code is None or at is None:
            continue
        if code not in known:
            normalised = DeliveryStatus.UNKNOWN
        else:
            normalised = success if code in (wavy.SENT_SUCCESS, wavy.DELIVERED_SUCCESS) else DeliveryStatus.FAILED
        raw = text or str(code)
        events.append(StatusEvent("wavy", status.id, normalised, raw, at, source, message_key=status.correlation_id))
    return events


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
        parsed = Parsed("status_list")
        return _items(
            parsed,
            body.get("smsStatuses") or [],
            lambda item: parsed.statuses.extend(wavy_status_events(SmsStatus.from_api(item), "poll")),
        )
    if channel in ("receive_list", "receive_search") and isinstance(body, dict):
        parsed = Parsed(channel)
        return _items(
            parsed, body.get("messages") or [], lambda m: parsed.inbound.append(wavy_inbound(SmsInbound.from_api(m)))
        )
    if not isinstance(body, dict) or "id" not in body:
        raise UnparseableEvent("Wavy webhooks are JSON objects with an id")
    if channel == "mo" or "messageText" in body:
        parsed = Parsed("mo")
        return _items(parsed, [body], lambda m: parsed.inbound.append(wavy_inbound(SmsInbound.from_api(m))))
    status = SmsStatus.from_api(body)
    events = wavy_status_events(status, "webhook")
    if not events:
        raise UnparseableEvent("Wavy status without a status code and time")
    return Parsed("dlr" if status.delivered_status_code is not None else "callback", statuses=events)


# ---- JSON, guarded ------------------------------------------------------------------------------------
_TOKENS = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{}]|,(?=\s*[\]}])', re.S)


def _nesting_depth(text: str) -> int:
    depth = deepest = 0
    for match in _TOKENS.finditer(text):
        token = match.group()
        if token in "[{":
            depth += 1
            if depth > deepest:
                deepest = depth
                if deepest > MAX_DEPTH:
                    return deepest
        elif token in "]}":
            depth -= 1
    return deepest


def _without_trailing_commas(text: str) -> str:
    return _TOKENS.sub(lambda m: "" if m.group() == "," else m.group(), text)


def loads(text: str) -> Any:
    """``json.loads`` behind guards: size and nesting first; a trailing comma is tolerated."""
    if len(text) > MAX_BODY_CHARS:
        raise UnparseableEvent(f"body of {len(text)} characters is over the {MAX_BODY_CHARS} limit")
    if _nesting_depth(text) > MAX_DEPTH:
        raise UnparseableEvent(f"body nests deeper than {MAX_DEPTH} levels")
    try:
        return json.loads(text)
    except ValueError as exc:
        try:
            return json.loads(_without_trailing_commas(text))
        except ValueError:
            raise UnparseableEvent(f"body is not JSON: {exc}") from exc


def parse_body(vendor: str, channel: str | None, text: str, received_at: pendulum.DateTime | None = None) -> Parsed:
    """Parse a stored body as JSON whatever its Content-Type said (Teleprom V3 sends form-encoded)."""
    received_at = received_at or pendulum.now("UTC")
    body = loads(text)
    try:
        if vendor == "teleprom":
            return parse_teleprom(body, received_at)
        if vendor == "itd":
            return parse_itd(body, received_at)
        if vendor == "wavy":
            return parse_wavy(body, channel)
    except UnparseableEvent:
        raise
    except (KeyError, TypeError, ValueError, AttributeError, OverflowError, RecursionError) as exc:
        raise UnparseableEvent(f"{type(exc).__name__} while reading the body") from exc
    raise UnparseableEvent(f"unknown vendor {vendor[:20]!r}")
