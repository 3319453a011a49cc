"""Why messages failed, kept as data arrives (migration 14): ``report_failure_reasons``' delivery stage is
the number of distinct messages with a ``failed`` status event per (vendor, reason), the reason being the
vendor's error where it gave one, else its status text. Counting that over the events reads every failed
event of the history on each view (a year: hundreds of thousands), so two tables keep it:

* ``failed_messages``: one row per (vendor, vendor message id, reason) that has a failed event — the
  distinct part, exact beside concurrent writers: a second writer's insert of the same row waits on its
  primary key for the first to commit, then does nothing;
* ``failure_counts``: signed counts of those rows per (vendor, reason), as ``message_counts``
  (``warehouse.aggregates``): SQLite keeps one row per key (UPSERT), PostgreSQL only ever inserts rows
  (two writers never wait on a shared counter), folded daily by :func:`maintain`.

**Who keeps them: the database**, in the writer's own transaction, whichever code wrote the event:

* a failed event inserted adds its (message, reason) row if new; deleted, or its status, reason or ids
  changed, removes its old row when no other failed event of the message has that reason (then adds the
  new one); a ``TRUNCATE`` (PostgreSQL) empties both tables. Only failed events run a trigger body
  (``WHEN`` guards: the other 98 % of events cost nothing);
* a ``failed_messages`` row inserted, deleted or moved adds ±1 to its key's count (PostgreSQL: one
  statement trigger per statement, so a bulk fill counts in one ``GROUP BY``).

One case no trigger sees: on PostgreSQL, a failed event deleted while another of the same message and
reason is inserted, uncommitted, in another transaction (events are not deleted by the pipeline; an
analyst's clean-up could). :func:`check` compares both tables with the events (one snapshot on SQLite)
and :func:`repair` mends them; ``messaging_maintenance`` runs both daily (``failures_checked``).
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa

from latam_messaging.warehouse.aggregates import fold

MESSAGES = "failed_messages"
COUNTS = "failure_counts"
#: ``failed_messages``' columns (its primary key) and ``failure_counts``' key.
MESSAGE_KEY = ("vendor", "vendor_message_id", "reason")
COUNT_KEY = ("vendor", "reason")
#: What a message failed for, of an event row (alias ``row``: ``NEW``, ``OLD``, ``e`` …).
REASON = "COALESCE({row}.reason, {row}.raw_status)"
#: The events these tables stand for.
FAILED = "{row}.status = 'failed'"
#: ``message_status_events`` columns a failed message's row depends on.
_WATCHED = ("vendor", "vendor_message_id", "status", "reason", "raw_status")


def _values(row: str) -> str:
    return f"{row}.vendor, {row}.vendor_message_id, {REASON.format(row=row)}"


def _add(row: str) -> str:
    """Trigger statement: ``row``'s (message, reason) added when it is a failed event and new."""
    # the UPSERT form, not INSERT OR IGNORE: SQLite lets an outer statement's OR clause override a trigger's
    return (
        f"INSERT INTO {MESSAGES} ({', '.join(MESSAGE_KEY)}) SELECT {_values(row)} "
        f"WHERE {FAILED.format(row=row)} ON CONFLICT DO NOTHING;"
    )


def _remove(row: str) -> str:
    """Trigger statement: ``row``'s (message, reason) removed when it was a failed event and no other
    failed event of the message has that reason (found by ``uq_status_event``: vendor, id, status)."""
    reason = REASON.format(row=row)
    other = (
        f"SELECT 1 FROM message_status_events e WHERE e.vendor = {row}.vendor "
        f"AND e.vendor_message_id = {row}.vendor_message_id AND {FAILED.format(row='e')} "
        f"AND {REASON.format(row='e')} = {reason}"
    )
    return (
        f"DELETE FROM {MESSAGES} WHERE {FAILED.format(row=row)} AND vendor = {row}.vendor "
        f"AND vendor_message_id = {row}.vendor_message_id AND reason = {reason} AND NOT EXISTS ({other});"
    )


def _changed(columns: tuple[str, ...], dialect: str) -> str:
    differ = "IS DISTINCT FROM" if dialect == "postgresql" else "IS NOT"
    return " OR ".join(f"OLD.{c} {differ} NEW.{c}" for c in columns)


def _event_when(dialect: str) -> dict[str, str]:
    """The ``WHEN`` of the events' triggers: only a failed event (before or after) runs one."""
    either = f"({FAILED.format(row='OLD')} OR {FAILED.format(row='NEW')})"
    return {
        "insert": FAILED.format(row="NEW"),
        "delete": FAILED.format(row="OLD"),
        "update": f"{either} AND ({_changed(_WATCHED, dialect)})",
    }


# ---- SQLite: row triggers ---------------------------------------------------------------------------------
_SQLITE_UNIQUE = f"CREATE UNIQUE INDEX ux_failure_counts_key ON {COUNTS} ({', '.join(COUNT_KEY)})"


