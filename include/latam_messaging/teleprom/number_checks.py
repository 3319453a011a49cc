"""Sim Swap and NumberLookup checks of phones from drops or a warehouse query (``number_checks`` DAG).

Phones wait in ``number_check_queue``; each run checks the distinct queued phones not checked within
the recheck window (each check costs money at the vendor), concurrently under a requests-per-second
ceiling, and stores every answer raw. An error for one phone is recorded on its row and never stops
the batch; auth errors stop the run (nothing would succeed).
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pendulum
import sqlalchemy as sa

from latam_messaging.common import errors
from latam_messaging.common.ratelimit import RateLimiter
from latam_messaging.drops.folder import DropFolder
from latam_messaging.drops.process import process_drops
from latam_messaging.drops.registry import DropRegistry
from latam_messaging.drops.validation import RowRejected, RowValidator, ValidationContext
from latam_messaging.teleprom.hook import TelepromHook
from latam_messaging.warehouse import schema
from latam_messaging.warehouse.db import Warehouse

log = logging.getLogger(__name__)
FOLDER = "number_checks"
QUEUE = schema.number_check_queue
STAGING = schema.number_check_staging
LOOKUP_BATCH = 100


class NumberCheckRowValidator(RowValidator):
    vendor = "teleprom"
    required_columns = frozenset({"phone"})

    def vendor_fields(self, values: dict[str, str]) -> dict[str, Any]:
        text = values.get("max_age_hours", "")
        if text and (not text.isdigit() or int(text) <= 0):
            raise RowRejected(f"max_age_hours {text!r} must be a whole number of hours above 0")
        return {"max_age_hours": int(text) if text else None}


@dataclass
class CheckStats:
    queued: int = 0
    rejected: int = 0
    checked: int = 0
    skipped_recent: int = 0
    errors: int = 0


def _queue(warehouse: Warehouse, conn: sa.Connection, phones: dict[str, int], source: str) -> None:
    now = pendulum.now("UTC")
    rows = [{"phone": p, "max_age_hours": h, "source": source, "queued_at": now} for p, h in phones.items()]
    warehouse.upsert(conn, QUEUE, rows, keys=["phone"], update=["max_age_hours"])


def _queue_staged(warehouse: Warehouse, conn: sa.Connection, sha256: str, now: pendulum.DateTime) -> None:
    """A loaded file's staged phones into the queue, in the caller's transaction; its staging rows are
    then deleted. A phone listed twice with different windows takes its last row's, as a phone already
    queued takes the file's ``max_age_hours``: the latest word wins."""
    last = sa.func.row_number().over(partition_by=STAGING.c.phone, order_by=STAGING.c.row_number.desc())
    rows = (
        sa.select(STAGING.c.phone, STAGING.c.max_age_hours, last.label("latest"))
        .where(STAGING.c.file_sha256 == sha256)
        .subquery("rows")
    )
    staged = sa.select(
        rows.c.phone, rows.c.max_age_hours, sa.literal(f"drop:{sha256[:16]}", sa.String), sa.literal(now, schema.Ts)
    ).where(rows.c.latest == 1)
    insert = warehouse.insert(QUEUE).from_select(["phone", "max_age_hours", "source", "queued_at"], staged)
    insert = insert.on_conflict_do_update(index_elements=["phone"], set_={"max_age_hours": insert.excluded.max_age_hours})
    conn.execute(insert)
    _discard_staged(conn, sha256)


def _discard_staged(conn: sa.Connection, sha256: str) -> None:
    conn.execute(sa.delete(STAGING).where(STAGING.c.file_sha256 == sha256))


def queue_from_drops(
    warehouse: Warehouse, drop_root: Path, *, region: str, default_max_age_hours: int, stats: CheckStats
) -> None:
    """Phones of the CSV drops in ``number_checks/`` into the queue; bad rows to ``drop_rejects``.

    All or nothing per file: phones are staged chunk by chunk and queued in the transaction that marks
    the file loaded; a file that fails anywhere queues none (``drops.process``)."""
    now = pendulum.now("UTC")
    registry = DropRegistry(warehouse, FOLDER)

    def make_validator(sha256: str) -> RowValidator:
        return NumberCheckRowValidator(ValidationContext(sha256, region, "UTC"))

    def store(rows: list[dict[str, Any]], rejects: list[dict[str, Any]]) -> None:
        staged = [
            {
                "file_sha256": r["file_sha256"],
                "row_number": r["row_number"],
                "phone": r["phone"],
                "max_age_hours": r["max_age_hours"] or default_max_age_hours,
            }
            for r in rows
        ]
        with warehouse.begin() as conn:
            warehouse.bulk_insert_new(conn, STAGING, staged, keys=["file_sha256", "row_number"])
            registry.add_rejects(conn, rejects)

    def promote(conn: sa.Connection, sha256: str) -> None:
        _queue_staged(warehouse, conn, sha256, now)

    drops = process_drops(
        DropFolder(drop_root, FOLDER), registry, make_validator, store, now, promote=promote, discard=_discard_staged
    )
    stats.queued += drops.rows_valid
    stats.rejected += drops.rows_rejected


class UnsafeQueryError(ValueError):
    """The ``phones_query`` param is not one read-only SELECT: refused before it runs."""


