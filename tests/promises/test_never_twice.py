"""Never twice — under what production brings: overlapping dispatchers (threads and processes), runs
SIGKILLed mid-batch (each vendor), throttled and ambiguous vendor answers, two ingest runs at once, mapped
send instances. Every test runs on SQLite and PostgreSQL (the ``warehouse`` fixture) and counts sends at
the simulator: the vendor never gets a message twice.

A killed run: rows that never left are sent by the next run; rows in flight become ``unknown``, are
listed for an operator and are never re-sent on their own. Waits are deadline waits (``wait_until``)
on the warehouse or the simulator, not sleeps.

Never twice is also tested line by line in the ledger's tests (``tests/engines/test_ledger.py``: claims,
leases), by the planted-bug tests (``test_planted_bugs.py``: no send retried after a read timeout or a
5xx, ``release_unknown`` releases only ``unknown`` rows, a duplicate file is known by its SHA-256) and
on two Celery workers (``tests/stack/test_celery.py``).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time

import pendulum
import pytest
import requests
import sqlalchemy as sa

from latam_messaging.itd.send import ItdAdapter
from latam_messaging.sending.ledger import Ledger
from latam_messaging.sending.pipeline import dispatch, ingest_drops, unknown_report
from latam_messaging.teleprom.catalog import sync_catalog
from latam_messaging.teleprom.send import TelepromAdapter
from latam_messaging.warehouse import schema
from latam_messaging.wavy.send import WavyAdapter
from tests.helpers.connections import set_connection
from tests.helpers.drops import drop_csv
from tests.helpers.ledger import states
from tests.helpers.paths import ROOT
from tests.helpers.scripted import FaultyProxy
from tests.helpers.sending import (
    adapter_for,
    assert_each_row_sent_once,
    hsm_rows,
    load_catalog,
    settled,
    wait_until_leases_lapse,
    wavy_rows,
)
from tests.helpers.simulators import configure, sim_state
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


# ---- runs killed mid-batch ------------------------------------------------------------------------------
KILLABLE_SEND = """
import sys
from latam_messaging.warehouse.db import Warehouse
from tests.helpers.sending import adapter_for
from latam_messaging.sending.pipeline import dispatch
dispatch(adapter_for(sys.argv[1]), Warehouse.from_connection(), concurrency=2, lease_s=1.0)
"""


def start_sender(vendor: str, env: dict[str, str] | None = None) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", KILLABLE_SEND, vendor], cwd=ROOT, env={**os.environ, **(env or {})}
    )


def kill(sender: subprocess.Popen) -> None:
    sender.send_signal(signal.SIGKILL)
    sender.wait()


def keys_in(warehouse, vendor: str, state: str) -> set[str]:
    query = sa.select(T.c.message_key).where(T.c.vendor == vendor, T.c.state == state)
    return {r["message_key"] for r in warehouse.rows(query)}


def test_a_teleprom_run_killed_mid_batch_sends_the_rest_once_and_lists_the_unknown(
    warehouse, teleprom_hook, teleprom_server, drop_dir, monkeypatch
):
    total, batch = 300, 20
    sync_catalog(warehouse, teleprom_hook.get_templates(), teleprom_hook.get_accounts())
    rows = "".join(f"54935161{i:05d},shipping_confirmation,{i % 9 + 1}\n" for i in range(total))
    drop_csv(drop_dir, "teleprom_hsm", "t.csv", "phone,template,param_1\n" + rows)
    ingest_drops(adapter_for("teleprom"), warehouse, drop_dir, region="AR", timezone="UTC")
    set_connection(  # the killed run reads the connection from the environment, with small requests
        monkeypatch, "teleprom_default", conn_type="teleprom", host=teleprom_server.url, login="demo",
        password="demo-pass", extra={"batch_size": batch},
    )
    configure(teleprom_server, latency_ms=300)
    sender = start_sender("teleprom")
    try:
        wait_until(lambda: (s := states(warehouse, "teleprom")).get("accepted", 0) >= 2 * batch and s.get("sending"),
                   timeout=60, what="some requests answered and the next ones in flight", interval=0.02)
    finally:
        kill(sender)
    configure(teleprom_server, latency_ms=0)
    after_kill = states(warehouse, "teleprom")
    in_flight = keys_in(warehouse, "teleprom", "sending")
    never_left = after_kill.get("pending", 0)
    assert 0 < len(in_flight) <= 2 * batch  # claimed per request: at most workers × batch in doubt
    assert never_left > 0  # rows the killed run never claimed

    wait_until_leases_lapse(warehouse)
    settled(teleprom_server, 0.6)
    stats = dispatch(adapter_for("teleprom"), warehouse, hook=teleprom_hook)  # the next run
    assert stats.marked_unknown == len(in_flight) and stats.attempted == never_left
    final = states(warehouse, "teleprom")
    assert final == {"accepted": total - len(in_flight), "unknown": len(in_flight)}
    assert keys_in(warehouse, "teleprom", "unknown") == in_flight  # only what was in flight is in doubt
    report = unknown_report(warehouse, "teleprom")
    assert {r["message_key"] for r in report} == in_flight  # listed for an operator
    state = sim_state(teleprom_server)
    assert state["duplicate_trackings"] == []  # checked at the vendor: nothing went out twice
    at_vendor = {m["tracking"] for m in state["messages"]}
    accepted = keys_in(warehouse, "teleprom", "accepted")
    assert accepted <= at_vendor and at_vendor - accepted <= in_flight


def black_hole() -> tuple[socket.socket, str]:
    """A server that accepts connections and never answers: a request sent there never reaches a vendor."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    return sock, f"http://127.0.0.1:{sock.getsockname()[1]}"


