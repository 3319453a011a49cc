"""A synthetic history for ``make bench --history``: months of sends, events, raw bodies, campaigns,
replies and opt-outs written into a migrated warehouse by SQL alone, then cached between runs.

What is generated (message ``n`` = 0 … ``outbound``-1, every value a function of ``n``, so a size
always yields the same rows):

* ``campaign_files`` + ``drop_files``: one loaded file of :data:`FILE_ROWS` rows per campaign (the
  last one shorter), 70 % Teleprom HSM, 20 % ITD, 10 % Wavy, created evenly over :data:`SPAN_DAYS`
  days ending at the build time; ``campaign_id`` = the first 16 hex of the file's SHA-256.
* ``outbound_messages``: ``message_key`` ``m-<16 hex>-<row>`` as the drop loader makes it; 93.5 %
  accepted, the rest rejected / failed / unknown / suppressed / cancelled; of the accepted 50 % read,
  32 % delivered, 8 % sent, 5 % failed, 5 % still accepted (1 in 5 of those with an unrecognised event).
* ``message_status_events``: each accepted message's events (accepted → sent → delivered → read, or
  accepted → failed), minutes to hours apart, cut at exactly ``events`` rows (the newest messages lose
  their last events: not reported yet).
* ``raw_webhook_events``: ``raw`` parsed bodies (1 in 1,000 a parse error, none pending: the
  ``webhook_ingest`` measure must find only its own), real SHA-256s, Teleprom's V0 shape.
* ``inbound_messages``: a reply to 1 message in 100; ``suppressions``: an opt-out per 2,000 messages.

The three big tables are filled without their secondary indexes and constraints, which are then
re-created from the database's own definitions (PostgreSQL ``pg_get_indexdef`` /
``pg_get_constraintdef``, SQLite ``sqlite_master``): the schema after a fill is the migrated schema.

Cache: SQLite, a finished file ``<cache>/sqlite-<key>.db`` (built as ``.part``, renamed when done);
PostgreSQL, a template database ``history_<key>`` (built as ``history_build_<key>``, renamed when
done) in a cluster kept under ``<cache>/postgres`` (:class:`CachedPostgres`). The key names the sizes,
the schema's migration version and :data:`GENERATOR_VERSION`: a new migration or generator rebuilds.
"""

from __future__ import annotations

import hashlib
import math
import os
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pendulum
import sqlalchemy as sa

#: Bump when the generated rows change, or a migration changes what it builds: cached histories of
#: another version are not reused.
GENERATOR_VERSION = 4
FILE_ROWS = 10_000
SPAN_DAYS = 150
#: The three tables filled in bulk (their indexes dropped during the fill, then re-created).
BIG_TABLES = ("outbound_messages", "message_status_events", "raw_webhook_events")
#: Tables whose triggers keep aggregates: off for the fill, the aggregates rebuilt once after it.
TRIGGERED_TABLES = (*BIG_TABLES, "inbound_messages", "suppressions")
CHUNK = 1_000_000


@dataclass(frozen=True)
class HistorySize:
    """Rows of a history: ``outbound_messages``, ``message_status_events``, ``raw_webhook_events``."""

    outbound: int
    events: int
    raw: int

    @property
    def files(self) -> int:
        return math.ceil(self.outbound / FILE_ROWS)

    @property
    def inbound(self) -> int:
        return self.outbound // 100

    @property
    def suppressions(self) -> int:
        return self.outbound // 2000

    def key(self, dialect: str) -> str:
        from latam_messaging.warehouse.migrations import MIGRATIONS

        schema_version = max(m.version for m in MIGRATIONS)
        return f"{dialect}-o{self.outbound}-e{self.events}-r{self.raw}-s{schema_version}-g{GENERATOR_VERSION}"


#: The issue's sizes (about five months at 1 M messages a week on PostgreSQL; SQLite a quarter).
FULL = {"postgresql": HistorySize(20_000_000, 60_000_000, 10_000_000), "sqlite": HistorySize(5_000_000, 15_000_000, 2_000_000)}


def preset(dialect: str, scale: float) -> HistorySize:
    """:data:`FULL` times ``scale`` (``make bench`` uses 0.1 unless told ``--history full``)."""
    full = FULL[dialect]
    return HistorySize(int(full.outbound * scale), int(full.events * scale), int(full.raw * scale))


