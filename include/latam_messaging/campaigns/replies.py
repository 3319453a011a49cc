"""A person's free-text reply to one inbound message, queued in the ledger (``outbound_messages``) from
the Messaging page and sent by the vendor's send run, like any other row.

**Inside WhatsApp's 24-hour customer-service window.** A free-form message may follow a customer's
message for 24 hours: the reply is refused once ``received_at`` + 24 h has passed (or when the message
has no time), and its row carries ``expires_at`` = ``received_at`` + 24 h, so a row not sent in time is
never claimed (``Ledger.expire_overdue`` fails it).

**Consent is law.** A reply to a phone with an active suppression of the vendor's scopes is refused
here, and the claim checks again when the row is sent (the row carries no exemption).

**Once.** The row's ``message_key`` is fixed by (vendor, inbound message, text) — :func:`reply_key` —
and inserted on conflict do nothing: a double click, or two operators sending the same words, queue
one row; the second gets the first one's key back (``queued`` False) and writes no audit line.

**What a vendor needs on the row** (the account to answer from, a content type) comes from its send
adapter's ``confirmation_fields``, as for an opt-out's confirmation (``consent/confirm.py``); an adapter
that cannot send free text raises :class:`~latam_messaging.consent.confirm.CannotConfirm` and the reply
is refused with its reason. This module never names a vendor.

The audit line (``audit_log``, action ``reply``: who, which message, which key) is written in the
transaction that queues the row.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import pendulum
import sqlalchemy as sa

from latam_messaging.campaigns import audit
from latam_messaging.campaigns.records import campaign_id_of
from latam_messaging.common.phones import InvalidPhoneError, normalise_any_form
from latam_messaging.consent import suppressions
from latam_messaging.consent.confirm import WINDOW, CannotConfirm
from latam_messaging.lifecycle import MessageState
from latam_messaging.warehouse import schema
from latam_messaging.warehouse.db import Warehouse

OUTBOUND, INBOUND = schema.outbound_messages, schema.inbound_messages
#: ``message_key`` of a reply: this prefix, then 16 hex digits of the SHA-256 of (vendor, message, text).
KEY_PREFIX = "r-"
#: WhatsApp's longest text message body.
MAX_TEXT = 4096


class ReplyRefused(ValueError):
    """The reply cannot be queued as asked (the text says why, never the phone or the text)."""


class InboundNotFound(LookupError):
    """No inbound message of that vendor with that id."""


class Replier(Protocol):
    """A vendor's send adapter, as this module uses it."""

    vendor: str
    channel: str | None

    def confirmation_fields(self, conn: sa.Connection, message: Mapping[str, Any]) -> dict[str, Any]: ...


@dataclass(frozen=True)
class QueuedReply:
    message_key: str
    expires_at: pendulum.DateTime
    #: False: the same reply to the same message was queued before (a double click): nothing new.
    queued: bool
    campaign_id: str | None = None


def reply_key(vendor: str, vendor_message_id: str, text: str) -> str:
    """The reply's ``message_key``: fixed by the message it answers and its text, so it is queued once."""
    evidence = json.dumps([vendor, vendor_message_id, text], ensure_ascii=False)
    return KEY_PREFIX + hashlib.sha256(evidence.encode("utf-8")).hexdigest()[:16]


def clean_text(text: Any) -> str:
    """The text as sent: trimmed; refused when empty, too long, or holding control characters other than
    line breaks and tabs."""
    if not isinstance(text, str) or not text.strip():
        raise ReplyRefused("the reply has no text")
    text = text.strip()
    if len(text) > MAX_TEXT:
        raise ReplyRefused(f"the reply has {len(text)} characters; WhatsApp takes at most {MAX_TEXT}")
    if any(not (c.isprintable() or c in "\n\t") for c in text):
        raise ReplyRefused("the reply holds control characters")
    return text


