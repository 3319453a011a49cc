"""``outbound_messages`` and the drop tables: the ledger that makes every send happen at most once.

States: ``scheduled`` (due later or outside the send window) → ``pending`` → ``sending`` (committed
*before* the request leaves) → ``accepted`` / ``rejected`` / ``failed``. A row still ``sending``
when a run starts was in flight when a run died: it becomes ``unknown`` and is never re-sent
automatically; callbacks or status queries resolve it, or an operator releases it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import pendulum
import sqlalchemy as sa

from latam_messaging.warehouse import schema
from latam_messaging.warehouse.db import Warehouse

T = schema.outbound_messages
KEY_CHUNK = 900
#: What a send needs of a ledger row (see ``adapters.py``).
SEND_COLUMNS = (
    "message_key",
    "phone",
    "account_id",
    "template_id",
    "params",
    "content_type",
    "content",
    "caption",
    "description",
    "url_thumb",
)


@dataclass
class Outcome:
    """What became of one row after a send attempt."""

    message_key: str
    state: str  # accepted | rejected | failed | unknown | pending (not sent after all)
    vendor_message_id: str | None = None
    error: str | None = None
    vendor_answer: str | None = None


def _chunks(items: Sequence[Any], size: int = KEY_CHUNK) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


class Ledger:
    def __init__(self, warehouse: Warehouse, vendor: str):
        self.warehouse = warehouse
        self.vendor = vendor

    # ---- drop files ----------------------------------------------------------------------------
    def known_file(self, sha256: str) -> dict[str, Any] | None:
        rows = self.warehouse.rows(sa.select(schema.drop_files).where(schema.drop_files.c.file_sha256 == sha256))
        return rows[0] if rows else None

    def start_file(self, sha256: str, folder: str, path: str, size: int, now: pendulum.DateTime) -> None:
        row = {
            "file_sha256": sha256,
            "vendor": self.vendor,
            "folder": folder,
            "path": path,
            "size_bytes": size,
            "rows_total": 0,
            "rows_valid": 0,
            "rows_rejected": 0,
            "state": "claimed",
            "claimed_at": now,
        }
        with self.warehouse.begin() as conn:
            self.warehouse.insert_new(conn, schema.drop_files, [row], keys=["file_sha256"])

    def finish_file(
        self,
        sha256: str,
        *,
        state: str,
        now: pendulum.DateTime,
        rows_valid: int,
        error: str | None = None,
        path: str | None = None,
    ) -> None:
        """Close a file's record; rejects are counted from ``drop_rejects``, so a re-run agrees."""
        rejected = self.warehouse.count(schema.drop_rejects, schema.drop_rejects.c.file_sha256 == sha256)
        values = {
            "state": state,
            "error": error,
            "rows_valid": rows_valid,
            "rows_rejected": rejected,
            "rows_total": rows_valid + rejected,
            "finished_at": now,
            "loaded_at": now if state == "loaded" else None,
        }
        if path:
            values["path"] = path
        with self.warehouse.begin() as conn:
            conn.execute(sa.update(schema.drop_files).where(schema.drop_files.c.file_sha256 == sha256).values(**values))

    def add(self, rows: list[dict[str, Any]], rejects: list[dict[str, Any]]) -> None:
        """Ledger rows and rejects of one chunk, together. Re-adding the same keys changes nothing."""
        with self.warehouse.begin() as conn:
            self.warehouse.insert_new(conn, T, rows, keys=["message_key"])
            self.warehouse.insert_new(conn, schema.drop_rejects, rejects, keys=["file_sha256", "row_number"])

    # ---- state changes -------------------------------------------------------------------------
    def _set_state(
        self, conn: sa.Connection, keys: Sequence[str], values: dict[str, Any], only_from: str | None = None
    ) -> int:
        changed = 0
        for chunk in _chunks(list(keys)):
            query = sa.update(T).where(T.c.message_key.in_(chunk)).values(**values)
            if only_from:
                query = query.where(T.c.state == only_from)
            changed += conn.execute(query).rowcount
        return changed

    def mark_in_flight_unknown(self, now: pendulum.DateTime) -> int:
        """Rows left ``sending`` by a run that died: they may have gone out, so never re-send them."""
        with self.warehouse.begin() as conn:
            query = (
                sa.update(T)
                .where(T.c.vendor == self.vendor, T.c.state == "sending")
                .values(
                    state="unknown", updated_at=now, error="in flight when a run stopped: not re-sent automatically"
                )
            )
            return conn.execute(query).rowcount

    def release_unknown(self, keys: Sequence[str], now: pendulum.DateTime) -> int:
        """An operator's decision, after checking with the vendor, that these were not sent."""
        with self.warehouse.begin() as conn:
            values = {"state": "pending", "updated_at": now, "error": "released by an operator"}
            return self._set_state(conn, keys, values, only_from="unknown")

    def promote_due(self, now: pendulum.DateTime) -> int:
        """``scheduled`` rows whose time has come become ``pending``."""
        with self.warehouse.begin() as conn:
            query = (
                sa.update(T)
                .where(
                    T.c.vendor == self.vendor,
                    T.c.state == "scheduled",
                    sa.or_(T.c.send_at.is_(None), T.c.send_at <= now),
                )
                .values(state="pending", updated_at=now)
            )
            return conn.execute(query).rowcount

    def count_state(self, state: str) -> int:
        return self.warehouse.count(T, sa.and_(T.c.vendor == self.vendor, T.c.state == state))

    def next_pending(self, limit: int) -> list[dict[str, Any]]:
        """The next page to send: only the columns the vendor adapters read."""
        query = (
            sa.select(*(T.c[name] for name in SEND_COLUMNS))
            .where(T.c.vendor == self.vendor, T.c.state == "pending")
            .order_by(T.c.message_key)
            .limit(limit)
        )
        return self.warehouse.rows(query)

    def mark_sending(self, keys: Sequence[str], now: pendulum.DateTime) -> None:
        """Committed before any request for these rows leaves: the heart of 'never twice'."""
        with self.warehouse.begin() as conn:
            self._set_state(conn, keys, {"state": "sending", "request_started_at": now, "updated_at": now})

    def record(self, outcomes: Sequence[Outcome], now: pendulum.DateTime) -> None:
        """The vendor's answers for one page, in one transaction."""
        if not outcomes:
            return
        statement = (
            sa.update(T)
            .where(T.c.message_key == sa.bindparam("k"))
            .values(
                state=sa.bindparam("s"),
                vendor_message_id=sa.bindparam("v"),
                error=sa.bindparam("e"),
                vendor_answer=sa.bindparam("a"),
                accepted_at=sa.bindparam("t"),
                updated_at=now,
            )
        )
        params = [
            {
                "k": o.message_key,
                "s": o.state,
                "v": o.vendor_message_id,
                "e": o.error,
                "a": o.vendor_answer,
                "t": now if o.state == "accepted" else None,
            }
            for o in outcomes
        ]
        with self.warehouse.begin() as conn:
            for chunk in _chunks(params, 5000):
                conn.execute(statement, list(chunk))

    def unknown(self, limit: int = 1000) -> list[dict[str, Any]]:
        query = (
            sa.select(T).where(T.c.vendor == self.vendor, T.c.state == "unknown").order_by(T.c.message_key).limit(limit)
        )
        return self.warehouse.rows(query)

    def resolve_unknown(self, found: dict[str, str], now: pendulum.DateTime) -> int:
        """Unknown rows the vendor turned out to have accepted: ``{message_key: vendor_message_id}``."""
        if not found:
            return 0
        statement = (
            sa.update(T)
            .where(T.c.message_key == sa.bindparam("k"), T.c.state == "unknown")
            .values(state="accepted", vendor_message_id=sa.bindparam("v"), error=None, accepted_at=now, updated_at=now)
        )
        with self.warehouse.begin() as conn:
            return conn.execute(statement, [{"k": k, "v": v} for k, v in found.items()]).rowcount
