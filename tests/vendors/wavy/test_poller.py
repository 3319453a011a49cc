"""wavy_poll (``wavy/poller.py`` on ``polling.py``) against the simulator, on both warehouses."""

from __future__ import annotations

import time

import pytest
import sqlalchemy as sa

from latam_messaging.vendors import callback_parsers
from latam_messaging.warehouse import schema
from latam_messaging.wavy import poller as wavy_poller
from latam_messaging.wavy.models import SmsMessage
from latam_messaging.webhooks.ingest import ingest_pending
from tests.helpers.drops import drop_csv
from tests.helpers.ledger import add_ledger_row
from tests.helpers.simulators import configure

T = schema.outbound_messages
E = schema.message_status_events


def test_wavy_status_queue_is_committed_raw_before_parsing(warehouse, wavy_hook, wavy_server, monkeypatch):
    keys = [(f"m-w-{i}", f"55119876{i:05d}") for i in range(20)]
    receipts = wavy_hook.send_bulk([SmsMessage(phone, "hola", correlation_id=key) for key, phone in keys])
    for (key, phone), receipt in zip(keys, receipts, strict=True):
        add_ledger_row(warehouse, key, "wavy", phone=phone, vendor_id=receipt.id)
    time.sleep(wavy_server.simulator.step * 3)

    # crash after the page is fetched and committed, before it is parsed
    from latam_messaging.webhooks import ingest

    def crash(*args, **kwargs):
        raise RuntimeError("worker died")

    monkeypatch.setattr(ingest, "apply_status_events", crash)
    assert wavy_poller.drain_wavy_queue(warehouse, wavy_hook, "status_list") >= 20
    with pytest.raises(RuntimeError):
        ingest.ingest_pending(warehouse, callback_parsers())
    monkeypatch.undo()
    assert wavy_poller.drain_wavy_queue(warehouse, wavy_hook, "status_list") == 0  # the queue is empty now
    assert warehouse.count(schema.raw_webhook_events, schema.raw_webhook_events.c.parse_state == "pending") >= 1

    ingest_pending(warehouse, callback_parsers())  # the next run parses what was committed: nothing lost
    records = {m["id"]: m for m in wavy_server.simulator.messages.values()}
    expected = {r["correlationId"]: ("delivered" if r["delivered_code"] == 4 else "failed") for r in records.values()}
    assert {r["message_key"]: r["delivery_status"] for r in warehouse.rows(T)} == expected
    assert warehouse.count(E) == sum(2 if r["delivered_code"] is not None else 1 for r in records.values())


def test_duplicate_and_out_of_order_statuses_and_the_search_fallback(warehouse, wavy_hook, wavy_server):
    keys = [(f"m-s-{i}", f"55119875{i:05d}") for i in range(10)]
    receipts = wavy_hook.send_bulk([SmsMessage(phone, "hola", correlation_id=key) for key, phone in keys])
    for (key, phone), receipt in zip(keys, receipts, strict=True):
        add_ledger_row(warehouse, key, "wavy", phone=phone, vendor_id=receipt.id)
    with warehouse.begin() as conn:  # one of them was 'unknown' (in flight when a run died)
        conn.execute(sa.update(T).where(T.c.message_key == "m-s-0").values(state="unknown", vendor_message_id=None))
    time.sleep(wavy_server.simulator.step * 3)
    stored = wavy_poller.search_open_wavy(warehouse, wavy_hook, open_after_minutes=0)
    assert stored > 0
    first = {r["message_key"]: (r["state"], r["delivery_status"]) for r in warehouse.rows(T)}
    records = {m["correlationId"]: m for m in wavy_server.simulator.messages.values()}
    expected = {  # what the vendor did, from its own records; m-s-0 resolved too: Wavy has it
        key: ("accepted", "delivered" if records[key]["delivered_code"] == 4 else "failed") for key, _ in keys
    }
    assert first == expected
    # the queue now delivers the same statuses again, the sent one after the delivered one
    wavy_poller.drain_wavy_queue(warehouse, wavy_hook, "status_list")
    ingest_pending(warehouse, callback_parsers())
    assert wavy_poller.search_open_wavy(warehouse, wavy_hook, open_after_minutes=0) == 0
    assert {r["message_key"]: (r["state"], r["delivery_status"]) for r in warehouse.rows(T)} == expected
    assert warehouse.count(E) == stored


def test_wavy_poll_dag_fills_inbound(run_dag, warehouse, wavy_hook, wavy_server, drop_dir):
    configure(wavy_server, reply_rate=1.0)
    drop_csv(drop_dir, "wavy_sms", "a.csv", "phone,message\n" + "".join(f"55119874{i:05d},hola\n" for i in range(5)))
    assert run_dag("wavy_sms_send").state == "success"
    time.sleep(wavy_server.simulator.step * 5)
    assert run_dag("wavy_poll").state == "success"
    delivered = sum(1 for r in wavy_server.simulator.messages.values() if r["delivered_code"] is not None)
    assert warehouse.count(schema.inbound_messages) == delivered
    assert all(r["delivery_status"] in ("delivered", "failed") for r in warehouse.rows(T))
