"""Several receiver processes against one PostgreSQL warehouse: ``--workers N`` and separate processes.

Stored = acknowledged in each process, a worker killed under load costs no acknowledged body, and the
same body reaching two processes at once is one row with two 200s. SQLite refuses ``--workers`` > 1.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
import sqlalchemy as sa

from latam_messaging.warehouse import schema
from tests.helpers.receiver import ReceiverProcess
from tests.helpers.waiting import wait_until

R = schema.raw_webhook_events


def body(tag: str, i: int) -> bytes:
    """A Teleprom V0 status callback, distinct per (tag, i)."""
    return json.dumps(
        [{"fechaHora": "2026-11-23T10:00:00.000-03:00", "identificador": f"{tag}-{i}", "telefono": "5493516723999",
          "resultado": "delivered", "empresa": "MaytenCloud", "origen": "WSP", "sentTime": "1.0"}]
    ).encode()


def stored_hashes(warehouse) -> list[str]:
    return [row["body_sha256"] for row in warehouse.rows(sa.select(R.c.body_sha256))]


@pytest.fixture
def receivers():
    started: list[ReceiverProcess] = []

    def start(workers: int = 1) -> ReceiverProcess:
        started.append(ReceiverProcess(workers=workers))
        return started[-1]

    yield start
    for receiver in started:
        if receiver.process.poll() is None:
            receiver.process.kill()
            receiver.process.wait()


@pytest.mark.parametrize("warehouse", ["postgres"], indirect=True)
def test_two_workers_store_every_acknowledged_body_once(receivers, warehouse):
    receiver = receivers(workers=2).wait_ready()
    threads, per_thread = 8, 40

    def client(t: int) -> list[int]:
        with requests.Session() as session:
            return [
                session.post(receiver.hook_url("teleprom"), data=body(f"w{t}", i), timeout=30).status_code
                for i in range(per_thread)
            ]

    with ThreadPoolExecutor(threads) as pool:
        codes = [code for codes in pool.map(client, range(threads)) for code in codes]
    assert codes == [200] * (threads * per_thread)
    expected = {hashlib.sha256(body(f"w{t}", i)).hexdigest() for t in range(threads) for i in range(per_thread)}
    hashes = stored_hashes(warehouse)
    assert len(hashes) == threads * per_thread and set(hashes) == expected
    assert receiver.stop() == 0


@pytest.mark.parametrize("warehouse", ["postgres"], indirect=True)
def test_a_worker_killed_mid_load_loses_no_acknowledged_body_and_is_replaced(receivers, warehouse):
    receiver = receivers(workers=2).wait_ready()
    victim = receiver.worker_pids()[0]
    acknowledged: list[str] = []
    refused = []  # connection reset by the killed worker, or a 503: the vendor would retry
    lock = threading.Lock()
    stop = threading.Event()

    def client(t: int) -> None:
        i = 0
        while not stop.is_set():
            raw = body(f"k{t}", i)
            i += 1
            try:
                ok = requests.post(receiver.hook_url("teleprom"), data=raw, timeout=30).status_code == 200
            except requests.RequestException:
                ok = False
            with lock:
                (acknowledged.append(hashlib.sha256(raw).hexdigest()) if ok else refused.append(i))

    workers = [threading.Thread(target=client, args=(t,)) for t in range(6)]
    for thread in workers:
        thread.start()
    try:
        wait_until(lambda: len(acknowledged) >= 150, timeout=60, what="150 bodies acknowledged before the kill")
        os.kill(victim, signal.SIGKILL)
        killed_at = len(acknowledged)
        wait_until(
            lambda: victim not in receiver.worker_pids() and len(receiver.worker_pids()) == 2,
            timeout=120, what=lambda: f"the supervisor to replace the killed worker (workers now: {receiver.worker_pids()})",
        )
        wait_until(lambda: len(acknowledged) >= killed_at + 150, timeout=60, what="150 more bodies after the kill")
    finally:
        stop.set()
        for thread in workers:
            thread.join()
    hashes = stored_hashes(warehouse)
    assert len(hashes) == len(set(hashes))
    assert set(acknowledged) <= set(hashes), f"{len(set(acknowledged) - set(hashes))} acknowledged bodies lost"
    assert receiver.stop() == 0  # SIGTERM: a graceful shutdown of the supervisor and its workers


@pytest.mark.parametrize("warehouse", ["postgres"], indirect=True)
def test_the_same_bodies_at_two_processes_at_once_are_one_row_each_and_both_200(receivers, warehouse):
    first, second = receivers(), receivers()
    first.wait_ready()
    second.wait_ready()
    count, threads = 120, 6
    # both processes get every body; one walks them forwards, the other backwards, from several threads,
    # so their group commits hold overlapping keys in opposite orders at the same moment
    orders = {first: list(range(count)), second: list(reversed(range(count)))}
    start = threading.Barrier(2 * threads)

    def client(job: tuple[ReceiverProcess, int]) -> list[int]:
        receiver, t = job
        start.wait()
        with requests.Session() as session:
            return [
                session.post(receiver.hook_url("itd"), data=body("dup", i), timeout=30).status_code
                for i in orders[receiver][t::threads]
            ]

    jobs = [(receiver, t) for receiver in (first, second) for t in range(threads)]
    with ThreadPoolExecutor(len(jobs)) as pool:
        codes = [code for codes in pool.map(client, jobs) for code in codes]
    assert codes == [200] * (2 * count)
    hashes = stored_hashes(warehouse)
    assert sorted(hashes) == sorted(hashlib.sha256(body("dup", i)).hexdigest() for i in range(count))


@pytest.mark.parametrize("warehouse", ["sqlite"], indirect=True)
def test_sqlite_refuses_several_workers_and_says_why(receivers, warehouse):
    receiver = receivers(workers=2)
    assert receiver.process.wait(timeout=60) != 0
    output = receiver.process.stdout.read()
    assert "--workers 2 needs a PostgreSQL warehouse" in output
    assert warehouse.count(R) == 0
