"""Versioned schema migrations. Each runs once, in order, in its own transaction, and is recorded in
``schema_migrations``; running them again is a no-op. Add a migration, never edit an applied one."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pendulum
import sqlalchemy as sa

from latam_messaging.warehouse import schema


@dataclass(frozen=True)
class Migration:
    version: int
    description: str
    apply: Callable[[sa.Connection], None]


def _v1_initial(conn: sa.Connection) -> None:
    later = {"schema_migrations", "number_check_queue"}
    tables = [t for t in schema.metadata.sorted_tables if t.name not in later]
    schema.metadata.create_all(conn, tables=tables)


def _v2_number_checks(conn: sa.Connection) -> None:
    schema.number_check_queue.create(conn)
    conn.execute(sa.text(schema.RISKY_NUMBERS_VIEW))


def _v3_report_views(conn: sa.Connection) -> None:
    from latam_messaging.reporting import view_statements

    for statement in view_statements(conn.dialect.name):
        conn.execute(sa.text(statement))


MIGRATIONS: list[Migration] = [
    Migration(1, "initial tables of CONTRACT.md", _v1_initial),
    Migration(2, "number_check_queue and the risky_numbers view", _v2_number_checks),
    Migration(3, "reporting views", _v3_report_views),
]


def migrate(engine: sa.Engine) -> list[int]:
    """Apply the pending migrations; returns the versions applied now."""
    schema.schema_migrations.create(engine, checkfirst=True)
    applied_now = []
    with engine.connect() as conn:
        done = set(conn.execute(sa.select(schema.schema_migrations.c.version)).scalars())
    for migration in MIGRATIONS:
        if migration.version in done:
            continue
        with engine.begin() as conn:
            migration.apply(conn)
            conn.execute(
                schema.schema_migrations.insert().values(
                    version=migration.version, description=migration.description, applied_at=pendulum.now("UTC")
                )
            )
        applied_now.append(migration.version)
    return applied_now