def test_an_itd_run_killed_mid_request_leaves_unknown_rows_an_operator_releases(
    warehouse, itd_hook, itd_server, drop_dir
):
    total = 12
    rows = "".join(f"+56 9 6{i:03d} 4567,TEXT,hola {i}\n" for i in range(total))
    drop_csv(drop_dir, "itd_whatsapp", "a.csv", "phone,content_type,content\n" + rows)
    ingest_drops(adapter_for("itd"), warehouse, drop_dir, region="CL", timezone="UTC")
    hole, url = black_hole()
    conn = f'{{"conn_type": "itd_chile", "host": "{url}", "password": "itd-demo-token"}}'
    sender = start_sender("itd", {"AIRFLOW_CONN_ITD_DEFAULT": conn})
    try:
        wait_until(lambda: states(warehouse, "itd").get("sending", 0) >= 2, timeout=60,
                   what="both workers' requests in flight", interval=0.02)
        time.sleep(0.2)  # let a claim past the limit (if any) show: none may
    finally:
        kill(sender)
        hole.close()
    in_flight = keys_in(warehouse, "itd", "sending")
    assert states(warehouse, "itd") == {"sending": 2, "pending": total - 2}

    wait_until_leases_lapse(warehouse)
    stats = dispatch(adapter_for("itd"), warehouse, hook=itd_hook)  # the next run sends what never left
    assert (stats.marked_unknown, stats.attempted) == (2, total - 2)
    assert states(warehouse, "itd") == {"accepted": total - 2, "unknown": 2}
    assert {r["message_key"] for r in unknown_report(warehouse, "itd")} == in_flight
    unknown_phones = {r["phone"] for r in unknown_report(warehouse, "itd")}
    assert sim_state(itd_server)["accepted_messages"] == total - 2
    assert not unknown_phones & {m["phone"] for m in sim_state(itd_server)["messages"]}  # truly never sent

    again = dispatch(adapter_for("itd"), warehouse, hook=itd_hook)  # never re-sent on their own
    assert (again.attempted, sim_state(itd_server)["accepted_messages"]) == (0, total - 2)

    # the operator checked with ITD: not sent. Released, they go out once.
    assert sorted(Ledger(warehouse, "itd").release_unknown(sorted(in_flight), pendulum.now("UTC"))) == sorted(in_flight)
    dispatch(adapter_for("itd"), warehouse, hook=itd_hook)
    assert states(warehouse, "itd") == {"accepted": total}
    phones = [m["phone"] for m in sim_state(itd_server)["messages"]]
    assert len(phones) == len(set(phones)) == total  # each message reached ITD exactly once


def test_a_run_killed_mid_batch_never_sends_twice(warehouse, wavy_hook, wavy_server, drop_dir):
    total = 6000
    drop_csv(
        drop_dir, "wavy_sms", "big.csv", "phone,message\n" + "".join(f"55119876{i:05d},hola\n" for i in range(total))
    )
    ingest_drops(WavyAdapter(), warehouse, drop_dir, region="AR", timezone="UTC")
    configure(wavy_server, latency_ms=400)
    sender = start_sender("wavy")

    def mid_batch() -> bool:  # one page is recorded and the next is in flight
        assert sender.poll() is None, f"the sender ended before it could be killed mid-batch: {states(warehouse, 'wavy')}"
        now = states(warehouse, "wavy")
        return now.get("accepted", 0) >= 1000 and now.get("sending", 0) > 0

    try:
        wait_until(mid_batch, timeout=60, what=lambda: f"a page accepted and the next in flight: {states(warehouse, 'wavy')}")
    finally:
        sender.send_signal(signal.SIGKILL)
        sender.wait()
    configure(wavy_server, latency_ms=0)
    in_flight = states(warehouse, "wavy").get("sending", 0)
    assert 0 < in_flight <= 2 * 1000  # claimed per request: at most workers × bulk size in doubt

    wait_until_leases_lapse(warehouse)
    stats = dispatch(WavyAdapter(), warehouse, hook=wavy_hook)  # the next run, once the dead run's lease lapsed
    assert stats.marked_unknown == in_flight
    settled(wavy_server, 0.5)  # the simulator has finished any request the killed run had sent
    WavyAdapter().reconcile_unknown(warehouse, wavy_hook)
    final = states(warehouse, "wavy")
    assert set(final) <= {"accepted", "unknown"} and sum(final.values()) == total
    state = sim_state(wavy_server)
    assert state["duplicate_trackings"] == []  # checked at the vendor: nothing went out twice
    accepted = {r["message_key"] for r in warehouse.rows(sa.select(T.c.message_key).where(T.c.state == "accepted"))}
    assert {m["tracking"] for m in state["messages"]} == accepted


