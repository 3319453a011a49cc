"""Why messages failed, kept as data arrives (migration 14). ``report_failure_reasons`` counts, per vendor
and reason, the messages that failed at delivery (distinct messages with a ``failed`` status event; the
reason is the vendor's error where it gave one, else its status text) and those refused at send (ledger
rows ``rejected`` or ``failed``; the vendor's answer, else our error). Counting that from the events and the
ledger read every failure of the history on each view (a year: hundreds of thousands of rows), so:

* ``failed_messages`` holds one row per (vendor, vendor message id, reason) that has a failed event — the
  distinct part, exact beside concurrent writers: a second writer's insert of the same row waits on its
  primary key for the first to commit, then does nothing;
* ``failure_counts`` holds signed counts per (stage, vendor, reason), as ``message_counts``
  (``warehouse.aggregates``): SQLite keeps one row per key (UPSERT), PostgreSQL only ever inserts rows (two
  writers never wait on a shared counter), folded daily by :func:`maintain`.

**Who keeps them: the database**, in the writer's own transaction, whichever code wrote the row:

* a failed event inserted adds its (message, reason) row if new; deleted, or its status, reason or ids
  changed, removes its old row when no other failed event of the message has that reason (then adds the
  new one); a ``failed_messages`` row inserted, deleted or changed moves its ``delivery`` count;
* a ledger row refused at send, inserted, deleted, or its state, vendor, answer or error changed, moves
  its ``send`` count;
* a ``TRUNCATE`` (PostgreSQL) takes the counts of its table. Only failed events and refused rows run a
  trigger body (``WHEN`` guards: the others, nearly all, cost nothing).

One case no trigger sees: on PostgreSQL, a failed event deleted while another of the same message and
reason is inserted, uncommitted, in another transaction (events are not deleted by the pipeline; an
analyst's clean-up could). :func:`check` compares both tables with the events and the ledger and
:func:`repair` mends them; ``messaging_maintenance`` runs both daily (``failures_checked``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import sqlalchemy as sa

from latam_messaging.warehouse.aggregates import fold

MESSAGES = "failed_messages"
COUNTS = "failure_counts"
#: ``failed_messages``' columns (its primary key) and ``failure_counts``' key.
MESSAGE_KEY = ("vendor", "vendor_message_id", "reason")
COUNT_KEY = ("stage", "vendor", "reason")
#: What a message failed for, of an event row (alias ``row``: ``NEW``, ``OLD``, ``e`` …).
REASON = "COALESCE({row}.reason, {row}.raw_status)"
#: The events these tables stand for.
FAILED = "{row}.status = 'failed'"
#: ``message_status_events`` columns a failed message's row depends on.
_WATCHED = ("vendor", "vendor_message_id", "status", "reason", "raw_status")
#: The ledger rows refused at send, their reason, and the columns their count depends on.
REFUSED = "{row}.state IN ('rejected', 'failed')"
SEND_REASON = "COALESCE({row}.vendor_answer, {row}.error)"
_SEND_WATCHED = ("vendor", "state", "vendor_answer", "error")


STAGE_DELIVERY, STAGE_SEND = "delivery", "send"


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


#: SQLite keeps one row per key: a unique index over it, a NULL reason (a refused row with neither an
#: answer nor an error) made comparable as one NUL character — a reason no warehouse can hold the same on
#: both databases (PostgreSQL refuses NUL in text).
_SQLITE_KEY = "stage, vendor, COALESCE(reason, char(0))"
_SQLITE_UPSERT = f"ON CONFLICT ({_SQLITE_KEY}) DO UPDATE SET messages = messages + excluded.messages"


def _count(stage: str, row: str, reason: str, amount: int, dialect: str, when: str = "true") -> str:
    """Trigger statement: ``amount`` added to the count of ``row``'s (stage, vendor, reason) if ``when``."""
    upsert = f" {_SQLITE_UPSERT}" if dialect == "sqlite" else ""
    return (
        f"INSERT INTO {COUNTS} (stage, vendor, reason, messages) "
        f"SELECT '{stage}', {row}.vendor, {reason}, {amount} WHERE {when}{upsert};"
    )


def _changed(columns: tuple[str, ...], dialect: str) -> str:
    differ = "IS DISTINCT FROM" if dialect == "postgresql" else "IS NOT"
    return " OR ".join(f"OLD.{c} {differ} NEW.{c}" for c in columns)


class _Source(NamedTuple):
    """A table's triggers: ``old``/``new``, the statements for its ``OLD``/``NEW`` row (an update runs
    both), run only for a row meeting ``condition`` (``{row}``; None: every row) and on an update of which
    ``watched`` columns changed; ``truncated``: the statements a ``TRUNCATE`` of the table runs."""

    old: str
    new: str
    condition: str | None
    watched: tuple[str, ...]
    truncated: str


