"""Teleprom's webhooks: V0 status/received arrays (or a single object), V1 STATUS and V3 INCOMING envelopes.

The envelopes' payload is Meta's WhatsApp Cloud API webhook as Gupshup relays it (references in
``teleprom/contract.py``): a failed status's ``errors[]`` become the event's reason (``code: title``),
``pricing``/``conversation`` its cost columns; times are epoch seconds or milliseconds, strings or
numbers; every inbound message type lands with its text (or caption, reply title, place, contact,
emoji), its media id and type, and the sender's profile name.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pendulum

from latam_messaging.common.timeparse import epoch_s_or_ms, parse_iso
from latam_messaging.lifecycle import DeliveryStatus
from latam_messaging.status import EventCost, StatusEvent
from latam_messaging.teleprom import contract
from latam_messaging.webhooks.parsers import (
    Parsed,
    UnparseableEvent,
    as_list,
    dicts,
    inbound_row,
    items_of,
    text_or_none,
    vendor_time,
)

STATUSES = contract.META_STATUSES


def teleprom_status(raw: Any) -> DeliveryStatus:
    """Teleprom's text → the vocabulary; ``failed: <cause>`` is a failure (the cause is in ``resultado``)."""
    text = str(raw).replace("\x00", "").strip().lower()  # classified as it will be stored (NUL removed)
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
    """Every ``entry[].changes[].value`` (a single object where Meta has a list is read as a list of one)."""
    return [
        value
        for entry in dicts(payload.get("entry"))
        for change in dicts(entry.get("changes"))
        for value in dicts(change.get("value"))
    ]


def _ids(*values: Any) -> list[str]:
    return list(dict.fromkeys(str(v) for v in values if v not in (None, "")))


