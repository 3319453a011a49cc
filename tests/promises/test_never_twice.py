"""Never twice, nothing half-loaded — under what production brings: overlapping dispatchers (threads and
processes), ambiguous vendor answers, files that break late, hostile drops, and SQL given as a param.
Every test runs on SQLite and PostgreSQL (the ``warehouse`` fixture) and counts sends at the simulator."""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import requests
import sqlalchemy as sa

from latam_messaging.drops.csvfile import MAX_FIELD_CHARS
from latam_messaging.itd.send import ItdAdapter
from latam_messaging.sending.pipeline import dispatch, ingest_drops
from latam_messaging.teleprom.number_checks import CheckStats, UnsafeQueryError, queue_from_query
from latam_messaging.teleprom.send import TelepromAdapter
from latam_messaging.warehouse import schema
from latam_messaging.wavy.send import WavyAdapter
from tests.helpers.connections import set_connection
from tests.helpers.drops import drop_csv
from tests.helpers.ledger import states
from tests.helpers.paths import ROOT
from tests.helpers.sending import assert_each_row_sent_once, hsm_rows, load_catalog, wavy_rows
from tests.helpers.simulators import sim_state
from tests.helpers.waiting import wait_until

T = schema.outbound_messages


# ---- overlapping dispatchers -------------------------------------------------------------------------
def small_batches(monkeypatch, server) -> None:
    """Teleprom batches of 25 (the ``batch_size`` extra): many claims, so dispatchers really collide."""
    set_connection(
        monkeypatch, "teleprom_default", conn_type="teleprom", host=server.url, login="demo", password="demo-pass",
        extra={"batch_size": 25},
    )