# ---- answers: a send is retried only when the vendor provably did not act ---------------------------------
def test_429s_are_retried_and_every_row_is_delivered_once(
    warehouse, teleprom_hook, teleprom_server, wavy_hook, wavy_server, drop_dir
):
    """A 429 provably did not act: sends retry it."""
    load_catalog(warehouse, teleprom_hook)
    drop_csv(drop_dir, "teleprom_hsm", "t.csv", hsm_rows(1200))
    drop_csv(drop_dir, "wavy_sms", "w.csv", "phone,message\n" + "".join(f"55119876{i:05d},hola\n" for i in range(2500)))
    for adapter in (TelepromAdapter(), WavyAdapter()):
        ingest_drops(adapter, warehouse, drop_dir, region="AR", timezone="UTC")
    configure(teleprom_server, throttle_rate=0.2)
    configure(wavy_server, throttle_rate=0.2)
    teleprom_hook.max_retries = wavy_hook.max_retries = 10
    dispatch(TelepromAdapter(), warehouse, hook=teleprom_hook)
    dispatch(WavyAdapter(), warehouse, hook=wavy_hook)
    assert states(warehouse, "teleprom") == {"accepted": 1200} and states(warehouse, "wavy") == {"accepted": 2500}
    for server, expected in ((teleprom_server, 1200), (wavy_server, 2500)):
        state = sim_state(server)
        assert state["faults_injected"] > 0
        assert state["accepted_messages"] == expected and state["duplicate_trackings"] == []


def test_5xx_answers_to_sends_are_never_repeated_but_left_unknown(
    warehouse, teleprom_hook, teleprom_server, wavy_hook, wavy_server, drop_dir, monkeypatch
):
    """A 5xx may come after the vendor acted: the rows of that request become unknown, never re-sent."""
    load_catalog(warehouse, teleprom_hook)
    drop_csv(drop_dir, "teleprom_hsm", "t.csv", hsm_rows(1200))
    drop_csv(drop_dir, "wavy_sms", "w.csv", "phone,message\n" + "".join(f"55119876{i:05d},hola\n" for i in range(6000)))
    monkeypatch.setattr(teleprom_hook.connection, "extra", '{"batch_size": 100}')  # the extra: 12 requests
    for adapter in (TelepromAdapter(), WavyAdapter()):
        ingest_drops(adapter, warehouse, drop_dir, region="AR", timezone="UTC")
    configure(teleprom_server, error_rate=0.4)
    configure(wavy_server, error_rate=0.4)
    teleprom_hook.max_retries = wavy_hook.max_retries = 10
    dispatch(TelepromAdapter(), warehouse, hook=teleprom_hook)
    dispatch(WavyAdapter(), warehouse, hook=wavy_hook)
    for server, vendor, total in ((teleprom_server, "teleprom", 1200), (wavy_server, "wavy", 6000)):
        state = sim_state(server)
        final = states(warehouse, vendor)
        assert state["faults_injected"] > 0 and final.get("unknown", 0) > 0
        assert set(final) == {"accepted", "unknown"} and sum(final.values()) == total
        # one request per 5xx, none repeated: the vendor got exactly the accepted rows, once each
        assert state["accepted_messages"] == final["accepted"] and state["duplicate_trackings"] == []
    # the simulator failed before acting: a correlationId search finds none of them, so they stay for an operator
    assert WavyAdapter().reconcile_unknown(warehouse, wavy_hook) == 0
    assert states(warehouse, "wavy")["unknown"] > 0


# ---- ambiguous answers (``FaultyProxy``: the vendor acts, then the answer is a 504 or never comes) ---------
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


# ---- files: each taken by one run -----------------------------------------------------------------------
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


# ---- mapped send instances ----------------------------------------------------------------------------
def test_send_due_scales_out_as_mapped_instances_that_share_the_rows(run_dag, warehouse, wavy_hook, wavy_server, drop_dir):
    drop_csv(drop_dir, "wavy_sms", "w.csv", wavy_rows(2500))
    run = run_dag("wavy_sms_send", run_conf={"send_instances": 3})
    assert run.state == "success"
    mapped = sorted(ti.map_index for ti in run.get_task_instances() if ti.task_id == "send_due")
    assert mapped == [0, 1, 2]
    assert_each_row_sent_once(warehouse, wavy_server, "wavy", 2500)