def _object(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _bool(value: Any) -> bool | None:
    """A JSON boolean, or its spelling as text ("true"/"false"); anything else is unknown (None)."""
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower() if isinstance(value, str) else None
    return {"true": True, "false": False}.get(text or "")


def failure_reason(status: dict[str, Any]) -> str | None:
    """Meta's first error as ``<code>: <title>`` (``title`` or else ``message``; details after a dash
    when they say more), e.g. ``131047: Re-engagement message``."""
    errors = dicts(status.get("errors"))
    if not errors:
        text = text_or_none(status.get("errors")) if isinstance(status.get("errors"), str) else None
        return text  # an error sent as plain text is its own reason
    error = errors[0]
    code, title = text_or_none(error.get("code")), text_or_none(error.get("title") or error.get("message"))
    details = text_or_none(_object(error.get("error_data")).get("details"))
    reason = ": ".join(part for part in (code, title) if part) or "error without code or title"
    if details and details != title:
        reason = f"{reason} — {details}"
    return reason  # cut to the column, with a note, where it is stored


def opted_out(status: dict[str, Any]) -> bool:
    """Whether any of Meta's ``errors[]`` says the recipient opted out (``contract.OPT_OUT_ERROR_CODES``)."""
    return any(text_or_none(error.get("code")) in contract.OPT_OUT_ERROR_CODES for error in dicts(status.get("errors")))


def event_cost(status: dict[str, Any], received_at: pendulum.DateTime) -> EventCost | None:
    """Meta's ``pricing`` and ``conversation`` objects (absent: None)."""
    pricing, conversation = _object(status.get("pricing")), _object(status.get("conversation"))
    if not pricing and not conversation:
        return None
    expires = conversation.get("expiration_timestamp")
    horizon = pendulum.instance(received_at).add(days=2)  # a conversation expires within a day of its message
    expires_at = vendor_time(expires, horizon, epoch_s_or_ms) if expires not in (None, "") else None
    return EventCost(  # values cut to their columns, with a note, where they are stored
        billable=_bool(pricing.get("billable")),
        pricing_category=text_or_none(pricing.get("category")),
        pricing_model=text_or_none(pricing.get("pricing_model")),
        conversation_id=text_or_none(conversation.get("id")),
        conversation_origin=text_or_none(_object(conversation.get("origin")).get("type")),
        conversation_expires_at=expires_at.at if expires_at and expires_at.note is None else None,
    )


def _status_event(status: dict[str, Any], received_at: pendulum.DateTime) -> StatusEvent:
    ids = _ids(status.get("gs_id"), status.get("id"), status.get("meta_msg_id"))
    if not ids:
        raise UnparseableEvent("status without gs_id or id")
    raw = text_or_none(status.get("status")) or ""
    when = vendor_time(status.get("timestamp"), received_at, epoch_s_or_ms)
    return StatusEvent(
        "teleprom",
        ids[0],
        teleprom_status(raw),
        raw,
        when.at,
        "webhook",
        vendor_ids=ids,
        note=when.note,
        reason=failure_reason(status),
        cost=event_cost(status, received_at),
        opt_out=opted_out(status),
    )


def _place(location: dict[str, Any]) -> str | None:
    where = ", ".join(t for t in (text_or_none(location.get("name")), text_or_none(location.get("address"))) if t)
    lat, lon = location.get("latitude"), location.get("longitude")
    point = f"({lat}, {lon})" if lat is not None and lon is not None else ""
    return " ".join(t for t in (where, point) if t) or None


def _contacts(cards: Any) -> str | None:
    shown = []
    for card in dicts(cards):
        name = text_or_none(_object(card.get("name")).get("formatted_name"))
        phones = [text_or_none(p.get("phone")) for p in dicts(card.get("phones"))]
        shown.append(" ".join(t for t in (name, *phones) if t))
    return "; ".join(t for t in shown if t) or None


def message_content(message: dict[str, Any]) -> dict[str, Any]:
    """The columns an inbound Meta message fills beyond its ids: text (the body, a caption, a reply's
    title, a place, contact cards or a reaction's emoji), reply id, media id/type/caption/url."""
    kind = message.get("type") if isinstance(message.get("type"), str) else None
    content = message.get(kind) if kind else None
    body = _object(content)
    fields: dict[str, Any] = {}
    if isinstance(content, str):  # a body sent as plain text
        fields["text"] = text_or_none(content)
    elif kind == "text":
        fields["text"] = text_or_none(body.get("body"))
    elif kind == "button":
        fields["text"] = text_or_none(body.get("text")) or text_or_none(body.get("payload"))
        fields["reply_id"] = text_or_none(body.get("payload"))
    elif kind == "interactive":
        reply = next((_object(body[k]) for k in contract.META_INTERACTIVE_REPLIES if k in body), {})
        fields["text"] = text_or_none(reply.get("title")) or text_or_none(reply.get("body"))
        fields["reply_id"] = text_or_none(reply.get("id"))
    elif kind in contract.META_MEDIA_TYPES:
        fields["media_id"] = text_or_none(body.get("id"))
        fields["media_mime_type"] = text_or_none(body.get("mime_type"))
        fields["caption"] = text_or_none(body.get("caption"))
        fields["media_url"] = text_or_none(body.get("url") or body.get("link"))
        fields["text"] = fields["caption"] or text_or_none(body.get("filename"))
    elif kind == "location":
        fields["text"] = _place(body)
    elif kind == "contacts":
        fields["text"] = _contacts(message.get("contacts"))
    elif kind == "reaction":
        fields["text"] = text_or_none(body.get("emoji"))
        fields["in_reply_to"] = text_or_none(body.get("message_id"))
    elif kind in ("order", "system"):  # an order's note, a system notice (e.g. the user changed number)
        fields["text"] = text_or_none(body.get("text") or body.get("body"))
    return fields


def _profile_names(value: dict[str, Any]) -> dict[str, str]:
    names = {}
    for contact in dicts(value.get("contacts")):
        name = text_or_none(_object(contact.get("profile")).get("name"))
        if name and contact.get("wa_id") not in (None, ""):
            names[str(contact["wa_id"])] = name
    return names


def _teleprom_envelope(body: dict[str, Any], received_at: pendulum.DateTime) -> Parsed:
    fields = {str(key).lower(): value for key, value in body.items()}  # "Version" or "version"
    version, kind = str(fields.get("version")).strip(), str(fields.get("type", "")).strip().upper()
    payload = fields.get("payload")
    if not isinstance(payload, dict):
        raise UnparseableEvent("envelope without a Payload object")
    parsed = Parsed(f"V{version}"[:16])
    values = _changes(payload)
    if kind == "STATUS":
        statuses = [s for v in values for s in as_list(v.get("statuses"))]
        return items_of(parsed, statuses, lambda status: parsed.statuses.append(_status_event(status, received_at)))
    if kind == "INCOMING":

        def message_item(item: tuple[dict[str, Any], dict[str, Any]]) -> None:
            value, message = item
            account = _object(value.get("metadata")).get("display_phone_number")
            names = _profile_names(value)
            sender = text_or_none(message.get("from"))
            context = _object(message.get("context"))
            when = vendor_time(message.get("timestamp"), received_at, epoch_s_or_ms)
            row = {
                "from_phone": sender,
                "to_account": text_or_none(account),
                "message_type": text_or_none(message.get("type")),
                "text": None,
                "media_url": None,
                "received_at": when.at,
                "in_reply_to": text_or_none(context.get("gs_id") or context.get("id")),
                "profile_name": names.get(sender or "") or (next(iter(names.values())) if len(names) == 1 else None),
                "raw": message,
                "note": when.note,
                **message_content(message),
            }
            parsed.inbound.append(inbound_row("teleprom", message.get("id"), **row))

        pairs = [(v, m) for v in values for m in as_list(v.get("messages"))]
        return items_of(parsed, pairs, message_item)
    raise UnparseableEvent(f"envelope Type {kind[:40]!r} is not STATUS or INCOMING")


def parse_callback(body: Any, channel: str | None, received_at: pendulum.DateTime) -> Parsed:
    """A Teleprom webhook body: a V0 array (or single object), or a V1/V3 envelope."""
    if isinstance(body, list):
        return _teleprom_v0(body, received_at)
    if isinstance(body, dict) and any(str(key).lower() == "version" for key in body):
        return _teleprom_envelope(body, received_at)
    if isinstance(body, dict) and "resultado" in body:  # a single V0 object, as in the seed's examples
        return _teleprom_v0([body], received_at)
    raise UnparseableEvent("neither a V0 array nor a V1/V3 envelope")
