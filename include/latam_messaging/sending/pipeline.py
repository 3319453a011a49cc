"""The shared send pipeline: ingest drops into the ledger, then send what is due, concurrently.

``ingest_drops`` streams each claimed CSV in chunks (bounded memory), validates rows, and stages
ledger rows and rejects chunk by chunk; the file's rows become sendable together when it is whole.
``dispatch`` has worker threads each claim one request's rows (atomically, for this run's lease),
send them under a requests-per-second ceiling, and hand the answers to one writer thread.
"""

from __future__ import annotations

import dataclasses
import logging
import queue
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pendulum
import sqlalchemy as sa

from latam_messaging import settings
from latam_messaging.campaigns import records
from latam_messaging.campaigns import registration as campaigns
from latam_messaging.common import errors
from latam_messaging.common.ratelimit import RateLimiter
from latam_messaging.consent import suppressions
from latam_messaging.drops.folder import DropFolder
from latam_messaging.drops.process import DropStats, process_drops
from latam_messaging.drops.registry import DropRegistry
from latam_messaging.drops.validation import RowValidator, ValidationContext
from latam_messaging.lifecycle import MessageState
from latam_messaging.sending.adapters import SendAdapter
from latam_messaging.sending.ledger import DEFAULT_LEASE_S, Ledger, SendLease, SendOutcome, SendRow
from latam_messaging.sending.window import SendWindow, may_send
from latam_messaging.warehouse import schema
from latam_messaging.warehouse.db import Warehouse

log = logging.getLogger(__name__)
PROGRESS_EVERY_S = 5.0


# ---- ingest ----------------------------------------------------------------------------------------
@dataclass
class IngestStats(DropStats):
    rows_scheduled: int = 0
    #: rows of the files named in an explicit consent exemption (sent even if their phone opted out)
    rows_exempt: int = 0
    #: of those, rows whose phone was suppressed when the file was read: the exemption's real reach
    rows_exempt_overriding: int = 0


@dataclass(frozen=True)
class ConsentExemption:
    """An explicit transactional exemption: why (who decided), and the files it covers, by the name they
    were dropped under. Files not named are screened as always."""

    reason: str
    files: frozenset[str]

    def __post_init__(self) -> None:
        if not self.reason.strip() or not self.files:
            raise ValueError("a consent exemption needs a reason and the names of the files it covers")


def risky_numbers(warehouse: Warehouse) -> dict[str, str]:
    """phone → reason, from the ``risky_numbers`` view that ``number_checks`` feeds."""
    with warehouse.engine.connect() as conn:
        return dict(conn.execute(sa.text("SELECT phone, reason FROM risky_numbers")).all())


def ingest_drops(
    adapter: SendAdapter,
    warehouse: Warehouse,
    drop_root: Path,
    *,
    region: str,
    timezone: str,
    window: SendWindow | None = None,
    now: pendulum.DateTime | None = None,
    folder: DropFolder | None = None,
    exemption: ConsentExemption | None = None,
) -> IngestStats:
    """Claim every ready CSV of the adapter's folder and put its rows in the ledger: staged while
    the file is read, all sendable at once when the whole file is (a failed file leaves nothing).

    Rows whose phone is suppressed (opted out) for this vendor are rejected ``suppressed: …`` — except in
    the files an explicit ``exemption`` names (transactional messages): their rows are loaded with the
    exemption's text in ``consent_exempt`` and sent even to suppressed phones (logged and counted; the
    rows whose phone was suppressed are counted apart). Other files of the same run are screened."""
    now = now or pendulum.now("UTC")
    ledger = Ledger(warehouse, adapter.vendor, adapter.channel)
    registry = DropRegistry(warehouse, adapter.vendor)
    reference = adapter.load_reference(warehouse)
    risky = risky_numbers(warehouse) if adapter.folder in settings.hold_risky_folders() else {}
    window_open = may_send(window, now)
    scheduled = 0
    current = {"exempt": None}  # the exemption text of the file being read, if it is exempt
    exempt_rows: dict[str, int] = {}  # sha256 → rows of each exempt file, counted once the file loads
    overriding: dict[str, int] = {}

    def begin_file(sha256: str, name: str, path: Path, encoding: str) -> None:
        campaigns.register_dropped_file(warehouse, adapter, sha256, name, path, encoding, now)
        exempt = exemption is not None and name in exemption.files
        current["exempt"] = f"{exemption.reason} (file {name})"[:300] if exempt else None
        current["sha256"] = sha256
        if exempt:
            log.warning("%s is read under the consent exemption (%s): suppressed phones are NOT skipped", name, exemption.reason)
            overriding[sha256] = 0

    def make_validator(sha256: str) -> RowValidator:
        return adapter.validator(ValidationContext(sha256, region, timezone, reference, risky))

    def screen(phones: list[str]) -> dict[str, str]:
        with warehouse.engine.connect() as conn:
            blocked = suppressions.screen(conn, phones, ledger.scopes)
        if current["exempt"]:
            overriding[current["sha256"]] += len(blocked)
            return {}
        return blocked

    def store(rows: list[dict[str, Any]], rejects: list[dict[str, Any]]) -> None:
        if rows:
            try:
                adapter.prepare_rows(warehouse, records.campaign_id_of(current["sha256"]), rows)
            except Exception as exc:  # noqa: BLE001 - the rows are staged as read: preparing is never worth a row
                log.warning("preparing %d row(s) failed (%s): they are stored as read", len(rows), type(exc).__name__)
        for row in rows:
            row.update(state=MessageState.STAGED, created_at=now, updated_at=now, consent_exempt=current["exempt"])
        if current["exempt"]:
            exempt_rows[current["sha256"]] = exempt_rows.get(current["sha256"], 0) + len(rows)
        with warehouse.begin() as conn:
            ledger.stage(conn, rows)
            registry.add_rejects(conn, rejects)

    loaded: set[str] = set()

    def promote(conn: sa.Connection, sha256: str) -> None:
        nonlocal scheduled
        scheduled += ledger.promote_file(conn, sha256, now, window_open=window_open)
        records.file_loaded(conn, sha256, now)  # a campaign cancelled before it loaded: its rows cancelled here
        loaded.add(sha256)

    def discard(conn: sa.Connection, sha256: str) -> None:
        ledger.discard_file(conn, sha256)
        records.file_failed(conn, sha256)

    folder = folder or DropFolder(drop_root, adapter.folder)
    stats = process_drops(
        folder,
        registry,
        make_validator,
        store,
        now,
        promote=promote,
        discard=discard,
        screen=screen,
        begin_file=begin_file,
    )
    exempt = sum(n for sha, n in exempt_rows.items() if sha in loaded)
    reach = sum(n for sha, n in overriding.items() if sha in loaded)
    if exempt:
        log.warning("%d row(s) loaded under the consent exemption, %d of them to a suppressed phone", exempt, reach)
    return IngestStats(
        **dataclasses.asdict(stats), rows_scheduled=scheduled, rows_exempt=exempt, rows_exempt_overriding=reach
    )


