"""Which sends of a campaign were answered, kept as data arrives (migration 13): ``campaign_answers`` holds
one row per (send, reply) and (send, opt-out) pair of the ``campaigns`` view's definitions
(``campaigns.views``: :func:`~latam_messaging.campaigns.views.reply_ways`,
:func:`~latam_messaging.campaigns.views.opt_out_condition`), for the sends of a campaign (a file) that were
accepted. The view counts a campaign's answered sends from these few rows, and the campaign page lists
them, instead of testing every inbound row and opt-out of the history against the sends.

**Who keeps it: the database**, as ``message_counts`` (``warehouse.aggregates``): row triggers inside the
writer's own transaction, whichever code wrote the row:

* an inbound message inserted finds the sends it answers (the quoted id: ``ix_outbound_vendor_message_id``;
  the subscriber's sends of the 24 hours before: ``ix_outbound_consent_key``); an opt-out likewise;
* a send accepted (or resolved from in doubt, its phone, file or id changed) finds the inbound rows and
  opt-outs that answer it (``ix_inbound_in_reply_to``, ``ix_inbound_consent_key``, opt-outs by source
  and time) — a reply recorded before its send's acceptance counts too;
* a row deleted, or its matched columns changed, takes its pairs away (and finds its new ones);
  a ``TRUNCATE`` (PostgreSQL) empties the pairs of its table.

A rollback or a kill takes the pairs with the rows. One case a trigger cannot see: on PostgreSQL, a reply
committed while its send's acceptance is still uncommitted in another transaction (each sees the other's
row only once committed). :func:`check` compares the table with the pairs computed from the rows (one
statement) and :func:`repair` mends the difference; ``messaging_maintenance`` runs both daily
(``answers_checked``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import NamedTuple

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from latam_messaging.campaigns.views import as_sql, opt_out_condition, reply_ways
from latam_messaging.consent.suppressions import consent_key_of
from latam_messaging.warehouse.counted import changed

TABLE = "campaign_answers"
#: The pair's columns, in order (``kind``, ``vendor``, ``answer`` and ``message_key`` are its key).
COLUMNS = ("kind", "vendor", "answer", "message_key", "file_sha256")


class Kind(StrEnum):
    REPLY = "reply"  # answer: the inbound message's vendor_message_id (the send's vendor)
    OPT_OUT = "opt_out"  # answer: the suppression's id


def _answerable(o: str) -> str:
    """Outbound row ``o`` is a campaign's accepted send (only those are counted and listed)."""
    return f"{o}.file_sha256 IS NOT NULL AND {o}.accepted_at IS NOT NULL"


def _pair(kind: Kind, answer: str, o: str) -> str:
    """SELECT list of a pair of send ``o`` answered by ``answer``, its columns named (a UNION's are its first's)."""
    return (
        f"SELECT '{kind}' AS kind, {o}.vendor AS vendor, {answer} AS answer, {o}.message_key AS message_key, "
        f"{o}.file_sha256 AS file_sha256"
    )


def _suppression_id(s: str) -> str:
    return f"CAST({s}.id AS VARCHAR(20))"


# ---- the pairs a row makes -------------------------------------------------------------------------------
def _replies(dialect: str, i: str, o: str, rows: Callable[[str], str]) -> list[str]:
    """SELECTs of the (send, reply) pairs of inbound row ``i`` and send ``o``, one per way of answering;
    ``rows(condition)``: the ``FROM … WHERE condition`` naming the rows the pair's other side is read from."""
    return [
        f"{_pair(Kind.REPLY, f'{i}.vendor_message_id', o)} {rows(f'{i}.vendor = {o}.vendor AND {way} AND {_answerable(o)}')}"
        for way in reply_ways(dialect, i=i, o=o)
    ]


def _opt_outs(dialect: str, s: str, o: str, rows: Callable[[str], str], *, from_suppressions: bool) -> str:
    """SELECT of the (send, opt-out) pairs of suppression ``s`` and send ``o`` (``rows`` as in :func:`_replies`;
    ``from_suppressions``: the lookup starts from the suppression, see ``opt_out_condition``)."""
    condition = opt_out_condition(dialect, s=s, o=o, from_suppressions=from_suppressions)
    return f"{_pair(Kind.OPT_OUT, _suppression_id(s), o)} {rows(f'{condition} AND {_answerable(o)}')}"


def _where(table: str) -> Callable[[str], str]:
    return lambda condition: f"FROM {table} WHERE {condition}"


# the pairs of one row (trigger bodies): each way of answering found by its own index (UNION ALL: a pair
# found both ways is added once, by the insert's conflict clause)
def replies_of_inbound(dialect: str, i: str) -> str:
    """SELECT of the pairs of inbound row ``i``: the sends it answers."""
    return " UNION ALL ".join(_replies(dialect, i, "o", _where("outbound_messages o")))


def opt_outs_of_suppression(dialect: str, s: str) -> str:
    """SELECT of the pairs of suppression ``s``: the subscriber's sends of the window before it."""
    return _opt_outs(dialect, s, "o", _where("outbound_messages o"), from_suppressions=True)


