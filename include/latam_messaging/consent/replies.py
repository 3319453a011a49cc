"""Customers' replies read for consent: an opt-out keyword suppresses the phone for every vendor, an
opt-in keyword ends what an earlier opt-out reply started (``keywords.py`` says what counts).

Called wherever inbound messages are stored (webhook bodies of every vendor, ITD's received-messages
poll), in the same transaction, so a reply is never stored without being read for consent. Reading the
same reply again changes nothing (the evidence is the inbound message's id).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pendulum
import sqlalchemy as sa

from latam_messaging.common.phones import InvalidPhoneError, normalise_any_form
from latam_messaging.consent import suppressions
from latam_messaging.consent.keywords import Intent, KeywordMatch, Keywords
from latam_messaging.consent.suppressions import Source, Suppression
from latam_messaging.warehouse.db import Warehouse

if TYPE_CHECKING:
    from latam_messaging.consent.confirm import Confirmer

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ConsentRules:
    """What consent reads replies with: the keyword lists, the region of national numbers, which
    vendors answer an opt-out with a confirmation (and its text per language), and the send adapters
    that know what a vendor's confirmation needs (``consent.confirm``; handed in by the top)."""

    keywords: Keywords
    region: str = "AR"
    confirm_vendors: frozenset[str] = frozenset()
    confirm_texts: Mapping[str, str] = field(default_factory=dict)
    confirmers: Mapping[str, Confirmer] = field(default_factory=dict)

    @classmethod
    def from_settings(cls, confirmers: Mapping[str, Confirmer] | None = None) -> ConsentRules:
        """The rules the settings say; ``confirmers`` (vendor name → send adapter) from the registry."""
        from latam_messaging import settings

        current = settings.current()
        return cls(
            keywords=Keywords.from_settings(current.consent_keywords),
            region=current.default_region,
            confirm_vendors=current.consent_confirm_vendors,
            confirm_texts=current.consent_confirm_texts,
            confirmers=dict(confirmers or {}),
        )


@dataclass(frozen=True)
class OptOut:
    """A new opt-out read from a reply: the suppression, the reply it came from, and the sender's phone
    as the reply wrote it (normalised; the suppression holds its consent key)."""

    suppression: Suppression
    match: KeywordMatch
    message: Mapping[str, Any]
    phone: str


@dataclass
class ReplyOutcome:
    opt_outs: list[OptOut] = field(default_factory=list)
    opt_ins: int = 0  # suppressions ended by opt-in replies
    unreadable: int = 0  # keyword replies from a sender that is not a phone number (logged, not read)
    superseded: int = 0  # opt-out replies older than an opt-in already read (not the customer's last word)


def evidence_of(message: Mapping[str, Any]) -> str:
    return f"inbound_messages {message['vendor']}/{message['vendor_message_id']}"


def _phone(raw: Any, region: str) -> str | None:
    if not isinstance(raw, str) or not raw.strip():
        return None
    try:
        return normalise_any_form(raw, region)
    except InvalidPhoneError:
        return None


def read_replies(
    warehouse: Warehouse,
    conn: sa.Connection,
    messages: Sequence[Mapping[str, Any]],
    rules: ConsentRules,
    *,
    created_by: str,
    now: pendulum.DateTime | None = None,
) -> ReplyOutcome:
    """Suppress the senders of opt-out replies and end what opt-in replies undo, in reply-time order."""
    now = now or pendulum.now("UTC")
    outcome = ReplyOutcome()
    found = []
    for message in messages:
        match = rules.keywords.match(message.get("text"), message.get("reply_id"))
        if match is None:
            continue
        phone = _phone(message.get("from_phone"), rules.region)
        if phone is None:
            outcome.unreadable += 1
            log.warning("a %s reply from a number that is not a phone number: not read for consent", match.intent)
            continue
        at = message.get("received_at") or now
        found.append((pendulum.instance(at), phone, match, message))
    for at, phone, match, message in sorted(found, key=lambda f: f[0]):
        evidence = evidence_of(message)
        if match.intent == Intent.OPT_OUT:
            if suppressions.opted_in_after(conn, phone, at):
                outcome.superseded += 1
                log.info("an opt-out reply older than an opt-in already read: not the customer's last word")
                continue
            item = Suppression(
                phone=phone,
                scope=suppressions.ALL,
                source=Source.KEYWORD,
                evidence=evidence,
                since=at,
                created_by=created_by,
                reason=f"replied {match.keyword!r} ({match.language})",
            )
            if suppressions.add(warehouse, conn, [item], now):
                outcome.opt_outs.append(OptOut(item, match, message, phone))
        else:
            outcome.opt_ins += suppressions.end(
                conn, phone, sources=suppressions.ENDED_BY_OPT_IN, at=at, by=created_by, evidence=evidence
            )
    if outcome.opt_outs or outcome.opt_ins:
        log.info("consent: %d new opt-out(s), %d suppression(s) ended by opt-in", len(outcome.opt_outs), outcome.opt_ins)
    return outcome
