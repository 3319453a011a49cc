"""``scripts/bench_history.py``: the synthetic history ``make bench --history`` measures on, at a small
scale on both databases: the counts asked, keys in the loader's format and unique, the migrated schema
(indexes and constraints) intact after the fill, the views reading it, and the cache reused."""

from __future__ import annotations

import re

import pendulum
import pytest
import sqlalchemy as sa

from latam_messaging.warehouse import schema
from latam_messaging.warehouse.migrations import MIGRATIONS
from scripts import bench_history
from scripts.bench_history import HistorySize

SIZE = HistorySize(outbound=12_000, events=36_000, raw=5_000)  # two files, the second one short


def scalar(warehouse, sql: str):
    with warehouse.engine.connect() as conn:
        return conn.exec_driver_sql(sql).scalar_one()


def test_fill_writes_what_was_asked_in_the_real_formats(warehouse):
    with warehouse.engine.connect() as conn:
        schema_before = bench_history._index_definitions(conn, warehouse.dialect)
    now = pendulum.now("UTC")
    result = bench_history.fill(warehouse, SIZE, now=now, log=lambda _line: None)

    counts = warehouse.table_counts(list(result.rows))
    assert counts == result.rows == {
        "campaign_files": 2, "drop_files": 2, "outbound_messages": 12_000, "message_status_events": 36_000,
        "raw_webhook_events": 5_000, "inbound_messages": 120, "suppressions": 6,
    }
    keys = [row["message_key"] for row in warehouse.rows(sa.text("SELECT message_key FROM outbound_messages"))]
    assert len(set(keys)) == len(keys)
    assert all(re.fullmatch(r"m-[0-9a-f]{16}-\d{1,5}", key) for key in keys)
    # the key is the loader's: its file's first 16 hex and its row number; the campaign is its file
    assert scalar(warehouse, """
        SELECT COUNT(*) FROM outbound_messages o JOIN campaign_files c ON c.file_sha256 = o.file_sha256
        WHERE o.message_key = 'm-' || c.campaign_id || '-' || CAST(o.row_number AS VARCHAR(10))""") == 12_000
    # every event is of an accepted message of the history; no raw body waits for parsing
    assert scalar(warehouse, """
        SELECT COUNT(*) FROM message_status_events e JOIN outbound_messages o ON o.message_key = e.message_key
        WHERE o.state = 'accepted' AND o.vendor_message_id = e.vendor_message_id""") == 36_000
    assert scalar(warehouse, "SELECT COUNT(*) FROM raw_webhook_events WHERE parse_state = 'pending'") == 0
    assert scalar(warehouse, "SELECT COUNT(DISTINCT body_sha256) FROM raw_webhook_events") == 5_000
    accepted = scalar(warehouse, "SELECT COUNT(*) FROM outbound_messages WHERE state = 'accepted'")
    assert 0.9 < accepted / 12_000 < 0.97
    delivered = scalar(warehouse, "SELECT COUNT(*) FROM outbound_messages WHERE delivery_status IN ('delivered', 'read')")
    assert 0.7 < delivered / accepted < 0.9
    # timestamps over the past five months, none in the future
    at = schema.message_status_events.c.event_at
    with warehouse.engine.connect() as conn:
        oldest, newest = conn.execute(sa.select(sa.func.min(at), sa.func.max(at))).one()
    assert now.subtract(days=bench_history.SPAN_DAYS + 1) < oldest < now.subtract(days=140)
    assert now.subtract(days=3) < newest < now

    # the migrated schema is whole again: the same indexes and constraints, enforced; migrations are current
    with warehouse.engine.connect() as conn:
        assert bench_history._index_definitions(conn, warehouse.dialect) == schema_before
    assert warehouse.migrate() == []
    event = warehouse.rows(sa.text("SELECT vendor, vendor_message_id, status, event_at, recorded_at FROM "
                                   "message_status_events ORDER BY id LIMIT 1"))[0]
    with pytest.raises(sa.exc.IntegrityError), warehouse.begin() as conn:
        conn.execute(sa.text("INSERT INTO message_status_events (vendor, vendor_message_id, status, raw_status, "
                             "event_at, recorded_at, source) VALUES (:vendor, :vendor_message_id, :status, :status, "
                             ":event_at, :recorded_at, 'webhook')"), dict(event))
    with pytest.raises(sa.exc.IntegrityError), warehouse.begin() as conn:
        conn.execute(sa.text("INSERT INTO outbound_messages (message_key, vendor, phone, state, created_at, updated_at) "
                             "SELECT message_key, vendor, phone, state, created_at, updated_at FROM outbound_messages "
                             "WHERE row_number = 1"))
    # the aggregate tables, where the schema has them, hold what the history makes
    if bench_history.summary_rebuilders():
        from latam_messaging.campaigns import answers
        from latam_messaging.warehouse import aggregates, failures, views

        with warehouse.engine.connect() as conn:
            assert aggregates.check(conn) == []
            assert answers.check(conn) == []
            assert failures.check(conn) == []
            assert views.skipped_counts(warehouse.dialect).check(conn) == []
            assert conn.exec_driver_sql("SELECT COUNT(*) FROM campaign_answers WHERE kind = 'reply'").scalar_one() > 0
            assert conn.exec_driver_sql("SELECT SUM(messages) FROM failure_counts").scalar_one() > 0
    # the views read it: the funnel counts every send once
    assert scalar(warehouse, "SELECT SUM(messages) FROM report_delivery_funnel") == 12_000
    assert scalar(warehouse, "SELECT SUM(messages) FROM campaigns") == 12_000


