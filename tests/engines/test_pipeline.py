"""The send DAGs and pipeline against the simulators, on both warehouses: every row accounted for,
no message ever sent twice."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pendulum
import sqlalchemy as sa

from latam_messaging.sending.pipeline import dispatch, ingest_drops
from latam_messaging.teleprom.send import TelepromAdapter
from latam_messaging.warehouse import schema
from latam_messaging.wavy.send import WavyAdapter
from tests.helpers.drops import drop_csv
from tests.helpers.ledger import states
from tests.helpers.paths import ROOT
from tests.helpers.sending import hsm_rows, load_catalog, settled, wait_until_leases_lapse
from tests.helpers.simulators import configure, sim_state
from tests.helpers.waiting import wait_until

T = schema.outbound_messages


MESSY_TELEPROM = (
    "Teléfono;Plantilla;Cuenta;Parámetro 1;Parámetro 2\n"
    "+54 9 351 672-3999;payment_reminder;39;José;$ 1.000\n"  # 1 ok
    "0351 15 672-3998;26;;Ana;$ 20\n"  # 2 ok (national format, template by id)
    "351 555;payment_reminder;39;Ana;$ 1\n"  # 3 bad phone
    "5493516723997;promo_black_friday;41;x;\n"  # 4 template not Accepted
    "5493516723996;payment_reminder;39;Ana;\n"  # 5 too few params
    "5493516723995;payment_reminder;39;Ana;$ 3;extra\n"  # 6 too many fields
    "+54 9 351 672-3999;payment_reminder;39;José;$ 1.000\n"  # 7 duplicate of 1
    "5493516723994;shipping_confirmation;41;2;\n"  # 8 wrong account
)


def test_a_messy_drop_lands_exactly_and_a_redrop_sends_nothing(
    run_dag, warehouse, teleprom_hook, teleprom_server, drop_dir
):
    load_catalog(warehouse, teleprom_hook)
    drop_csv(drop_dir, "teleprom_hsm", "campaña.csv", MESSY_TELEPROM, encoding="cp1252")
    assert run_dag("teleprom_hsm_send").state == "success"

    [file] = warehouse.rows(schema.drop_files)
    assert (file["state"], file["rows_total"], file["rows_valid"], file["rows_rejected"]) == ("loaded", 8, 2, 6)
    assert len(list((drop_dir / "teleprom_hsm" / "archive").glob("*campaña.csv"))) == 1
    rejects = {r["row_number"]: r["reason"] for r in warehouse.rows(schema.drop_rejects)}
    assert sorted(rejects) == [3, 4, 5, 6, 7, 8]
    assert "not a valid number" in rejects[3] and "Rejected, not Accepted" in rejects[4]
    assert "takes 2 parameter(s), the row has 1" in rejects[5] and "6 fields but the header has 5" in rejects[6]
    assert rejects[7] == "duplicate of row 1 (same phone and content)" and "belongs to account 39, not 41" in rejects[8]
    sent = warehouse.rows(sa.select(T).order_by(T.c.row_number))
    assert [(r["row_number"], r["phone"], r["state"], r["params"]) for r in sent] == [
        (1, "5493516723999", "accepted", ["José", "$ 1.000"]),
        (2, "5493516723998", "accepted", ["Ana", "$ 20"]),
    ]
    state = sim_state(teleprom_server)
    assert {m["tracking"]: m["id"] for m in state["messages"]} == {
        r["message_key"]: r["vendor_message_id"] for r in sent
    }

    drop_csv(drop_dir, "teleprom_hsm", "campaña (copia).csv", MESSY_TELEPROM, encoding="cp1252")
    assert run_dag("teleprom_hsm_send").state == "success"
    assert sim_state(teleprom_server)["accepted_messages"] == 2
    assert warehouse.count(schema.drop_files) == 1 and warehouse.count(T) == 2


def test_unreadable_file_goes_to_failed_with_the_reason(run_dag, warehouse, wavy_hook, drop_dir):
    drop_csv(drop_dir, "wavy_sms", "sin_columnas.csv", "nombre,apellido\nAna,Pérez\n")
    assert run_dag("wavy_sms_send").state == "success"
    [file] = warehouse.rows(schema.drop_files)
    assert file["state"] == "failed" and "required column(s) missing: message, phone" in file["error"]
    assert len(list((drop_dir / "wavy_sms" / "failed").iterdir())) == 1


def test_scheduled_rows_and_send_window(run_dag, warehouse, wavy_hook, wavy_server, drop_dir, monkeypatch):
    later = pendulum.now("America/Argentina/Buenos_Aires").add(seconds=8).replace(microsecond=0)
    naive = later.format("YYYY-MM-DDTHH:mm:ss")  # naive local time: MESSAGING_TIMEZONE
    drop_csv(drop_dir, "wavy_sms", "a.csv", f"phone,message,send_at\n5511987654321,now,\n5511987654322,later,{naive}\n")
    now_local = pendulum.now("America/Argentina/Buenos_Aires")
    closed = f"{now_local.add(hours=2):%H:00}-{now_local.add(hours=3):%H:00}"
    assert run_dag("wavy_sms_send", run_conf={"send_window": closed}).state == "success"
    assert states(warehouse, "wavy") == {"scheduled": 2}  # outside the window nothing goes out
    assert run_dag("wavy_sms_send").state == "success"
    assert pendulum.now("UTC") < later, "the first two runs took over 8 s: the row was due during them"
    assert states(warehouse, "wavy") == {"accepted": 1, "scheduled": 1}
    # until the row's send_at has passed (a deadline wait, not a guess)
    wait_until(lambda: pendulum.now("UTC") > later, timeout=30, what="the scheduled row's send_at to pass")
    assert run_dag("wavy_sms_send").state == "success"
    assert states(warehouse, "wavy") == {"accepted": 2}
    assert sim_state(wavy_server)["accepted_messages"] == 2


def test_itd_no_credits_stops_sending_and_the_next_run_resumes(run_dag, warehouse, itd_hook, itd_server, drop_dir):
    configure(itd_server, credits=3)
    rows = "".join(f"+56 9 6{i:03d} 4567,TEXT,hola {i}\n" for i in range(6))
    drop_csv(drop_dir, "itd_whatsapp", "a.csv", "phone,content_type,content\n" + rows)
    assert run_dag("itd_whatsapp_send", run_conf={"concurrency": 1}).state == "failed"
    assert states(warehouse, "itd") == {"accepted": 3, "pending": 3}
    configure(itd_server, credits=100)
    assert run_dag("itd_whatsapp_send").state == "success"
    assert states(warehouse, "itd") == {"accepted": 6}
    assert sim_state(itd_server)["accepted_messages"] == 6
    keys = {r["vendor_message_id"] for r in warehouse.rows(T)}
    assert keys == {m["id"] for m in sim_state(itd_server)["messages"]}


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


def test_an_expired_token_mid_batch_is_renewed_once(warehouse, teleprom_hook, teleprom_server, drop_dir):
    load_catalog(warehouse, teleprom_hook)
    drop_csv(drop_dir, "teleprom_hsm", "t.csv", hsm_rows(1000))
    ingest_drops(TelepromAdapter(), warehouse, drop_dir, region="AR", timezone="UTC")
    logins = sim_state(teleprom_server)["logins"]
    configure(teleprom_server, expire_tokens=True)
    dispatch(TelepromAdapter(), warehouse, hook=teleprom_hook, concurrency=4)
    assert sim_state(teleprom_server)["logins"] == logins + 1
    assert states(warehouse, "teleprom") == {"accepted": 1000}


KILLABLE_SEND = """
from latam_messaging.wavy.send import WavyAdapter
from latam_messaging.sending.pipeline import dispatch
from latam_messaging.warehouse.db import Warehouse
dispatch(WavyAdapter(), Warehouse.from_connection(), concurrency=2, lease_s=1.0)
"""


def test_a_run_killed_mid_batch_never_sends_twice(warehouse, wavy_hook, wavy_server, drop_dir):
    total = 6000
    drop_csv(
        drop_dir, "wavy_sms", "big.csv", "phone,message\n" + "".join(f"55119876{i:05d},hola\n" for i in range(total))
    )
    ingest_drops(WavyAdapter(), warehouse, drop_dir, region="AR", timezone="UTC")
    configure(wavy_server, latency_ms=400)
    sender = subprocess.Popen([sys.executable, "-c", KILLABLE_SEND], cwd=ROOT, env=os.environ.copy())

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
