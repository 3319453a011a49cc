"""The warehouse connection: an SQLAlchemy engine from the Airflow connection ``messaging_warehouse``.

The same code serves SQLite (embedded default) and PostgreSQL: dialect differences are confined to
this module — :meth:`Warehouse.insert` (``ON CONFLICT`` comes from the dialect's own ``insert``),
:meth:`Warehouse.read_only` (how each database is told to refuse writes), :func:`update_each` (one
``UPDATE … FROM unnest`` per chunk on PostgreSQL), :func:`in_values` (a long ``IN`` list as one array
on PostgreSQL) and each connection's session settings.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from latam_messaging.warehouse import schema
from latam_messaging.warehouse.migrations import migrate

WAREHOUSE_CONN_ID = "messaging_warehouse"
#: Rows per executemany call in bulk loads: bounded memory, few round trips.
BULK_CHUNK = 5000
#: No statement runs longer, and no lock is waited for longer, than this (PostgreSQL; SQLite has
#: its busy timeout): a stuck warehouse fails a task or answers 503 instead of hanging.
STATEMENT_TIMEOUT_MS = 300_000
LOCK_TIMEOUT_MS = 30_000
SQLITE_BUSY_TIMEOUT_MS = 30_000
#: Every engine is made with these: SQL errors and logs never show bound values (bodies, phones).
ENGINE_KWARGS = {"pool_pre_ping": True, "hide_parameters": True}


def _sqlite_pragmas(dbapi_conn, _record) -> None:
    cursor = dbapi_conn.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")  # readers (the report, the receiver) never block writers
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cursor.close()


def _postgres_session(dbapi_conn, _record) -> None:
    """Timeouts, and no statement prepared by the driver: psycopg 3 prepares a statement run five times
    on a connection, and PostgreSQL may then keep one generic plan for it, chosen from the statistics of
    that moment. Prepared while ``message_status_events`` was small, the status application's
    ``vendor = … AND vendor_message_id IN (…)`` lookup kept scanning the table as it grew (0.15 → 0.4 s a
    lookup within one 100,000-event ``webhook_ingest``: 3× slower). Each statement is planned for its
    own values, as psycopg2 always did. (``plan_cache_mode = force_custom_plan`` would do it too, but it
    also re-plans every statement of the PL/pgSQL triggers on each row: the HSM send 2–3× slower.)"""
    driver = getattr(dbapi_conn, "driver_connection", dbapi_conn)
    if hasattr(driver, "prepare_threshold"):  # psycopg 3; psycopg2 never prepares
        driver.prepare_threshold = None
    cursor = dbapi_conn.cursor()
    cursor.execute(f"SET statement_timeout = {STATEMENT_TIMEOUT_MS}")
    cursor.execute(f"SET lock_timeout = {LOCK_TIMEOUT_MS}")
    cursor.close()
    dbapi_conn.commit()


class Warehouse:
    """Reads and writes the warehouse tables."""

    def __init__(self, engine: sa.Engine):
        self.engine = engine
        engine.hide_parameters = True  # also for engines made elsewhere: no bound value in any error
        if engine.dialect.name == "sqlite":
            sa.event.listen(engine, "connect", _sqlite_pragmas)
        elif engine.dialect.name == "postgresql":
            sa.event.listen(engine, "connect", _postgres_session)

    @classmethod
    def from_connection(cls, conn_id: str = WAREHOUSE_CONN_ID, **engine_kwargs: Any) -> Warehouse:
        """Build from an Airflow connection of type ``sqlite`` or ``postgres`` (common-sql hooks);
        ``engine_kwargs`` add to :data:`ENGINE_KWARGS` (e.g. a pool size)."""
        from airflow.sdk import BaseHook

        hook = BaseHook.get_connection(conn_id).get_hook()
        return cls(hook.get_sqlalchemy_engine(engine_kwargs={**ENGINE_KWARGS, **engine_kwargs}))

    @classmethod
    def from_url(cls, url: str) -> Warehouse:
        return cls(sa.create_engine(url, **ENGINE_KWARGS))

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    def migrate(self) -> list[int]:
        return migrate(self.engine)

    @contextmanager
    def begin(self) -> Iterator[sa.Connection]:
        """One transaction: everything in it lands together or not at all."""
        with self.engine.begin() as conn:
            yield conn

    @contextmanager
    def read_only(self, *, interactive: bool = False) -> Iterator[sa.Connection]:
        """One read-only transaction: the database itself refuses every write in it (PostgreSQL
        ``SET TRANSACTION READ ONLY`` as its first statement, SQLite ``PRAGMA query_only = ON``).
        Always rolled back at the end; on SQLite the pooled connection goes back writable for its
        next user (``PRAGMA query_only = OFF``, then rolled back too). ``interactive``: someone waits
        for the answer (the page) — PostgreSQL's JIT compilation is off in it (``SET LOCAL jit``): for
        a plan of many joins over a big table it compiles for longer than the query then runs (on a
        2 M-send history, 0.25 s of a campaign page's 0.4 s)."""
        sqlite = self.dialect == "sqlite"
        with self.engine.connect() as conn:
            conn.exec_driver_sql("PRAGMA query_only = ON" if sqlite else "SET TRANSACTION READ ONLY")
            if interactive and not sqlite:
                conn.exec_driver_sql("SET LOCAL jit = off")
            try:
                yield conn
            finally:
                conn.rollback()
                if sqlite:
                    conn.exec_driver_sql("PRAGMA query_only = OFF")
                    conn.rollback()

    # ---- writes --------------------------------------------------------------------------------
    def insert(self, table: sa.Table):
        """The dialect's INSERT, which knows ``on_conflict_do_nothing/do_update``."""
        return (postgresql.insert if self.dialect == "postgresql" else sqlite.insert)(table)

    def upsert(
        self,
        conn: sa.Connection,
        table: sa.Table,
        rows: Sequence[Mapping[str, Any]],
        *,
        keys: Sequence[str],
        update: Sequence[str] | None = None,
    ) -> None:
        """Insert rows; on a key conflict update ``update`` columns (all non-key ones by default)."""
        if not rows:
            return
        stmt = self.insert(table)
        columns = update if update is not None else [c for c in rows[0] if c not in keys]
        if columns:
            stmt = stmt.on_conflict_do_update(index_elements=list(keys), set_={c: stmt.excluded[c] for c in columns})
        else:
            stmt = stmt.on_conflict_do_nothing(index_elements=list(keys))
        for start in range(0, len(rows), BULK_CHUNK):
            conn.execute(stmt, list(rows[start : start + BULK_CHUNK]))

    def insert_new(
        self,
        conn: sa.Connection,
        table: sa.Table,
        rows: Sequence[Mapping[str, Any]],
        *,
        keys: Sequence[str] | None = None,
        count: bool = False,
    ) -> int | None:
        """Insert rows, silently keeping the existing row on a key (or unique) conflict.

        ``count=True`` returns how many rows were new (``RETURNING``: exact on both databases,
        without counting the table); bulk loads leave it off.
        """
        if not rows:
            return 0 if count else None
        stmt = self.insert(table).on_conflict_do_nothing(index_elements=list(keys) if keys else None)
        if count:
            stmt = stmt.returning(table.primary_key.columns.values()[0])
        new = 0
        for start in range(0, len(rows), BULK_CHUNK):
            result = conn.execute(stmt, list(rows[start : start + BULK_CHUNK]))
            if count:
                new += len(result.all())
        return new if count else None

    def bulk_insert_new(
        self, conn: sa.Connection, table: sa.Table, rows: Sequence[Mapping[str, Any]], *, keys: Sequence[str]
    ) -> int:
        """:meth:`insert_new` for big loads of rows with the same columns, straight through the driver:
        values are converted once by the columns' own bind processors, then one prepared statement runs
        ``executemany`` on SQLite; on PostgreSQL psycopg 3 ``COPY``s the rows into a temporary table
        (dropped at commit) and one ``INSERT … SELECT … ON CONFLICT DO NOTHING`` moves them, psycopg2
        gets ``execute_values`` pages; all in ``conn``'s transaction. Skips SQLAlchemy's per-row parameter
        handling, the costly part of a bulk load. Returns how many rows were new."""
        if not rows:
            return 0
        columns = list(rows[0])
        dialect = conn.dialect
        processors = [table.c[c].type.dialect_impl(dialect).bind_processor(dialect) for c in columns]
        pick = operator.itemgetter(*columns)
        data = [list(pick(row)) if len(columns) > 1 else [pick(row)] for row in rows]
        for index, process in enumerate(processors):
            if process is not None:  # only some columns convert (timestamps, JSON): column by column
                for values in data:
                    values[index] = process(values[index])
        names = ", ".join(dialect.identifier_preparer.quote(c) for c in columns)
        conflict = f"ON CONFLICT ({', '.join(keys)}) DO NOTHING"
        mark = "?" if dialect.paramstyle == "qmark" else "%s"
        sql = f"INSERT INTO {table.name} ({names}) VALUES ({', '.join([mark] * len(columns))}) {conflict}"
        cursor = conn.connection.dbapi_connection.cursor()  # the driver, inside conn's transaction
        try:
            if dialect.driver == "psycopg2":  # one statement per row otherwise: send pages of rows
                from psycopg2.extras import execute_values

                sql = f"INSERT INTO {table.name} ({names}) VALUES %s {conflict} RETURNING 1"
                return len(execute_values(cursor, sql, data, page_size=BULK_CHUNK, fetch=True))
            if dialect.driver == "psycopg":  # COPY into a private temporary table, then one INSERT
                load = f"bulk_load_{table.name}"
                cursor.execute(
                    f"CREATE TEMPORARY TABLE IF NOT EXISTS {load} ON COMMIT DROP AS "
                    f"SELECT {names} FROM {table.name} WITH NO DATA"
                )
                with cursor.copy(f"COPY {load} ({names}) FROM STDIN") as copy:
                    for values in data:
                        copy.write_row(values)
                cursor.execute(f"INSERT INTO {table.name} ({names}) SELECT {names} FROM {load} {conflict}")
                new = cursor.rowcount
                cursor.execute(f"TRUNCATE {load}")  # the same transaction may load again
                return new
            cursor.executemany(sql, data)  # sqlite3: one prepared statement
            return cursor.rowcount
        finally:
            cursor.close()

    # ---- reads ---------------------------------------------------------------------------------
    def count(self, table: sa.Table | str, where: Any = None) -> int:
        table = schema.metadata.tables[table] if isinstance(table, str) else table
        query = sa.select(sa.func.count()).select_from(table)
        if where is not None:
            query = query.where(where)
        with self.engine.connect() as conn:
            return int(conn.execute(query).scalar_one())

    def rows(self, query: sa.Select | sa.Table) -> list[dict[str, Any]]:
        if isinstance(query, sa.Table):
            query = sa.select(query)
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(query)]

    def table_counts(self, names: Iterable[str] | None = None) -> dict[str, int]:
        names = names or [t.name for t in schema.metadata.sorted_tables if t.name != "schema_migrations"]
        return {name: self.count(name) for name in names}


