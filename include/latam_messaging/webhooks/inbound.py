"""Inbound messages (customers' replies and MO texts) into ``inbound_messages``, from every path —
webhook bodies and vendor polls alike: each row checked against the columns it goes to, stored once
per (vendor, vendor_message_id)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import pendulum
import sqlalchemy as sa

from latam_messaging.warehouse import schema
from latam_messaging.warehouse.db import Warehouse


def row_problem(table: sa.Table, row: Mapping[str, Any]) -> str | None:
    """Why ``row`` would not fit ``table`` on PostgreSQL (the same rule is applied on SQLite), or None."""
    for name, value in row.items():
        if not isinstance(value, str):
            continue
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


def check_inbound(messages: Iterable[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[str]]:
    """Inbound rows that fit the table, and a reason for each one that does not."""
    good, problems = [], []
    for message in messages:
        problem = row_problem(schema.inbound_messages, message)
        if problem:
            problems.append(f"message {str(message.get('vendor_message_id'))[:80]!r}: {problem}")
        else:
            good.append(message)
    return good, problems


def store_inbound(warehouse: Warehouse, conn: sa.Connection, messages: Sequence[dict[str, Any]], source: str) -> int:
    """Insert inbound messages once per (vendor, vendor_message_id); returns how many were new."""
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
            **m,
            "recorded_at": now,
            "source": source,
        }
        for m in messages
    ]
    return warehouse.insert_new(conn, schema.inbound_messages, rows, keys=["vendor", "vendor_message_id"], count=True)