def _sqlite_count(row: str, amount: int) -> str:
    return (
        f"INSERT INTO {COUNTS} (vendor, reason, messages) VALUES ({row}.vendor, {row}.reason, {amount}) "
        f"ON CONFLICT (vendor, reason) DO UPDATE SET messages = messages + excluded.messages;"
    )


def _sqlite_triggers() -> list[str]:
    when = _event_when("sqlite")
    events = "message_status_events"
    watched = ", ".join(_WATCHED)
    return [
        _SQLITE_UNIQUE,
        f"CREATE TRIGGER {MESSAGES}_event_insert AFTER INSERT ON {events} WHEN {when['insert']} "
        f"BEGIN\n{_add('NEW')}\nEND",
        f"CREATE TRIGGER {MESSAGES}_event_delete AFTER DELETE ON {events} WHEN {when['delete']} "
        f"BEGIN\n{_remove('OLD')}\nEND",
        f"CREATE TRIGGER {MESSAGES}_event_update AFTER UPDATE OF {watched} ON {events} WHEN {when['update']} "
        f"BEGIN\n{_remove('OLD')}\n{_add('NEW')}\nEND",
        f"CREATE TRIGGER {COUNTS}_insert AFTER INSERT ON {MESSAGES} BEGIN\n{_sqlite_count('NEW', 1)}\nEND",
        f"CREATE TRIGGER {COUNTS}_delete AFTER DELETE ON {MESSAGES} BEGIN\n{_sqlite_count('OLD', -1)}\nEND",
        f"CREATE TRIGGER {COUNTS}_update AFTER UPDATE OF vendor, reason ON {MESSAGES} "
        f"WHEN {_changed(COUNT_KEY, 'sqlite')} BEGIN\n{_sqlite_count('OLD', -1)}\n{_sqlite_count('NEW', 1)}\nEND",
    ]


# ---- PostgreSQL: row triggers on the events, statement triggers on failed_messages ------------------------
def _postgres_delta(select: str) -> str:
    """Insert, per key, the net count of ``select`` (``vendor, reason, n`` rows)."""
    return (
        f"INSERT INTO {COUNTS} (vendor, reason, messages) SELECT vendor, reason, SUM(n) FROM ({select}) delta "
        f"GROUP BY vendor, reason HAVING SUM(n) <> 0;"
    )


def _postgres_triggers() -> list[str]:
    when = _event_when("postgresql")
    events = "message_status_events"
    function = f"{MESSAGES}_of_event"
    body = (
        f"IF TG_OP IN ('DELETE', 'UPDATE') THEN {_remove('OLD')} END IF; "
        f"IF TG_OP IN ('INSERT', 'UPDATE') THEN {_add('NEW')} END IF;"
    )
    counted = {
        f"{COUNTS}_inserted": _postgres_delta("SELECT vendor, reason, 1 AS n FROM new_rows"),
        f"{COUNTS}_deleted": _postgres_delta("SELECT vendor, reason, -1 AS n FROM old_rows"),
        f"{COUNTS}_updated": _postgres_delta(
            "SELECT vendor, reason, 1 AS n FROM new_rows UNION ALL SELECT vendor, reason, -1 FROM old_rows"
        ),
        # TRUNCATE fires no row or DELETE trigger: the counts (and the messages of the events) go with the rows
        f"{COUNTS}_truncated": f"DELETE FROM {COUNTS};",
        f"{MESSAGES}_truncated": f"DELETE FROM {MESSAGES}; DELETE FROM {COUNTS};",
    }
    functions = {function: body, **counted}
    transition = {"insert": "NEW TABLE AS new_rows", "delete": "OLD TABLE AS old_rows",
                  "update": "OLD TABLE AS old_rows NEW TABLE AS new_rows"}
    return [
        *(
            f"CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN {text} RETURN NULL; END $$"
            for name, text in functions.items()
        ),
        *(
            f"CREATE TRIGGER {MESSAGES}_event_{op} AFTER {op.upper()} ON {events} "
            f"FOR EACH ROW WHEN ({when[op]}) EXECUTE FUNCTION {function}()"
            for op in ("insert", "delete", "update")
        ),
        f"CREATE TRIGGER {MESSAGES}_event_truncate AFTER TRUNCATE ON {events} "
        f"FOR EACH STATEMENT EXECUTE FUNCTION {MESSAGES}_truncated()",
        *(
            f"CREATE TRIGGER {COUNTS}_{op} AFTER {op.upper()} ON {MESSAGES} REFERENCING {transition[op]} "
            f"FOR EACH STATEMENT EXECUTE FUNCTION {COUNTS}_{done}()"
            for op, done in (("insert", "inserted"), ("delete", "deleted"), ("update", "updated"))
        ),
        f"CREATE TRIGGER {COUNTS}_truncate AFTER TRUNCATE ON {MESSAGES} "
        f"FOR EACH STATEMENT EXECUTE FUNCTION {COUNTS}_truncated()",
    ]


def trigger_statements(dialect: str) -> list[str]:
    """The DDL that makes the database keep ``failed_messages`` and ``failure_counts`` (migration 14)."""
    return _postgres_triggers() if dialect == "postgresql" else _sqlite_triggers()


