"""Why messages failed, kept as data arrives (migration 14). ``report_failure_reasons`` counts, per vendor
and reason, the messages that failed at delivery (distinct messages with a ``failed`` status event; the
reason is the vendor's error where it gave one, else its status text) and those refused at send (ledger
rows ``rejected`` or ``failed``; the vendor's answer, else our error). Counting that from the events and the
ledger read every failure of the history on each view (a year: hundreds of thousands of rows), so:

* ``failed_messages`` holds one row per (vendor, vendor message id, reason) that has a failed event — the
  distinct part, exact beside concurrent writers: a second writer's insert of the same row waits on its
  primary key for the first to commit, then does nothing;
* ``failure_counts`` holds signed counts per (stage, vendor, reason), a :class:`~latam_messaging.warehouse.
  counted.Counts` of two sources (``warehouse.counted``: SQLite keeps one row per key, PostgreSQL only ever
  inserts rows — two writers never wait on a shared counter —, folded daily by :func:`maintain`).

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

import sqlalchemy as sa

from latam_messaging.warehouse.counted import Counted, Counts, changed, function

MESSAGES = "failed_messages"
#: ``failed_messages``' columns (its primary key).
MESSAGE_KEY = ("vendor", "vendor_message_id", "reason")
#: What a message failed for, of an event row (alias ``row``: ``NEW``, ``OLD``, ``e`` …).
REASON = "COALESCE({row}.reason, {row}.raw_status)"
#: The events ``failed_messages`` stands for.
FAILED = "{row}.status = 'failed'"
#: ``message_status_events`` columns a failed message's row depends on.
_WATCHED = ("vendor", "vendor_message_id", "status", "reason", "raw_status")
#: The ledger rows refused at send, and their reason.
REFUSED = "{row}.state IN ('rejected', 'failed')"
SEND_REASON = "COALESCE({row}.vendor_answer, {row}.error)"
STAGE_DELIVERY, STAGE_SEND = "delivery", "send"

#: ``failure_counts``: the (message, reason) rows of ``failed_messages`` (counted per statement on
#: PostgreSQL: a fill is one ``GROUP BY``) and the ledger rows refused at send. SQLite's unique key makes a
#: NULL reason (a refused row with neither an answer nor an error) comparable as one NUL character — a
#: reason no warehouse can hold the same on both databases (PostgreSQL refuses NUL in text).
COUNTS = Counts(
    "failure_counts",
    (
        Counted(
            "failure_counts_delivery", MESSAGES, None,
            {"stage": f"'{STAGE_DELIVERY}'", "vendor": "{row}.vendor", "reason": "{row}.reason"},
            ("vendor", "reason"), f"stage = '{STAGE_DELIVERY}'", per_statement=True,
        ),
        Counted(
            "failure_counts_send", "outbound_messages", REFUSED,
            {"stage": f"'{STAGE_SEND}'", "vendor": "{row}.vendor", "reason": SEND_REASON},
            ("vendor", "state", "vendor_answer", "error"), f"stage = '{STAGE_SEND}'",
        ),
    ),
    "stage, vendor, COALESCE(reason, char(0))",
)


# ---- failed_messages: row triggers on the events ----------------------------------------------------------
def _add(row: str) -> str:
    """Trigger statement: ``row``'s (message, reason) added when it is a failed event and new."""
    # the UPSERT form, not INSERT OR IGNORE: SQLite lets an outer statement's OR clause override a trigger's
    values = f"{row}.vendor, {row}.vendor_message_id, {REASON.format(row=row)}"
    return (
        f"INSERT INTO {MESSAGES} ({', '.join(MESSAGE_KEY)}) SELECT {values} "
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


def _event_triggers(dialect: str) -> list[str]:
    events, name = "message_status_events", f"{MESSAGES}_of_events"
    old, new = (FAILED.format(row=row) for row in ("OLD", "NEW"))
    when = {"insert": new, "delete": old, "update": f"({old} OR {new}) AND ({changed(_WATCHED, dialect)})"}
    on = {"insert": "INSERT", "delete": "DELETE", "update": f"UPDATE OF {', '.join(_WATCHED)}"}
    if dialect != "postgresql":
        body = {"insert": _add("NEW"), "delete": _remove("OLD"), "update": f"{_remove('OLD')}\n{_add('NEW')}"}
        return [
            f"CREATE TRIGGER {name}_{op} AFTER {on[op]} ON {events} WHEN {when[op]} BEGIN\n{body[op]}\nEND"
            for op in ("insert", "delete", "update")
        ]
    body = (
        f"IF TG_OP IN ('DELETE', 'UPDATE') THEN {_remove('OLD')} END IF; "
        f"IF TG_OP IN ('INSERT', 'UPDATE') THEN {_add('NEW')} END IF;"
    )
    return [
        function(name, body),
        *(
            f"CREATE TRIGGER {name}_{op} AFTER {on[op]} ON {events} FOR EACH ROW WHEN ({when[op]}) "
            f"EXECUTE FUNCTION {name}()"
            for op in ("insert", "delete", "update")
        ),
        # TRUNCATE fires no row trigger: the failed messages go with the events (their counts by trigger)
        function(f"{name}_truncated", f"DELETE FROM {MESSAGES};"),
        f"CREATE TRIGGER {name}_truncate AFTER TRUNCATE ON {events} FOR EACH STATEMENT "
        f"EXECUTE FUNCTION {name}_truncated()",
    ]


def trigger_statements(dialect: str) -> list[str]:
    """The DDL that makes the database keep ``failed_messages`` and ``failure_counts`` (migration 14)."""
    return _event_triggers(dialect) + COUNTS.trigger_statements(dialect)


# ---- the view ---------------------------------------------------------------------------------------------
def failure_reasons() -> str:
    """``report_failure_reasons`` over the kept counts: its columns and numbers over the events and the
    ledger (``views.FAILURE_REASONS_OVER_LEDGER``); a reason whose messages are all gone is gone."""
    return (
        f"SELECT vendor, stage, reason, CAST(SUM(messages) AS BIGINT) AS messages FROM {COUNTS.table} "
        f"GROUP BY stage, vendor, reason HAVING SUM(messages) <> 0"
    )


# ---- check, repair, rebuild -------------------------------------------------------------------------------
#: Every (message, reason) the events make now (what ``failed_messages`` must hold).
EVERY_FAILED_MESSAGE = (
    f"SELECT DISTINCT vendor, vendor_message_id, {REASON.format(row='e')} AS reason "
    f"FROM message_status_events e WHERE {FAILED.format(row='e')}"
)
_COLUMNS = ", ".join(MESSAGE_KEY)
#: Every (message, reason) whose row differs: ``<key…>, missing`` (1: lacking, -1: held without an event).
_MESSAGES_DIFFERENCE = (
    f"SELECT {_COLUMNS}, SUM(n) AS missing FROM (SELECT {_COLUMNS}, 1 AS n FROM ({EVERY_FAILED_MESSAGE}) made "
    f"UNION ALL SELECT {_COLUMNS}, -1 FROM {MESSAGES}) both_sides GROUP BY {_COLUMNS} HAVING SUM(n) <> 0"
)


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
        Drift(MESSAGES, tuple(row[:-1]), int(row[-1])) for row in conn.execute(sa.text(_MESSAGES_DIFFERENCE))
    ] + [Drift(COUNTS.table, row[:-1], int(row[-1])) for row in COUNTS.check(conn)]


