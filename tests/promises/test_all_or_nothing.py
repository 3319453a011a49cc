"""All or nothing, never blocking, never leaking: drop files under what production brings — a file
that breaks after its first chunk leaves nothing sendable, hostile entries (a symlink, a FIFO, a folder,
huge or broken headers) never block the folder and never leak a symlink's target, field limits reject
only their row and keep true row numbers. On SQLite and PostgreSQL (the ``warehouse`` fixture); sends
are counted at the simulator."""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path

import sqlalchemy as sa

from latam_messaging.drops.csvfile import MAX_FIELD_CHARS
from latam_messaging.sending.pipeline import dispatch, ingest_drops
from latam_messaging.warehouse import schema
from latam_messaging.wavy.send import WavyAdapter
from tests.helpers.drops import drop_csv
from tests.helpers.sending import assert_each_row_sent_once, wavy_rows
from tests.helpers.simulators import sim_state

T = schema.outbound_messages


def test_a_file_broken_after_its_first_chunk_leaves_nothing_sendable(
    warehouse, wavy_hook, wavy_server, drop_dir
):
    good = wavy_rows(12_000)
    broken = good.encode() + b"5511987612000,caf\x81\n"  # a byte no encoding we read accepts, in row 12,001
    folder = drop_dir / "wavy_sms"
    folder.mkdir()
    (folder / "big.csv").write_bytes(broken)
    stats = ingest_drops(WavyAdapter(), warehouse, drop_dir, region="BR", timezone="UTC")
    assert stats.failed == 1 and stats.rows_valid == 0
    [file] = warehouse.rows(schema.drop_files)
    assert (file["state"], file["rows_valid"], file["rows_total"]) == ("failed", 0, 0)
    assert file["error"].startswith("the file is not valid cp1252 text at or after row 1")
    assert warehouse.count(T) == 0 and warehouse.count(schema.drop_rejects) == 0
    assert dispatch(WavyAdapter(), warehouse, hook=wavy_hook).attempted == 0
    assert sim_state(wavy_server)["accepted_messages"] == 0
    # the corrected file, re-dropped: each row once
    drop_csv(drop_dir, "wavy_sms", "big-fixed.csv", good + "5511987612000,cafe\n")
    ingest_drops(WavyAdapter(), warehouse, drop_dir, region="BR", timezone="UTC")
    dispatch(WavyAdapter(), warehouse, hook=wavy_hook)
    assert_each_row_sent_once(warehouse, wavy_server, "wavy", 12_001)


def test_hostile_entries_never_block_the_folder_and_a_symlink_target_never_leaks(
    warehouse, wavy_hook, wavy_server, drop_dir, tmp_path, caplog, capsys
):
    canary = "CANARY-7f3a9c-SECRET"
    secret = tmp_path / "secret.env"
    secret.write_text(f"phone,message\n5511987654321,{canary}\nAIRFLOW_CONN_X={canary}\n")
    folder = drop_dir / "wavy_sms"
    folder.mkdir()
    (folder / "leak.csv").symlink_to(secret)
    (folder / "x.csv").mkdir()
    os.mkfifo(folder / "pipe.csv")
    (folder / "bad-header.csv").write_bytes(b"ph\xffone\x00,message\n5511987654321,hola\n")
    (folder / "wide.csv").write_text(",".join(f"c{i}" for i in range(40_000)) + "\n")
    (folder / "many.csv").write_text("phone,message," + ",".join(f"c{i}" for i in range(300)) + "\n")
    drop_csv(drop_dir, "wavy_sms", "z-good.csv", wavy_rows(3))
    caplog.set_level(logging.DEBUG)
    started = time.monotonic()
    stats = ingest_drops(WavyAdapter(), warehouse, drop_dir, region="BR", timezone="UTC")
    assert time.monotonic() - started < 10  # the 40,000-column header is refused in linear time
    assert stats.files == 1 and stats.failed == 6
    dispatch(WavyAdapter(), warehouse, hook=wavy_hook)
    assert_each_row_sent_once(warehouse, wavy_server, "wavy", 3)  # the good file went through
    failed = sorted(p.name.split("-", 2)[2] for p in (folder / "failed").iterdir())
    assert failed == ["bad-header.csv", "leak.csv", "many.csv", "pipe.csv", "wide.csv", "x.csv"]
    assert not list((folder / ".claimed").rglob("*.csv"))  # nothing stays claimed to block a later run
    errors = {Path(r["path"]).name.split("-", 2)[2]: r["error"] for r in warehouse.rows(schema.drop_files) if r["error"]}
    assert errors == {
        "wide.csv": "the header line is longer than 16384 characters",
        "many.csv": "the header has 302 columns; at most 256 are read",
        "bad-header.csv": "the header contains a NUL character: not a text CSV",
    }
    # the canary is nowhere: not in any table, not in any log line or output
    with warehouse.engine.connect() as conn:
        for table in schema.metadata.sorted_tables:
            for row in conn.execute(sa.select(table)):
                assert canary not in json.dumps([str(v) for v in row]), table.name
    assert canary not in caplog.text
    captured = capsys.readouterr()
    assert canary not in captured.out + captured.err
    assert secret.read_text().count(canary) == 2  # the target itself untouched


def test_field_limits_reject_only_their_row_and_keep_true_row_numbers(warehouse, drop_dir):
    body = (
        "phone,message\n"
        "5511987654301,uno\n"
        f"5511987654302,{'x' * 200_000}\n"
        '5511987654303,"dos\nlíneas"\n'
        "5511987654304,nul\x00here\n"
        "5511987654305,cinco\n"
    )
    drop_csv(drop_dir, "wavy_sms", "limits.csv", body)
    stats = ingest_drops(WavyAdapter(), warehouse, drop_dir, region="BR", timezone="UTC")
    assert (stats.rows_valid, stats.rows_rejected) == (3, 2)
    rejects = {r["row_number"]: r for r in warehouse.rows(schema.drop_rejects)}
    assert sorted(rejects) == [2, 4]
    assert f"at most {MAX_FIELD_CHARS}" in rejects[2]["reason"] and "NUL" in rejects[4]["reason"]
    assert len(rejects[2]["raw_row"]) < MAX_FIELD_CHARS + 100  # the reject keeps a bounded copy
    kept = {r["row_number"]: r["content"] for r in warehouse.rows(T)}
    assert kept == {1: "uno", 3: "dos\nlíneas", 5: "cinco"}
    [file] = warehouse.rows(schema.drop_files)
    assert (file["rows_total"], file["rows_valid"], file["rows_rejected"]) == (5, 3, 2)
