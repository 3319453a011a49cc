"""Counts kept as data arrives (migration 11): ``message_counts`` holds how many ``outbound_messages`` rows
are in each (day of creation, vendor, state, delivery status, account, template or type, file), so the
page, the report and ``report_delivery_funnel`` read a few thousand rows instead of grouping the ledger.

**Who keeps it: the database.** Triggers on ``outbound_messages`` add a signed count for every row
inserted, moved or deleted, inside the writer's own transaction: a count changes exactly when the rows it
stands for commit, whichever code path wrote them (ledger moves, status events, cancels, releases, an
analyst's ``UPDATE``), a rollback or a kill takes both away, and no writer can forget to call anything.

* **SQLite** (one writer at a time): row triggers add ±1 to the key's one row, one UPSERT each (a
  unique index over the key).
* **PostgreSQL**: statement triggers with transition tables insert one row per key a statement changed
  (its net count; nothing for a statement that moved no count, e.g. a claim's ``claimed_by``). Rows are
  only ever *inserted* by writers, never updated, so two writers never wait on each other nor deadlock
  on a shared counter row. :func:`compact` folds a key's rows into one (one statement: a deleted row is
  summed in the same snapshot, a row committed meanwhile is left for the next time).

A key's count is the SUM of its rows. :func:`check` compares every key with a ``GROUP BY`` over the ledger
(one statement, one snapshot: a writer commits both its rows and its counts or neither) and
:func:`repair` inserts the difference; ``messaging_maintenance`` runs both daily (``aggregates_checked``),
so even a count written by hand cannot drift for more than a day.
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa

TABLE = "message_counts"
#: Rows a count stands for: every ``outbound_messages`` row but those still staged (a file being read is
#: not yet a message; its staged rows are promoted or deleted when the file ends).
COUNTED_ROWS = "state <> 'staged'"
#: The key columns of ``message_counts``, in order.
KEY = ("day", "vendor", "state", "delivery_status", "account_id", "template_or_type", "file_sha256")
#: Keys compared with ``=`` (never NULL) and with ``IS`` (nullable).
_NOT_NULL = ("day", "vendor", "state")


def _key_of(row: str, dialect: str) -> dict[str, str]:
    """SQL for each key column of an ``outbound_messages`` row (alias ``row``: ``NEW``, ``o`` …)."""
    prefix = f"{row}." if row else ""
    day = (
        f"CAST(({prefix}created_at AT TIME ZONE 'UTC') AS DATE)"
        if dialect == "postgresql"
        else f"date({prefix}created_at)"
    )
    return {
        "day": day,
        "vendor": f"{prefix}vendor",
        "state": f"{prefix}state",
        "delivery_status": f"{prefix}delivery_status",
        "account_id": f"{prefix}account_id",
        "template_or_type": f"COALESCE({prefix}template_name, {prefix}content_type)",
        "file_sha256": f"{prefix}file_sha256",
    }


def _columns() -> str:
    return ", ".join((*KEY, "messages"))


def _grouped_ledger(dialect: str, sign: str = "") -> str:
    """``SELECT <key>, COUNT(*)`` over the whole ledger: what every count must equal."""
    key = _key_of("", dialect)
    return (
        f"SELECT {', '.join(f'{expr} AS {name}' for name, expr in key.items())}, {sign}COUNT(*) AS messages "
        f"FROM outbound_messages WHERE {COUNTED_ROWS} GROUP BY {', '.join(key.values())}"
    )


# ---- the triggers ----------------------------------------------------------------------------------------
#: SQLite keeps one row per key: a unique index over the key, its NULLs made comparable (a UNIQUE index
#: holds NULLs distinct), so each change is one UPSERT.
_SQLITE_KEY = (
    "day",
    "vendor",
    "state",
    "COALESCE(delivery_status, '')",
    "COALESCE(account_id, -1)",
    "COALESCE(template_or_type, '')",
    "COALESCE(file_sha256, '')",
)
_SQLITE_UNIQUE = f"CREATE UNIQUE INDEX ux_message_counts_key ON {TABLE} ({', '.join(_SQLITE_KEY)})"
_SQLITE_UPSERT = f"ON CONFLICT ({', '.join(_SQLITE_KEY)}) DO UPDATE SET messages = messages + excluded.messages"


def _sqlite_add(row: str, amount: int) -> str:
    """SQLite trigger body: add ``amount`` to the count of ``row``'s key (one UPSERT)."""
    key = _key_of(row, "sqlite")
    return f"INSERT INTO {TABLE} ({_columns()}) VALUES ({', '.join(key.values())}, {amount}) {_SQLITE_UPSERT};\n"