@pytest.mark.parametrize("dispatchers", [2, 8])
def test_overlapping_dispatchers_in_threads_send_each_row_once(
    warehouse, teleprom_hook, teleprom_server, drop_dir, monkeypatch, dispatchers
):
    load_catalog(warehouse, teleprom_hook)
    small_batches(monkeypatch, teleprom_server)
    total = 1500
    drop_csv(drop_dir, "teleprom_hsm", "t.csv", hsm_rows(total))
    ingest_drops(TelepromAdapter(), warehouse, drop_dir, region="AR", timezone="UTC")
    barrier = threading.Barrier(dispatchers)
    errors: list[BaseException] = []

    def run() -> None:
        try:
            barrier.wait()
            dispatch(TelepromAdapter(), warehouse, concurrency=2)  # each its own hook, lease and claims
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(dispatchers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert_each_row_sent_once(warehouse, teleprom_server, "teleprom", total)
    assert warehouse.count(schema.send_leases) == 0  # every lease released


DISPATCHER_PROCESS = """
import pathlib, sys, time
go = pathlib.Path(sys.argv[1])
from latam_messaging.teleprom.send import TelepromAdapter
from latam_messaging.sending.pipeline import dispatch
from latam_messaging.warehouse.db import Warehouse
warehouse = Warehouse.from_connection()
(go.parent / f"ready-{sys.argv[2]}").touch()
while not go.exists():  # a barrier across processes: all start claiming together
    time.sleep(0.005)
dispatch(TelepromAdapter(), warehouse, concurrency=2)
"""


def test_eight_overlapping_dispatcher_processes_send_each_row_once(
    warehouse, teleprom_hook, teleprom_server, drop_dir, monkeypatch, tmp_path
):
    load_catalog(warehouse, teleprom_hook)
    small_batches(monkeypatch, teleprom_server)
    total = 2000
    drop_csv(drop_dir, "teleprom_hsm", "t.csv", hsm_rows(total))
    ingest_drops(TelepromAdapter(), warehouse, drop_dir, region="AR", timezone="UTC")
    go = tmp_path / "go"
    procs = [
        subprocess.Popen([sys.executable, "-c", DISPATCHER_PROCESS, str(go), str(i)], cwd=ROOT, env=os.environ.copy())
        for i in range(8)
    ]

    def all_ready() -> bool:
        if len(list(tmp_path.glob("ready-*"))) >= 8:
            return True
        assert all(p.poll() is None for p in procs), "a dispatcher process died before the barrier"
        return False

    wait_until(all_ready, timeout=120, what="the 8 dispatcher processes to start")
    go.touch()
    assert [p.wait(timeout=180) for p in procs] == [0] * 8
    assert_each_row_sent_once(warehouse, teleprom_server, "teleprom", total)


def test_a_second_run_never_marks_a_live_runs_rows_unknown(warehouse, wavy_hook, wavy_server, drop_dir):
    """The old bug: a run starting beside a live one turned the live run's in-flight rows 'unknown'."""
    drop_csv(drop_dir, "wavy_sms", "w.csv", wavy_rows(3000))
    ingest_drops(WavyAdapter(), warehouse, drop_dir, region="AR", timezone="UTC")
    requests.post(f"{wavy_server.url}/_sim/config", json={"latency_ms": 300}, timeout=5).raise_for_status()
    first = threading.Thread(target=dispatch, args=(WavyAdapter(), warehouse), kwargs={"hook": wavy_hook})
    first.start()
    wait_until(lambda: states(warehouse, "wavy").get("sending"), timeout=30, what="the first run's rows in flight",
               interval=0.01)
    second = dispatch(WavyAdapter(), warehouse, hook=wavy_hook)
    first.join()
    assert second.marked_unknown == 0
    assert_each_row_sent_once(warehouse, wavy_server, "wavy", 3000)


# ---- ambiguous answers -----------------------------------------------------------------------------------
class FaultyProxy:
    """Forwards to a simulator; for the first ``faults`` POSTs to ``path`` it lets the vendor act, then
    answers ``504`` (``mode="504"``) or cuts the connection without an answer (``mode="cut"``)."""

    def __init__(self, target: str, path: str, mode: str, faults: int = 1):
        proxy = self
        self.target, self.path, self.mode, self.faults = target, "/" + path.lstrip("/"), mode, faults
        self.forwarded = 0
        self.lock = threading.Lock()

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _forward(self, method: str) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "content-length")}
                answer = requests.request(method, proxy.target + self.path, data=body, headers=headers, timeout=30)
                with proxy.lock:
                    fault = method == "POST" and self.path.split("?")[0] == proxy.path and proxy.faults > 0
                    proxy.faults -= fault
                    proxy.forwarded += method == "POST" and self.path.split("?")[0] == proxy.path
                if fault and proxy.mode == "cut":
                    self.connection.shutdown(socket.SHUT_RDWR)  # the vendor acted; the answer never comes
                    self.close_connection = True
                    return
                status, content = (504, b"<html>gateway timeout</html>") if fault else (answer.status_code, answer.content)
                self.send_response(status)
                self.send_header("Content-Type", "text/html" if fault else answer.headers.get("Content-Type", ""))
                self.send_header("Content-Length", str(len(content)))
                self.end_headers()
                self.wfile.write(content)

            def do_POST(self):  # noqa: N802
                self._forward("POST")

            def do_GET(self):  # noqa: N802
                self._forward("GET")

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.mark.parametrize("mode", ["504", "cut"])
def test_itd_send_answered_504_or_cut_after_acting_reaches_the_vendor_once(
    warehouse, itd_server, drop_dir, monkeypatch, mode
):
    from latam_messaging.itd import contract

    proxy = FaultyProxy(itd_server.url, contract.SEND.path, mode)
    try:
        set_connection(monkeypatch, "itd_default", conn_type="itd_chile", host=proxy.url, password="itd-demo-token")
        drop_csv(drop_dir, "itd_whatsapp", "a.csv", "phone,content_type,content\n+56 9 6123 4567,TEXT,hola\n")
        ingest_drops(ItdAdapter(), warehouse, drop_dir, region="CL", timezone="UTC")
        stats = dispatch(ItdAdapter(), warehouse, concurrency=1)
        assert proxy.forwarded == 1 and sim_state(itd_server)["accepted_messages"] == 1  # never a second send
        assert stats.states == {"unknown": 1} and states(warehouse, "itd") == {"unknown": 1}
        # ITD takes no client id: nothing to search by, so the row waits for an operator (never re-sent)
        assert dispatch(ItdAdapter(), warehouse, concurrency=1).attempted == 0
        assert proxy.forwarded == 1
    finally:
        proxy.close()


@pytest.mark.parametrize("mode", ["504", "cut"])
def test_wavy_bulk_answered_504_or_cut_is_unknown_then_resolved_by_correlation_id(
    warehouse, wavy_server, drop_dir, monkeypatch, mode
):
    from latam_messaging.wavy import contract
    from latam_messaging.wavy.hook import WavyHook

    proxy = FaultyProxy(wavy_server.url, contract.SEND_BULK.path, mode)
    try:
        set_connection(
            monkeypatch, "wavy_default", conn_type="wavy", host=proxy.url, login="demo@wavy.global",
            password="wavy-demo-token",
        )
        requests.post(f"{wavy_server.url}/_sim/config", json={"status_rate_limit": 1000}, timeout=5)
        drop_csv(drop_dir, "wavy_sms", "w.csv", wavy_rows(1500))
        ingest_drops(WavyAdapter(), warehouse, drop_dir, region="BR", timezone="UTC")
        stats = dispatch(WavyAdapter(), warehouse, concurrency=1)
        assert proxy.forwarded == 2  # two bulks, neither repeated
        assert stats.states == {"unknown": 1000, "accepted": 500}
        assert sim_state(wavy_server)["accepted_messages"] == 1500  # the vendor had acted on both
        hook = WavyHook(status_queries_per_s=0)
        assert WavyAdapter().reconcile_unknown(warehouse, hook) == 1000
        assert_each_row_sent_once(warehouse, wavy_server, "wavy", 1500)
    finally:
        proxy.close()


