"""itd_poll (``itd/poller.py`` on ``polling.py``) against the simulator, on both warehouses."""

from __future__ import annotations

import time

import pendulum

from latam_messaging.itd import poller as itd_poller
from latam_messaging.itd.models import ItdMessage
from latam_messaging.warehouse import schema
from tests.helpers.drops import drop_csv
from tests.helpers.simulators import configure

T = schema.outbound_messages
E = schema.message_status_events


def test_itd_poll_dag_snapshots_credits_receives_and_tracks_statuses(
    run_dag, warehouse, itd_hook, itd_server, drop_dir
):
    configure(itd_server, reply_rate=1.0)
    drop_csv(
        drop_dir,
        "itd_whatsapp",
        "a.csv",
        "phone,content_type,content\n" + "".join(f"+56 9 6{i:03d} 4567,TEXT,hola\n" for i in range(8)),
    )
    assert run_dag("itd_whatsapp_send").state == "success"
    time.sleep(itd_server.simulator.step * 8)
    assert run_dag("itd_poll", run_conf={"low_credit_threshold": 10}).state == "success"
    [snapshot] = warehouse.rows(schema.itd_credit_snapshots)
    assert snapshot["credits"] == 1000 - 8
    timelines = {m["uuid"]: m["timeline"] for m in itd_server.simulator.messages.values()}
    final = {r["vendor_message_id"]: r["delivery_status"] for r in warehouse.rows(T)}
    mapping = {"READ": "read", "DELIVERED": "delivered", "FAILED": "failed"}
    assert final == {uuid: mapping[t[-1]] for uuid, t in timelines.items()}
    replies = sum(1 for t in timelines.values() if t[-1] == "READ")
    assert warehouse.count(schema.inbound_messages) == replies > 0
    events = warehouse.count(E)

    # a rerun of the same interval adds nothing
    assert run_dag("itd_poll", run_conf={"low_credit_threshold": 10}).state == "success"
    assert warehouse.count(schema.inbound_messages) == replies and warehouse.count(E) == events
    assert warehouse.count(schema.itd_credit_snapshots) == 2


def test_itd_poll_fails_loudly_on_low_credits_but_still_polls(run_dag, warehouse, itd_hook, itd_server):
    configure(itd_server, credits=0)
    run = run_dag("itd_poll")
    assert run.state == "failed"
    states = {ti.task_id: ti.state for ti in run.get_task_instances()}
    assert states == {
        "credits_snapshot": "success",
        "poll_received": "success",
        "poll_statuses": "success",
        "check_credit_threshold": "failed",
    }
    assert [r["credits"] for r in warehouse.rows(schema.itd_credit_snapshots)] == [0]


def test_received_watermark_and_empty_days(warehouse, itd_hook, itd_server):
    configure(itd_server, reply_rate=1.0)
    key = itd_hook.send(ItdMessage("TEXT", "hola", "56961234567"))
    time.sleep(itd_server.simulator.step * 8)
    stats = itd_poller.poll_itd_received(warehouse, itd_hook, ["56961234567", "56961234568"], lookback_days=2)
    assert stats.requests == 6 and stats.new_messages == (
        1 if itd_server.simulator.messages[key]["timeline"][-1] == "READ" else 0
    )
    marks = {r["item"]: r["value"] for r in warehouse.rows(schema.poll_watermarks)}
    yesterday = pendulum.now("America/Santiago").date().subtract(days=1).isoformat()
    assert marks == {"56961234567": yesterday, "56961234568": yesterday}
    again = itd_poller.poll_itd_received(warehouse, itd_hook, ["56961234567", "56961234568"], lookback_days=2)
    assert again.requests == 4 and again.new_messages == 0  # from the watermark on; nothing twice