def answers_of_send(dialect: str, o: str) -> str:
    """SELECT of the pairs of outbound row ``o``: the inbound rows and opt-outs that answer it."""
    replies = _replies(dialect, "i", o, _where("inbound_messages i"))
    return " UNION ALL ".join([*replies, _opt_outs(dialect, "s", o, _where("suppressions s"), from_suppressions=False)])


class _Source(NamedTuple):
    """What a table's triggers do: find the pairs of its ``NEW`` row, remove those of its ``OLD`` row
    (a condition on ``campaign_answers``), on an update of which ``columns``; ``of_table``: all its pairs.
    ``has_pairs``: a condition on a row (``{row}``) without which it has none (its trigger then does not run:
    a file's staged sends are inserted by the hundred thousand)."""

    pairs_of_new: str
    of_old: str
    columns: str
    of_table: str
    has_pairs: str | None = None


def _sources(dialect: str) -> dict[str, _Source]:
    return {
        "inbound_messages": _Source(
            replies_of_inbound(dialect, "NEW"),
            f"kind = '{Kind.REPLY}' AND vendor = OLD.vendor AND answer = OLD.vendor_message_id",
            "vendor, vendor_message_id, from_phone, received_at, in_reply_to",
            f"kind = '{Kind.REPLY}'",
        ),
        "suppressions": _Source(
            opt_outs_of_suppression(dialect, "NEW"),
            f"kind = '{Kind.OPT_OUT}' AND answer = {_suppression_id('OLD')}",
            "id, phone, source, since",
            f"kind = '{Kind.OPT_OUT}'",
        ),
        "outbound_messages": _Source(
            answers_of_send(dialect, "NEW"),
            "message_key = OLD.message_key",
            "message_key, vendor, phone, accepted_at, vendor_message_id, file_sha256",
            "true",
            _answerable("{row}"),
        ),
    }


def index_statements(dialect: str) -> list[str]:
    """DDL of the expression index a send's trigger finds its in-window replies by (inbound rows by the
    consent key of their sender, :func:`~latam_messaging.campaigns.views.reply_ways`, and time)."""
    key = as_sql(consent_key_of(sa.func.replace(sa.literal_column("from_phone"), "+", "")), dialect)
    return [f"CREATE INDEX ix_inbound_consent_key ON inbound_messages (({key}), received_at)"]


def _insert(select: str, dialect: str) -> str:
    if dialect == "postgresql":
        return f"INSERT INTO {TABLE} ({', '.join(COLUMNS)}) {select} ON CONFLICT DO NOTHING;"
    return f"INSERT OR IGNORE INTO {TABLE} ({', '.join(COLUMNS)}) {select};"


def _when(source: _Source, row: str) -> str:
    """A trigger's ``WHEN`` clause for ``row`` (``NEW``/``OLD``), or nothing."""
    return f" WHEN ({source.has_pairs.format(row=row)})" if source.has_pairs else ""


def _sqlite_triggers() -> list[str]:
    statements = []
    for table, source in _sources("sqlite").items():
        add, remove = _insert(source.pairs_of_new, "sqlite"), f"DELETE FROM {TABLE} WHERE {source.of_old};"
        columns = source.columns
        statements += [
            f"CREATE TRIGGER {TABLE}_{table}_insert AFTER INSERT ON {table}{_when(source, 'NEW')} BEGIN\n{add}\nEND",
            f"CREATE TRIGGER {TABLE}_{table}_delete AFTER DELETE ON {table}{_when(source, 'OLD')} BEGIN\n{remove}\nEND",
            f"CREATE TRIGGER {TABLE}_{table}_update AFTER UPDATE OF {columns} ON {table} "
            f"WHEN {changed(columns.split(', '), 'sqlite')} BEGIN\n{remove}\n{add}\nEND",
        ]
    return statements


def _postgres_triggers() -> list[str]:
    statements = []
    for table, source in _sources("postgresql").items():
        function, columns = f"{TABLE}_{table}", source.columns
        # a row that can have no pairs skips its statements (a send accepted now had none before)
        old_has, new_has = ((f" AND {source.has_pairs.format(row=row)}" if source.has_pairs else "") for row in ("OLD", "NEW"))
        body = (
            f"IF TG_OP IN ('DELETE', 'UPDATE'){old_has} THEN DELETE FROM {TABLE} WHERE {source.of_old}; END IF; "
            f"IF TG_OP IN ('INSERT', 'UPDATE'){new_has} THEN {_insert(source.pairs_of_new, 'postgresql')} END IF;"
        )
        statements += [
            f"CREATE FUNCTION {function}() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN {body} RETURN NULL; END $$",
            # TRUNCATE fires no row trigger: the table's pairs go with its rows
            f"CREATE FUNCTION {function}_truncated() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
            f"DELETE FROM {TABLE} WHERE {source.of_table}; RETURN NULL; END $$",
            f"CREATE TRIGGER {function}_insert AFTER INSERT ON {table} "
            f"FOR EACH ROW{_when(source, 'NEW')} EXECUTE FUNCTION {function}()",
            f"CREATE TRIGGER {function}_delete AFTER DELETE ON {table} "
            f"FOR EACH ROW{_when(source, 'OLD')} EXECUTE FUNCTION {function}()",
            f"CREATE TRIGGER {function}_update AFTER UPDATE OF {columns} ON {table} "
            f"FOR EACH ROW WHEN ({changed(columns.split(', '), 'postgresql')}) EXECUTE FUNCTION {function}()",
            f"CREATE TRIGGER {function}_truncate AFTER TRUNCATE ON {table} "
            f"FOR EACH STATEMENT EXECUTE FUNCTION {function}_truncated()",
        ]
    return statements


