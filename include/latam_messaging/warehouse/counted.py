"""Counts of the few rows of a big table that a view counts, kept by the database as rows change (the
pattern of ``message_counts``, ``warehouse.aggregates``, for rows meeting a condition): a :class:`Counted`
names a table, the condition its counted rows meet and the key they are counted by; a counts table holds
signed rows ``(key…, messages)``, and a key counts the SUM of its rows.

* **SQLite** (one writer at a time): row triggers ``WHEN`` a row meets the condition, before or after,
  add ±1 to its key's one row (one UPSERT on a unique index over the key).
* **PostgreSQL**: row triggers with the same ``WHEN`` guards *insert* a row of ±1 (writers never wait on a
  shared counter row), or, for a source written in bulk (``per_statement``), statement triggers with
  transition tables insert one row per key a statement changed. :func:`fold` (``aggregates.fold``) folds a
  key's rows into one.

Rows not meeting the condition never run a trigger body. A rollback or a kill takes the counts with the
rows; a ``TRUNCATE`` (PostgreSQL) takes its table's counts. :func:`check` compares every key with a
``GROUP BY`` over the rows and :func:`repair` adds the difference.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

import sqlalchemy as sa

from latam_messaging.warehouse.aggregates import fold


class Counted(NamedTuple):
    """The rows of ``table`` meeting ``condition`` (SQL of a row ``{row}``; None: every row), counted per
    ``key`` (count column → SQL of a row). ``watched``: the columns ``condition`` and ``key`` read (an update
    of no other fires nothing). ``mine``: a condition on the counts table selecting this source's counts
    (a ``TRUNCATE`` of ``table`` deletes them). ``per_statement``: PostgreSQL counts a statement's rows in one
    ``GROUP BY`` (a source written in bulk) instead of a row trigger each."""

    name: str
    table: str
    condition: str | None
    key: dict[str, str]
    watched: tuple[str, ...]
    mine: str
    per_statement: bool = False


def _key_of(source: Counted, row: str) -> list[str]:
    return [expression.format(row=row) for expression in source.key.values()]


def _met(source: Counted, row: str) -> str:
    return source.condition.format(row=row) if source.condition else "true"


def changed(columns: Sequence[str], dialect: str) -> str:
    """SQL: a trigger's ``OLD`` and ``NEW`` rows differ in one of ``columns``."""
    differ = "IS DISTINCT FROM" if dialect == "postgresql" else "IS NOT"
    return " OR ".join(f"OLD.{c} {differ} NEW.{c}" for c in columns)


def _when(source: Counted, op: str, dialect: str) -> str:
    """The ``WHEN (…)`` of ``source``'s ``op`` trigger: only rows meeting its condition, before or after."""
    differs = f"({changed(source.watched, dialect)})"
    if source.condition is None:
        return f" WHEN {differs}" if op == "update" else ""
    old, new = (_met(source, row) for row in ("OLD", "NEW"))
    return {"insert": f" WHEN ({new})", "delete": f" WHEN ({old})", "update": f" WHEN (({old} OR {new}) AND {differs})"}[op]


def _on(source: Counted) -> dict[str, str]:
    """What fires each of ``source``'s triggers (an update only of its watched columns)."""
    return {"insert": "INSERT", "delete": "DELETE", "update": f"UPDATE OF {', '.join(source.watched)}"}


