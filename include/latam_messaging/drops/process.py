"""The per-file loop every drop-fed DAG shares: claim, fingerprint, read, validate, store, finish.

Promises:

* **All or nothing.** ``store`` keeps a file's rows staged; ``promote`` makes them usable in the
  same transaction that marks the file ``loaded``. A file that fails anywhere is ``failed`` with the
  reason, and ``discard`` removes what it had staged, in one transaction: nothing of it is used.
* **One bad file never blocks the folder.** Any error of a file moves it to ``failed/`` and the
  loop goes on to the next one. Only a warehouse outage stops the run: the file then stays claimed
  under this run's lease and is taken over by a later run once the lease has expired.
* **Nothing of a file leaks into an error text** but the reasons ``csvfile`` writes (which name only
  columns we expected) and, for the unexpected, the exception's type and the row number.
* **A list that must list something** (``require_rows``: a registry export) fails when no row of it is
  usable: an empty or unreadable export is a broken export, never an empty list.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pendulum
import sqlalchemy as sa

from latam_messaging.common.write_behind import WriteBehind
from latam_messaging.drops.csvfile import CsvLayout, CsvRow, UnreadableDropError, read_layout, read_rows
from latam_messaging.drops.folder import ARCHIVE, FAILED, DropFolder, NotARegularFileError, fingerprint
from latam_messaging.drops.registry import DropRegistry, FileState
from latam_messaging.drops.validation import RowRejected, RowValidator

log = logging.getLogger(__name__)

#: Errors of the warehouse itself (not of a file): the run stops and is retried.
WAREHOUSE_OUTAGE = (sa.exc.OperationalError, sa.exc.InterfaceError, sa.exc.TimeoutError)

Store = Callable[[list[dict[str, Any]], list[dict[str, Any]]], None]
#: Phones of a chunk's valid rows → the reason each blocked one must not be used (e.g. it opted out).
Screen = Callable[[list[str]], dict[str, str]]
InTransaction = Callable[[sa.Connection, str], None]
#: Told which file is about to be read: its SHA-256, the name it was dropped under, its claimed path and
#: its encoding.
BeginFile = Callable[[str, str, Path, str], None]
#: A file's path and encoding → its layout (default: the header, checked for the validator's columns).
ReadHeader = Callable[[Path, str], CsvLayout]


def _nothing(conn: sa.Connection, sha256: str) -> None:
    return None


@dataclass
class DropStats:
    files: int = 0
    duplicates: int = 0
    failed: int = 0
    rows_valid: int = 0
    rows_rejected: int = 0
    #: rejected because the screen blocked their phone (counted in ``rows_rejected`` too)
    rows_screened: int = 0


def reject_row(sha256: str, row: CsvRow, reason: str, now: pendulum.DateTime) -> dict[str, Any]:
    raw: Any = row.raw if row.raw is not None else row.values
    return {
        "file_sha256": sha256,
        "row_number": row.number,
        "reason": reason,
        "raw_row": json.dumps(raw, ensure_ascii=False),
        "rejected_at": now,
    }


class _FileFailed(Exception):
    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def check_rows(validator: RowValidator, chunk: list[CsvRow]) -> list[tuple[dict[str, Any] | None, str | None]]:
    """Each row checked (everything but duplicates): ``(row, None)`` or ``(None, reason)``."""
    checked: list[tuple[dict[str, Any] | None, str | None]] = []
    for row in chunk:
        if row.problem:
            checked.append((None, row.problem))
            continue
        try:
            checked.append((validator.check(row.number, row.values), None))
        except RowRejected as exc:
            checked.append((None, str(exc)))
    return checked


def _load(
    claimed,
    sha256: str,
    encoding: str,
    validator: RowValidator,
    store: Store,
    now: pendulum.DateTime,
    screen: Screen | None,
    stats: DropStats,
    read_header: ReadHeader | None,
    require_rows: bool,
) -> tuple[int, int]:
    valid = rejected = 0
    row_number = in_flight_through = 0  # the last row read; the last row of the chunk being stored
    writer: WriteBehind | None = None
    try:
        if read_header is None:
            layout = read_layout(claimed, encoding, set(validator.required_columns))
        else:
            layout = read_header(claimed, encoding)
        with WriteBehind("drop-store") as writer:  # a chunk is stored while the next one is checked
            for chunk in read_rows(claimed, layout):
                checked = check_rows(validator, chunk)
                kept: list[tuple[CsvRow, dict[str, Any]]] = []
                rejects = []
                for row, (good, reason) in zip(chunk, checked, strict=True):
                    row_number = row.number
                    if good is not None:
                        try:
                            kept.append((row, validator.deduplicate(good)))
                            continue
                        except RowRejected as exc:
                            reason = str(exc)
                    rejects.append(reject_row(sha256, row, reason, now))
                blocked = screen([good["phone"] for _, good in kept]) if screen and kept else {}
                rows = []
                for row, good in kept:
                    if good["phone"] in blocked:
                        rejects.append(reject_row(sha256, row, blocked[good["phone"]], now))
                        stats.rows_screened += 1
                    else:
                        rows.append(good)
                rejects.sort(key=lambda r: r["row_number"])
                writer.submit(store, rows, rejects)  # raises the chunk before's failure, if any
                in_flight_through = row_number
                valid += len(rows)
                rejected += len(rejects)
    except WAREHOUSE_OUTAGE:
        raise
    except (UnreadableDropError, NotARegularFileError) as exc:
        raise _FileFailed(str(exc)) from None
    except Exception as exc:
        if writer is not None and exc is writer.failure:
            row_number = in_flight_through  # storing a chunk failed: name its rows, not the next chunk's
        log.exception("unexpected error reading a drop after row %d", row_number)
        raise _FileFailed(f"{type(exc).__name__} while loading the rows after row {row_number}") from None
    if require_rows and not valid:
        if not rejected:
            after = " after its header" if layout.has_header else ""
            raise _FileFailed(f"the file lists nothing: it has no rows{after}")
        raise _FileFailed(f"none of its {rejected} row(s) is usable (each was rejected): not a list of phones")
    return valid, rejected


def process_drops(
    folder: DropFolder,
    registry: DropRegistry,
    make_validator: Callable[[str], RowValidator],
    store: Store,
    now: pendulum.DateTime,
    *,
    promote: InTransaction = _nothing,
    discard: InTransaction = _nothing,
    screen: Screen | None = None,
    begin_file: BeginFile | None = None,
    read_header: ReadHeader | None = None,
    require_rows: bool = False,
) -> DropStats:
    """Claim each ready CSV of ``folder``, validate its rows chunk by chunk and hand each chunk's
    valid rows and rejects to ``store`` (idempotent: a crashed run is redone); then ``promote`` the
    file's rows (or ``discard`` them) in the transaction that closes its ``drop_files`` record.
    ``screen`` rejects valid rows whose phone it blocks, with its reason (consent); ``begin_file`` is
    told each file's SHA-256, name, claimed path and encoding before its rows are read. ``read_header`` reads a file's layout
    another way (a list of phones: ``read_layout(..., any_phone_column=True)``); ``require_rows`` fails a
    file that has no valid row."""
    stats = DropStats()
    warehouse = registry.warehouse
    with folder.leased():
        for claimed in folder.claim_ready():
            try:
                fp = fingerprint(claimed)
            except (NotARegularFileError, OSError) as exc:
                moved = folder.finish(claimed, FAILED)
                log.error("%s cannot be opened (%s): moved to %s", claimed.name, type(exc).__name__, moved.name)
                stats.failed += 1
                continue
            known = registry.known_file(fp.sha256)
            if (
                known is not None
                and known["state"] in (FileState.LOADED, FileState.FAILED)
                and folder.is_claim(known["path"])
                and not Path(known["path"]).exists()
            ):  # a run that died after closing this file's record, before moving it: this is that file (taken
                # over from its claim folder, so nothing is left there), and the move is finished here
                outcome = ARCHIVE if known["state"] == FileState.LOADED else FAILED
                moved = folder.finish(claimed, outcome)
                registry.set_path(fp.sha256, str(moved))
                log.warning("%s was %s by a run that stopped before moving it: moved to %s", claimed.name,
                            known["state"], moved.name)
                if known["state"] == FileState.FAILED:
                    stats.failed += 1
                else:
                    stats.files += 1
                continue
            if known is not None and known["state"] in (FileState.LOADED, FileState.FAILED):
                folder.finish(claimed, ARCHIVE)
                log.warning(
                    "%s has the same content as a file already processed (%s, state %s): nothing will be done again",
                    claimed.name,
                    known["path"],
                    known["state"],
                )
                stats.duplicates += 1
                continue
            registry.start_file(fp.sha256, folder.name, str(claimed), fp.size_bytes, now)
            if begin_file is not None:
                begin_file(fp.sha256, claimed.name, claimed, fp.encoding)
            validator = make_validator(fp.sha256)
            try:
                screened_before = stats.rows_screened
                valid, rejected = _load(
                    claimed, fp.sha256, fp.encoding, validator, store, now, screen, stats, read_header, require_rows
                )
            except _FileFailed as failure:
                # the record first, then the move: an outage here leaves the file claimed (the next run
                # takes it up), a crash after the record leaves it for the next run to move
                with warehouse.begin() as conn:
                    discard(conn, fp.sha256)
                    registry.finish_file(
                        conn, fp.sha256, state=FileState.FAILED, now=now, rows_valid=0, error=failure.reason
                    )
                moved = folder.finish(claimed, FAILED)
                registry.set_path(fp.sha256, str(moved))
                log.error("%s failed and was moved to %s: %s", claimed.name, moved.name, failure.reason)
                stats.rows_screened = screened_before  # nothing of a failed file counts
                stats.failed += 1
                continue
            finally:
                validator.close()
            with warehouse.begin() as conn:
                promote(conn, fp.sha256)
                registry.finish_file(conn, fp.sha256, state=FileState.LOADED, now=now, rows_valid=valid)
            moved = folder.finish(claimed, ARCHIVE)  # a crash before this: the next run sees 'loaded'
            registry.set_path(fp.sha256, str(moved))
            stats.files += 1
            stats.rows_valid += valid
            stats.rows_rejected += rejected
            log.info("%s: %d valid row(s), %d rejected; archived as %s", claimed.name, valid, rejected, moved.name)
    stats.failed += folder.not_regular
    return stats