# ---- dispatch --------------------------------------------------------------------------------------
@dataclass
class DispatchStats:
    marked_unknown: int = 0
    expired: int = 0
    suppressed: int = 0
    promoted: int = 0
    attempted: int = 0
    states: dict[str, int] = field(default_factory=dict)
    requests: int = 0
    seconds: float = 0.0
    stopped: str | None = None


class _Stop:
    """The first error that must stop all sending (no credits, auth, the warehouse gone), shared by
    the workers and the writer."""

    def __init__(self) -> None:
        self.event = threading.Event()
        self.error: Exception | None = None

    def set(self, error: Exception) -> None:
        if not self.event.is_set():
            self.error = error
            self.event.set()


def _send_one_batch(
    adapter: SendAdapter, hook: Any, batch: list[SendRow], limiter: RateLimiter, stop: _Stop
) -> list[SendOutcome]:
    """Send one request's rows; never raises: every row gets an outcome."""
    keys = [r.message_key for r in batch]
    if stop.event.is_set():
        return [SendOutcome(k, MessageState.PENDING) for k in keys]
    limiter.acquire()
    try:
        outcomes = adapter.send_batch(hook, batch)
        answered = pendulum.now("UTC")  # accepted_at: the vendor's answer time for this request
        for outcome in outcomes:
            outcome.answered_at = answered
        return outcomes
    except (errors.VendorNoCreditsError, errors.VendorAuthError) as exc:
        stop.set(exc)  # the vendor refused before sending: these rows stay pending
        return [SendOutcome(k, MessageState.PENDING, error=str(exc)) for k in keys]
    except errors.VendorValidationError as exc:
        return [SendOutcome(k, MessageState.REJECTED, error=str(exc)) for k in keys]
    except errors.VendorAmbiguousError as exc:  # it may have reached the vendor: never sent again blindly
        return [SendOutcome(k, MessageState.UNKNOWN, error=str(exc)) for k in keys]
    except errors.VendorTransientError as exc:  # provably never reached the vendor, retries exhausted
        return [SendOutcome(k, MessageState.FAILED, error=f"gave up after retries: {exc}") for k in keys]
    except Exception as exc:  # an answer we could not read: it may have been sent
        log.exception("unexpected error sending %d row(s)", len(keys))
        return [SendOutcome(k, MessageState.UNKNOWN, error=f"{type(exc).__name__} reading the answer") for k in keys]


