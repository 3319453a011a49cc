"""The shared send pipeline: ingest drops into the ledger, then send what is due, concurrently.

``ingest_drops`` streams each claimed CSV in chunks (bounded memory), validates rows, and writes
ledger rows and rejects chunk by chunk. ``dispatch`` takes pending rows page by page, commits them
as ``sending``, sends them through a bounded worker pool under a requests-per-second ceiling, and
records the answers page by page.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pendulum
import sqlalchemy as sa

from latam_messaging import settings
from latam_messaging.common import errors
from latam_messaging.common.ratelimit import RateLimiter
from latam_messaging.sending.adapters import SendAdapter
from latam_messaging.sending.csvfile import UnreadableDropError, read_layout, read_rows
from latam_messaging.sending.drops import ARCHIVE, FAILED, DropFolder, fingerprint
from latam_messaging.sending.ledger import Ledger, Outcome
from latam_messaging.sending.validation import RowRejected, RowValidator, ValidationContext
from latam_messaging.sending.window import SendWindow, may_send
from latam_messaging.warehouse import schema
from latam_messaging.warehouse.db import Warehouse

log = logging.getLogger(__name__)
PAGE_ROWS = 5000
PROGRESS_EVERY_S = 5.0


# ---- ingest ----------------------------------------------------------------------------------------
@dataclass
class IngestStats:
    files: int = 0
    duplicates: int = 0
    failed: int = 0
    rows_valid: int = 0
    rows_rejected: int = 0
    rows_scheduled: int = 0


def risky_numbers(warehouse: Warehouse) -> dict[str, str]:
    """phone → reason, from the ``risky_numbers`` view that ``number_checks`` feeds."""
    with warehouse.engine.connect() as conn:
        return dict(conn.execute(sa.text("SELECT phone, reason FROM risky_numbers")).all())


def process_drops(
    folder: DropFolder,
    ledger: Ledger,
    make_validator: Callable[[str], RowValidator],
    store: Callable[[list[dict[str, Any]], list[dict[str, Any]]], None],
    now: pendulum.DateTime,
) -> IngestStats:
    """Claim each ready CSV of ``folder``, validate its rows chunk by chunk and hand each chunk's
    valid rows and rejects to ``store`` (which must be idempotent: a crashed run is redone)."""
    stats = IngestStats()
    for claimed in folder.claim_ready():
        fp = fingerprint(claimed)
        known = ledger.known_file(fp.sha256)
        if known is not None and known["state"] in ("loaded", "failed"):
            folder.finish(claimed, ARCHIVE)
            log.warning(
                "%s has the same content as a file already processed (%s, state %s): nothing will be done again",
                claimed.name,
                known["path"],
                known["state"],
            )
            stats.duplicates += 1
            continue
        ledger.start_file(fp.sha256, folder.name, str(claimed), fp.size_bytes, now)
        valid = 0
        validator = make_validator(fp.sha256)
        try:
            layout = read_layout(claimed, fp.encoding, set(validator.required_columns))
            for chunk in read_rows(claimed, layout):
                rows, rejects = [], []
                for row_number, raw in chunk:
                    try:
                        rows.append(validator.validate(row_number, raw))
                    except RowRejected as exc:
                        rejects.append(
                            {
                                "file_sha256": fp.sha256,
                                "row_number": row_number,
                                "reason": str(exc),
                                "raw_row": json.dumps(raw, ensure_ascii=False),
                                "rejected_at": now,
                            }
                        )
                store(rows, rejects)
                valid += len(rows)
                stats.rows_valid += len(rows)
                stats.rows_rejected += len(rejects)
        except UnreadableDropError as exc:
            moved = folder.finish(claimed, FAILED)
            ledger.finish_file(fp.sha256, state="failed", now=now, rows_valid=0, error=str(exc), path=str(moved))
            log.error("%s cannot be read and was moved to %s: %s", claimed.name, moved, exc)
            stats.failed += 1
            continue
        finally:
            validator.close()
        moved = folder.finish(claimed, ARCHIVE)
        ledger.finish_file(fp.sha256, state="loaded", now=now, rows_valid=valid, path=str(moved))
        stats.files += 1
        log.info("%s: %d valid row(s) loaded, file archived as %s", claimed.name, valid, moved.name)
    return stats


def ingest_drops(
    adapter: SendAdapter,
    warehouse: Warehouse,
    drop_root: Path,
    *,
    region: str,
    timezone: str,
    window: SendWindow | None = None,
    now: pendulum.DateTime | None = None,
) -> IngestStats:
    """Claim every ready CSV of the adapter's folder and put its rows in the ledger."""
    now = now or pendulum.now("UTC")
    ledger = Ledger(warehouse, adapter.vendor)
    scheduled = 0
    templates = warehouse.rows(schema.teleprom_templates) if adapter.vendor == "teleprom" else []
    risky = risky_numbers(warehouse) if adapter.folder in settings.hold_risky_folders() else {}

    def make_validator(sha256: str) -> RowValidator:
        return adapter.validator(ValidationContext(sha256, region, timezone, templates, risky))

    def store(rows: list[dict[str, Any]], rejects: list[dict[str, Any]]) -> None:
        nonlocal scheduled
        open_now = may_send(window, now)
        for row in rows:
            due = open_now and (row["send_at"] is None or row["send_at"] <= now)
            row.update(state="pending" if due else "scheduled", created_at=now, updated_at=now)
            scheduled += not due
        ledger.add(rows, rejects)

    stats = process_drops(DropFolder(drop_root, adapter.folder), ledger, make_validator, store, now)
    stats.rows_scheduled = scheduled
    return stats