def _sources(dialect: str) -> dict[str, _Source]:
    sends = {row: (SEND_REASON.format(row=row), REFUSED.format(row=row)) for row in ("OLD", "NEW")}
    return {
        "message_status_events": _Source(
            _remove("OLD"), _add("NEW"), FAILED, _WATCHED,
            # a failed_messages statement trigger counts the rows deleted; then the stage goes whole
            f"DELETE FROM {MESSAGES}; DELETE FROM {COUNTS} WHERE stage = '{STAGE_DELIVERY}';",
        ),
        "outbound_messages": _Source(
            _count(STAGE_SEND, "OLD", sends["OLD"][0], -1, dialect, sends["OLD"][1]),
            _count(STAGE_SEND, "NEW", sends["NEW"][0], 1, dialect, sends["NEW"][1]),
            REFUSED, _SEND_WATCHED,
            f"DELETE FROM {COUNTS} WHERE stage = '{STAGE_SEND}';",
        ),
        MESSAGES: _Source(
            _count(STAGE_DELIVERY, "OLD", "OLD.reason", -1, dialect),
            _count(STAGE_DELIVERY, "NEW", "NEW.reason", 1, dialect),
            None, ("vendor", "reason"),
            f"DELETE FROM {COUNTS} WHERE stage = '{STAGE_DELIVERY}';",
        ),
    }


def _on(source: _Source) -> dict[str, str]:
    """What fires each of ``source``'s triggers (an update only of its watched columns)."""
    return {"insert": "INSERT", "delete": "DELETE", "update": f"UPDATE OF {', '.join(source.watched)}"}


def _when(source: _Source, op: str, dialect: str) -> str:
    """The ``WHEN (…)`` of ``source``'s ``op`` trigger: only rows meeting its condition, before or after."""
    changed = f"({_changed(source.watched, dialect)})"
    if source.condition is None:
        return f" WHEN {changed}" if op == "update" else ""
    old, new = (source.condition.format(row=row) for row in ("OLD", "NEW"))
    return {"insert": f" WHEN ({new})", "delete": f" WHEN ({old})", "update": f" WHEN (({old} OR {new}) AND {changed})"}[op]


def _sqlite_triggers() -> list[str]:
    statements = [f"CREATE UNIQUE INDEX ux_failure_counts_key ON {COUNTS} ({_SQLITE_KEY})"]
    for table, source in _sources("sqlite").items():
        body = {"insert": source.new, "delete": source.old, "update": f"{source.old}\n{source.new}"}
        statements += [
            f"CREATE TRIGGER {COUNTS}_{table}_{op} AFTER {_on(source)[op]} ON {table}{_when(source, op, 'sqlite')} "
            f"BEGIN\n{body[op]}\nEND"
            for op in ("insert", "delete", "update")
        ]
    return statements


def _postgres_delta(select: str) -> str:
    """Insert, per key, the net count of ``select`` (``vendor, reason, n`` rows of ``failed_messages``)."""
    return (
        f"INSERT INTO {COUNTS} (stage, vendor, reason, messages) SELECT '{STAGE_DELIVERY}', vendor, reason, SUM(n) "
        f"FROM ({select}) delta GROUP BY vendor, reason HAVING SUM(n) <> 0;"
    )


def _postgres_triggers() -> list[str]:
    """Row triggers on the events and the ledger (``WHEN``-guarded); on ``failed_messages`` statement
    triggers, so a bulk fill is counted in one ``GROUP BY``."""
    statements = []

    def function(name: str, body: str) -> str:
        return f"CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN {body} RETURN NULL; END $$"

    for table, source in _sources("postgresql").items():
        name = f"{COUNTS}_{table}"
        statements += [
            function(f"{name}_truncated", source.truncated),
            f"CREATE TRIGGER {name}_truncate AFTER TRUNCATE ON {table} "
            f"FOR EACH STATEMENT EXECUTE FUNCTION {name}_truncated()",
        ]
        if table == MESSAGES:
            continue
        body = (
            f"IF TG_OP IN ('DELETE', 'UPDATE') THEN {source.old} END IF; "
            f"IF TG_OP IN ('INSERT', 'UPDATE') THEN {source.new} END IF;"
        )
        statements.append(function(name, body))
        statements += [
            f"CREATE TRIGGER {name}_{op} AFTER {_on(source)[op]} ON {table} "
            f"FOR EACH ROW{_when(source, op, 'postgresql')} EXECUTE FUNCTION {name}()"
            for op in ("insert", "delete", "update")
        ]
    deltas = {
        "insert": ("NEW TABLE AS new_rows", "SELECT vendor, reason, 1 AS n FROM new_rows"),
        "delete": ("OLD TABLE AS old_rows", "SELECT vendor, reason, -1 AS n FROM old_rows"),
        "update": (
            "OLD TABLE AS old_rows NEW TABLE AS new_rows",
            "SELECT vendor, reason, 1 AS n FROM new_rows UNION ALL SELECT vendor, reason, -1 FROM old_rows",
        ),
    }
    for op, (transition, select) in deltas.items():
        name = f"{COUNTS}_{MESSAGES}_{op}"
        statements += [
            function(name, _postgres_delta(select)),
            f"CREATE TRIGGER {name} AFTER {op.upper()} ON {MESSAGES} REFERENCING {transition} "
            f"FOR EACH STATEMENT EXECUTE FUNCTION {name}()",
        ]
    return statements