# ---- the view ---------------------------------------------------------------------------------------------
def delivery_failures() -> str:
    """``report_failure_reasons``' delivery stage over the kept counts: its columns and numbers over the
    events (``views.failure_reasons_over_events``); a reason whose messages are all gone is gone."""
    return (
        f"SELECT vendor, 'delivery' AS stage, reason, CAST(SUM(messages) AS BIGINT) AS messages FROM {COUNTS} "
        f"GROUP BY vendor, reason HAVING SUM(messages) <> 0"
    )


# ---- check, repair, rebuild -------------------------------------------------------------------------------
#: Every (message, reason) the events make now (what ``failed_messages`` must hold).
EVERY_FAILED_MESSAGE = (
    f"SELECT DISTINCT vendor, vendor_message_id, {REASON.format(row='e')} AS reason "
    f"FROM message_status_events e WHERE {FAILED.format(row='e')}"
)


def _difference(made: str, kept: str, key: tuple[str, ...], kept_n: str) -> str:
    """Rows of ``key`` whose ``made`` count (1 per row) differs from ``kept``'s (``kept_n`` per row)."""
    columns = ", ".join(key)
    return (
        f"SELECT {columns}, SUM(n) AS missing FROM (SELECT {columns}, 1 AS n FROM ({made}) made "
        f"UNION ALL SELECT {columns}, -{kept_n} FROM {kept}) both_sides GROUP BY {columns} HAVING SUM(n) <> 0"
    )


_MESSAGES_DIFFERENCE = _difference(EVERY_FAILED_MESSAGE, MESSAGES, MESSAGE_KEY, "1")
_COUNTS_DIFFERENCE = _difference(f"SELECT vendor, reason FROM {MESSAGES}", COUNTS, COUNT_KEY, "messages")


@dataclass(frozen=True)
class Drift:
    """A row of ``table`` that differs from what the rows under it make: ``missing`` = made − kept."""

    table: str
    key: tuple
    missing: int


def check(conn: sa.Connection) -> list[Drift]:
    """Every (message, reason) ``failed_messages`` lacks or holds without a failed event, and every count
    of ``failure_counts`` that differs from ``failed_messages``."""
    return [
        Drift(table, tuple(row[:-1]), int(row[-1]))
        for table, sql in ((MESSAGES, _MESSAGES_DIFFERENCE), (COUNTS, _COUNTS_DIFFERENCE))
        for row in conn.execute(sa.text(sql))
    ]


def repair(conn: sa.Connection) -> int:
    """Mend both tables: the (message, reason) rows missing added and those without a failed event removed
    (their triggers move the counts), then any count still differing given its difference (the same
    statement's snapshot: a writer committing meanwhile is counted once, by its own trigger). Returns the
    rows changed."""
    missing, extra = (
        f"SELECT {', '.join(MESSAGE_KEY)} FROM ({_MESSAGES_DIFFERENCE}) d WHERE missing {sign} 0"
        for sign in (">", "<")
    )
    columns = ", ".join(MESSAGE_KEY)
    changed = conn.execute(sa.text(f"DELETE FROM {MESSAGES} WHERE ({columns}) IN ({extra})")).rowcount
    changed += conn.execute(
        sa.text(f"INSERT INTO {MESSAGES} ({columns}) {missing} ON CONFLICT DO NOTHING")
    ).rowcount
    upsert = "WHERE true ON CONFLICT (vendor, reason) DO UPDATE SET messages = messages + excluded.messages"
    tail = upsert if conn.dialect.name == "sqlite" else ""
    changed += conn.execute(
        sa.text(f"INSERT INTO {COUNTS} (vendor, reason, messages) SELECT * FROM ({_COUNTS_DIFFERENCE}) d {tail}")
    ).rowcount
    return changed


def rebuild(conn: sa.Connection) -> int:
    """Both tables computed from the events (migration 14, the benchmark's history filled with the events'
    triggers off): emptied, then every (message, reason) inserted in one statement, counted by its
    triggers. Returns the messages written."""
    conn.execute(sa.text(f"DELETE FROM {MESSAGES}"))
    conn.execute(sa.text(f"DELETE FROM {COUNTS}"))
    return conn.execute(sa.text(f"INSERT INTO {MESSAGES} ({', '.join(MESSAGE_KEY)}) {EVERY_FAILED_MESSAGE}")).rowcount


def maintain(warehouse) -> dict[str, int]:
    """The maintenance DAG's step: check, repair, fold the counts; returns what each found or did."""
    with warehouse.begin() as conn:
        drifts = check(conn)
        repaired = repair(conn) if drifts else 0
    with warehouse.begin() as conn:
        folded = fold(conn, COUNTS, COUNT_KEY)
    return {
        "messages_drifted": sum(1 for d in drifts if d.table == MESSAGES),
        "counts_drifted": sum(1 for d in drifts if d.table == COUNTS),
        "rows_repaired": repaired,
        "rows_compacted": folded,
    }