#: ``outbound_messages`` columns a count depends on (an UPDATE of no other column fires the SQLite trigger).
_COUNTED = ("created_at", "vendor", "state", "delivery_status", "account_id", "template_name", "content_type", "file_sha256")


def _sqlite_triggers() -> list[str]:
    changed = " OR ".join(f"OLD.{c} IS NOT NEW.{c}" for c in _COUNTED)
    counted = {row: f"{row}.{COUNTED_ROWS}" for row in ("OLD", "NEW")}
    on = f"AFTER UPDATE OF {', '.join(_COUNTED)} ON outbound_messages"
    # an update of a counted row to a counted row moves a count; from or to a staged row only one side
    return [
        _SQLITE_UNIQUE,
        f"CREATE TRIGGER message_counts_insert AFTER INSERT ON outbound_messages WHEN {counted['NEW']} "
        f"BEGIN\n{_sqlite_add('NEW', 1)}END",
        f"CREATE TRIGGER message_counts_delete AFTER DELETE ON outbound_messages WHEN {counted['OLD']} "
        f"BEGIN\n{_sqlite_add('OLD', -1)}END",
        f"CREATE TRIGGER message_counts_update {on} WHEN {counted['OLD']} AND {counted['NEW']} AND ({changed}) "
        f"BEGIN\n{_sqlite_add('OLD', -1)}{_sqlite_add('NEW', 1)}END",
        f"CREATE TRIGGER message_counts_counted {on} WHEN NOT {counted['OLD']} AND {counted['NEW']} "
        f"BEGIN\n{_sqlite_add('NEW', 1)}END",
        f"CREATE TRIGGER message_counts_uncounted {on} WHEN {counted['OLD']} AND NOT {counted['NEW']} "
        f"BEGIN\n{_sqlite_add('OLD', -1)}END",
    ]


def _postgres_delta(select: str) -> str:
    """A PostgreSQL trigger function inserting, per key, the net count of ``select`` (``<key>, n`` rows)."""
    return (
        f"INSERT INTO {TABLE} ({_columns()}) SELECT {', '.join(KEY)}, SUM(n) FROM ({select}) delta "
        f"GROUP BY {', '.join(KEY)} HAVING SUM(n) <> 0;"
    )


def _postgres_rows(table: str, sign: str) -> str:
    key = _key_of("", "postgresql")
    return f"SELECT {', '.join(f'{e} AS {n}' for n, e in key.items())}, {sign}1 AS n FROM {table} WHERE {COUNTED_ROWS}"


def _postgres_triggers() -> list[str]:
    functions = {
        "message_counts_inserted": _postgres_delta(_postgres_rows("new_rows", "")),
        "message_counts_deleted": _postgres_delta(_postgres_rows("old_rows", "-")),
        "message_counts_updated": _postgres_delta(
            f"{_postgres_rows('new_rows', '')} UNION ALL {_postgres_rows('old_rows', '-')}"
        ),
        # TRUNCATE fires no row or DELETE trigger: the counts go with the rows
        "message_counts_truncated": f"DELETE FROM {TABLE};",
    }
    statements = [
        f"CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN {body} RETURN NULL; END $$"
        for name, body in functions.items()
    ]
    return [
        *statements,
        "CREATE TRIGGER message_counts_insert AFTER INSERT ON outbound_messages REFERENCING NEW TABLE AS new_rows "
        "FOR EACH STATEMENT EXECUTE FUNCTION message_counts_inserted()",
        "CREATE TRIGGER message_counts_delete AFTER DELETE ON outbound_messages REFERENCING OLD TABLE AS old_rows "
        "FOR EACH STATEMENT EXECUTE FUNCTION message_counts_deleted()",
        "CREATE TRIGGER message_counts_update AFTER UPDATE ON outbound_messages "
        "REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows "
        "FOR EACH STATEMENT EXECUTE FUNCTION message_counts_updated()",
        "CREATE TRIGGER message_counts_truncate AFTER TRUNCATE ON outbound_messages "
        "FOR EACH STATEMENT EXECUTE FUNCTION message_counts_truncated()",
    ]


def trigger_statements(dialect: str) -> list[str]:
    """The DDL that makes the database keep ``message_counts`` (migration 11)."""
    return _postgres_triggers() if dialect == "postgresql" else _sqlite_triggers()