def trigger_statements(dialect: str) -> list[str]:
    """The DDL that makes the database keep ``failed_messages`` and ``failure_counts`` (migration 14)."""
    return _postgres_triggers() if dialect == "postgresql" else _sqlite_triggers()


# ---- the view ---------------------------------------------------------------------------------------------
def failure_reasons() -> str:
    """``report_failure_reasons`` over the kept counts: its columns and numbers over the events and the
    ledger (``views.FAILURE_REASONS_OVER_LEDGER``); a reason whose messages are all gone is gone."""
    return (
        f"SELECT vendor, stage, reason, CAST(SUM(messages) AS BIGINT) AS messages FROM {COUNTS} "
        f"GROUP BY stage, vendor, reason HAVING SUM(messages) <> 0"
    )


# ---- check, repair, rebuild -------------------------------------------------------------------------------
#: Every (message, reason) the events make now (what ``failed_messages`` must hold).
EVERY_FAILED_MESSAGE = (
    f"SELECT DISTINCT vendor, vendor_message_id, {REASON.format(row='e')} AS reason "
    f"FROM message_status_events e WHERE {FAILED.format(row='e')}"
)
#: Every message that failed, one row each per stage and reason (what ``failure_counts`` must count).
EVERY_FAILURE = (
    f"SELECT '{STAGE_DELIVERY}' AS stage, vendor, reason FROM {MESSAGES} "
    f"UNION ALL SELECT '{STAGE_SEND}', vendor, {SEND_REASON.format(row='o')} FROM outbound_messages o "
    f"WHERE {REFUSED.format(row='o')}"
)


def _difference(made: str, kept: str, key: tuple[str, ...], kept_n: str) -> str:
    """Rows of ``key`` whose ``made`` count (1 per row) differs from ``kept``'s (``kept_n`` per row)."""
    columns = ", ".join(key)
    return (
        f"SELECT {columns}, SUM(n) AS missing FROM (SELECT {columns}, 1 AS n FROM ({made}) made "
        f"UNION ALL SELECT {columns}, -{kept_n} FROM {kept}) both_sides GROUP BY {columns} HAVING SUM(n) <> 0"
    )


_MESSAGES_DIFFERENCE = _difference(EVERY_FAILED_MESSAGE, MESSAGES, MESSAGE_KEY, "1")
_COUNTS_DIFFERENCE = _difference(EVERY_FAILURE, COUNTS, COUNT_KEY, "messages")


@dataclass(frozen=True)
class Drift:
    """A row of ``table`` that differs from what the rows under it make: ``missing`` = made − kept."""

    table: str
    key: tuple
    missing: int


def check(conn: sa.Connection) -> list[Drift]:
    """Every (message, reason) ``failed_messages`` lacks or holds without a failed event, and every count
    of ``failure_counts`` that differs from ``failed_messages`` and the refused ledger rows."""
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
    columns = ", ".join(MESSAGE_KEY)
    missing, extra = (f"SELECT {columns} FROM ({_MESSAGES_DIFFERENCE}) d WHERE missing {sign} 0" for sign in (">", "<"))
    changed = conn.execute(sa.text(f"DELETE FROM {MESSAGES} WHERE ({columns}) IN ({extra})")).rowcount
    changed += conn.execute(sa.text(f"INSERT INTO {MESSAGES} ({columns}) {missing} ON CONFLICT DO NOTHING")).rowcount
    upsert = f"WHERE true {_SQLITE_UPSERT}" if conn.dialect.name == "sqlite" else ""
    difference = f"INSERT INTO {COUNTS} ({', '.join(COUNT_KEY)}, messages) SELECT * FROM ({_COUNTS_DIFFERENCE}) d {upsert}"
    return changed + conn.execute(sa.text(difference)).rowcount


def rebuild(conn: sa.Connection) -> int:
    """Both tables computed from the events and the ledger (migration 14, the benchmark's history filled
    with the triggers off): emptied, then every (message, reason) inserted in one statement (counted by its
    triggers) and the refused rows counted in one ``GROUP BY``. Returns the (message, reason) rows written."""
    conn.execute(sa.text(f"DELETE FROM {MESSAGES}"))
    conn.execute(sa.text(f"DELETE FROM {COUNTS}"))
    written = conn.execute(sa.text(f"INSERT INTO {MESSAGES} ({', '.join(MESSAGE_KEY)}) {EVERY_FAILED_MESSAGE}")).rowcount
    reason = SEND_REASON.format(row="o")
    conn.execute(sa.text(
        f"INSERT INTO {COUNTS} ({', '.join(COUNT_KEY)}, messages) SELECT '{STAGE_SEND}', vendor, {reason}, COUNT(*) "
        f"FROM outbound_messages o WHERE {REFUSED.format(row='o')} GROUP BY vendor, {reason}"
    ))
    return written


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