# ---- dispatch --------------------------------------------------------------------------------------
@dataclass
class DispatchStats:
    marked_unknown: int = 0
    promoted: int = 0
    attempted: int = 0
    states: dict[str, int] = field(default_factory=dict)
    requests: int = 0
    seconds: float = 0.0
    stopped: str | None = None


class _Stop:
    """The first error that must stop all sending (no credits, auth), shared by the workers."""

    def __init__(self) -> None:
        self.event = threading.Event()
        self.error: errors.VendorError | None = None

    def set(self, error: errors.VendorError) -> None:
        if not self.event.is_set():
            self.error = error
            self.event.set()


def _send_one_batch(
    adapter: SendAdapter, hook: Any, batch: list[dict], limiter: RateLimiter, stop: _Stop
) -> list[Outcome]:
    """Send one request's rows; never raises: every row gets an outcome."""
    keys = [r["message_key"] for r in batch]
    if stop.event.is_set():
        return [Outcome(k, "pending") for k in keys]
    limiter.acquire()
    try:
        return adapter.send_batch(hook, batch)
    except (errors.VendorNoCreditsError, errors.VendorAuthError) as exc:
        stop.set(exc)  # the vendor refused before sending: these rows stay pending
        return [Outcome(k, "pending", error=str(exc)) for k in keys]
    except errors.VendorValidationError as exc:
        return [Outcome(k, "rejected", error=str(exc)) for k in keys]
    except errors.VendorAmbiguousError as exc:
        return [Outcome(k, "unknown", error=str(exc)) for k in keys]
    except errors.VendorTransientError as exc:
        return [Outcome(k, "failed", error=f"gave up after retries: {exc}") for k in keys]
    except Exception as exc:  # an answer we could not read: it may have been sent
        log.exception("unexpected error sending %d row(s)", len(keys))
        return [Outcome(k, "unknown", error=f"{type(exc).__name__}: {exc}") for k in keys]


