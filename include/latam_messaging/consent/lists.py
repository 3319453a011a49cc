"""Suppression lists and national do-not-contact registry exports, loaded from drop folders.

Under ``MESSAGING_DROP_DIR``:

* ``suppressions/*.csv``: ``phone``, optional ``reason``, ``scope`` (``all``, a vendor or a channel;
  default ``all``), ``action`` (``add`` or ``remove``; default ``add``). Source ``manual``. A ``remove``
  ends the phone's active ``manual``, ``keyword`` and ``vendor_status`` suppressions of that scope;
  never a registry's (only the registry's own export lifts those).
* ``suppressions/registries/<name>/*.csv`` (or ``*.txt``): an export of registry ``<name>``
  (``[a-z0-9_-]{1,40}``; any other folder is skipped with a logged error). One phone per line without
  a header, or a CSV with any phone column name (``csvfile.read_layout(..., any_phone_column=True)``),
  optional ``action``. Source ``registry:<name>``, scope ``all``. A ``remove`` row ends that registry's
  entry; **a phone absent from an export keeps its entry**: exports may be partial, and a partial export
  must never lift a suppression. A file with no usable row fails (an empty export is a broken one).

Promises, as for every drop (``drops.process``): a file is claimed by one run, the same content
(SHA-256) is loaded once, and a file is all or nothing. Rows are staged in ``suppression_staging``
chunk by chunk while the file is read (bounded memory, ``COPY`` on PostgreSQL), then applied set-based
in the transaction that marks the file ``loaded``: per (phone, scope) the file's **last** row wins;
its adds not already active for (phone, scope, source) are inserted (``ON CONFLICT DO NOTHING`` on the
partial unique index: two runs loading the same phone at once insert it once), its removes end what
they may end; then the file's staging rows are deleted. A file that fails anywhere leaves nothing (its
staging rows are deleted with its failure). Each entry's evidence is ``drop_files <sha256> row <n>``.

Which scopes exist is the caller's to say (``all``, the vendors, their channels): this engine names
no vendor.
"""

from __future__ import annotations

import logging
import os
import re
import stat
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, fields
from enum import StrEnum
from pathlib import Path
from typing import Any

import pendulum
import sqlalchemy as sa

from latam_messaging.common.phones import consent_key
from latam_messaging.consent.suppressions import ALL, SUPPRESSIONS, Source
from latam_messaging.drops.csvfile import CsvLayout, read_layout
from latam_messaging.drops.folder import DropFolder
from latam_messaging.drops.process import DropStats, process_drops
from latam_messaging.drops.registry import DropRegistry
from latam_messaging.drops.validation import RowRejected, RowValidator, ValidationContext
from latam_messaging.warehouse import schema
from latam_messaging.warehouse.db import Warehouse

log = logging.getLogger(__name__)

STAGING = schema.suppression_staging
#: The drop folder of suppression lists, and its sub-folder of registry exports (one folder per registry).
FOLDER = "suppressions"
REGISTRIES = "registries"
REGISTRY_NAME = re.compile(r"[a-z0-9_-]{1,40}")
#: Registry exports come as CSV or as plain text, one phone per line.
REGISTRY_PATTERNS = ("*.csv", "*.txt")
#: Who creates and ends entries loaded from files (the DAG).
CREATED_BY = "suppression_lists"
#: Sources a ``remove`` row of a list in ``suppressions/`` ends.
ENDED_BY_LIST_REMOVE = (Source.MANUAL, Source.KEYWORD, Source.VENDOR_STATUS)
#: Columns a registry export may have besides its phone column.
REGISTRY_COLUMNS = frozenset({"action", "reason"})


class Action(StrEnum):
    ADD = "add"
    REMOVE = "remove"


@dataclass
class ListStats:
    """What a load did: files (loaded, same content as before, failed), rows, and their effect."""

    files: int = 0
    duplicates: int = 0
    failed: int = 0
    rows_valid: int = 0
    rows_rejected: int = 0
    added: int = 0  # new active suppressions
    ended: int = 0  # active suppressions a remove row ended
    already_active: int = 0  # add rows whose (phone, scope, source) was already suppressed
    folders_refused: int = 0  # registry folders skipped (bad name, not a folder, a symlink)

    def merge(self, other: ListStats) -> ListStats:
        for item in fields(self):
            setattr(self, item.name, getattr(self, item.name) + getattr(other, item.name))
        return self

    def take(self, drops: DropStats) -> None:
        self.files += drops.files
        self.duplicates += drops.duplicates
        self.failed += drops.failed
        self.rows_valid += drops.rows_valid
        self.rows_rejected += drops.rows_rejected


