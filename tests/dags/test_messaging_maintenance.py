"""``messaging_maintenance`` through ``dag.test()`` on both warehouses: the check reports what is due, raw
bodies are archived then purged under ``MESSAGING_ARCHIVE_URL``, old drop archives pruned, each task's
counts returned; a second run finds nothing to do."""

from __future__ import annotations

import os
import time

import pendulum
import sqlalchemy as sa

from latam_messaging.maintenance.raw_retention import decode_part
from latam_messaging.warehouse import schema
from latam_messaging.webhooks.raw import body_bytes, raw_event_row
from tests.helpers.ledger import add_ledger_row

RAW = schema.raw_webhook_events


def returned(run) -> dict[str, dict]:
    """Each task's return value (its XCom)."""
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        rows = session.query(XComModel).filter_by(dag_id=run.dag_id, run_id=run.run_id, key="return_value").all()
        return {r.task_id: XComModel.deserialize_value(r) for r in rows}


def test_the_dag_archives_purges_and_prunes_then_has_nothing_left(run_dag, warehouse, drop_dir, tmp_path, monkeypatch):
    archive = tmp_path / "archive"
    monkeypatch.setenv("MESSAGING_ARCHIVE_URL", f"file://{archive}")
    monkeypatch.setenv("MESSAGING_RAW_RETENTION_DAYS", "0.5")
    bodies = {b'{"a":1}': "parsed", b'{"b":2}': "parsed", b"pending body": "pending", b"bad": "error"}
    long_ago = pendulum.now("UTC").subtract(days=1)
    with warehouse.begin() as conn:
        for raw, state in bodies.items():
            row = raw_event_row("wavy", "callback", raw, "application/json") | {"parse_state": state}
            row["parsed_at"] = None if state == "pending" else long_ago
            conn.execute(RAW.insert().values(**row))
    old = drop_dir / "wavy_sms" / "archive" / "20200101T000000-abc123-old.csv"
    old.parent.mkdir(parents=True)
    old.write_text("phone\n")
    fresh = drop_dir / "wavy_sms" / "archive" / f"{pendulum.now('UTC').format('YYYYMMDDTHHmmss')}-abc123-new.csv"
    fresh.write_text("phone\n")
    os.utime(fresh, (time.time(), time.time()))
    add_ledger_row(warehouse, "m-1", "wavy")
    with warehouse.begin() as conn:  # a count written by hand: found and repaired
        conn.execute(sa.text("UPDATE message_counts SET messages = messages + 2"))
        # and a reply no inbound row makes, written by hand: found and removed
        conn.execute(sa.text("INSERT INTO campaign_answers (kind, vendor, answer, message_key, file_sha256) "
                             "VALUES ('reply', 'wavy', 'in-none', 'm-1', :sha)"), {"sha": "f" * 64})
        # and a failed message no event makes: found and removed, its count with it
        conn.execute(sa.text("INSERT INTO failed_messages VALUES ('wavy', 'w-none', 'FAILED')"))
        # and a row skipped for consent nothing makes: given its difference
        conn.execute(sa.text("INSERT INTO skipped_counts (stage, file_sha256, vendor, source, messages) "
                             "VALUES ('claim', NULL, 'wavy', 'keyword', 4)"))
        # and a delivery time no event makes: removed
        conn.execute(sa.text("INSERT INTO delivery_times VALUES ('k-none', '2026-01-01 00:00:00', NULL)"))

    run = run_dag("messaging_maintenance")

    assert run.state == "success"
    results = returned(run)
    assert results["check"]["due_now"] == 2 and results["check"]["pending_never_purged"] == 1
    assert results["check"]["drop_files_due"] == 1
    assert results["archive_raw_bodies"]["rows_purged"] == 2
    [part] = list(archive.rglob("*.jsonl.gz"))
    assert results["archive_raw_bodies"]["bytes_archived"] == part.stat().st_size
    assert {body_bytes(r["body"]) for r in decode_part(part.read_bytes())} == {b'{"a":1}', b'{"b":2}'}
    kept = {r["body"] for r in warehouse.rows(sa.select(RAW).where(RAW.c.purged_at.is_(None)))}
    assert kept == {"pending body", "bad"}  # pending never, errors after their 180 days
    assert results["prune_drop_archives"]["files_deleted"] == 1 and not old.exists() and fresh.exists()
    assert results["aggregates_checked"]["keys_drifted"] == 1
    assert warehouse.rows(sa.text("SELECT messages FROM report_delivery_funnel")) == [{"messages": 1}]
    assert results["answers_checked"] == {"pairs_missing": 0, "pairs_extra": 1}
    assert warehouse.rows(sa.text("SELECT * FROM campaign_answers")) == []
    assert results["failures_checked"]["messages_drifted"] == 1 and results["failures_checked"]["counts_drifted"] == 0
    assert warehouse.rows(sa.text("SELECT * FROM report_failure_reasons")) == []
    assert results["skipped_checked"]["keys_drifted"] == 1 and results["skipped_checked"]["keys_repaired"] == 1
    assert warehouse.rows(sa.text("SELECT * FROM report_suppressed_rows")) == []
    assert results["delivery_times_checked"] == {"messages_drifted": 1, "messages_repaired": 1}
    assert warehouse.rows(sa.text("SELECT * FROM delivery_times")) == []

    again = returned(run_dag("messaging_maintenance"))
    assert again["archive_raw_bodies"]["rows_purged"] == 0 and again["archive_raw_bodies"]["bytes_archived"] == 0
    assert again["prune_drop_archives"]["files_deleted"] == 0
    assert again["aggregates_checked"] == {"keys_drifted": 0, "keys_repaired": 0, "rows_compacted": 0}
    assert again["answers_checked"] == {"pairs_missing": 0, "pairs_extra": 0}
    assert again["failures_checked"] == {"messages_drifted": 0, "counts_drifted": 0, "rows_repaired": 0, "rows_compacted": 0}
    assert again["skipped_checked"] == {"keys_drifted": 0, "keys_repaired": 0, "rows_compacted": 0}
    assert again["delivery_times_checked"] == {"messages_drifted": 0, "messages_repaired": 0}
    assert list(archive.rglob("*.jsonl.gz")) == [part]
