"""Raw webhook bodies archived, then purged, some days after they parsed (``messaging_maintenance``).

**What is due.** A ``raw_webhook_events`` row whose parse is committed: ``parsed`` more than
``days`` ago, or ``error``/``partial`` more than ``error_days`` ago (kept longer: ``webhook_ingest``'s
``reparse_errors`` reads them again after a parser fix). A ``pending`` row, a row without ``parsed_at``
and any state this module does not know are never due. Purging keeps the row: its ``id`` is what
``message_status_events.raw_event_id`` points at, and its ``(vendor, body_sha256)`` still dedupes a replay
of the same body; only ``body`` becomes ``''``, with ``purged_at`` and ``archive_path`` (the part holding
it) set (relative to ``MESSAGING_ARCHIVE_URL``). The status events, inbound messages and ledger moves a body made were committed with its parse
state, so nothing the ledger reads is lost.

**How, in three short transactions per batch** (at most ``batch`` rows, oldest parse first, through a
partial index of the unpurged rows), never a long lock beside live sends:

1. *assign*: the batch's rows are grouped by (vendor, UTC day received); each group is a part named by its
   id range, ``raw_webhook_events/<vendor>/<day>/part-<first id>-<last id>.jsonl.gz``, recorded on its
   rows as ``archive_path`` (only on rows with none: two runs at once never put a row in two parts);
2. *write*: the part is built from the rows the warehouse says are in it and not purged, in id order, one
   JSON object a line (the stored columns; ``body`` exactly as stored, so
   ``webhooks.raw.body_bytes`` gives back the vendor's bytes), gzip without a time stamp (the same rows
   always give the same bytes), and stored durably (``archive.ArchiveStore``);
3. *purge*: only then, those rows' bodies are emptied, in one transaction.

A kill after 1 or 2 leaves rows with ``archive_path`` and no ``purged_at``: every run starts by
finishing those parts, rewriting the same name with the same rows, then purging. A row is in exactly one
part; a re-run finds nothing due and archives nothing twice.
"""

from __future__ import annotations

import gzip
import json
import logging
import re
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import pendulum
import sqlalchemy as sa

from latam_messaging.maintenance.archive import ArchiveStore
from latam_messaging.warehouse import schema
from latam_messaging.warehouse.db import Warehouse
from latam_messaging.webhooks.raw import ParseState

log = logging.getLogger(__name__)

RAW = schema.raw_webhook_events
#: Rows per batch (and so at most per part and per purge transaction).
BATCH = 5000
PURGED_BODY = ""
#: The columns a part keeps of each row (``body`` as stored).
ARCHIVED_COLUMNS = (
    "id",
    "vendor",
    "channel",
    "format_version",
    "received_at",
    "content_type",
    "body_sha256",
    "body",
    "parse_state",
    "parse_error",
    "parsed_at",
)
ERROR_STATES = (ParseState.ERROR.value, ParseState.PARTIAL.value)


@dataclass(frozen=True)
class RetentionPolicy:
    days: float = 30  # parsed bodies
    error_days: float = 180  # bodies that parsed with errors (never sooner than ``days``)

    @classmethod
    def from_settings(cls, settings=None) -> RetentionPolicy:
        from latam_messaging import settings as project_settings

        s = settings or project_settings.current()
        return cls(days=s.raw_retention_days, error_days=s.raw_error_retention_days)

    def due(self, now: pendulum.DateTime) -> sa.ColumnElement[bool]:
        """Rows due for archiving at ``now`` (not yet purged nor assigned to a part)."""
        parsed_before = now - pendulum.duration(seconds=self.days * 86400)
        errors_before = now - pendulum.duration(seconds=max(self.error_days, self.days) * 86400)
        return sa.and_(
            RAW.c.purged_at.is_(None),
            RAW.c.archive_path.is_(None),
            RAW.c.parsed_at.is_not(None),
            sa.or_(
                sa.and_(RAW.c.parse_state == ParseState.PARSED.value, RAW.c.parsed_at < parsed_before),
                sa.and_(RAW.c.parse_state.in_(ERROR_STATES), RAW.c.parsed_at < errors_before),
            ),
        )