class ListRowValidator(RowValidator):
    """One row of a list: ``phone`` (normalised as in sends), ``action``, ``scope`` and ``reason``.

    ``scopes`` are the scopes a row may name; ``None`` for a registry export, whose rows are always of
    scope ``all`` (a ``scope`` column is not read). Repeated phones are not rejected: the file's last
    row per (phone, scope) decides, when the file is applied.
    """

    required_columns = frozenset({"phone"})

    def __init__(self, context: ValidationContext, scopes: frozenset[str] | None):
        super().__init__(context)
        self.scopes = scopes

    def check(self, row_number: int, raw: Mapping[str, str]) -> dict[str, Any]:
        values = {k: (v or "").strip() for k, v in raw.items()}
        if not any(values.values()):
            raise RowRejected("row is empty")
        phone = self.phone(values)
        action = values.get("action", "").lower() or Action.ADD
        if action not in (Action.ADD, Action.REMOVE):
            raise RowRejected(f"action {values['action'][:40]!r} is not add or remove")
        scope = ALL
        if self.scopes is not None:
            scope = values.get("scope", "").lower() or ALL
            if scope not in self.scopes:
                raise RowRejected(
                    f"scope {values['scope'][:40]!r} is not all, a vendor or a channel "
                    f"(one of: {', '.join(sorted(self.scopes))})"
                )
        return {
            "file_sha256": self.context.file_sha256,
            "row_number": row_number,
            "phone": consent_key(phone),  # one subscriber, one key (common.phones)
            "scope": scope,
            "action": str(action),
            "reason": values.get("reason") or None,
        }

    def deduplicate(self, row: dict[str, Any]) -> dict[str, Any]:
        return row  # a repeated phone is no error in a list: its last row wins when the file is applied


@dataclass(frozen=True)
class Applied:
    added: int
    already_active: int
    ended: int


def _evidence_prefix(sha256: str) -> str:
    return f"drop_files {sha256} row "


#: PostgreSQL: a file's last row per (phone, scope), private to the transaction that applies the file
#: (dropped at its end, committed or not). The planner then knows how many rows it has (``ANALYZE``),
#: which it never knows of the staging table, whose statistics describe whatever it held when last
#: sampled: a plan made for "1 row" that meets a million never ends.
_LAST = sa.Table(
    "suppression_last_rows",
    sa.MetaData(),
    sa.Column("phone", sa.String(20), nullable=False),
    sa.Column("scope", sa.String(16), nullable=False),
    sa.Column("action", sa.String(8), nullable=False),
    sa.Column("reason", sa.Text),
    sa.Column("row_number", sa.Integer, nullable=False),
    prefixes=["TEMPORARY"],
    postgresql_on_commit="DROP",
)


def _last_rows(sha256: str) -> sa.Select:
    """The file's last staged row per (phone, scope): one pass over its rows (a window, no self-join)."""
    st = STAGING
    ranked = (
        sa.select(
            st.c.phone,
            st.c.scope,
            st.c.action,
            st.c.reason,
            st.c.row_number,
            sa.func.row_number()
            .over(partition_by=(st.c.phone, st.c.scope), order_by=st.c.row_number.desc())
            .label("rank"),
        )
        .where(st.c.file_sha256 == sha256)
        .subquery("ranked")
    )
    return sa.select(*(ranked.c[c.name] for c in _LAST.c)).where(ranked.c.rank == 1)


