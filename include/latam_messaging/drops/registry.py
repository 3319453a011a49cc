"""``drop_files`` and ``drop_rejects``: what became of every file dropped, and of its bad rows."""

from __future__ import annotations

from collections.abc import Sequence
from enum import StrEnum
from typing import Any

import pendulum
import sqlalchemy as sa

from latam_messaging.warehouse import schema
from latam_messaging.warehouse.db import Warehouse

DROP_FILES = schema.drop_files
DROP_REJECTS = schema.drop_rejects


class FileState(StrEnum):
    CLAIMED = "claimed"  # being read; its rows are staged, not yet sendable
    LOADED = "loaded"
    FAILED = "failed"


class DropRegistry:
    def __init__(self, warehouse: Warehouse, vendor: str):
        self.warehouse = warehouse
        self.vendor = vendor  # the drops' owner: a vendor, or a non-send folder such as number_checks

    def known_file(self, sha256: str) -> dict[str, Any] | None:
        rows = self.warehouse.rows(sa.select(DROP_FILES).where(DROP_FILES.c.file_sha256 == sha256))
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
            "state": FileState.CLAIMED,
            "claimed_at": now,
        }
        with self.warehouse.begin() as conn:
            self.warehouse.insert_new(conn, DROP_FILES, [row], keys=["file_sha256"])

    def add_rejects(self, conn: sa.Connection, rejects: Sequence[dict[str, Any]]) -> None:
        self.warehouse.bulk_insert_new(conn, DROP_REJECTS, list(rejects), keys=["file_sha256", "row_number"])

    def finish_file(
        self,
        conn: sa.Connection,
        sha256: str,
        *,
        state: FileState,
        now: pendulum.DateTime,
        rows_valid: int,
        error: str | None = None,
        path: str | None = None,
    ) -> None:
        """Close a file's record in the caller's transaction. A failed file keeps no rejects (none of
        its rows counts); a loaded one counts them from ``drop_rejects``, so a re-run agrees."""
        if state == FileState.FAILED:
            conn.execute(sa.delete(DROP_REJECTS).where(DROP_REJECTS.c.file_sha256 == sha256))
            rejected = 0
        else:
            rejected = conn.execute(sa.select(sa.func.count()).select_from(DROP_REJECTS).where(DROP_REJECTS.c.file_sha256 == sha256)).scalar()
        values = {
            "state": state,
            "error": error,
            "rows_valid": rows_valid,
            "rows_rejected": rejected,
            "rows_total": rows_valid + rejected,
            "finished_at": now,
            "loaded_at": now if state == FileState.LOADED else None,
        }
        if path:
            values["path"] = path
        conn.execute(sa.update(DROP_FILES).where(DROP_FILES.c.file_sha256 == sha256).values(**values))

    def set_path(self, sha256: str, path: str) -> None:
        with self.warehouse.begin() as conn:
            conn.execute(sa.update(DROP_FILES).where(DROP_FILES.c.file_sha256 == sha256).values(path=path))
