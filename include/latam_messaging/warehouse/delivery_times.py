"""When each message was first seen at the vendor and first delivered, kept as data arrives (migration 16).

``report_time_to_deliver`` gives, per accepted send, the seconds from acceptance (our recorded answer, or
the vendor's first event for the message when that is earlier) to its first ``delivered``/``read`` event.
Computed from the events, each report joined every accepted send with all its events: ~30 s of the
report's 44 s on the full SQLite history (15 M events), growing with it. So ``delivery_times`` holds, per
message key, what the view needs of its events:

* ``first_event_at``: the earliest event of a known status (not ``unknown``) linked to the send;
* ``delivered_at``: the earliest ``delivered`` or ``read`` event, NULL until there is one.

**Who keeps it: the database**, in the writer's own transaction, whichever code wrote the event:

* events inserted lower the two times of their messages (an ``INSERT … ON CONFLICT DO UPDATE`` taking the
  earlier of both, so two writers of one message's events at once, in either order, end with the same row).
  SQLite: a row trigger; PostgreSQL: one statement trigger per insert statement over its inserted rows
  (``REFERENCING NEW TABLE``: one grouped upsert per chunk of events, not a PL/pgSQL call per event);
* an event deleted, or its message, status or time changed (an analyst's correction; the pipeline never
  does), recomputes its message's row from the message's events (``ix_status_events_message_key``);
* a ``TRUNCATE`` of the events (PostgreSQL) empties the table.

A bulk correction of events by hand (millions of rows) runs a remake per row: disable the table's
triggers for it, then run :func:`rebuild`. SQLite's ``INSERT OR REPLACE`` of an event deletes the row it
replaces without its delete trigger (``recursive_triggers`` is off), as for every kept table: the daily
check finds it.

The row depends only on the events: the view joins it to the send for its acceptance, so a send accepted
after its first events (a send in doubt found accepted) needs nothing here. An earliest time cannot be
taken back by subtraction, so a message's remake reads its events again, one transaction at a time
(:data:`ADVISORY_LOCK`). :func:`check` compares the table with the events and :func:`repair` mends it —
``messaging_maintenance`` runs both daily (``delivery_times_checked``): it finds nothing unless the table
was written by hand or its triggers were off.
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from latam_messaging.warehouse.counted import changed, function

TABLE = "delivery_times"
EVENTS = "message_status_events"
#: The events a message's times are made of (alias ``row``): linked to one of our sends, of a known status.
COUNTED = "{row}.message_key IS NOT NULL AND {row}.status <> 'unknown'"
#: A delivery (the view's end).
DELIVERED = "{row}.status IN ('delivered', 'read')"
#: ``message_status_events`` columns a message's times depend on.
_WATCHED = ("message_key", "status", "event_at")
_COLUMNS = "message_key, first_event_at, delivered_at"


def _earlier(kept: str, new: str, dialect: str) -> str:
    """The earlier of two times, either NULL (PostgreSQL's ``LEAST`` ignores NULLs; SQLite's ``MIN`` of two
    values does not)."""
    if dialect == "postgresql":
        return f"LEAST({kept}, {new})"
    return f"MIN(COALESCE({kept}, {new}), COALESCE({new}, {kept}))"


def _upsert(select: str, dialect: str) -> str:
    """``select``'s rows (``message_key, first_event_at, delivered_at``) merged into the table: a new key
    inserted, a kept one lowered to the earlier times — and left unwritten when neither is earlier (most
    events: a new row version per event would be dead weight; PostgreSQL still locks the row, so a second
    writer still waits for the first)."""
    kept, new = f"{TABLE}.first_event_at", "excluded.first_event_at"
    kept_delivered, new_delivered = f"{TABLE}.delivered_at", "excluded.delivered_at"
    earlier = (
        f"{new} < {kept} OR ({new_delivered} IS NOT NULL AND ({kept_delivered} IS NULL "
        f"OR {new_delivered} < {kept_delivered}))"
    )
    return (
        f"INSERT INTO {TABLE} ({_COLUMNS}) {select} ON CONFLICT (message_key) DO UPDATE SET "
        f"first_event_at = {_earlier(kept, new, dialect)}, delivered_at = {_earlier(kept_delivered, new_delivered, dialect)} "
        f"WHERE {earlier}"
    )


def _grouped(source: str, where: str, ordered: bool = True) -> str:
    """Each message's two times over ``source`` (alias ``e``) rows meeting ``where``, in key order when
    ``ordered`` (two writers lock the table's rows in one order)."""
    return (
        f"SELECT e.message_key, MIN(e.event_at) AS first_event_at, "
        f"MIN(CASE WHEN {DELIVERED.format(row='e')} THEN e.event_at END) AS delivered_at "
        f"FROM {source} e WHERE {COUNTED.format(row='e')}{where} GROUP BY e.message_key"
        + (" ORDER BY e.message_key" if ordered else "")
    )


#: Every message's times as the events make them now (what the table must hold).
EVERY_MESSAGE = _grouped(EVENTS, "")


def _recompute(row: str, dialect: str) -> str:
    """Trigger statements: the message of ``row`` (``OLD``/``NEW``) recomputed from its events."""
    key = f"{row}.message_key"
    return (
        f"DELETE FROM {TABLE} WHERE message_key = {key}; "
        f"{_upsert(_grouped(EVENTS, f' AND e.message_key = {key}'), dialect)};"
    )


#: PostgreSQL: the transaction-scoped advisory lock a message's remake holds (``message_key`` in ``{key}``).
#: Two remakes of one message at once (two events of it deleted or corrected by two transactions) would
#: otherwise both delete the row as their snapshots saw it: the second's delete finds the row the first
#: deleted, not the one it wrote, and its upsert keeps the earlier of both — a time of an event it deleted.
#: Serialised, the second's statements start after the first commits and see its row and its deletions.
#: Inserts take no such lock: an upsert waits on the row itself and only ever lowers it.
ADVISORY_LOCK = "pg_advisory_xact_lock(hashtext('delivery_times'), hashtext({key}))"


def _lock(keys: str) -> str:
    """PL/pgSQL: the advisory locks of ``keys`` (an SQL list of keys, NULLs skipped), in key order."""
    return (
        f"PERFORM {ADVISORY_LOCK.format(key='k')} FROM (SELECT DISTINCT k FROM (VALUES {keys}) v (k) "
        f"WHERE k IS NOT NULL ORDER BY k) ordered;"
    )


def trigger_statements(dialect: str) -> list[str]:
    """The DDL that makes the database keep ``delivery_times`` (migration 16)."""
    name = f"{TABLE}_of_events"
    counted_old, counted_new = (COUNTED.format(row=row) for row in ("OLD", "NEW"))
    moved = f"({counted_old} OR {counted_new}) AND ({changed(_WATCHED, dialect)})"
    on_update = f"UPDATE OF {', '.join(_WATCHED)}"
    if dialect != "postgresql":
        delivered = f"CASE WHEN {DELIVERED.format(row='NEW')} THEN NEW.event_at END"
        insert = _upsert(f"VALUES (NEW.message_key, NEW.event_at, {delivered})", dialect)
        return [
            f"CREATE TRIGGER {name}_insert AFTER INSERT ON {EVENTS} WHEN {counted_new} BEGIN\n{insert};\nEND",
            f"CREATE TRIGGER {name}_delete AFTER DELETE ON {EVENTS} WHEN {counted_old} BEGIN\n"
            f"{_recompute('OLD', dialect)}\nEND",
            f"CREATE TRIGGER {name}_update AFTER {on_update} ON {EVENTS} WHEN {moved} BEGIN\n"
            f"{_recompute('OLD', dialect)}\n{_recompute('NEW', dialect)}\nEND",
        ]
    return [
        # inserts: one grouped upsert per statement over the rows it inserted (none: nothing to do)
        function(f"{name}_inserted", f"{_upsert(_grouped('inserted', ''), dialect)};"),
        f"CREATE TRIGGER {name}_insert AFTER INSERT ON {EVENTS} REFERENCING NEW TABLE AS inserted "
        f"FOR EACH STATEMENT EXECUTE FUNCTION {name}_inserted()",
        function(
            name,
            f"IF TG_OP = 'DELETE' THEN {_lock('(OLD.message_key)')} {_recompute('OLD', dialect)} END IF; "
            f"IF TG_OP = 'UPDATE' THEN {_lock('(OLD.message_key), (NEW.message_key)')} "
            f"{_recompute('OLD', dialect)} {_recompute('NEW', dialect)} END IF;",
        ),
        f"CREATE TRIGGER {name}_delete AFTER DELETE ON {EVENTS} FOR EACH ROW WHEN ({counted_old}) "
        f"EXECUTE FUNCTION {name}()",
        f"CREATE TRIGGER {name}_update AFTER {on_update} ON {EVENTS} FOR EACH ROW WHEN ({moved}) "
        f"EXECUTE FUNCTION {name}()",
        # TRUNCATE fires no row trigger: the times go with the events
        function(f"{name}_truncated", f"DELETE FROM {TABLE};"),
        f"CREATE TRIGGER {name}_truncate AFTER TRUNCATE ON {EVENTS} FOR EACH STATEMENT "
        f"EXECUTE FUNCTION {name}_truncated()",
    ]


# ---- check, repair, rebuild -------------------------------------------------------------------------------
#: Every message whose row differs from its events: ``message_key, missing`` (1: the events make a row the
#: table lacks, -1: the table holds one they do not make; a row with other times is both).
_DIFFERENCE = (
    f"SELECT {_COLUMNS}, SUM(n) AS missing FROM ("
    f"SELECT {_COLUMNS}, 1 AS n FROM ({_grouped(EVENTS, '', ordered=False)}) made "
    f"UNION ALL SELECT {_COLUMNS}, -1 FROM {TABLE}) both_sides GROUP BY {_COLUMNS} HAVING SUM(n) <> 0"
)


@dataclass(frozen=True)
class Drift:
    """A message whose kept times differ from its events (``missing``: 1 lacking, -1 held in excess)."""

    message_key: str
    missing: int


def _no_statement_timeout(conn: sa.Connection) -> None:
    """PostgreSQL: this transaction's statements may run past the warehouse's statement timeout (a pass
    over every event: tens of millions of rows after a year)."""
    if conn.dialect.name == "postgresql":
        conn.execute(sa.text("SET LOCAL statement_timeout = 0"))


def check(conn: sa.Connection) -> list[Drift]:
    """Every message row ``delivery_times`` lacks, holds without events, or holds with other times (one
    pass over the events: no statement timeout)."""
    _no_statement_timeout(conn)
    return [Drift(row[0], int(row[-1])) for row in conn.execute(sa.text(_DIFFERENCE))]


def repair(conn: sa.Connection) -> int:
    """Each drifted message's row removed and made again from its events (PostgreSQL: under its remake's
    lock, :data:`ADVISORY_LOCK`). Returns the messages mended."""
    keys = sorted({d.message_key for d in check(conn)})
    for start in range(0, len(keys), 500):
        chunk = sa.bindparam("keys", keys[start : start + 500], expanding=True)
        if conn.dialect.name == "postgresql":
            locks = f"SELECT {ADVISORY_LOCK.format(key='k')} FROM (SELECT k FROM unnest(:locked) k ORDER BY k) o"
            locked = sa.bindparam("locked", keys[start : start + 500], type_=postgresql.ARRAY(sa.String()))
            conn.execute(sa.text(locks).bindparams(locked))
        conn.execute(sa.text(f"DELETE FROM {TABLE} WHERE message_key IN :keys").bindparams(chunk))
        select = _grouped(EVENTS, " AND e.message_key IN :keys")
        conn.execute(sa.text(_upsert(select, conn.dialect.name)).bindparams(chunk))
    return len(keys)


def rebuild(conn: sa.Connection) -> int:
    """The table computed from the events (migration 16; the benchmark's history, filled with the triggers
    off): emptied and filled in one statement (no statement timeout). Returns the messages written."""
    _no_statement_timeout(conn)
    conn.execute(sa.text(f"DELETE FROM {TABLE}"))
    return conn.execute(sa.text(f"INSERT INTO {TABLE} ({_COLUMNS}) {EVERY_MESSAGE}")).rowcount


def maintain(warehouse) -> dict[str, int]:
    """The maintenance DAG's step: check and repair; returns what it found and did."""
    with warehouse.begin() as conn:
        drifts = check(conn)
        repaired = repair(conn) if drifts else 0
    return {"messages_drifted": len({d.message_key for d in drifts}), "messages_repaired": repaired}