# ---- the view --------------------------------------------------------------------------------------------
def delivery_funnel_view(dialect: str) -> str:
    """``report_delivery_funnel`` over ``message_counts``: the columns and numbers of its definition over
    the ledger (``views.delivery_funnel_over_ledger``); a group whose rows are all gone is gone."""

    def count(condition: str | None = None) -> str:
        inner = f"CASE WHEN {condition} THEN messages ELSE 0 END" if condition else "messages"
        return f"CAST(SUM({inner}) AS BIGINT)"

    return f"""CREATE VIEW report_delivery_funnel AS
SELECT vendor, account_id, template_or_type, day,
       {count()} AS messages,
       {count("state = 'accepted'")} AS accepted,
       {count("delivery_status IN ('sent', 'delivered', 'read')")} AS sent,
       {count("delivery_status IN ('delivered', 'read')")} AS delivered,
       {count("delivery_status = 'read'")} AS read_count,
       {count("delivery_status = 'failed'")} AS failed,
       {count("state = 'rejected'")} AS rejected_by_vendor,
       {count("state = 'unknown'")} AS unknown,
       {count("state IN ('pending', 'scheduled', 'sending')")} AS waiting
FROM {TABLE}
GROUP BY vendor, account_id, template_or_type, day
HAVING SUM(messages) <> 0"""


# ---- check, repair, compact ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Drift:
    """A key whose count differs from the ledger: ``missing`` = ledger rows − counted rows."""

    key: tuple
    missing: int


def _difference(dialect: str) -> str:
    return (
        f"SELECT {', '.join(KEY)}, SUM(messages) AS missing FROM ("
        f"{_grouped_ledger(dialect)} UNION ALL SELECT {', '.join(KEY)}, -messages FROM {TABLE}"
        f") both_sides GROUP BY {', '.join(KEY)} HAVING SUM(messages) <> 0"
    )


def check(conn: sa.Connection) -> list[Drift]:
    """Every key whose count differs from a ``GROUP BY`` over ``outbound_messages`` (one statement)."""
    rows = conn.execute(sa.text(_difference(conn.dialect.name)))
    return [Drift(tuple(row[: len(KEY)]), int(row[len(KEY)])) for row in rows]


def repair(conn: sa.Connection) -> int:
    """Add the difference of every drifted key (one ``INSERT … SELECT``: the same snapshot as the check,
    so a writer committing meanwhile is counted once, by its own trigger). Returns the keys repaired."""
    dialect = conn.dialect.name
    # SQLite: INSERT … SELECT needs a WHERE before an ON CONFLICT (its parser's rule)
    upsert = f"WHERE true {_SQLITE_UPSERT}" if dialect == "sqlite" else ""
    return conn.execute(sa.text(f"INSERT INTO {TABLE} ({_columns()}) SELECT * FROM ({_difference(dialect)}) d {upsert}")).rowcount


def fold(conn: sa.Connection, table: str, key: tuple[str, ...]) -> int:
    """Fold each key's rows of a table of signed counts (``messages``) into one and drop keys counting
    nothing; returns the rows removed. Safe beside writers: PostgreSQL deletes and re-inserts in one
    statement (what it deletes is what it sums); SQLite keeps one row per key already (its triggers
    UPSERT), so only its keys counting nothing go."""
    keys = ", ".join(key)
    before = int(conn.execute(sa.text(f"SELECT COUNT(*) FROM {table}")).scalar_one())
    if conn.dialect.name == "postgresql":
        conn.execute(
            sa.text(
                f"WITH gone AS (DELETE FROM {table} RETURNING {keys}, messages) "
                f"INSERT INTO {table} ({keys}, messages) SELECT {keys}, SUM(messages) FROM gone "
                f"GROUP BY {keys} HAVING SUM(messages) <> 0"
            )
        )
    else:
        conn.execute(sa.text(f"DELETE FROM {table} WHERE messages = 0"))
    after = int(conn.execute(sa.text(f"SELECT COUNT(*) FROM {table}")).scalar_one())
    return before - after


def compact(conn: sa.Connection) -> int:
    """Fold each key's rows of ``message_counts`` into one (:func:`fold`); returns the rows removed."""
    return fold(conn, TABLE, KEY)


def maintain(warehouse) -> dict[str, int]:
    """The maintenance DAG's step: check, repair what drifted, compact; returns the counts of each."""
    with warehouse.begin() as conn:
        drifts = check(conn)
        repaired = repair(conn) if drifts else 0
    with warehouse.begin() as conn:
        removed = compact(conn)
    return {"keys_drifted": len(drifts), "keys_repaired": repaired, "rows_compacted": removed}
