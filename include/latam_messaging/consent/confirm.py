"""The confirmation reply to an opt-out: one message per new opt-out, queued in the ledger
(``outbound_messages``) in the transaction that stored the reply, and sent by the vendor's send run.

**Off by default.** ``MESSAGING_CONSENT_CONFIRM`` lists the vendors whose opt-out replies are answered
(``ConsentRules.confirm_vendors``). The text is in the language of the keyword the customer used:
``MESSAGING_CONSENT_CONFIRM_TEXT_<LANG>`` replaces a default of :data:`DEFAULT_TEXTS` or adds a
language; a language without a text gets :data:`FALLBACK_LANGUAGE`'s.

**Once.** The row's ``message_key`` is derived from the opt-out's evidence (the inbound message:
:func:`confirmation_key`) and inserted on conflict do nothing, so a reply stored or read again never
queues a second row; only *new* opt-outs are confirmed (``read_replies`` returns a suppression only
when it is new), so a second "BAJA" from a phone already suppressed gets none; and a phone gets at most
one confirmation a day (a customer toggling BAJA/ALTA, or forged bodies, cannot make a spam loop of it). The row is then a send
like any other: claimed once, ``unknown`` (never re-sent) when the vendor's answer is ambiguous.

**Only this message reaches the suppressed phone.** The row carries ``consent_exempt`` =
:data:`EXEMPTION`, which the claim honours (``Ledger.claim``); nothing else is queued with it here.

**Inside WhatsApp's 24-hour customer-service window.** ``expires_at`` is the reply's time + 24 h: a
row not sent by then is never claimed, and ``Ledger.expire_overdue`` fails it.

**What a vendor needs on the row** (an account to answer from, a content type) comes from its send
adapter's ``confirmation_fields`` (:class:`Confirmer`), handed in by the top through
``ConsentRules.confirmers``: this module never names a vendor. An adapter that cannot answer a reply
raises :class:`CannotConfirm` with the reason; the reply and its suppression are stored all the same.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol

import pendulum
import sqlalchemy as sa

from latam_messaging.consent import suppressions
from latam_messaging.lifecycle import MessageState
from latam_messaging.warehouse import schema
from latam_messaging.warehouse.db import Warehouse

if TYPE_CHECKING:
    from latam_messaging.consent.replies import ConsentRules, OptOut

log = logging.getLogger(__name__)
OUTBOUND = schema.outbound_messages

#: ``outbound_messages.consent_exempt`` of a confirmation: what lets it reach the phone that opted out.
EXEMPTION = "opt-out confirmation"
#: WhatsApp's customer-service window: a free-form message may follow a customer's message this long.
WINDOW = pendulum.duration(hours=24)
#: The confirmation's text per language (ISO 639-1); each names the language's first opt-in keyword.
DEFAULT_TEXTS: dict[str, str] = {
    "es": "Listo: no te enviaremos más mensajes. Para volver a recibirlos respondé ALTA.",
    "pt": "Pronto: você não receberá mais mensagens nossas. Para voltar a recebê-las, responda VOLTAR.",
    "en": "Done: you will not get more messages from us. To get them again, reply START.",
}
FALLBACK_LANGUAGE = "es"
#: ``message_key`` of a confirmation: this prefix, then 16 hex digits of the evidence's SHA-256.
KEY_PREFIX = "c-"


class CannotConfirm(Exception):
    """This reply cannot be answered by its vendor; the message says why (never the phone or the text)."""


class Confirmer(Protocol):
    """A vendor's send adapter, as this module uses it."""

    def confirmation_fields(self, conn: sa.Connection, message: Mapping[str, Any]) -> dict[str, Any]:
        """The ``outbound_messages`` columns a free-text answer to the inbound ``message`` needs beyond
        vendor, phone, content and the ledger's own (e.g. the account to send from, the content type).
        Raises :class:`CannotConfirm` when the vendor cannot answer it."""
        ...


def confirmation_key(evidence: str) -> str:
    """The confirmation's ``message_key``: fixed by the opt-out's evidence, so it is queued once."""
    return KEY_PREFIX + hashlib.sha256(evidence.encode("utf-8")).hexdigest()[:16]


def confirmation_text(language: str, texts: Mapping[str, str]) -> str:
    """The text for ``language``: the configured one, else the default, else the fallback language's."""
    for lang in (language, FALLBACK_LANGUAGE):
        text = (texts.get(lang) or DEFAULT_TEXTS.get(lang) or "").strip()
        if text:
            return text
    return DEFAULT_TEXTS[FALLBACK_LANGUAGE]


def queue_confirmations(
    warehouse: Warehouse,
    conn: sa.Connection,
    opt_outs: Sequence[OptOut],
    rules: ConsentRules,
    now: pendulum.DateTime,
) -> int:
    """Queue one confirmation per new opt-out whose reply came through a vendor of
    ``rules.confirm_vendors``, in the caller's transaction. Returns how many rows were new."""
    if not opt_outs or not rules.confirm_vendors:
        return 0
    statement = warehouse.insert(OUTBOUND).on_conflict_do_nothing(index_elements=["message_key"])
    statement = statement.returning(OUTBOUND.c.message_key)
    queued = 0
    for opt_out in opt_outs:
        vendor = str(opt_out.message.get("vendor") or "")
        if vendor not in rules.confirm_vendors:
            continue
        confirmer = rules.confirmers.get(vendor)
        if confirmer is None:
            log.warning("opt-out confirmation of a %s reply not queued: no send adapter was handed in for it", vendor)
            continue
        try:
            fields = confirmer.confirmation_fields(conn, opt_out.message)
        except CannotConfirm as exc:
            log.warning("opt-out confirmation of a %s reply not queued: %s", vendor, exc)
            continue
        except sa.exc.SQLAlchemyError:
            raise  # the transaction is no longer usable: the caller's isolation decides
        except Exception as exc:  # noqa: BLE001 - a confirmation must never cost the reply itself
            log.warning("opt-out confirmation of a %s reply not queued: %s in its adapter", vendor, type(exc).__name__)
            continue
        since = pendulum.instance(opt_out.suppression.since)
        if suppressions.keyword_opt_outs_since(conn, opt_out.phone, now.subtract(hours=24)) > 1:
            log.info("opt-out confirmation not queued: the phone was already confirmed within 24 hours")
            continue
        row = {
            **fields,
            "message_key": confirmation_key(opt_out.suppression.evidence),
            "vendor": vendor,
            "phone": opt_out.phone,
            "content": confirmation_text(opt_out.match.language, rules.confirm_texts),
            "state": MessageState.PENDING.value,
            "consent_exempt": EXEMPTION,
            "expires_at": since + WINDOW,
            "created_at": now,
            "updated_at": now,
        }
        if conn.execute(statement, row).first() is not None:
            queued += 1
            if row["expires_at"] <= now:
                log.warning("an opt-out confirmation was queued after its 24-hour window closed: it will expire unsent")
    if queued:
        log.info("consent: %d opt-out confirmation(s) queued", queued)
    return queued