def dispatch(
    adapter: SendAdapter,
    warehouse: Warehouse,
    *,
    concurrency: int | None = None,
    requests_per_s: float | None = None,
    window: SendWindow | None = None,
    page_rows: int = PAGE_ROWS,
    hook: Any = None,
) -> DispatchStats:
    """Send every due pending row of the adapter's vendor. Raises the stopping error, if any, after
    recording everything (rows not sent stay ``pending`` for the next run)."""
    started = time.monotonic()
    now = pendulum.now("UTC")
    ledger = Ledger(warehouse, adapter.vendor)
    stats = DispatchStats()
    stats.marked_unknown = ledger.mark_in_flight_unknown(now)
    if stats.marked_unknown:
        log.warning(
            "%d row(s) were in flight when a previous run stopped: marked unknown, not re-sent", stats.marked_unknown
        )
    if not may_send(window, now):
        log.info("outside the send window %s: nothing is sent now", window)
        return stats
    stats.promoted = ledger.promote_due(now)
    total = ledger.count_state("pending")
    log.info("%d row(s) to send via %s (%d newly due)", total, adapter.vendor, stats.promoted)
    if not total:
        return stats

    workers = concurrency or adapter.concurrency
    limiter = RateLimiter(requests_per_s if requests_per_s is not None else adapter.requests_per_s)
    hook = hook or adapter.make_hook(pool_size=workers)
    stop = _Stop()
    last_progress = started
    # One writer thread records page N while page N+1 is fetched, marked and sent. Rows of page N
    # stay 'sending' until recorded, so the next fetch of 'pending' rows can never pick them again.
    with (
        ThreadPoolExecutor(max_workers=workers, thread_name_prefix=f"send-{adapter.vendor}") as pool,
        ThreadPoolExecutor(max_workers=1, thread_name_prefix="ledger-writer") as writer,
    ):
        recording = None
        while not stop.event.is_set():
            rows = ledger.next_pending(page_rows)
            if not rows:
                break
            ledger.mark_sending([r["message_key"] for r in rows], pendulum.now("UTC"))
            batches = adapter.batches(rows)
            futures = [pool.submit(_send_one_batch, adapter, hook, batch, limiter, stop) for batch in batches]
            outcomes: list[Outcome] = []
            for future in as_completed(futures):
                outcomes.extend(future.result())
            stats.requests += len(batches)
            if recording is not None:
                recording.result()  # at most one page waits to be written: memory stays bounded
            recording = writer.submit(ledger.record, outcomes, pendulum.now("UTC"))
            for outcome in outcomes:
                stats.states[outcome.state] = stats.states.get(outcome.state, 0) + 1
            stats.attempted += sum(1 for o in outcomes if o.state != "pending")
            if time.monotonic() - last_progress >= PROGRESS_EVERY_S:
                elapsed = time.monotonic() - started
                log.info("progress: %d/%d rows sent (%.0f rows/s)", stats.attempted, total, stats.attempted / elapsed)
                last_progress = time.monotonic()
        if recording is not None:
            recording.result()
    stats.seconds = round(time.monotonic() - started, 3)
    log.info(
        "done: %d row(s) in %.1fs (%.0f rows/s), %d request(s); outcomes %s",
        stats.attempted,
        stats.seconds,
        stats.attempted / stats.seconds if stats.seconds else 0,
        stats.requests,
        stats.states,
    )
    if stop.error is not None:
        stats.stopped = str(stop.error)
        raise stop.error
    return stats


def resolve_unknown_wavy(warehouse: Warehouse, hook: Any, limit: int = 1000) -> int:
    """Look up ``unknown`` Wavy rows by correlationId: those Wavy has are ``accepted`` after all."""
    ledger = Ledger(warehouse, "wavy")
    rows = ledger.unknown(limit)
    found: dict[str, str] = {}
    for start in range(0, len(rows), 100):
        keys = [r["message_key"] for r in rows[start : start + 100]]
        for status in hook.status_search(correlation_ids=keys):
            if status.correlation_id in keys:
                found[status.correlation_id] = status.id
    return ledger.resolve_unknown(found, pendulum.now("UTC"))


def unknown_report(warehouse: Warehouse, vendor: str) -> list[dict[str, Any]]:
    """The unknown rows an operator has to decide on (message_key, phone, since)."""
    table = schema.outbound_messages
    query = (
        sa.select(table.c.message_key, table.c.phone, table.c.request_started_at, table.c.error)
        .where(table.c.vendor == vendor, table.c.state == "unknown")
        .order_by(table.c.message_key)
        .limit(100)
    )
    return warehouse.rows(query)