def sized(dialect: str, outbound: int) -> HistorySize:
    """``outbound`` rows with the events and raw bodies in :data:`FULL`'s proportions."""
    full = FULL[dialect]
    return HistorySize(outbound, outbound * full.events // full.outbound, outbound * full.raw // full.outbound)


# ---- the rows (one definition for both databases) -------------------------------------------------------
VENDORS = [("teleprom", "teleprom_hsm")] * 7 + [("itd", "itd_whatsapp")] * 2 + [("wavy", "wavy_sms")]
#: seconds after a message's creation of its k-th event (accepted, sent|failed|unrecognised, delivered, read)
EVENT_DELAYS = (lambda n: 2, lambda n: 5 + n % 55, lambda n: 60 + n % 900, lambda n: 1800 + n % 20000)
#: seconds from a file's creation to its last row's last timestamp (created + row / 5 + the longest delay)
FILE_SECONDS = FILE_ROWS // 5 + 1800 + 20000 + 2


def _state(n: int) -> str:
    """93.5 % accepted; the rest rejected, failed, in doubt, suppressed, cancelled."""
    u = n * 2654435761 % 1000
    if u < 935:
        return "accepted"
    return "rejected" if u < 955 else "failed" if u < 965 else "unknown" if u < 970 else "suppressed" if u < 990 else "cancelled"


def _delivery(n: int) -> tuple[str, tuple[str, ...]]:
    """An accepted message's delivery status and the statuses of its events, in order."""
    d = n * 40503 % 100
    if d < 50:
        return "read", ("accepted", "sent", "delivered", "read")
    if d < 82:
        return "delivered", ("accepted", "sent", "delivered")
    if d < 90:
        return "sent", ("accepted", "sent")
    if d < 95:
        return "failed", ("accepted", "failed")
    if d < 99:
        return "accepted", ("accepted",)
    return "accepted", ("accepted", "unknown")


@dataclass(frozen=True)
class _File:
    f: int
    sha: str
    vendor: str
    folder: str
    rows: int
    created: int  # seconds after the history's start

    @property
    def template(self) -> str:
        return "shipping_confirmation" if self.f % 2 == 0 else "payment_reminder"


class _Rows:
    """Every generated row of a history, as tuples in the tables' column order (:data:`COLUMNS`)."""

    def __init__(self, size: HistorySize, start: pendulum.DateTime, dialect: str):
        self.size, self.start = size, start
        self.suffix = "+00" if dialect == "postgresql" else ".000000"  # how each database reads a UTC text
        span = SPAN_DAYS * 86400
        step = (span - 86400) // max(size.files - 1, 1)  # the newest file a day old: its events are all past
        self.files = []
        for f in range(size.files):
            vendor, folder = VENDORS[f % 10]
            self.files.append(_File(f, hashlib.sha256(f"bench history file {f}".encode()).hexdigest(), vendor, folder,
                                    min(FILE_ROWS, size.outbound - f * FILE_ROWS), f * step))
        self.days = [start.add(days=i).format("YYYY-MM-DD") for i in range(SPAN_DAYS + 2)]
        self._ts_file, self._ts = -1, []

    def ts(self, seconds: int) -> str:
        day, rest = divmod(seconds, 86400)
        hour, rest = divmod(rest, 3600)
        return f"{self.days[day]} {hour:02d}:{rest // 60:02d}:{rest % 60:02d}{self.suffix}"

    def file_ts(self, file: _File) -> list[str]:
        """The timestamps of every second a file's rows use (from its creation to its last read), formatted once."""
        if self._ts_file != file.f:
            self._ts_file, self._ts = file.f, [self.ts(file.created + s) for s in range(FILE_SECONDS)]
        return self._ts

    def at(self, seconds: int) -> pendulum.DateTime:
        return self.start.add(seconds=seconds)

    def message(self, n: int) -> tuple[_File, str, int, str, str]:
        """(file, message_key, created second, phone, vendor message id) of message ``n``."""
        file = self.files[n // FILE_ROWS]
        row = n % FILE_ROWS + 1
        local = f"{(n // 3 * 7919) % 100_000_000:08d}"  # one phone per ~3 messages
        vendor = file.vendor
        phone = ("54911" if vendor == "teleprom" else "5699" if vendor == "itd" else "55119") + local
        vendor_id = str(n) if vendor == "teleprom" else f"wamid.HBgM{n}" if vendor == "itd" else f"wv-{n}"
        return file, f"m-{file.sha[:16]}-{row}", (row - 1) // 5, phone, vendor_id

    def outbound(self):
        for n in range(self.size.outbound):
            file, key, created, phone, vendor_id = self.message(n)
            ts = self.file_ts(file).__getitem__
            state = _state(n)
            hsm = file.vendor == "teleprom"
            accepted = state == "accepted"
            delivery = _delivery(n)[0] if accepted else None
            yield (
                key, file.vendor, file.sha, n % FILE_ROWS + 1, phone, 39 if hsm else None,
                24 + file.f % 2 if hsm else None, file.template if hsm else None, '["1"]' if hsm else None,
                "TEXT" if file.vendor == "itd" else None, None if hsm else f"Hola, tu pedido {n} ya salio",
                state, vendor_id if accepted or state == "unknown" else None,
                "invalid destination number" if state == "rejected" else None,
                "HTTP 400: template parameters do not match" if state == "failed"
                else "suppressed: keyword opt-out" if state == "suppressed" else None,
                ts(created), ts(created + 3600), ts(created + 1), ts(created + 2) if accepted else None,
                delivery, ts(created + 600) if accepted else None,
            )

    def events(self):
        left, raws = self.size.events, max(self.size.raw, 1)
        for n in range(self.size.outbound):
            if _state(n) != "accepted":
                continue
            file, key, created, _phone, vendor_id = self.message(n)
            ts = self.file_ts(file).__getitem__
            for k, status in enumerate(_delivery(n)[1]):
                if left == 0:
                    return
                left -= 1
                at = created + EVENT_DELAYS[k](n)
                yield (
                    file.vendor, vendor_id, key, status, "PROCESSING" if status == "unknown" else status,
                    ts(at), ts(at + 1), "webhook", (n * 4 + k) % raws + 1,
                    "131047: Re-engagement message" if status == "failed" else None,
                )
        if left:
            raise ValueError(f"the history's messages make {self.size.events - left:,} of the {self.size.events:,} "
                             "status events asked (at most ~3.1 per message)")

    def raw(self):
        """Raw body r: a Teleprom-V0-shaped event of message r * outbound / raw; 1 in 1,000 a parse error."""
        for r in range(self.size.raw):
            n = r * self.size.outbound // self.size.raw
            file, key, created, phone, _id = self.message(n)
            created += file.created  # a few bodies a file: formatted one by one
            ts = self.ts
            body = (
                f'[{{"fechaHora":"{ts(created + 300)}","identificador":"{key}","telefono":"{phone}",'
                f'"resultado":"delivered","empresa":"MaytenCloud","origen":"WSP","sentTime":"1.0","lote":{r}}}]'
            )
            error = r % 1000 == 0
            yield (
                r + 1, file.vendor, "V0" if file.vendor == "teleprom" else None, ts(created + 300), "application/json",
                hashlib.sha256(body.encode()).hexdigest(), body, "error" if error else "parsed",
                "bench: body not understood" if error else None, ts(created + 301),
            )

    def inbound(self):
        for i in range(self.size.inbound):
            file, _key, created, phone, vendor_id = self.message(i * 100 + 7)
            at = file.created + created + 3600
            yield (file.vendor, f"in-{i}", phone, "39", "text", "BAJA" if i % 50 == 0 else "Gracias!",
                   self.ts(at), self.ts(at + 1), "webhook", vendor_id)

    def suppressions(self):
        for i in range(self.size.suppressions):
            n = i * 2000 + 7
            file, _key, created, phone, _id = self.message(n)
            at = file.created + created + 3600
            yield ("54" + phone[3:] if phone.startswith("549") else phone, "all", "keyword",
                   f"inbound:in-{i * 20}", "replied 'baja' (es)", self.ts(at), self.ts(at + 1), "bench history")


COLUMNS = {
    "outbound_messages": (
        "message_key", "vendor", "file_sha256", "row_number", "phone", "account_id", "template_id", "template_name",
        "params", "content_type", "content", "state", "vendor_message_id", "vendor_answer", "error", "created_at",
        "updated_at", "request_started_at", "accepted_at", "delivery_status", "delivery_status_at",
    ),
    "message_status_events": (
        "vendor", "vendor_message_id", "message_key", "status", "raw_status", "event_at", "recorded_at", "source",
        "raw_event_id", "reason",
    ),
    "raw_webhook_events": (
        "id", "vendor", "format_version", "received_at", "content_type", "body_sha256", "body", "parse_state",
        "parse_error", "parsed_at",
    ),
    "inbound_messages": (
        "vendor", "vendor_message_id", "from_phone", "to_account", "message_type", "text", "received_at",
        "recorded_at", "source", "in_reply_to",
    ),
    "suppressions": ("phone", "scope", "source", "evidence", "reason", "since", "created_at", "created_by"),
}


# ---- the fill ------------------------------------------------------------------------------------------
@dataclass
class FillResult:
    size: HistorySize
    seconds: float
    rows: dict[str, int]
    index_seconds: float = 0.0

    @property
    def rows_per_s(self) -> float:
        return sum(self.rows.values()) / self.seconds if self.seconds else 0.0


def _index_definitions(conn: sa.Connection, dialect: str) -> tuple[list[str], list[str]]:
    """(drop statements, re-create statements) of the big tables' secondary indexes and constraints."""
    drops, creates = [], []
    tables = ", ".join(f"'{t}'" for t in BIG_TABLES)
    if dialect == "postgresql":
        for table, name, definition in conn.exec_driver_sql(
            "SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid) FROM pg_constraint "
            f"WHERE conrelid::regclass::text IN ({tables}) AND contype IN ('p', 'u') ORDER BY conname"
        ):
            drops.append(f"ALTER TABLE {table} DROP CONSTRAINT {name}")
            creates.append(f"ALTER TABLE {table} ADD CONSTRAINT {name} {definition}")
        for name, definition in conn.exec_driver_sql(
            f"SELECT i.indexname, i.indexdef FROM pg_indexes i WHERE i.tablename IN ({tables}) AND NOT EXISTS "
            "(SELECT 1 FROM pg_constraint c WHERE c.conname = i.indexname) ORDER BY i.indexname"
        ):
            drops.append(f"DROP INDEX {name}")
            creates.append(definition)
    else:  # constraints of CREATE TABLE (sqlite_autoindex_*) cannot be dropped: only the indexes
        for name, definition in conn.exec_driver_sql(
            f"SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name IN ({tables}) "
            "AND sql IS NOT NULL ORDER BY name"
        ):
            drops.append(f"DROP INDEX {name}")
            creates.append(definition)
    return drops, creates


class _CopyStream:
    """A file-like view of rows as COPY text (``\\N`` for NULL) for psycopg2's ``copy_expert``."""

    def __init__(self, rows) -> None:
        self._rows, self._buffer = iter(rows), ""

    def read(self, size: int = -1) -> str:
        want = 1 << 20 if size is None or size < 0 else size
        parts, length = [self._buffer], len(self._buffer)
        for row in self._rows:
            line = "\t".join("\\N" if v is None else str(v) for v in row) + "\n"
            parts.append(line)
            length += len(line)
            if length >= want:
                break
        text = "".join(parts)
        self._buffer = text[want:]
        return text[:want]

    readline = read


def _load(conn: sa.Connection, table: str, rows, log, chunk: int = 200_000) -> int:
    """Write ``rows`` into ``table`` (SQLite: executemany per ``chunk``; PostgreSQL: one COPY), committing
    as it goes; returns the rows written."""
    columns = COLUMNS[table]
    cursor = conn.connection.dbapi_connection.cursor()
    started, done = time.perf_counter(), 0
    try:
        if conn.dialect.name == "postgresql":
            copy_sql = f"COPY {table} ({', '.join(columns)}) FROM STDIN"
            if conn.dialect.driver == "psycopg":  # psycopg 3
                with cursor.copy(copy_sql) as copy:
                    for row in rows:
                        copy.write_row(row)
                        done += 1
            else:  # psycopg2
                counted = _Counted(rows)
                cursor.copy_expert(copy_sql, _CopyStream(counted), size=1 << 20)
                done = counted.count
        else:
            sql = f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"
            batch: list[tuple] = []
            for row in rows:
                batch.append(row)
                if len(batch) == chunk:
                    cursor.executemany(sql, batch)
                    done += len(batch)
                    batch = []
                    if done % 1_000_000 == 0:
                        log(f"  {table}: {done:,} rows, {done / (time.perf_counter() - started):,.0f} rows/s")
            cursor.executemany(sql, batch)
            done += len(batch)
    finally:
        cursor.close()
    conn.commit()
    seconds = time.perf_counter() - started
    log(f"  {table}: {done:,} rows in {seconds:.0f}s = {done / seconds if seconds else 0:,.0f} rows/s")
    return done


class _Counted:
    def __init__(self, rows) -> None:
        self._rows, self.count = rows, 0

    def __iter__(self):
        for row in self._rows:
            self.count += 1
            yield row


def fill(warehouse, size: HistorySize, *, now: pendulum.DateTime | None = None, log=print) -> FillResult:
    """Write ``size``'s history into ``warehouse`` (migrated, its history tables empty). The big tables'
    indexes are dropped for the fill and re-created after; when the package keeps aggregate tables
    (:func:`summary_rebuilders`), the big tables' triggers are off for the fill and the aggregates rebuilt
    once after it (PostgreSQL: statistics taken first); then ANALYZE (PostgreSQL: VACUUM ANALYZE)."""
    from latam_messaging.warehouse import schema

    dialect = warehouse.dialect
    now = (now or pendulum.now("UTC")).replace(microsecond=0)
    start = now.subtract(days=SPAN_DAYS)
    source = _Rows(size, start, dialect)
    began = time.perf_counter()
    rows: dict[str, int] = {}
    with warehouse.engine.connect() as conn:
        if dialect == "sqlite":
            for pragma in ("synchronous = OFF", "cache_size = -400000", "temp_store = MEMORY"):
                conn.exec_driver_sql(f"PRAGMA {pragma}")
        else:
            for setting in ("synchronous_commit = off", "maintenance_work_mem = '512MB'", "statement_timeout = 0"):
                conn.exec_driver_sql(f"SET {setting}")
        conn.commit()
        drops, creates = _index_definitions(conn, dialect)
        if summary_rebuilders():  # aggregates rebuilt once after the fill, not per row by triggers
            triggers_off, triggers_on = _trigger_definitions(conn, dialect)
            drops += triggers_off
            creates += triggers_on
        for statement in drops:
            conn.exec_driver_sql(statement)
        conn.execute(schema.campaign_files.insert(), [
            {"campaign_id": f.sha[:16], "file_sha256": f.sha, "name": f"Campaña {f.f:05d} {f.template}",
             "vendor": f.vendor, "folder": f.folder, "source": "drop", "file_name": f"campaign-{f.f:05d}.csv",
             "created_by": "bench", "created_at": source.at(f.created), "state": "loaded"}
            for f in source.files
        ])
        conn.execute(schema.drop_files.insert(), [
            {"file_sha256": f.sha, "vendor": f.vendor, "folder": f.folder,
             "path": f"archive/{f.folder}/campaign-{f.f:05d}.csv", "size_bytes": f.rows * 60, "rows_total": f.rows,
             "rows_valid": f.rows, "rows_rejected": 0, "state": "done", "claimed_at": source.at(f.created),
             "loaded_at": source.at(f.created + 30), "finished_at": source.at(f.created + 2400)}
            for f in source.files
        ])
        conn.commit()
        rows["campaign_files"] = rows["drop_files"] = len(source.files)
        for table, generated in (
            ("outbound_messages", source.outbound()),
            ("message_status_events", source.events()),
            ("raw_webhook_events", source.raw()),
            ("inbound_messages", source.inbound()),
            ("suppressions", source.suppressions()),
        ):
            rows[table] = _load(conn, table, generated, log)
        indexed = time.perf_counter()
        for statement in creates:
            conn.exec_driver_sql(statement)
        conn.commit()
        index_seconds = time.perf_counter() - indexed
        log(f"  indexes and constraints re-created in {index_seconds:.0f}s")
        if dialect == "postgresql":
            # statistics before the rebuilds: without them PostgreSQL plans each inbound row's lookup of its
            # sends as a scan of all of them (campaign_answers' rebuild then ran for minutes, not seconds);
            # SQLite's planner goes by its indexes either way (its ANALYZE runs once, at the end)
            conn.exec_driver_sql("ANALYZE")
            conn.commit()
    rebuild_summaries(warehouse, log)
    with warehouse.engine.connect() as conn:
        if dialect == "postgresql":
            conn.exec_driver_sql(
                "SELECT setval(pg_get_serial_sequence('raw_webhook_events', 'id'), "
                "GREATEST((SELECT MAX(id) FROM raw_webhook_events), 1))"
            )
            conn.commit()
            conn.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql("VACUUM ANALYZE")
        else:
            conn.exec_driver_sql("ANALYZE")
            conn.commit()
    return FillResult(size, time.perf_counter() - began, rows, index_seconds)


# ---- summaries --------------------------------------------------------------------------------------------
#: Where the package keeps its aggregate tables' rebuilds (issue 25 deliverable 2), each found run in turn:
#: a function of a connection (run in one transaction) or of the warehouse.
SUMMARY_REBUILDERS = [
    ("latam_messaging.warehouse.aggregates", "repair"),  # message_counts
    ("latam_messaging.campaigns.answers", "rebuild"),  # campaign_answers
    ("latam_messaging.warehouse.failures", "rebuild"),  # failed_messages, failure_counts
    ("latam_messaging.warehouse.views", "rebuild_skipped_counts"),  # skipped_counts
    ("latam_messaging.warehouse.delivery_times", "rebuild"),  # delivery_times
]


def summary_rebuilders() -> list:
    """The package's aggregate rebuilds (see :data:`SUMMARY_REBUILDERS`); none when it has no aggregates."""
    import importlib

    found = []
    for module_name, function in SUMMARY_REBUILDERS:
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            continue
        if callable(getattr(module, function, None)):
            found.append(getattr(module, function))
    return found


def rebuild_summaries(warehouse, log=print) -> list[str]:
    """Bring the aggregate tables up to the history (the fill keeps their triggers off, see :func:`fill`).
    Returns what ran (nothing when the schema has no aggregates)."""
    import inspect

    ran = []
    for rebuild in summary_rebuilders():
        started = time.perf_counter()
        if next(iter(inspect.signature(rebuild).parameters)) == "conn":
            with warehouse.begin() as conn:
                rebuild(conn)
        else:
            rebuild(warehouse)
        ran.append(f"{rebuild.__module__}.{rebuild.__name__}")
        log(f"  {ran[-1]} in {time.perf_counter() - started:.0f}s")
    if not ran:
        log("  no summary tables in this schema: nothing to rebuild")
    return ran


def _trigger_definitions(conn: sa.Connection, dialect: str) -> tuple[list[str], list[str]]:
    """(statements turning the big tables' triggers off, statements turning them back on)."""
    if dialect == "postgresql":
        return ([f"ALTER TABLE {t} DISABLE TRIGGER USER" for t in TRIGGERED_TABLES],
                [f"ALTER TABLE {t} ENABLE TRIGGER USER" for t in TRIGGERED_TABLES])
    tables = ", ".join(f"'{t}'" for t in TRIGGERED_TABLES)
    found = conn.exec_driver_sql(
        f"SELECT name, sql FROM sqlite_master WHERE type = 'trigger' AND tbl_name IN ({tables}) ORDER BY name"
    ).all()
    return [f"DROP TRIGGER {name}" for name, _sql in found], [definition for _name, definition in found]


# ---- the cache --------------------------------------------------------------------------------------------
def cached_sqlite(size: HistorySize, cache_dir: Path, log=print) -> tuple[Path, FillResult | None]:
    """The cached SQLite history of ``size`` (built now when missing): (its file, the fill or None when
    reused). Copy the file before writing to it."""
    from latam_messaging.warehouse.db import Warehouse

    cache_dir.mkdir(parents=True, exist_ok=True)
    path = cache_dir / f"{size.key('sqlite')}.db"
    if path.exists():
        return path, None
    part = path.with_suffix(".part")
    for leftover in cache_dir.glob(part.name + "*"):
        leftover.unlink()
    warehouse = Warehouse.from_url(f"sqlite:///{part}")
    try:
        warehouse.migrate()
        result = fill(warehouse, size, log=log)
        with warehouse.engine.connect() as conn:
            conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        warehouse.engine.dispose()
    for suffix in ("-wal", "-shm"):
        Path(str(part) + suffix).unlink(missing_ok=True)
    part.rename(path)
    return path, result


def copy_sqlite(cached: Path, target: Path) -> None:
    """A private copy of a cached history to measure on (the cache stays as built)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(cached, target)


def cached_postgres(size: HistorySize, admin_url: str, log=print) -> tuple[str, FillResult | None]:
    """The template database holding ``size``'s history on the server of ``admin_url`` (built now when
    missing): (its name, the fill or None when reused). ``CREATE DATABASE x TEMPLATE <name>`` copies it."""
    from latam_messaging.warehouse.db import Warehouse

    name = "history_" + size.key("pg").replace("-", "_")
    building = name.replace("history_", "history_build_", 1)
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            if conn.exec_driver_sql("SELECT 1 FROM pg_database WHERE datname = %(n)s", {"n": name}).first():
                return name, None
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{building}"')
            conn.exec_driver_sql(f'CREATE DATABASE "{building}"')
        warehouse = Warehouse.from_url(admin_url.rsplit("/", 1)[0] + f"/{building}")
        try:
            warehouse.migrate()
            result = fill(warehouse, size, log=log)
        finally:
            warehouse.engine.dispose()
        with admin.connect() as conn:
            conn.exec_driver_sql(f'ALTER DATABASE "{building}" RENAME TO "{name}"')
            conn.exec_driver_sql(f'ALTER DATABASE "{name}" WITH IS_TEMPLATE true')
    finally:
        admin.dispose()
    return name, result


def copy_postgres(admin_url: str, template: str, target: str) -> None:
    """``target``: a new database copied from the history ``template``."""
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{target}" TEMPLATE "{template}"')
    finally:
        admin.dispose()


class CachedPostgres:
    """A PostgreSQL cluster whose data directory stays in ``directory`` between benchmark runs (the
    history templates live in it). Started on a free port; stopped cleanly (``-m fast``: checkpointed,
    so ``fsync=off`` loses nothing)."""

    login = "postgres"

    def __init__(self, directory: Path) -> None:
        import socket

        from tests.helpers.postgres import _bindir

        self.base = Path(directory)
        self.data = self.base / "data"
        self.base.mkdir(parents=True, exist_ok=True)
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        self._as_owner: list[str] = []
        if os.geteuid() == 0:
            shutil.chown(self.base, "postgres", "postgres")
            self._as_owner = ["runuser", "-u", "postgres", "--"]
        bindir = _bindir()
        self._pg_ctl = str(bindir / "pg_ctl")
        if not (self.data / "PG_VERSION").exists():
            shutil.rmtree(self.data, ignore_errors=True)
            self._run([str(bindir / "initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres", "-E", "UTF8",
                       "--no-sync"])
        options = (f"-p {self.port} -k {self.base} -c listen_addresses=127.0.0.1 -c fsync=off "
                   "-c full_page_writes=off -c max_wal_size=8GB -c checkpoint_timeout=30min")
        self._run([self._pg_ctl, "-D", str(self.data), "-l", str(self.base / "server.log"), "-o", options, "-w", "start"])

    def _run(self, command: list[str], check: bool = True) -> None:
        subprocess.run(self._as_owner + command, check=check, capture_output=True, cwd=self.base)

    @property
    def host(self) -> str:
        return "127.0.0.1"

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg2://postgres@127.0.0.1:{self.port}/{database}"

    def stop(self) -> None:
        self._run([self._pg_ctl, "-D", str(self.data), "-m", "fast", "stop"], check=False)


def disk_used(path: Path) -> int:
    """Bytes under ``path`` (a file or a directory)."""
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def database_bytes(admin_url: str, name: str) -> int:
    """``pg_database_size`` of database ``name``."""
    admin = sa.create_engine(admin_url)
    try:
        with admin.connect() as conn:
            return int(conn.execute(sa.text("SELECT pg_database_size(:n)"), {"n": name}).scalar_one())
    finally:
        admin.dispose()


def drop_database(admin_url: str, name: str) -> None:
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            if conn.exec_driver_sql("SELECT 1 FROM pg_database WHERE datname = %(n)s", {"n": name}).first():
                conn.exec_driver_sql(f'ALTER DATABASE "{name}" WITH IS_TEMPLATE false')  # a template refuses DROP
                conn.exec_driver_sql(f'DROP DATABASE "{name}" WITH (FORCE)')
    finally:
        admin.dispose()


def count_outbound(connection: dict) -> int:
    """Rows in ``outbound_messages`` of the warehouse an Airflow connection dict names."""
    if connection["conn_type"] == "sqlite":
        url = f"sqlite:///{connection['host']}"
    else:
        url = f"postgresql+psycopg2://{connection['login']}@{connection['host']}:{connection['port']}/{connection['schema']}"
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return int(conn.exec_driver_sql("SELECT COUNT(*) FROM outbound_messages").scalar_one())
    finally:
        engine.dispose()
