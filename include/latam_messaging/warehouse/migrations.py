"""Versioned schema migrations. Each runs once, in order, in its own transaction, and is recorded in
``schema_migrations``; running them again is a no-op. Add a migration, never edit an applied one.

Applied migrations are frozen: 1-3 build from ``frozen_v1.py`` / ``frozen_v3.py`` (the schema as it was),
never from today's ``schema.py``; later ones alter what exists (``add_columns``), so a warehouse made at
v1 and one made fresh end at the same shape (``tests/warehouse/test_warehouse.py`` compares them)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pendulum
import sqlalchemy as sa

from latam_messaging.warehouse import frozen_v1, frozen_v3, schema


@dataclass(frozen=True)
class Migration:
    version: int
    description: str
    apply: Callable[[sa.Connection], None]


def _v1_initial(conn: sa.Connection) -> None:
    later = {"schema_migrations", "number_check_queue"}
    tables = [t for t in frozen_v1.metadata.sorted_tables if t.name not in later]
    frozen_v1.metadata.create_all(conn, tables=tables)


def _v2_number_checks(conn: sa.Connection) -> None:
    frozen_v1.number_check_queue.create(conn)
    conn.execute(sa.text(frozen_v1.RISKY_NUMBERS_VIEW))


def _v3_report_views(conn: sa.Connection) -> None:
    for statement in frozen_v3.view_statements(conn.dialect.name):
        conn.execute(sa.text(statement))


def add_columns(conn: sa.Connection, table: sa.Table, *names: str) -> None:
    """``ALTER TABLE … ADD COLUMN`` for columns of today's ``schema.py`` table (same DDL on both databases)."""
    for name in names:
        column = table.c[name]
        ddl = sa.schema.CreateColumn(column).compile(dialect=conn.dialect)
        conn.execute(sa.text(f"ALTER TABLE {table.name} ADD COLUMN {ddl}"))


def create_indexes(conn: sa.Connection, table: sa.Table, *names: str) -> None:
    """The named indexes of ``table`` as ``schema.py`` declares them (a name it does not declare raises)."""
    declared = {index.name: index for index in table.indexes}
    for name in names:
        declared[name].create(conn)


def replace_views(conn: sa.Connection, names: list[str], frozen: dict[str, str] | None = None) -> None:
    """Each named report view (``views.view_statements``) dropped if there, then created as today's code has
    it — or, named in ``frozen``, from the SELECT given there: its form at that migration, when today's reads
    a table a later migration makes."""
    from latam_messaging.warehouse import views

    statements = {s.split()[2]: s for s in views.view_statements(conn.dialect.name)}
    frozen = frozen or {}
    for name in names:
        conn.execute(sa.text(f"DROP VIEW IF EXISTS {name}"))
        conn.execute(sa.text(f"CREATE VIEW {name} AS\n{frozen[name]}" if name in frozen else statements[name]))


def _v4_send_claims(conn: sa.Connection) -> None:
    add_columns(conn, schema.outbound_messages, "claimed_by")
    schema.send_leases.create(conn)
    conn.execute(sa.text("CREATE INDEX ix_outbound_claimed_by ON outbound_messages (claimed_by)"))  # dropped in v6


def _v5_lossless_events(conn: sa.Connection) -> None:
    from latam_messaging.warehouse import views

    add_columns(conn, schema.message_status_events, "raw_text", "vendor_ids", "note")
    add_columns(conn, schema.inbound_messages, "direction", "note")
    replace_views(conn, views.CHANGED_IN_V5, frozen=views.time_to_deliver_frozen(conn.dialect.name))


def _v6_drop_claimed_by_index(conn: sa.Connection) -> None:
    """No query looks rows up by ``claimed_by`` (answers go by ``message_key``), but PostgreSQL's planner,
    told by statistics that ``claimed_by`` is nearly always NULL, chose this index for the answers'
    ``UPDATE … WHERE message_key = … AND claimed_by = …`` and read every row of the run for each one:
    a 100,000-row send went from 8 s to over a minute once the table had been analysed."""
    conn.execute(sa.text("DROP INDEX IF EXISTS ix_outbound_claimed_by"))


def _v7_vendor_reasons_and_costs(conn: sa.Connection) -> None:
    from latam_messaging.warehouse import views

    add_columns(
        conn,
        schema.message_status_events,
        "reason",
        "message_sent_at",
        "billable",
        "pricing_category",
        "pricing_model",
        "conversation_id",
        "conversation_origin",
        "conversation_expires_at",
    )
    add_columns(conn, schema.inbound_messages, "profile_name", "reply_id", "media_id", "media_mime_type", "caption")
    # failure reasons as migration 7 made them, over the events and the ledger (today's need migration 14)
    replace_views(conn, views.CHANGED_IN_V7, frozen={"report_failure_reasons": views.FAILURE_REASONS_OVER_LEDGER})