def open_warehouse(conn_id: str = WAREHOUSE_CONN_ID) -> Warehouse:
    """The warehouse of a task, with its schema brought up to date (a no-op once current)."""
    warehouse = Warehouse.from_connection(conn_id)
    warehouse.migrate()
    return warehouse


def in_values(conn: sa.Connection, column: sa.Column, values: Sequence[Any]) -> sa.ColumnElement[bool]:
    """``column IN values`` for a long list of values (a chunk of keys, ids or phones). PostgreSQL gets
    one array parameter, ``column = ANY(:values)``, which it answers from the column's index as it
    does an ``IN`` list: SQLAlchemy's expanding ``IN`` renders a placeholder and a cast per value on
    every execution and psycopg parses the 500-parameter text again (~15 ms of client CPU a lookup of
    500 phones; ~1 ms as one array). SQLite: the ``IN`` list (in process, cheap)."""
    if conn.dialect.name == "postgresql":
        return column == sa.any_(sa.bindparam(None, list(values), type_=postgresql.ARRAY(column.type)))
    return column.in_(list(values))


def update_each(
    conn: sa.Connection,
    rows: Sequence[Mapping[str, Any]],
    types: Mapping[str, sa.types.TypeEngine],
    update: Callable[[Mapping[str, Any]], sa.Update],
    key: tuple[str, sa.Column],
) -> int:
    """Apply ``rows`` (each one value per name of ``types``) with the ``UPDATE`` that ``update(values)``
    makes, ``values`` naming each value as a column; it must find a row's target by ``key`` (the name of
    a value, the column equal to it), no two rows may share that value, and no value may be named like a
    column of the table (``executemany`` would set that column from it). In ``conn``'s transaction;
    returns the rows updated.

    SQLite: one prepared statement run per row (in process, cheap). PostgreSQL: one statement per
    :data:`BULK_CHUNK` rows over ``unnest`` of one typed array per value — a statement per row is a
    round trip and a run of the table's statement triggers per row. The arrays are constants, so the
    planner knows their length: one key lookup per row on a big table (a scan only where the table is
    small enough to cost less). Naming the targets again by ``column = ANY(keys)`` was tried: the planner
    then joined each target row to every array row (5,000 answers: 25 M comparisons, 17 s). The
    statement's shape does not change with the number of rows, so it is compiled once."""
    if not rows:
        return 0
    name, column = key
    if clash := set(types) & set(column.table.c.keys()):  # SQLAlchemy would SET a column from a value of its name
        raise ValueError(f"values named like columns of {column.table.name}: {sorted(clash)}")
    if len({row[name] for row in rows}) != len(rows):
        raise ValueError(f"two rows update the same {column.name}: apply them in order instead")
    if conn.dialect.name != "postgresql":
        statement = update({n: sa.bindparam(n, type_=t) for n, t in types.items()})
        return conn.execute(statement, [{n: row[n] for n in types} for row in rows]).rowcount

    # each array typed (the dialect writes ``%(k)s::VARCHAR[]``): a column all NULL in a chunk stays typed
    arrays = (sa.bindparam(n, type_=postgresql.ARRAY(t)) for n, t in types.items())
    values = sa.func.unnest(*arrays).table_valued(*types).render_derived(name="each_row")
    statement = update(values.c)
    # in key order: under the plan of a big table (a key lookup per row, in the arrays' order) rows lock in
    # key order; a scan locks them in the table's
    rows = sorted(rows, key=lambda row: row[name])
    updated = 0
    for start in range(0, len(rows), BULK_CHUNK):
        chunk = rows[start : start + BULK_CHUNK]
        updated += conn.execute(statement, {n: [row[n] for row in chunk] for n in types}).rowcount
    return updated