def dispatch(
    adapter: SendAdapter,
    warehouse: Warehouse,
    *,
    concurrency: int | None = None,
    requests_per_s: float | None = None,
    window: SendWindow | None = None,
    hook: Any = None,
    lease_s: float = DEFAULT_LEASE_S,
) -> DispatchStats:
    """Send every due pending row of the adapter's vendor. Raises the stopping error, if any, after
    recording everything (rows not sent stay ``pending`` for the next run).

    Each worker thread claims one request's rows, sends them, hands the answers to one writer thread
    (which commits whatever answers are waiting in one transaction) and claims again once they are
    committed, so at most ``workers × batch size`` rows are ever in doubt (and ``unknown`` after a
    crash). Any number of dispatchers may run at once: claims never overlap.
    """
    started = time.monotonic()
    now = pendulum.now("UTC")
    ledger = Ledger(warehouse, adapter.vendor, adapter.channel)
    stats = DispatchStats()
    stats.marked_unknown = ledger.mark_in_flight_unknown(now)
    stats.expired = ledger.expire_overdue(now)
    if stats.expired:
        log.warning("%d row(s) expired before they could be sent: failed unsent", stats.expired)
    if stats.marked_unknown:
        log.warning(
            "%d row(s) were in flight when a previous run stopped: marked unknown, not re-sent", stats.marked_unknown
        )
    if not may_send(window, now):
        log.info("outside the send window %s: nothing is sent now", window)
        return stats
    stats.promoted = ledger.promote_due(now)
    total = ledger.count_state(MessageState.PENDING)
    log.info("%d row(s) to send via %s (%d newly due)", total, adapter.vendor, stats.promoted)
    if not total:
        return stats

    workers = concurrency or adapter.concurrency
    limiter = RateLimiter(requests_per_s if requests_per_s is not None else adapter.requests_per_s)
    hook = hook or adapter.make_hook(pool_size=workers)
    stop = _Stop()
    answers: queue.Queue[tuple[list[SendOutcome], threading.Event] | None] = queue.Queue()
    lock = threading.Lock()
    last_progress = [started]

    claim_rows = adapter.claim_size(hook)
    with SendLease(warehouse, adapter.vendor, lease_s=lease_s) as lease:

        def write() -> None:
            """The one writer: records the answers waiting, in one transaction, then wakes the workers
            that sent them. If the warehouse fails it stops the run: unrecorded rows stay ``sending``
            under this lease, so once it lapses they become ``unknown`` — never re-sent blindly."""
            failed = False
            done = False
            while not done:
                waiting = [answers.get()]
                while len(waiting) < workers * 2:
                    try:
                        waiting.append(answers.get_nowait())
                    except queue.Empty:
                        break
                done = None in waiting
                handed = [item for item in waiting if item is not None]
                group = [outcome for outcomes, _ in handed for outcome in outcomes]
                if group and not failed:
                    try:
                        ledger.record(group, pendulum.now("UTC"), lease.owner)
                    except Exception as exc:
                        log.exception("could not record %d answer(s): stopping the run", len(group))
                        stop.set(exc)
                        failed = True
                for _, recorded in handed:
                    recorded.set()

        def work() -> None:
            while not stop.event.is_set():
                try:
                    rows = ledger.claim(lease.owner, claim_rows)
                except Exception as exc:
                    stop.set(exc)
                    raise
                if rows.suppressed:
                    with lock:
                        stats.suppressed += rows.suppressed
                if not rows:
                    if rows.suppressed:
                        continue  # the claim found only suppressed rows: there may be more to send
                    return
                for batch in adapter.batches(rows, claim_rows):
                    outcomes = _send_one_batch(adapter, hook, batch, limiter, stop)
                    recorded = threading.Event()
                    answers.put((outcomes, recorded))
                    with lock:
                        stats.requests += 1
                        for outcome in outcomes:
                            stats.states[outcome.state] = stats.states.get(outcome.state, 0) + 1
                        stats.attempted += sum(1 for o in outcomes if o.state != MessageState.PENDING)
                        if time.monotonic() - last_progress[0] >= PROGRESS_EVERY_S:
                            elapsed = time.monotonic() - started
                            log.info(
                                "progress: %d/%d rows sent (%.0f rows/s)", stats.attempted, total,
                                stats.attempted / elapsed,
                            )
                            last_progress[0] = time.monotonic()
                # the next claim waits until these answers are committed: a crash leaves at most one
                # request's rows per worker in doubt (workers × batch size), answered or not
                recorded.wait()

        writer = threading.Thread(target=write, name="ledger-writer")
        writer.start()
        try:
            with ThreadPoolExecutor(max_workers=workers, thread_name_prefix=f"send-{adapter.vendor}") as pool:
                for future in [pool.submit(work) for _ in range(workers)]:
                    future.result()
        finally:
            answers.put(None)
            writer.join()
    stats.states = {str(k): v for k, v in stats.states.items()}
    stats.seconds = round(time.monotonic() - started, 3)
    log.info(
        "done: %d row(s) in %.1fs (%.0f rows/s), %d request(s); outcomes %s; %d suppressed (opted out, not sent)",
        stats.attempted,
        stats.seconds,
        stats.attempted / stats.seconds if stats.seconds else 0,
        stats.requests,
        stats.states,
        stats.suppressed,
    )
    if stop.error is not None:
        stats.stopped = str(stop.error)
        raise stop.error
    return stats


def unknown_report(warehouse: Warehouse, vendor: str) -> list[dict[str, Any]]:
    """The unknown rows an operator has to decide on (message_key, phone, since)."""
    table = schema.outbound_messages
    query = (
        sa.select(table.c.message_key, table.c.phone, table.c.request_started_at, table.c.error)
        .where(table.c.vendor == vendor, table.c.state == MessageState.UNKNOWN)
        .order_by(table.c.message_key)
        .limit(100)
    )
    return warehouse.rows(query)