def _campaign_of(conn: sa.Connection, vendor: str, in_reply_to: Any) -> str | None:
    """The campaign whose message the inbound one answers (by context id), if any: for the audit line."""
    if not isinstance(in_reply_to, str) or not in_reply_to:
        return None
    ours = sa.or_(OUTBOUND.c.vendor_message_id == in_reply_to, OUTBOUND.c.message_key == in_reply_to)
    query = sa.select(OUTBOUND.c.file_sha256).where(
        OUTBOUND.c.vendor == vendor, ours, OUTBOUND.c.file_sha256.is_not(None)
    )
    sha256 = conn.execute(query.limit(1)).scalar()
    return campaign_id_of(sha256) if sha256 else None


def queue_reply(
    warehouse: Warehouse,
    adapter: Replier,
    vendor_message_id: str,
    text: Any,
    user: str,
    *,
    region: str,
    now: pendulum.DateTime | None = None,
) -> QueuedReply:
    """Queue ``text`` as a free-form answer to inbound message ``vendor_message_id`` of ``adapter.vendor``,
    with its audit line, in one transaction. Raises :class:`InboundNotFound`, or :class:`ReplyRefused`
    (window closed, phone suppressed or unreadable, vendor sends no free text, bad text)."""
    now = now or pendulum.now("UTC")
    vendor = adapter.vendor
    text = clean_text(text)
    key = reply_key(vendor, vendor_message_id, text)
    with warehouse.begin() as conn:
        message = (
            conn.execute(
                sa.select(INBOUND).where(INBOUND.c.vendor == vendor, INBOUND.c.vendor_message_id == vendor_message_id)
            )
            .mappings()
            .first()
        )
        if message is None:
            raise InboundNotFound(f"no {vendor} inbound message {vendor_message_id!r}")
        message = dict(message)
        campaign = _campaign_of(conn, vendor, message.get("in_reply_to"))
        existing = conn.execute(sa.select(OUTBOUND.c.expires_at).where(OUTBOUND.c.message_key == key)).first()
        if existing is not None:  # the same reply, already queued: the same answer, nothing new
            return QueuedReply(key, pendulum.instance(existing.expires_at), False, campaign)
        if message["received_at"] is None:
            raise ReplyRefused("the message has no time: its 24-hour window cannot be known")
        expires_at = pendulum.instance(message["received_at"]) + WINDOW
        if expires_at <= now:
            raise ReplyRefused(
                f"WhatsApp's 24-hour window closed at {expires_at.to_iso8601_string()}: only a template message "
                "can reach this customer now"
            )
        try:
            phone = normalise_any_form(str(message.get("from_phone") or ""), region)
        except InvalidPhoneError:
            raise ReplyRefused("the message's sender is not a phone number") from None
        blocked = suppressions.screen(conn, [phone], suppressions.scopes_of(vendor, adapter.channel))
        if blocked:
            raise ReplyRefused(f"the phone opted out ({blocked[phone]}): nothing is sent to it")
        try:
            fields = adapter.confirmation_fields(conn, message)
        except CannotConfirm as exc:
            raise ReplyRefused(str(exc)) from exc
        row = {
            **fields,
            "message_key": key,
            "vendor": vendor,
            "phone": phone,
            "content": text,
            "state": MessageState.PENDING.value,
            "expires_at": expires_at,
            "created_at": now,
            "updated_at": now,
        }
        insert = warehouse.insert(OUTBOUND).on_conflict_do_nothing(index_elements=["message_key"])
        if conn.execute(insert.returning(OUTBOUND.c.message_key), row).first() is None:
            return QueuedReply(key, expires_at, False, campaign)  # the other click won, in this very instant
        detail = {"vendor": vendor, "vendor_message_id": vendor_message_id, "message_key": key}
        audit.record(conn, user, audit.Action.REPLY, campaign, 1, detail, now=now)
    return QueuedReply(key, expires_at, True, campaign)