def check_read_only(sql: str) -> str:
    """The one SELECT (or ``WITH … SELECT``) statement of ``sql``, or :class:`UnsafeQueryError`."""
    import sqlparse

    statements = [s for s in sqlparse.parse(sql) if s.token_first(skip_cm=True) is not None]
    if len(statements) != 1:
        raise UnsafeQueryError(f"the phones query must be exactly one SELECT statement, not {len(statements)}")
    [statement] = statements
    if statement.get_type() != "SELECT":
        raise UnsafeQueryError(f"the phones query must be a SELECT, not {statement.get_type()}")
    return str(statement).strip().rstrip(";")


def queue_from_query(warehouse: Warehouse, sql: str, *, default_max_age_hours: int, stats: CheckStats) -> None:
    """Phones from one read-only SELECT over the warehouse that returns a ``phone`` column."""
    select = check_read_only(sql)
    with warehouse.read_only() as conn:
        result = conn.execute(sa.text(select))
        if "phone" not in result.keys():
            raise ValueError("the phones query must return a column named phone")
        phones = {str(row.phone): default_max_age_hours for row in result if row.phone}
    with warehouse.begin() as conn:
        _queue(warehouse, conn, phones, "query")
    stats.queued += len(phones)


def _recently_checked(warehouse: Warehouse, table: sa.Table, since: pendulum.DateTime) -> set[str]:
    query = sa.select(table.c.phone).where(table.c.checked_at >= since, table.c.error.is_(None)).distinct()
    with warehouse.engine.connect() as conn:
        return set(conn.execute(query).scalars())


def run_checks(
    warehouse: Warehouse,
    hook: TelepromHook,
    *,
    recheck_hours: int = 24,
    requests_per_s: float = 10.0,
    workers: int = 4,
    limit: int = 10_000,
    stats: CheckStats | None = None,
) -> CheckStats:
    stats = stats or CheckStats()
    queued = warehouse.rows(sa.select(QUEUE).order_by(QUEUE.c.queued_at, QUEUE.c.phone).limit(limit))
    since = pendulum.now("UTC").subtract(hours=recheck_hours)
    fresh_swap = _recently_checked(warehouse, schema.sim_swap_checks, since)
    fresh_lookup = _recently_checked(warehouse, schema.number_lookups, since)
    limiter = RateLimiter(requests_per_s)
    now = pendulum.now("UTC")

    to_lookup = [q["phone"] for q in queued if q["phone"] not in fresh_lookup]
    to_swap = [q for q in queued if q["phone"] not in fresh_swap]
    stats.skipped_recent += sum(1 for q in queued if q["phone"] in fresh_lookup and q["phone"] in fresh_swap)

    def lookup(batch: list[str]) -> list[dict[str, Any]]:
        limiter.acquire()
        try:
            results = {r.number: r for r in hook.number_lookup(batch)}
        except errors.VendorAuthError:
            raise
        except errors.VendorError as exc:
            return [{"phone": p, "checked_at": now, "error": str(exc)} for p in batch]
        return [
            {
                "phone": p,
                "checked_at": now,
                "valid": r.valid,
                "carrier": r.carrier,
                "line_type": r.line_type,
                "ported": r.ported,
                "country": r.country,
                "raw": r.raw,
            }
            if (r := results.get(p))
            else {"phone": p, "checked_at": now, "error": "not in the vendor's answer"}
            for p in batch
        ]

    def swap(item: dict[str, Any]) -> dict[str, Any]:
        limiter.acquire()
        try:
            r = hook.sim_swap(item["phone"], item["max_age_hours"])
        except errors.VendorAuthError:
            raise
        except errors.VendorError as exc:
            return {
                "phone": item["phone"],
                "checked_at": now,
                "max_age_hours": item["max_age_hours"],
                "error": str(exc),
            }
        return {
            "phone": item["phone"],
            "checked_at": now,
            "max_age_hours": item["max_age_hours"],
            "changed": r.changed,
            "last_change_at": r.last_change_at,
            "raw": r.raw,
        }

    with ThreadPoolExecutor(max_workers=workers) as pool:
        lookups = [
            row
            for rows in pool.map(
                lookup, [to_lookup[i : i + LOOKUP_BATCH] for i in range(0, len(to_lookup), LOOKUP_BATCH)]
            )
            for row in rows
        ]
        swaps = list(pool.map(swap, to_swap))
    defaults_lookup = {
        "valid": None,
        "carrier": None,
        "line_type": None,
        "ported": None,
        "country": None,
        "raw": None,
        "error": None,
    }
    defaults_swap = {"changed": None, "last_change_at": None, "raw": None, "error": None}
    with warehouse.begin() as conn:
        warehouse.insert_new(
            conn, schema.number_lookups, [{**defaults_lookup, **r} for r in lookups], keys=["phone", "checked_at"]
        )
        warehouse.insert_new(
            conn, schema.sim_swap_checks, [{**defaults_swap, **r} for r in swaps], keys=["phone", "checked_at"]
        )
        done = [q["phone"] for q in queued]
        for start in range(0, len(done), 500):
            conn.execute(sa.delete(QUEUE).where(QUEUE.c.phone.in_(done[start : start + 500])))
    stats.checked += len({r["phone"] for r in lookups} | {r["phone"] for r in swaps})
    stats.errors += sum(1 for r in lookups + swaps if r.get("error"))
    return stats