def test_teleprom_batch_answered_504_after_acting_is_unknown_then_resolved_by_its_callbacks(
    warehouse, teleprom_hook, teleprom_server, receiver, drop_dir, monkeypatch
):
    """Teleprom's callbacks carry our message_key (identificador): they prove the vendor has the rows."""
    from latam_messaging.teleprom import contract
    from latam_messaging.teleprom.hook import TelepromHook
    from latam_messaging.vendors import callback_parsers
    from latam_messaging.webhooks.ingest import ingest_pending
    from tests.helpers.simulators import configure

    load_catalog(warehouse, teleprom_hook)
    configure(teleprom_server, webhook_url=receiver.hook_url("teleprom"))
    proxy = FaultyProxy(teleprom_server.url, contract.SEND_HSM.path, "504")
    try:
        TelepromHook.forget_tokens()
        set_connection(
            monkeypatch, "teleprom_default", conn_type="teleprom", host=proxy.url, login="demo", password="demo-pass"
        )
        drop_csv(drop_dir, "teleprom_hsm", "t.csv", hsm_rows(300))
        ingest_drops(TelepromAdapter(), warehouse, drop_dir, region="AR", timezone="UTC")
        stats = dispatch(TelepromAdapter(), warehouse, concurrency=1)
        assert proxy.forwarded == 1 and stats.states == {"unknown": 300}  # one request, never repeated
        assert sim_state(teleprom_server)["accepted_messages"] == 300

        def resolved() -> bool:
            if states(warehouse, "teleprom") == {"accepted": 300}:
                return True
            ingest_pending(warehouse, callback_parsers())  # the callbacks that arrived so far
            return False

        wait_until(resolved, timeout=30, interval=0.1,
                   what=lambda: f"the callbacks to resolve every row: {states(warehouse, 'teleprom')}")
        assert_each_row_sent_once(warehouse, teleprom_server, "teleprom", 300)
    finally:
        proxy.close()
        TelepromHook.forget_tokens()


# ---- files: all or nothing, never blocking, never leaking -------------------------------------------------
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


def test_two_ingest_runs_at_once_take_each_file_once(warehouse, drop_dir):
    for i in range(6):
        drop_csv(drop_dir, "wavy_sms", f"f{i}.csv", wavy_rows(200, start=i * 200))
    barrier = threading.Barrier(2)
    results = []

    def run() -> None:
        barrier.wait()
        results.append(ingest_drops(WavyAdapter(), warehouse, drop_dir, region="BR", timezone="UTC"))

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(r.files for r in results) == 6 and sum(r.duplicates for r in results) == 0
    assert warehouse.count(T) == 1200 and states(warehouse, "wavy") == {"pending": 1200}
    assert len(list((drop_dir / "wavy_sms" / "archive").iterdir())) == 6


# ---- phones_query ------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "sql",
    [
        "UPDATE outbound_messages SET content = 'rewritten'; COMMIT",
        "COMMIT; UPDATE outbound_messages SET content = 'rewritten'",
        "DELETE FROM outbound_messages",
        "SELECT phone FROM outbound_messages; DROP TABLE outbound_messages",
        "WITH gone AS (DELETE FROM outbound_messages RETURNING phone) SELECT phone FROM gone",
    ],
)
def test_phones_query_cannot_write(warehouse, sql):
    from tests.helpers.ledger import add_ledger_row

    add_ledger_row(warehouse, "m-0000000000000000-1", "wavy", state="pending")
    before = warehouse.rows(T)
    with pytest.raises((UnsafeQueryError, sa.exc.DBAPIError)):
        queue_from_query(warehouse, sql, default_max_age_hours=24, stats=CheckStats())
    assert warehouse.rows(T) == before
    assert warehouse.count(schema.number_check_queue) == 0
    # the same warehouse still takes an honest query, and writes normally afterwards
    stats = CheckStats()
    queue_from_query(warehouse, "SELECT phone FROM outbound_messages", default_max_age_hours=24, stats=stats)
    assert stats.queued == 1 and warehouse.count(schema.number_check_queue) == 1


def test_release_unknown_fails_when_no_key_matched(run_dag, warehouse, wavy_hook, drop_dir):
    from tests.helpers.ledger import add_ledger_row

    add_ledger_row(warehouse, "m-00000000000000aa-1", "wavy", state="accepted", vendor_id="x")
    run = run_dag("wavy_sms_send", run_conf={"release_unknown": ["m-00000000000000aa-1"]})
    assert run.state == "failed"
    assert states(warehouse, "wavy") == {"accepted": 1}


def test_send_due_scales_out_as_mapped_instances_that_share_the_rows(run_dag, warehouse, wavy_hook, wavy_server, drop_dir):
    drop_csv(drop_dir, "wavy_sms", "w.csv", wavy_rows(2500))
    run = run_dag("wavy_sms_send", run_conf={"send_instances": 3})
    assert run.state == "success"
    mapped = sorted(ti.map_index for ti in run.get_task_instances() if ti.task_id == "send_due")
    assert mapped == [0, 1, 2]
    assert_each_row_sent_once(warehouse, wavy_server, "wavy", 2500)