def _v8_consent(conn: sa.Connection) -> None:
    from latam_messaging.warehouse import views

    add_columns(conn, schema.outbound_messages, "consent_exempt", "expires_at")
    schema.suppressions.create(conn)
    schema.suppression_staging.create(conn)
    # rows skipped for consent as migration 8 made them, over the ledger (today's need migration 15)
    ledger = views.suppressed_rows_over_ledger(conn.dialect.name)
    replace_views(conn, views.CHANGED_IN_V8 + views.NEW_IN_V8, frozen={"report_suppressed_rows": ledger})


def _v9_campaigns(conn: sa.Connection) -> None:
    from latam_messaging.campaigns import views as campaign_views

    for table in (schema.campaign_files, schema.audit_log, schema.short_links, schema.message_prices):
        table.create(conn)
    for statement in campaign_views.view_statements_v9(conn.dialect.name):
        conn.execute(sa.text(statement))


def _v10_raw_retention(conn: sa.Connection) -> None:
    table = schema.raw_webhook_events
    add_columns(conn, table, "purged_at", "archive_path")
    create_indexes(conn, table, "ix_raw_webhook_unpurged", "ix_raw_webhook_archiving")


def _v11_message_counts(conn: sa.Connection) -> None:
    """Counts kept by triggers (``aggregates``), filled from the ledger in the same transaction (the
    triggers' DDL locks ``outbound_messages`` against writers first), and the funnel view read from them;
    the indexes the page and the views read a year of history by (few rows each: failed events, priced
    events, exempt rows, files by time, sends by consent key, opt-outs by source)."""
    from latam_messaging.campaigns import views as campaign_views
    from latam_messaging.warehouse import aggregates

    schema.message_counts.create(conn)
    create_indexes(conn, schema.drop_files, "ix_drop_files_claimed_at")
    create_indexes(conn, schema.message_status_events, "ix_status_events_priced", "ix_status_events_failed")
    create_indexes(conn, schema.outbound_messages, "ix_outbound_exempt")
    for statement in campaign_views.index_statements(conn.dialect.name):
        conn.execute(sa.text(statement))
    for statement in aggregates.trigger_statements(conn.dialect.name):
        conn.execute(sa.text(statement))
    aggregates.repair(conn)
    conn.execute(sa.text("DROP VIEW IF EXISTS report_delivery_funnel"))
    conn.execute(sa.text(aggregates.delivery_funnel_view(conn.dialect.name)))
    # the view as migration 9 made it: its form reading the kept counts needs migration 13's table
    conn.execute(sa.text("DROP VIEW IF EXISTS campaigns"))
    for statement in campaign_views.view_statements_v9(conn.dialect.name):
        conn.execute(sa.text(statement))


def _v12_page_lookups(conn: sa.Connection) -> None:
    """Indexes for what the page reads on a year of history without scanning the ledger: ``ix_outbound_file``
    gains ``accepted_at`` (a campaign's first and last acceptance), and the rows waiting for a decision
    (``unknown``), refused at send (``report_failure_reasons``' send stage) and skipped for consent at send
    (``report_suppressed_rows``) get partial indexes; inbound rows by time (a campaign's reply windows);
    ``report_time_to_deliver`` reads each send's events once."""
    from latam_messaging.warehouse import views

    conn.execute(sa.text("DROP INDEX IF EXISTS ix_outbound_file"))
    create_indexes(
        conn, schema.outbound_messages, "ix_outbound_file", "ix_outbound_unknown", "ix_outbound_refused", "ix_outbound_suppressed"
    )
    create_indexes(conn, schema.inbound_messages, "ix_inbound_received_at")
    replace_views(conn, views.CHANGED_IN_V12, frozen=views.time_to_deliver_frozen(conn.dialect.name))


def _v13_campaign_answers(conn: sa.Connection) -> None:
    """The campaigns' answered sends kept by triggers (``campaigns.answers``), filled from the rows in the
    same transaction (the triggers' DDL locks the three tables against writers first); the ``campaigns``
    view counts replies and opt-outs from them, and reads the funnel from ``message_counts``."""
    from latam_messaging.campaigns import answers
    from latam_messaging.campaigns import views as campaign_views

    schema.campaign_answers.create(conn)
    create_indexes(conn, schema.inbound_messages, "ix_inbound_in_reply_to")
    for statement in answers.index_statements(conn.dialect.name) + answers.trigger_statements(conn.dialect.name):
        conn.execute(sa.text(statement))
    answers.rebuild(conn)
    conn.execute(sa.text("DROP VIEW IF EXISTS campaigns"))
    for statement in campaign_views.view_statements(conn.dialect.name):
        conn.execute(sa.text(statement))