@dataclass
class RetentionStats:
    rows_purged: int = 0
    bytes_archived: int = 0  # compressed, as stored
    body_bytes_purged: int = 0  # the bodies as the warehouse held them (UTF-8; base64 for binary)
    parts_written: int = 0
    parts_resumed: int = 0  # parts a killed run had started, finished now
    batches: int = 0
    parts: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        out = asdict(self)
        out["parts"] = self.parts[:20]  # the first ones: a long history makes thousands
        return out


def part_name(vendor: str, received_at: pendulum.DateTime, first_id: int, last_id: int) -> str:
    """The part of a (vendor, UTC day received) group of one batch, named by its id range."""
    safe_vendor = re.sub(r"[^A-Za-z0-9_-]", "_", vendor) or "_"
    day = received_at.astimezone(pendulum.UTC).strftime("%Y-%m-%d")
    return f"raw_webhook_events/{safe_vendor}/{day}/part-{first_id:012d}-{last_id:012d}.jsonl.gz"


def encode_part(rows: Sequence[dict[str, Any]]) -> bytes:
    """A part's bytes: JSON lines in id order, gzip with no time stamp (deterministic)."""
    lines = []
    for row in sorted(rows, key=lambda r: r["id"]):
        record = {c: row[c] for c in ARCHIVED_COLUMNS}
        for column in ("received_at", "parsed_at"):
            if record[column] is not None:
                record[column] = pendulum.instance(record[column]).in_timezone("UTC").to_iso8601_string()
        lines.append(json.dumps(record, ensure_ascii=False, sort_keys=True, separators=(",", ":")))
    text = "\n".join(lines) + "\n"
    return gzip.compress(text.encode("utf-8"), compresslevel=6, mtime=0)


def decode_part(data: bytes) -> list[dict[str, Any]]:
    """The rows of a part (the inverse of :func:`encode_part`, timestamps as ISO text)."""
    return [json.loads(line) for line in gzip.decompress(data).decode("utf-8").splitlines() if line]


def _chunks(ids: Sequence[int], size: int = 1000) -> Iterator[list[int]]:
    for start in range(0, len(ids), size):
        yield list(ids[start : start + size])


# ---- the three steps --------------------------------------------------------------------------------
def _assign(warehouse: Warehouse, policy: RetentionPolicy, now: pendulum.DateTime, batch: int) -> list[str]:
    """Step 1: the next batch's rows put in their parts; returns the parts' names (empty: none due)."""
    with warehouse.begin() as conn:
        rows = conn.execute(
            sa.select(RAW.c.id, RAW.c.vendor, RAW.c.received_at)
            .where(policy.due(now))
            .order_by(RAW.c.parsed_at, RAW.c.id)
            .limit(batch)
        ).all()
        groups: dict[tuple[str, str], list] = {}
        for row in rows:
            day = row.received_at.astimezone(pendulum.UTC).strftime("%Y-%m-%d")
            groups.setdefault((row.vendor, day), []).append(row)
        names = []
        for members in groups.values():
            ids = [r.id for r in members]
            name = part_name(members[0].vendor, members[0].received_at, min(ids), max(ids))
            for chunk in _chunks(ids):
                conn.execute(
                    sa.update(RAW)
                    .where(RAW.c.id.in_(chunk), RAW.c.archive_path.is_(None), RAW.c.purged_at.is_(None))
                    .values(archive_path=name)
                )
            names.append(name)
    return names


def _in_progress(warehouse: Warehouse) -> list[str]:
    """Parts assigned but not purged (a run killed between its steps, or one running now)."""
    query = (
        sa.select(RAW.c.archive_path)
        .where(RAW.c.purged_at.is_(None), RAW.c.archive_path.is_not(None))
        .distinct()
        .order_by(RAW.c.archive_path)
    )
    with warehouse.engine.connect() as conn:
        return list(conn.execute(query).scalars())


