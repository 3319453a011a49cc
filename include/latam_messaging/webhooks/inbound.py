"""Inbound messages (customers' replies and MO texts) into ``inbound_messages``, from every path —
webhook bodies and vendor polls alike: each row checked against the columns it goes to, stored once
per (vendor, vendor_message_id), and read for consent (opt-out and opt-in keywords) in the same
transaction, where a new opt-out's confirmation reply is also queued when it is turned on
(``consent/confirm.py``)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import pendulum
import sqlalchemy as sa

from latam_messaging.consent.confirm import queue_confirmations
from latam_messaging.consent.replies import ConsentRules, ReplyOutcome, read_replies
from latam_messaging.warehouse import schema
from latam_messaging.warehouse.db import Warehouse

#: The columns that identify a row: a value that does not fit them makes the row unusable.
IDENTITY = ("vendor", "vendor_message_id")


def value_problem(table: sa.Table, name: str, value: Any) -> str | None:
    if not isinstance(value, str):
        return None
    if "\x00" in value:
        return f"{name} contains a NUL character"
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return f"{name} is not valid Unicode"
    column = table.c.get(name)
    length = getattr(column.type, "length", None) if column is not None else None
    if length and len(value) > length:
        return f"{name} has {len(value)} characters, over the column's {length}"
    return None


def fit_value(table: sa.Table, name: str, value: str) -> tuple[str, str | None]:
    """``value`` made to fit its column — NUL characters removed, what is not valid Unicode replaced
    (U+FFFD), cut to the column's length — and a note saying what was done (None if nothing)."""
    done = []
    if "\x00" in value:
        value = value.replace("\x00", "")
        done.append("NUL removed")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates: the only str that UTF-8 cannot encode
        value = "".join("\ufffd" if 0xD800 <= ord(c) <= 0xDFFF else c for c in value)
        done.append("invalid Unicode replaced")
    column = table.c.get(name)
    length = getattr(column.type, "length", None) if column is not None else None
    if length and len(value) > length:
        done.append(f"{len(value)} characters cut to {length}")
        value = value[:length]
    return value, (f"{name}: {', '.join(done)}" if done else None)


def fit_row(table: sa.Table, row: dict[str, Any], identity: tuple[str, ...] = IDENTITY) -> tuple[dict[str, Any], str | None]:
    """A row whose every value fits ``table``, or the reason it cannot (an identity column that does
    not fit: no row is better than a row under a changed id). What was cleaned is added to its note;
    the full values stay in the raw body."""
    for name in identity:
        problem = value_problem(table, name, row.get(name))
        if problem:
            return row, problem
    notes, fitted = [], dict(row)
    for name, value in row.items():
        if isinstance(value, str) and name != "note" and value_problem(table, name, value):
            fitted[name], note = fit_value(table, name, value)
            notes.append(note)
    if notes:
        notes = [n for n in notes if n]
        note = f"{'; '.join(notes)} (full value in the raw body)"
        fitted["note"] = "; ".join(t for t in (row.get("note"), note) if t)
    if isinstance(fitted.get("note"), str):
        fitted["note"], _ = fit_value(table, "note", fitted["note"])
    return fitted, None


def check_inbound(messages: Iterable[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[str]]:
    """Inbound rows made to fit the table (see :func:`fit_row`), and a reason for each one that cannot."""
    good, problems = [], []
    for message in messages:
        fitted, problem = fit_row(schema.inbound_messages, message)
        if problem:
            problems.append(f"message {str(message.get('vendor_message_id'))[:80]!r}: {problem}")
        else:
            good.append(fitted)
    return good, problems


def store_inbound(
    warehouse: Warehouse,
    conn: sa.Connection,
    messages: Sequence[dict[str, Any]],
    source: str,
    *,
    consent: ConsentRules | None = None,
    replies: ReplyOutcome | None = None,
) -> int:
    """Insert inbound messages once per (vendor, vendor_message_id), read them for consent and queue
    the confirmations of new opt-outs, all in ``conn``'s transaction. ``consent``: the rules, with the
    send adapters that confirm (from the top); else the settings' rules, which confirm nothing. What
    was found is added to ``replies`` if given. Returns how many messages were new."""
    if not messages:
        return 0
    now = pendulum.now("UTC")
    rows = [
        {
            "from_phone": None,
            "to_account": None,
            "message_type": None,
            "text": None,
            "media_url": None,
            "received_at": None,
            "in_reply_to": None,
            "raw": None,
            "direction": None,
            "note": None,
            "profile_name": None,
            "reply_id": None,
            "media_id": None,
            "media_mime_type": None,
            "caption": None,
            **m,
            "recorded_at": now,
            "source": source,
        }
        for m in messages
    ]
    new = warehouse.insert_new(conn, schema.inbound_messages, rows, keys=["vendor", "vendor_message_id"], count=True)
    rules = consent or ConsentRules.from_settings()
    found = read_replies(warehouse, conn, rows, rules, created_by=f"inbound {source}", now=now)
    queue_confirmations(warehouse, conn, found.opt_outs, rules, now)
    if replies is not None:
        replies.opt_outs.extend(found.opt_outs)
        replies.opt_ins += found.opt_ins
    return new