def _v14_failure_counts(conn: sa.Connection) -> None:
    """The failures per stage and reason kept by triggers (``warehouse.failures``), filled from the events
    and the ledger in the same transaction (the triggers' DDL locks both tables against writers first);
    ``report_failure_reasons`` counts from them; the events of status texts the vocabulary does not know
    get a partial index (``report_unrecognised_statuses`` read every event of the history: 5 s of the
    report on 15 M events)."""
    from latam_messaging.warehouse import failures, views

    schema.failed_messages.create(conn)
    schema.failure_counts.create(conn)
    create_indexes(conn, schema.message_status_events, "ix_status_events_unknown")
    for statement in failures.trigger_statements(conn.dialect.name):
        conn.execute(sa.text(statement))
    failures.rebuild(conn)
    replace_views(conn, views.CHANGED_IN_V14)


def _v15_skipped_counts(conn: sa.Connection) -> None:
    """The rows skipped for consent per file and source kept by triggers (``views.skipped_counts``), filled
    from the rows in the same transaction (the triggers' DDL locks both tables against writers first);
    ``report_suppressed_rows`` counts from them."""
    from latam_messaging.warehouse import views

    schema.skipped_counts.create(conn)
    counts = views.skipped_counts(conn.dialect.name)
    for statement in counts.trigger_statements(conn.dialect.name):
        conn.execute(sa.text(statement))
    counts.rebuild(conn)
    replace_views(conn, views.CHANGED_IN_V15)


def _v16_delivery_times(conn: sa.Connection) -> None:
    """Each send's first event and first delivery kept by triggers (``warehouse.delivery_times``), filled
    from the events in the same transaction (the triggers' DDL locks the events against writers first);
    ``report_time_to_deliver`` reads them, not the events. The fill is one pass over every event, past the
    warehouse's statement timeout (``delivery_times.rebuild``); writers of events wait for it (or time out
    and retry): stop the ingest DAGs while migrating a long history."""
    from latam_messaging.warehouse import delivery_times, views

    schema.delivery_times.create(conn)
    for statement in delivery_times.trigger_statements(conn.dialect.name):
        conn.execute(sa.text(statement))
    delivery_times.rebuild(conn)
    replace_views(conn, views.CHANGED_IN_V16)


def _v17_number_check_staging(conn: sa.Connection) -> None:
    """A ``number_checks/`` file's phones are staged while it is read and queued when it loads, as the
    send drops' rows are: a file that fails queues none of its phones."""
    schema.number_check_staging.create(conn)


MIGRATIONS: list[Migration] = [
    Migration(1, "initial tables of CONTRACT.md", _v1_initial),
    Migration(2, "number_check_queue and the risky_numbers view", _v2_number_checks),
    Migration(3, "reporting views", _v3_report_views),
    Migration(4, "send claims: outbound_messages.claimed_by and send_leases", _v4_send_claims),
    Migration(5, "lossless status events and inbound (ITD direction, ids, notes); report views", _v5_lossless_events),
    Migration(6, "drop ix_outbound_claimed_by (answers are found by key; the planner misused it)", _v6_drop_claimed_by_index),
    Migration(7, "failure reasons, pricing and conversations of status events; Meta inbound fields", _v7_vendor_reasons_and_costs),
    Migration(8, "consent: suppressions, their file staging, outbound consent_exempt and expires_at; consent views", _v8_consent),
    Migration(9, "campaigns: campaign_files, audit_log, short_links, message_prices; the campaigns view", _v9_campaigns),
    Migration(10, "retention: raw_webhook_events.purged_at and archive_path, their indexes", _v10_raw_retention),
    Migration(11, "message_counts kept by triggers; report_delivery_funnel and campaigns read from it", _v11_message_counts),
    Migration(12, "ix_outbound_file with accepted_at; partial indexes of unknown, refused and suppressed sends; inbound by time; time to deliver", _v12_page_lookups),
    Migration(13, "campaign_answers kept by triggers (replies and opt-outs of campaigns' sends); the campaigns view reads them", _v13_campaign_answers),
    Migration(14, "failed_messages and failure_counts kept by triggers (failures at delivery and at send); report_failure_reasons reads them; ix_status_events_unknown", _v14_failure_counts),
    Migration(15, "skipped_counts kept by triggers (rows skipped for consent at ingest and at claim); report_suppressed_rows reads them", _v15_skipped_counts),
    Migration(16, "delivery_times kept by triggers (each send's first event and first delivery); report_time_to_deliver reads them", _v16_delivery_times),
    Migration(17, "number_check_staging: a number_checks file's phones are queued only when the whole file loads", _v17_number_check_staging),
]


def migrate(engine: sa.Engine, upto: int | None = None) -> list[int]:
    """Apply the pending migrations (up to version ``upto``); returns the versions applied now."""
    schema.schema_migrations.create(engine, checkfirst=True)
    applied_now = []
    with engine.connect() as conn:
        done = set(conn.execute(sa.select(schema.schema_migrations.c.version)).scalars())
    for migration in MIGRATIONS:
        if migration.version in done or (upto is not None and migration.version > upto):
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