def trigger_statements(dialect: str) -> list[str]:
    """The DDL that makes the database keep ``campaign_answers`` (migration 13)."""
    return _postgres_triggers() if dialect == "postgresql" else _sqlite_triggers()


# ---- every pair, from the rows ----------------------------------------------------------------------------
def _sends_of(rows: str, condition: str, dialect: str) -> str:
    """SQL ``FROM`` clause: each of the few ``rows`` (inbound messages, suppressions) with the sends ``o``
    that ``condition`` matches, found through an index on ``outbound_messages`` — on PostgreSQL a
    ``LATERAL`` subquery kept from being flattened into a join (``OFFSET 0``): estimating the campaigns'
    sends as most of the table, its planner would hash all of them (2 M sends: 4 s instead of 0.5 s).
    SQLite's planner loops through the index either way."""
    if dialect == "postgresql":
        return (
            f"FROM {rows} CROSS JOIN LATERAL (SELECT o.vendor, o.message_key, o.file_sha256 "
            f"FROM outbound_messages o WHERE {condition} OFFSET 0) o"
        )
    return f"FROM {rows} CROSS JOIN outbound_messages o WHERE {condition}"


def every_pair(dialect: str) -> str:
    """SELECT of every pair the rows make now (what the table must hold)."""
    replies = _replies(dialect, "i", "o", lambda condition: _sends_of("inbound_messages i", condition, dialect))
    opt_outs = _opt_outs(
        dialect, "s", "o", lambda condition: _sends_of("suppressions s", condition, dialect), from_suppressions=True
    )
    return " UNION ".join([*replies, opt_outs])


@dataclass(frozen=True)
class Drift:
    """A pair the table lacks (``missing`` 1) or holds without reason (``missing`` -1)."""

    pair: tuple
    missing: int


def check(conn: sa.Connection) -> list[Drift]:
    """Every pair that differs between the table and :func:`every_pair` (one statement, one snapshot)."""
    columns = ", ".join(COLUMNS)
    sql = (
        f"SELECT {columns}, SUM(n) FROM (SELECT {columns}, 1 AS n FROM ({every_pair(conn.dialect.name)}) made "
        f"UNION ALL SELECT {columns}, -1 FROM {TABLE}) both_sides GROUP BY {columns} HAVING SUM(n) <> 0"
    )
    return [Drift(tuple(row[: len(COLUMNS)]), int(row[len(COLUMNS)])) for row in conn.execute(sa.text(sql))]


def repair(conn: sa.Connection, drifts: list[Drift]) -> None:
    """Remove the pairs held without reason and add the missing ones (``drifts``: :func:`check`'s, read
    in the same transaction). A pair is its first four columns: one held under another file is removed,
    then added under the right one."""
    table = sa.table(TABLE, *(sa.column(c) for c in COLUMNS))
    key = COLUMNS[:4]
    extra = [{f"k_{c}": v for c, v in zip(key, d.pair, strict=False)} for d in drifts if d.missing < 0]
    missing = [dict(zip(COLUMNS, d.pair, strict=True)) for d in drifts if d.missing > 0]
    if extra:
        conn.execute(sa.delete(table).where(*(table.c[c] == sa.bindparam(f"k_{c}") for c in key)), extra)
    if missing:  # a writer's trigger may add the same pair meanwhile (PostgreSQL): then it is there
        insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
        conn.execute(insert(table).on_conflict_do_nothing(), missing)


def rebuild(conn: sa.Connection) -> int:
    """Every pair computed from the rows, the table emptied first (migration 13, the benchmark's history
    filled with its triggers off). Returns the pairs written."""
    conn.execute(sa.text(f"DELETE FROM {TABLE}"))
    return conn.execute(sa.text(f"INSERT INTO {TABLE} ({', '.join(COLUMNS)}) {every_pair(conn.dialect.name)}")).rowcount


def maintain(warehouse) -> dict[str, int]:
    """The maintenance DAG's step: check and repair; returns the pairs found missing and held without reason."""
    with warehouse.begin() as conn:
        drifts = check(conn)
        repair(conn, drifts)
    return {
        "pairs_missing": sum(1 for d in drifts if d.missing > 0),
        "pairs_extra": sum(1 for d in drifts if d.missing < 0),
    }