def apply_file(
    conn: sa.Connection,
    warehouse: Warehouse,
    sha256: str,
    *,
    source: str,
    ends: Sequence[str],
    now: pendulum.DateTime,
    by: str = CREATED_BY,
) -> Applied:
    """Apply a file's staged rows in ``conn``'s transaction, set-based, and delete them.

    Per (phone, scope) only the file's last row counts. Its adds become active suppressions of
    ``source`` unless one is already active for (phone, scope, source) (``ON CONFLICT DO NOTHING`` on
    the partial unique index: exact under concurrent loads too); its removes end the active
    suppressions of (phone, scope) from ``ends`` whose evidence is not newer than ``now``.
    """
    if warehouse.dialect == "postgresql":
        _LAST.create(conn)
        conn.execute(_LAST.insert().from_select([c.name for c in _LAST.c], _last_rows(sha256)))
        conn.exec_driver_sql(f"ANALYZE {_LAST.name}")
        last_rows: sa.FromClause = _LAST
    else:  # SQLite plans by its indexes, not statistics; and the first statement must write (below)
        last_rows = _last_rows(sha256).subquery("last_rows")
    last = last_rows.c
    at = sa.bindparam("now", now, type_=SUPPRESSIONS.c.since.type)
    prefix = _evidence_prefix(sha256)
    adds = sa.select(
        last.phone,
        last.scope,
        sa.literal(source, SUPPRESSIONS.c.source.type),
        sa.literal(prefix) + sa.cast(last.row_number, sa.String),
        last.reason,
        at,
        at,
        sa.literal(by, SUPPRESSIONS.c.created_by.type),
    ).where(last.action == Action.ADD)
    columns = ["phone", "scope", "source", "evidence", "reason", "since", "created_at", "created_by"]
    insert = warehouse.insert(SUPPRESSIONS).from_select(columns, adds).on_conflict_do_nothing()
    # SQLite: the transaction's first statement writes, so it takes the write lock before it reads (a
    # read first could not become a write once another run had committed: "database is locked");
    # psycopg 3 reports an INSERT's rowcount only when asked to keep it
    added = conn.execute(insert.execution_options(preserve_rowcount=True)).rowcount
    wanted = conn.execute(sa.select(sa.func.count()).select_from(last_rows).where(last.action == Action.ADD)).scalar_one()
    newest = sa.func.coalesce(SUPPRESSIONS.c.last_seen_at, SUPPRESSIONS.c.since)  # no newer evidence of it
    ending = sa.and_(SUPPRESSIONS.c.ended_at.is_(None), SUPPRESSIONS.c.source.in_(list(ends)), newest <= at)
    if warehouse.dialect == "postgresql":
        # Driven by the file's removes, one index lookup each: a LATERAL behind OFFSET 0 is never flattened
        # into a join, and the target is joined by id alone, so no plan rescans the removes for each row
        # of a just-loaded table whose statistics still say "empty". The lookup locks what it will end
        # (FOR UPDATE re-reads a row another run ended meanwhile, and drops it): nothing is ended twice.
        found = SUPPRESSIONS.alias("found")
        match = (
            sa.select(found.c.id)
            .where(
                found.c.phone == last.phone,
                found.c.scope == last.scope,
                found.c.ended_at.is_(None),
                found.c.source.in_(list(ends)),
                sa.func.coalesce(found.c.last_seen_at, found.c.since) <= at,
            )
            .offset(0)
            .with_for_update()
            .lateral("match")
        )
        pairs = (
            sa.select(match.c.id, last.row_number)
            .select_from(last_rows)
            .join(match, sa.true())
            .where(last.action == Action.REMOVE)
            .subquery("pairs")
        )
        end = (
            sa.update(SUPPRESSIONS)
            .where(SUPPRESSIONS.c.id == pairs.c.id)
            .values(ended_at=at, ended_by=by, end_evidence=sa.literal(prefix) + sa.cast(pairs.c.row_number, sa.String))
        )
    else:
        end = (
            sa.update(SUPPRESSIONS)
            .where(
                SUPPRESSIONS.c.phone == last.phone,
                SUPPRESSIONS.c.scope == last.scope,
                last.action == Action.REMOVE,
                ending,
            )
            .values(ended_at=at, ended_by=by, end_evidence=sa.literal(prefix) + sa.cast(last.row_number, sa.String))
        )
    ended = conn.execute(end).rowcount
    if warehouse.dialect == "postgresql":
        _LAST.drop(conn)
    discard_file(conn, sha256)
    return Applied(added=added, already_active=wanted - added, ended=ended)


def discard_file(conn: sa.Connection, sha256: str) -> None:
    """Delete a file's staged rows (after applying them, or unapplied when the file failed)."""
    conn.execute(sa.delete(STAGING).where(STAGING.c.file_sha256 == sha256))


def _load_folder(
    warehouse: Warehouse,
    folder: DropFolder,
    *,
    source: str,
    ends: Sequence[str],
    scopes: frozenset[str] | None,
    region: str,
    now: pendulum.DateTime,
    by: str,
) -> ListStats:
    stats = ListStats()
    registry = DropRegistry(warehouse, FOLDER)
    is_registry = scopes is None

    def make_validator(sha256: str) -> RowValidator:
        return ListRowValidator(ValidationContext(sha256, region, "UTC"), scopes)

    def store(rows: list[dict[str, Any]], rejects: list[dict[str, Any]]) -> None:
        with warehouse.begin() as conn:
            warehouse.bulk_insert_new(conn, STAGING, rows, keys=["file_sha256", "row_number"])
            registry.add_rejects(conn, rejects)

    def promote(conn: sa.Connection, sha256: str) -> None:
        applied = apply_file(conn, warehouse, sha256, source=source, ends=ends, now=now, by=by)
        stats.added += applied.added
        stats.already_active += applied.already_active
        stats.ended += applied.ended
        log.info(
            "%s: %d suppression(s) added, %d already active, %d ended",
            source,
            applied.added,
            applied.already_active,
            applied.ended,
        )

    def read_header(path: Path, encoding: str) -> CsvLayout:
        return read_layout(path, encoding, set(REGISTRY_COLUMNS), any_phone_column=True)

    drops = process_drops(
        folder,
        registry,
        make_validator,
        store,
        now,
        promote=promote,
        discard=discard_file,
        read_header=read_header if is_registry else None,
        require_rows=is_registry,
    )
    stats.take(drops)
    return stats