@dataclass(frozen=True)
class Counts:
    """A counts table (``messages`` signed) and the sources it counts; ``sqlite_key``: SQLite's unique key
    over the key columns, each nullable one made comparable (``COALESCE``)."""

    table: str
    sources: tuple[Counted, ...]
    sqlite_key: str

    def __post_init__(self) -> None:
        if len({tuple(source.key) for source in self.sources}) != 1:
            raise ValueError(f"the sources of {self.table} must name the same key columns, in the same order")

    @property
    def columns(self) -> tuple[str, ...]:
        return tuple(self.sources[0].key)

    def _upsert(self) -> str:
        return f"ON CONFLICT ({self.sqlite_key}) DO UPDATE SET messages = messages + excluded.messages"

    def _add(self, source: Counted, row: str, amount: int, dialect: str) -> str:
        """Trigger statement: ``amount`` added to the count of ``row``'s key when it meets the condition."""
        upsert = f" {self._upsert()}" if dialect == "sqlite" else ""
        return (
            f"INSERT INTO {self.table} ({', '.join(self.columns)}, messages) "
            f"SELECT {', '.join(_key_of(source, row))}, {amount} WHERE {_met(source, row)}{upsert};"
        )

    # ---- the triggers -----------------------------------------------------------------------------------
    def trigger_statements(self, dialect: str) -> list[str]:
        """The DDL that makes the database keep the counts."""
        if dialect != "postgresql":
            statements = [f"CREATE UNIQUE INDEX ux_{self.table}_key ON {self.table} ({self.sqlite_key})"]
            for source in self.sources:
                old, new = self._add(source, "OLD", -1, dialect), self._add(source, "NEW", 1, dialect)
                body = {"insert": new, "delete": old, "update": f"{old}\n{new}"}
                statements += [
                    f"CREATE TRIGGER {source.name}_{op} AFTER {_on(source)[op]} ON {source.table}"
                    f"{_when(source, op, dialect)} BEGIN\n{body[op]}\nEND"
                    for op in ("insert", "delete", "update")
                ]
            return statements
        statements = []
        for source in self.sources:
            statements += [
                function(f"{source.name}_truncated", f"DELETE FROM {self.table} WHERE {source.mine};"),
                f"CREATE TRIGGER {source.name}_truncate AFTER TRUNCATE ON {source.table} "
                f"FOR EACH STATEMENT EXECUTE FUNCTION {source.name}_truncated()",
            ]
            statements += self._per_statement(source) if source.per_statement else self._per_row(source)
        return statements

    def _per_row(self, source: Counted) -> list[str]:
        old, new = self._add(source, "OLD", -1, "postgresql"), self._add(source, "NEW", 1, "postgresql")
        body = f"IF TG_OP IN ('DELETE', 'UPDATE') THEN {old} END IF; IF TG_OP IN ('INSERT', 'UPDATE') THEN {new} END IF;"
        return [
            function(source.name, body),
            *(
                f"CREATE TRIGGER {source.name}_{op} AFTER {_on(source)[op]} ON {source.table} "
                f"FOR EACH ROW{_when(source, op, 'postgresql')} EXECUTE FUNCTION {source.name}()"
                for op in ("insert", "delete", "update")
            ),
        ]

    def _per_statement(self, source: Counted) -> list[str]:
        columns = ", ".join(self.columns)

        def rows(table: str, sign: str) -> str:
            named = ", ".join(f"{e} AS {c}" for c, e in zip(self.columns, _key_of(source, "r"), strict=True))
            return f"SELECT {named}, {sign}1 AS n FROM {table} r WHERE {_met(source, 'r')}"

        deltas = {
            "insert": ("NEW TABLE AS new_rows", rows("new_rows", "")),
            "delete": ("OLD TABLE AS old_rows", rows("old_rows", "-")),
            "update": ("OLD TABLE AS old_rows NEW TABLE AS new_rows", f"{rows('new_rows', '')} UNION ALL {rows('old_rows', '-')}"),
        }
        statements = []
        for op, (transition, select) in deltas.items():
            insert = (
                f"INSERT INTO {self.table} ({columns}, messages) SELECT {columns}, SUM(n) FROM ({select}) delta "
                f"GROUP BY {columns} HAVING SUM(n) <> 0;"
            )
            statements += [
                function(f"{source.name}_{op}", insert),
                f"CREATE TRIGGER {source.name}_{op} AFTER {op.upper()} ON {source.table} REFERENCING {transition} "
                f"FOR EACH STATEMENT EXECUTE FUNCTION {source.name}_{op}()",
            ]
        return statements

    # ---- check, repair, rebuild -------------------------------------------------------------------------
    def every_row(self) -> str:
        """One row per counted row of every source, its key named (what the counts must sum to)."""
        return " UNION ALL ".join(
            f"SELECT {', '.join(f'{e} AS {c}' for c, e in zip(self.columns, _key_of(s, 'r'), strict=True))} "
            f"FROM {s.table} r WHERE {_met(s, 'r')}"
            for s in self.sources
        )

    def difference(self) -> str:
        """Every key whose count differs from its rows: ``<key…>, missing`` (rows − counted)."""
        columns = ", ".join(self.columns)
        return (
            f"SELECT {columns}, SUM(n) AS missing FROM (SELECT {columns}, 1 AS n FROM ({self.every_row()}) made "
            f"UNION ALL SELECT {columns}, -messages FROM {self.table}) both_sides "
            f"GROUP BY {columns} HAVING SUM(n) <> 0"
        )

    def check(self, conn: sa.Connection) -> list[tuple]:
        """Every key whose count differs from a ``GROUP BY`` over its rows (one statement): ``(*key, missing)``."""
        return [tuple(row) for row in conn.execute(sa.text(self.difference()))]

    def repair(self, conn: sa.Connection) -> int:
        """Add the difference of every key that drifted (one ``INSERT … SELECT``: the check's snapshot, so a
        writer committing meanwhile is counted once, by its own trigger). Returns the keys repaired."""
        upsert = f"WHERE true {self._upsert()}" if conn.dialect.name == "sqlite" else ""
        insert = f"INSERT INTO {self.table} ({', '.join(self.columns)}, messages) SELECT * FROM ({self.difference()}) d {upsert}"
        return conn.execute(sa.text(insert)).rowcount

    def rebuild(self, conn: sa.Connection) -> None:
        """The counts computed from the rows, the table emptied first."""
        conn.execute(sa.text(f"DELETE FROM {self.table}"))
        self.repair(conn)

    def fold(self, conn: sa.Connection) -> int:
        """Each key's rows folded into one (``aggregates.fold``); returns the rows removed."""
        return fold(conn, self.table, self.columns)

    def maintain(self, warehouse) -> dict[str, int]:
        """The maintenance DAG's step: check, repair what drifted, fold; returns the counts of each."""
        with warehouse.begin() as conn:
            drifts = self.check(conn)
            repaired = self.repair(conn) if drifts else 0
        with warehouse.begin() as conn:
            folded = self.fold(conn)
        return {"keys_drifted": len(drifts), "keys_repaired": repaired, "rows_compacted": folded}


def function(name: str, body: str) -> str:
    """DDL of a PL/pgSQL trigger function running ``body``."""
    return f"CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN {body} RETURN NULL; END $$"
