"""A send run SIGKILLed mid-run, for Teleprom and ITD (the Wavy one is in ``test_send_pipeline.py``), on
both warehouses: rows that never left are sent by the next run; rows in flight become ``unknown``,
are listed for an operator and are never re-sent on their own; the vendor (the simulator) never
gets a message twice. Waits are deadline waits (``wait_until``) on the warehouse or the simulator, not sleeps.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

import pendulum
import sqlalchemy as sa

from latam_messaging.sending.ledger import Ledger
from latam_messaging.sending.pipeline import dispatch, ingest_drops, unknown_report
from latam_messaging.teleprom.catalog import sync_catalog
from latam_messaging.warehouse import schema
from tests.helpers.connections import set_connection
from tests.helpers.drops import drop_csv
from tests.helpers.ledger import states
from tests.helpers.paths import ROOT
from tests.helpers.sending import adapter_for, settled, wait_until_leases_lapse
from tests.helpers.simulators import configure, sim_state
from tests.helpers.waiting import wait_until

T = schema.outbound_messages


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