def load_lists(
    warehouse: Warehouse,
    drop_root: Path,
    *,
    scopes: Iterable[str],
    region: str,
    now: pendulum.DateTime | None = None,
    by: str = CREATED_BY,
    folder: DropFolder | None = None,
) -> ListStats:
    """Load every ready file of ``suppressions/`` (``scopes``: the scopes a row may name; ``all`` is
    always one)."""
    known = frozenset({ALL, *(s.lower() for s in scopes)})
    return _load_folder(
        warehouse,
        folder or DropFolder(drop_root, FOLDER),
        source=Source.MANUAL,
        ends=ENDED_BY_LIST_REMOVE,
        scopes=known,
        region=region,
        now=now or pendulum.now("UTC"),
        by=by,
    )


def _shown(name: str) -> str:
    """A folder name fit for a log line: printable ASCII, bounded."""
    return ascii(name[:60])


def registry_names(drop_root: Path) -> tuple[list[str], int]:
    """The valid registry folders of ``suppressions/registries/`` and how many entries were refused
    (logged): a name outside ``[a-z0-9_-]{1,40}``, a file, a symlink (never followed)."""
    base = Path(drop_root) / FOLDER / REGISTRIES
    try:
        mode = os.lstat(base).st_mode
    except FileNotFoundError:
        return [], 0
    if not stat.S_ISDIR(mode):
        log.error("%s/%s is not a folder (a symlink or a file): no registry export is loaded", FOLDER, REGISTRIES)
        return [], 1
    with os.scandir(base) as listing:
        entries = sorted(listing, key=lambda e: e.name)
    names, refused = [], 0
    for entry in entries:
        if not entry.is_dir(follow_symlinks=False):
            log.error("%s/%s/%s is not a folder (a file or a symlink): skipped", FOLDER, REGISTRIES, _shown(entry.name))
            refused += 1
        elif not REGISTRY_NAME.fullmatch(entry.name):
            log.error(
                "registry folder %s skipped: a registry's name is 1 to 40 of a-z, 0-9, _ and -", _shown(entry.name)
            )
            refused += 1
        else:
            names.append(entry.name)
    return names, refused


def registry_folder(drop_root: Path, name: str) -> DropFolder:
    if not REGISTRY_NAME.fullmatch(name):
        raise ValueError(f"registry name {_shown(name)} is not 1 to 40 of a-z, 0-9, _ and -")
    return DropFolder(drop_root, f"{FOLDER}/{REGISTRIES}/{name}", patterns=REGISTRY_PATTERNS)


def load_registry(
    warehouse: Warehouse,
    drop_root: Path,
    name: str,
    *,
    region: str,
    now: pendulum.DateTime | None = None,
    by: str = CREATED_BY,
) -> ListStats:
    """Load every ready export in ``suppressions/registries/<name>/`` as ``registry:<name>``."""
    source = Source.registry(name)
    return _load_folder(
        warehouse,
        registry_folder(drop_root, name),
        source=source,
        ends=(source,),
        scopes=None,
        region=region,
        now=now or pendulum.now("UTC"),
        by=by,
    )


@dataclass
class RegistryLoads:
    """Each registry folder's load, and how many entries of ``registries/`` were refused."""

    by_registry: dict[str, ListStats]
    folders_refused: int = 0

    def total(self) -> ListStats:
        total = ListStats(folders_refused=self.folders_refused)
        for stats in self.by_registry.values():
            total.merge(stats)
        return total


def load_registries(
    warehouse: Warehouse,
    drop_root: Path,
    *,
    region: str,
    now: pendulum.DateTime | None = None,
    by: str = CREATED_BY,
) -> RegistryLoads:
    """Every registry folder's exports, folder by folder (``registries/`` is created when missing, so
    operators see where exports go)."""
    base = Path(drop_root) / FOLDER / REGISTRIES
    if not os.path.lexists(base):
        base.mkdir(parents=True, exist_ok=True)
    names, refused = registry_names(drop_root)
    loads = {name: load_registry(warehouse, drop_root, name, region=region, now=now, by=by) for name in names}
    return RegistryLoads(loads, refused)