def repair(conn: sa.Connection) -> int:
    """Mend both tables: the (message, reason) rows missing added and those without a failed event removed
    (their triggers move the counts), then any count still differing given its difference. Returns the
    rows changed."""
    missing, extra = (f"SELECT {_COLUMNS} FROM ({_MESSAGES_DIFFERENCE}) d WHERE missing {sign} 0" for sign in (">", "<"))
    changed = conn.execute(sa.text(f"DELETE FROM {MESSAGES} WHERE ({_COLUMNS}) IN ({extra})")).rowcount
    changed += conn.execute(sa.text(f"INSERT INTO {MESSAGES} ({_COLUMNS}) {missing} ON CONFLICT DO NOTHING")).rowcount
    return changed + COUNTS.repair(conn)


def rebuild(conn: sa.Connection) -> int:
    """Both tables computed from the events and the ledger (migration 14, the benchmark's history filled
    with the triggers off): ``failed_messages`` emptied and filled in one statement, then the counts.
    Returns the (message, reason) rows written."""
    conn.execute(sa.text(f"DELETE FROM {MESSAGES}"))
    written = conn.execute(sa.text(f"INSERT INTO {MESSAGES} ({_COLUMNS}) {EVERY_FAILED_MESSAGE}")).rowcount
    COUNTS.rebuild(conn)
    return written


def maintain(warehouse) -> dict[str, int]:
    """The maintenance DAG's step: check, repair, fold the counts; returns what each found or did."""
    with warehouse.begin() as conn:
        drifts = check(conn)
        repaired = repair(conn) if drifts else 0
    with warehouse.begin() as conn:
        folded = COUNTS.fold(conn)
    return {
        "messages_drifted": sum(1 for d in drifts if d.table == MESSAGES),
        "counts_drifted": sum(1 for d in drifts if d.table == COUNTS.table),
        "rows_repaired": repaired,
        "rows_compacted": folded,
    }
