"""Teleprom's webhooks: V0 status/received arrays (or a single object), V1 STATUS and V3 INCOMING envelopes."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pendulum

from latam_messaging.common.timeparse import parse_iso
from latam_messaging.lifecycle import DeliveryStatus
from latam_messaging.status import StatusEvent
from latam_messaging.teleprom import contract
from latam_messaging.webhooks.parsers import (
    Parsed,
    UnparseableEvent,
    epoch_s,
    inbound_row,
    items_of,
    text_or_none,
    vendor_time,
)

STATUSES = {"enqueued", "sent", "delivered", "read", "failed"}


def teleprom_status(raw: Any) -> DeliveryStatus:
    """Teleprom's text → the vocabulary; ``failed: <cause>`` is a failure (the cause is in ``resultado``)."""
    text = str(raw).strip().lower()
    if text in STATUSES:
        return DeliveryStatus(text)
    if text.startswith("failed"):
        return DeliveryStatus.FAILED
    return DeliveryStatus.UNRECOGNISED


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
        raw = text_or_none(item["resultado"]) or ""
        when = vendor_time(item.get("fechaHora"), received_at, lambda v: parse_iso(v, contract.VENDOR_TIMEZONE))
        key = item.get("identificador")
        if raw.strip().lower() == "received":
            in_reply = str(key) if key not in (None, "") and len(str(key)) <= 128 else None
            parsed.inbound.append(
                inbound_row(
                    "teleprom",
                    _reply_id(item),
                    from_phone=text_or_none(item.get("telefono")),
                    to_account=text_or_none(item.get("empresa")),
                    message_type="text",
                    text=text_or_none(item.get("mensaje")),
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

    return items_of(parsed, items, one)


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
            raw = text_or_none(status.get("status")) or ""
            when = vendor_time(status.get("timestamp"), received_at, epoch_s)
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

        return items_of(parsed, [s for v in values for s in (v.get("statuses") or [])], status_item)
    if kind == "INCOMING":

        def message_item(pair: tuple[Any, dict[str, Any]]) -> None:
            account, message = pair
            kind_of = message.get("type")
            text = (message.get("text") or {}).get("body") or (message.get("button") or {}).get("text")
            media = (message.get(kind_of) or {}) if kind_of in ("image", "video", "document", "audio") else {}
            context = message.get("context") or {}
            when = vendor_time(message.get("timestamp"), received_at, epoch_s)
            parsed.inbound.append(
                inbound_row(
                    "teleprom",
                    message.get("id"),
                    from_phone=text_or_none(message.get("from")),
                    to_account=text_or_none(account),
                    message_type=text_or_none(kind_of),
                    text=text_or_none(text),
                    media_url=text_or_none(media.get("url") or media.get("link")),
                    received_at=when.at,
                    in_reply_to=text_or_none(context.get("gs_id") or context.get("id")),
                    raw=message,
                    note=when.note,
                )
            )

        pairs = [
            ((v.get("metadata") or {}).get("display_phone_number"), m) for v in values for m in v.get("messages") or []
        ]
        return items_of(parsed, pairs, message_item)
    raise UnparseableEvent(f"envelope Type {kind[:40]!r} is not STATUS or INCOMING")


def parse_callback(body: Any, channel: str | None, received_at: pendulum.DateTime) -> Parsed:
    """A Teleprom webhook body: a V0 array (or single object), or a V1/V3 envelope."""
    if isinstance(body, list):
        return _teleprom_v0(body, received_at)
    if isinstance(body, dict) and "Version" in body:
        return _teleprom_envelope(body, received_at)
    if isinstance(body, dict) and "resultado" in body:  # a single V0 object, as in the seed's examples
        return _teleprom_v0([body], received_at)
    raise UnparseableEvent("neither a V0 array nor a V1/V3 envelope")