def _finish_part(warehouse: Warehouse, store: ArchiveStore, name: str, stats: RetentionStats) -> None:
    """Steps 2 and 3 for one part: write it whole, then purge exactly the rows written."""
    with warehouse.engine.connect() as conn:
        rows = [
            dict(r._mapping)
            for r in conn.execute(
                sa.select(*[RAW.c[c] for c in ARCHIVED_COLUMNS])
                .where(RAW.c.archive_path == name, RAW.c.purged_at.is_(None))
                .order_by(RAW.c.id)
            )
        ]
    if not rows:
        return  # another run finished it
    data = encode_part(rows)
    store.write(name, data)  # raises unless the part is durably whole: then nothing is purged
    purged_at = pendulum.now("UTC")
    with warehouse.begin() as conn:
        purged = 0
        for chunk in _chunks([r["id"] for r in rows]):
            purged += conn.execute(
                sa.update(RAW)
                .where(
                    RAW.c.id.in_(chunk),
                    RAW.c.archive_path == name,
                    RAW.c.purged_at.is_(None),
                    RAW.c.parse_state != ParseState.PENDING.value,
                )
                .values(body=PURGED_BODY, purged_at=purged_at)
            ).rowcount
    stats.rows_purged += purged
    stats.bytes_archived += len(data)
    stats.body_bytes_purged += sum(len(r["body"].encode("utf-8")) for r in rows)
    stats.parts_written += 1
    stats.parts.append(name)


def archive_and_purge(
    warehouse: Warehouse,
    store: ArchiveStore,
    policy: RetentionPolicy,
    *,
    now: pendulum.DateTime | None = None,
    batch: int = BATCH,
    max_batches: int | None = None,
) -> RetentionStats:
    """Finish the parts a killed run left, then archive and purge what is due at ``now``, ``batch``
    rows at a time (``max_batches``: stop after so many; the next run goes on where this one stopped)."""
    if batch < 1:
        raise ValueError("batch must be at least 1")
    now = now or pendulum.now("UTC")
    stats = RetentionStats()
    for name in _in_progress(warehouse):
        before = stats.parts_written
        _finish_part(warehouse, store, name, stats)
        stats.parts_resumed += stats.parts_written - before
    while max_batches is None or stats.batches < max_batches:
        names = _assign(warehouse, policy, now, batch)
        if not names:
            break
        stats.batches += 1
        for name in names:
            _finish_part(warehouse, store, name, stats)
    log.info(
        "raw bodies: %d purged, %d bytes archived in %d part(s) (%d resumed)",
        stats.rows_purged,
        stats.bytes_archived,
        stats.parts_written,
        stats.parts_resumed,
    )
    return stats


# ---- the daily check ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class DueCount:
    vendor: str
    parse_state: str
    rows: int


def due_counts(
    warehouse: Warehouse, policy: RetentionPolicy, *, now: pendulum.DateTime | None = None
) -> list[DueCount]:
    """What a run at ``now`` would archive and purge, by vendor and parse state (read only)."""
    now = now or pendulum.now("UTC")
    query = (
        sa.select(RAW.c.vendor, RAW.c.parse_state, sa.func.count())
        .where(policy.due(now))
        .group_by(RAW.c.vendor, RAW.c.parse_state)
        .order_by(RAW.c.vendor, RAW.c.parse_state)
    )
    with warehouse.read_only() as conn:
        return [DueCount(v, s, int(n)) for v, s, n in conn.execute(query)]


def check(warehouse: Warehouse, policy: RetentionPolicy, *, now: pendulum.DateTime | None = None) -> dict[str, Any]:
    """The daily report: rows due now, due within a day, parts in progress, bodies never due yet (pending)."""
    now = now or pendulum.now("UTC")
    due_now = due_counts(warehouse, policy, now=now)
    tomorrow = due_counts(warehouse, policy, now=now + pendulum.duration(days=1))
    with warehouse.read_only() as conn:
        pending = conn.execute(
            sa.select(sa.func.count()).select_from(RAW).where(RAW.c.parse_state == ParseState.PENDING.value)
        ).scalar_one()
    return {
        "due_now": sum(c.rows for c in due_now),
        "due_within_a_day": sum(c.rows for c in tomorrow),
        "due_by_vendor_state": [asdict(c) for c in due_now],
        "parts_in_progress": len(_in_progress(warehouse)),
        "pending_never_purged": int(pending),
        "policy": asdict(policy),
    }


def iter_archived(store: ArchiveStore, names: Sequence[str]) -> Iterator[dict[str, Any]]:
    """The rows of the given parts (names relative to the store), for a restore or an audit."""
    for name in names:
        yield from decode_part(store.read(name))