def test_more_events_than_the_messages_make_are_refused(warehouse):
    with pytest.raises(ValueError, match="status events asked"):
        bench_history.fill(warehouse, HistorySize(1_000, 4_000, 10), log=lambda _line: None)


def test_sqlite_history_is_built_once_then_reused(tmp_path):
    size = HistorySize(3_000, 9_000, 1_000)
    path, filled = bench_history.cached_sqlite(size, tmp_path, log=lambda _line: None)
    assert filled is not None and filled.rows["outbound_messages"] == 3_000
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no .part, -wal or -shm left
    stamp = path.stat().st_mtime_ns
    again, refilled = bench_history.cached_sqlite(size, tmp_path, log=lambda _line: None)
    assert (again, refilled) == (path, None) and path.stat().st_mtime_ns == stamp
    copy = tmp_path / "run" / "warehouse.db"
    bench_history.copy_sqlite(path, copy)
    assert sa.create_engine(f"sqlite:///{copy}").connect().exec_driver_sql(
        "SELECT COUNT(*) FROM message_status_events").scalar_one() == 9_000
    # another size or schema version is another file
    assert HistorySize(3_001, 9_000, 1_000).key("sqlite") != size.key("sqlite")


def test_postgres_history_is_a_template_built_once(postgres_server):
    size = HistorySize(3_000, 9_000, 1_000)
    admin = postgres_server.url()
    name, filled = bench_history.cached_postgres(size, admin, log=lambda _line: None)
    try:
        assert filled is not None
        assert bench_history.cached_postgres(size, admin, log=lambda _line: None) == (name, None)
        copy = f"{name[:40]}_copy"
        bench_history.copy_postgres(admin, name, copy)
        try:
            engine = sa.create_engine(postgres_server.url(copy))
            with engine.connect() as conn:
                assert conn.exec_driver_sql("SELECT COUNT(*) FROM outbound_messages").scalar_one() == 3_000
                latest = max(m.version for m in MIGRATIONS)
                assert conn.exec_driver_sql("SELECT MAX(version) FROM schema_migrations").scalar_one() == latest
            engine.dispose()
        finally:
            bench_history.drop_database(admin, copy)
    finally:
        bench_history.drop_database(admin, name)
