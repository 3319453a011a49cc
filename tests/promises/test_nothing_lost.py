"""Nothing lost: poison bodies and items stop nothing, and a receiver restarted under load loses no
acknowledged body — through the real receiver and webhook_ingest, on both databases."""

from __future__ import annotations

import asyncio
import functools
import json
import threading
import time

import pendulum
import pytest
import requests
import sqlalchemy as sa

from latam_messaging.teleprom.models import HsmDestination, HsmMessage
from latam_messaging.vendors import callback_parsers
from latam_messaging.warehouse import schema
from latam_messaging.webhooks import ingest
from latam_messaging.webhooks import receiver as receiver_module
from latam_messaging.webhooks.ingest import ingest_pending
from latam_messaging.webhooks.raw import body_bytes, raw_event_row
from tests.helpers.ledger import add_ledger_row
from tests.helpers.receiver import ReceiverServer
from tests.helpers.simulators import configure
from tests.helpers.waiting import wait_until

R, E, IN, T = (
    schema.raw_webhook_events,
    schema.message_status_events,
    schema.inbound_messages,
    schema.outbound_messages,
)


def post(url: str, body: bytes | dict | list) -> int:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    return requests.post(url, data=data, headers={"Content-Type": "application/json"}, timeout=30).status_code


def itd_inbound(uuid: str, **fields) -> dict:
    return {
        "uuid": uuid,
        "accountPhone": "56932028245",
        "senderPhone": "56936858019",
        "content": "hola",
        "sendAt": 1582637824000,
        "messageType": "chat",
        "direction": 1,
        **fields,
    }


def v3_status(gs_id: str, timestamp) -> dict:
    status = {"id": "wamid-x", "gs_id": gs_id, "status": "delivered", "timestamp": timestamp, "recipient_id": "549"}
    value = {"messaging_product": "whatsapp", "statuses": [status]}
    return {
        "Uuid": "u",
        "Id": "",
        "Version": "3",
        "Type": "STATUS",
        "Payload": {"entry": [{"changes": [{"value": value}]}]},
    }


def states(warehouse) -> dict[int, tuple[str, str | None]]:
    return {r["id"]: (r["parse_state"], r["parse_error"]) for r in warehouse.rows(sa.select(R).order_by(R.c.id))}


def test_poison_bodies_are_marked_and_the_rest_of_the_batch_lands(receiver, warehouse):
    add_ledger_row(warehouse, "m-good", "itd", vendor_id="good-1")
    add_ledger_row(warehouse, "m-v3", "teleprom", vendor_id="gs-1")
    bodies = [
        b"[" * 100_000,  # RecursionError in json.loads without the depth guard
        json.dumps(itd_inbound("nul-1", content="a\u0000b")).encode(),  # PostgreSQL text refuses NUL
        json.dumps(itd_inbound("long-1", messageType="x" * 40)).encode(),  # message_type is 32 characters
        b'{"sent_at": "26/12/2019 16:07", "status": "READ", "uuid": "good-1"}',
        json.dumps(v3_status("gs-1", 1e20)).encode(),  # OverflowError: the receive time is used instead
        b'{"uuid": "raw-nul", "senderPhone": "5691\x00"}',  # a NUL byte in the body itself
    ]
    for body in bodies:
        assert post(receiver.hook_url("teleprom" if b"Version" in body else "itd"), body) == 200
    raw = warehouse.rows(sa.select(R).order_by(R.c.id))
    assert [body_bytes(r["body"]) for r in raw] == bodies  # every byte stored, NUL included

    stats = ingest_pending(warehouse, callback_parsers())
    assert (stats.events, stats.parsed, stats.errors) == (6, 4, 2)
    found = states(warehouse)
    ids = [r["id"] for r in raw]
    assert found[ids[0]] == ("error", "body nests deeper than 64 levels")
    assert found[ids[1]] == ("parsed", None)  # a customer's message is never lost for one odd field
    assert found[ids[2]] == ("parsed", None)
    assert found[ids[3]] == ("parsed", None)
    assert found[ids[4]] == ("parsed", None)
    assert found[ids[5]][0] == "error" and "not JSON" in found[ids[5]][1]

    events = {e["vendor_message_id"]: e for e in warehouse.rows(E)}
    assert set(events) == {"good-1", "gs-1"}
    assert events["gs-1"]["event_at"] == raw[4]["received_at"] and "1e+20" in events["gs-1"]["note"]
    assert {r["message_key"]: r["delivery_status"] for r in warehouse.rows(T)} == {
        "m-good": "read",
        "m-v3": "delivered",
    }
    inbound = {r["vendor_message_id"]: r for r in warehouse.rows(IN)}
    assert set(inbound) == {"nul-1", "long-1"}
    assert inbound["nul-1"]["text"] == "ab" and inbound["nul-1"]["note"] == "text: NUL removed (full value in the raw body)"
    assert inbound["long-1"]["message_type"] == "x" * 32
    assert inbound["long-1"]["note"] == "message_type: 40 characters cut to 32 (full value in the raw body)"

    # never fails twice on the same row: the next run has nothing left, a reparse gives the same answer
    assert ingest_pending(warehouse, callback_parsers()).events == 0
    again = ingest_pending(warehouse, callback_parsers(), reparse_errors=True)
    assert (again.events, again.errors) == (2, 2) and states(warehouse) == found
    assert warehouse.count(IN) == 2  # nothing twice


def test_one_bad_item_costs_only_that_item(receiver, warehouse):
    add_ledger_row(warehouse, "k-1", "teleprom")
    add_ledger_row(warehouse, "k-2", "teleprom")
    add_ledger_row(warehouse, "k-3", "teleprom")
    cause = "failed: 131047 Re-engagement message: more than 24 hours have passed since the customer last replied"
    bulk = [
        {"fechaHora": "2022-05-24T13:30:02.568-03:00", "identificador": "k-1", "resultado": "delivered"},
        {"fechaHora": "2022-05-24T13:30:03.000-03:00", "identificador": "k-2", "resultado": cause},
        {"fechaHora": "2022-05-24T13:30:04.000-03:00", "identificador": "k-3", "resultado": "paused_by_meta"},
        "not an object",
        {"fechaHora": "2022-05-24T13:30:05.000-03:00", "resultado": "read"},  # no identificador
        {"fechaHora": "2022-05-24T13:31:00.000-03:00", "identificador": "k-1", "resultado": "received", "mensaje": "a"},
        {"fechaHora": "2022-05-24T13:32:00.000-03:00", "identificador": "k-1", "resultado": "received", "mensaje": "b"},
    ]
    assert post(receiver.hook_url("teleprom"), bulk) == 200
    itd_int = {"sent_at": "26/12/2019 16:07", "status": 3, "uuid": "itd-int"}  # documented as int
    assert post(receiver.hook_url("itd"), itd_int) == 200
    stats = ingest_pending(warehouse, callback_parsers())
    assert (stats.parsed, stats.partial, stats.errors) == (1, 1, 0)
    [(bulk_state, bulk_error), _] = states(warehouse).values()
    assert bulk_state == "partial"
    assert bulk_error == "item 4: V0 item without resultado; item 5: V0 status without identificador"

    events = {e["vendor_message_id"]: e for e in warehouse.rows(E)}
    assert (events["k-2"]["status"], events["k-2"]["raw_status"]) == ("failed", cause)  # the cause is kept
    assert (events["k-3"]["status"], events["k-3"]["raw_status"]) == ("unknown", "paused_by_meta")
    assert (events["itd-int"]["status"], events["itd-int"]["raw_status"]) == ("unknown", "3")
    ledger = {r["message_key"]: r["delivery_status"] for r in warehouse.rows(T)}
    assert ledger == {"k-1": "delivered", "k-2": "failed", "k-3": None}  # unknown never moves the ledger
    replies = warehouse.rows(sa.select(IN).order_by(IN.c.received_at))
    assert [(r["text"], r["in_reply_to"]) for r in replies] == [("a", "k-1"), ("b", "k-1")]  # two replies, two rows


def test_a_long_failure_cause_is_kept_whole(warehouse):
    from latam_messaging.status import StatusEvent, apply_status_events

    cause = "failed: " + "x" * 300
    event = StatusEvent("teleprom", "v-1", "failed", cause, pendulum.now("UTC"), "webhook")
    with warehouse.begin() as conn:
        apply_status_events(warehouse, conn, [event])
    [row] = warehouse.rows(E)
    assert (row["raw_status"], row["raw_text"]) == (cause[:128], cause)


def test_a_batch_write_failure_is_retried_body_by_body(receiver, warehouse, monkeypatch):
    for n in range(3):
        assert post(receiver.hook_url("itd"), json.dumps(itd_inbound(f"in-{n}")).encode()) == 200
    real = ingest.store_inbound

    def refusing(wh, conn, messages, source, **rules):  # the database refuses one row (as PostgreSQL would)
        if any(m["vendor_message_id"] == "in-1" for m in messages):
            raise sa.exc.DataError("INSERT", {}, ValueError("refused by the database"))
        return real(wh, conn, messages, source, **rules)

    monkeypatch.setattr(ingest, "store_inbound", refusing)
    stats = ingest_pending(warehouse, callback_parsers())
    assert (stats.parsed, stats.errors) == (2, 1)
    assert {r["vendor_message_id"] for r in warehouse.rows(IN)} == {"in-0", "in-2"}
    [(state, error)] = [v for v in states(warehouse).values() if v[0] != "parsed"]
    assert state == "error" and error.startswith("write failed: ValueError")
    assert ingest_pending(warehouse, callback_parsers()).events == 0  # not tried again by the next run


def _store_itd_bodies(warehouse, count: int) -> None:
    rows = [raw_event_row("itd", None, json.dumps(itd_inbound(f"in-{n}")).encode(), "application/json")
            for n in range(count)]
    with warehouse.begin() as conn:
        conn.execute(R.insert(), rows)


def test_the_next_batch_is_parsed_while_the_one_before_is_written(warehouse, monkeypatch):
    monkeypatch.setattr(ingest, "BATCH", 2)
    _store_itd_bodies(warehouse, 6)
    parsed_ahead, parsed, overlapped = threading.Event(), [], []
    real_parse, real_write = ingest._parse, ingest._write

    def parse(item, parsers):
        parsed.append(item["id"])
        if len(parsed) == 3:  # the first body of the second batch
            parsed_ahead.set()
        return real_parse(item, parsers)

    def write(wh, outcomes, stats, consent=None):
        if outcomes[0].raw_id == parsed[0]:  # the first batch waits until the second has been parsed
            overlapped.append(parsed_ahead.wait(5))
        return real_write(wh, outcomes, stats, consent)

    monkeypatch.setattr(ingest, "_parse", parse)
    monkeypatch.setattr(ingest, "_write", write)
    stats = ingest_pending(warehouse, callback_parsers())
    assert overlapped == [True], "the second batch was not parsed while the first was written"
    assert (stats.events, stats.parsed, stats.inbound) == (6, 6, 6)
    assert {r["vendor_message_id"] for r in warehouse.rows(IN)} == {f"in-{n}" for n in range(6)}


def test_a_warehouse_gone_mid_run_keeps_the_batches_written_and_loses_none_parsed_ahead(warehouse, monkeypatch):
    monkeypatch.setattr(ingest, "BATCH", 2)
    _store_itd_bodies(warehouse, 6)
    real_write, writes = ingest._write, []

    def write(wh, outcomes, stats, consent=None):
        writes.append([o.raw_id for o in outcomes])
        if len(writes) == 2:
            raise sa.exc.OperationalError("INSERT", {}, ConnectionError("server closed the connection"))
        return real_write(wh, outcomes, stats, consent)

    monkeypatch.setattr(ingest, "_write", write)
    with pytest.raises(sa.exc.OperationalError):  # the warehouse is away: the run fails, to be retried
        ingest_pending(warehouse, callback_parsers())
    assert len(writes) == 2  # the third batch, parsed meanwhile, is never written
    assert sorted(state for state, _ in states(warehouse).values()) == ["parsed"] * 2 + ["pending"] * 4
    monkeypatch.setattr(ingest, "_write", real_write)
    again = ingest_pending(warehouse, callback_parsers())  # the next run takes up the four left
    assert (again.events, again.parsed) == (4, 4)
    assert len(warehouse.rows(IN)) == 6


# ---- the receiver ----------------------------------------------------------------------------------
def test_a_poison_row_in_a_group_commit_fails_alone(warehouse):
    store = receiver_module.GroupCommitStore(warehouse)
    rows = [raw_event_row("itd", None, f"body-{n}".encode(), "application/json") for n in range(6)]
    rows[2]["body"] = None  # NOT NULL: the database refuses this row

    async def run():
        await store.start()
        outcome = await asyncio.gather(*(store.put(r) for r in rows), return_exceptions=True)
        await store.stop()
        return outcome

    outcome = asyncio.run(run())
    assert [isinstance(o, Exception) for o in outcome] == [False, False, True, False, False, False]
    assert sorted(r["body"] for r in warehouse.rows(R)) == ["body-0", "body-1", "body-3", "body-4", "body-5"]


def test_a_locked_warehouse_answers_503_within_the_wait_limit(receiver, warehouse, monkeypatch):
    monkeypatch.setattr(receiver_module, "WAIT_LIMIT_S", 0.5)
    monkeypatch.setattr(receiver_module, "MAX_QUEUE", 3)
    release = threading.Event()
    locked = threading.Event()

    def hold_lock():
        with warehouse.engine.connect() as conn:
            if warehouse.dialect == "sqlite":
                conn.exec_driver_sql("BEGIN IMMEDIATE")
            else:
                conn.begin()
                conn.execute(sa.text("LOCK TABLE raw_webhook_events IN ACCESS EXCLUSIVE MODE"))
            locked.set()
            release.wait(20)
            conn.rollback()

    holder = threading.Thread(target=hold_lock)
    holder.start()
    assert locked.wait(10), "the lock holder did not take the lock"
    answers: list[int] = []

    def send(n: int) -> None:
        answers.append(post(receiver.hook_url("itd"), {"uuid": f"locked-{n}", "status": "SENT", "sent_at": "x"}))

    started = time.monotonic()
    senders = [threading.Thread(target=send, args=(n,)) for n in range(8)]
    for sender in senders:
        sender.start()
    for sender in senders:
        sender.join(30)
    assert answers == [503] * 8 and time.monotonic() - started < 5  # no request waits unboundedly
    release.set()
    holder.join(30)
    wait_until(lambda: post(receiver.hook_url("itd"), {"uuid": "after", "status": "SENT", "sent_at": "x"}) == 200,
               timeout=30, what="a 200 once the lock is released", interval=0.2)


def test_sql_errors_never_show_bound_values(warehouse):
    assert warehouse.engine.hide_parameters
    phone, now = "5493516729999", pendulum.now("UTC")
    row = {"vendor": "itd", "vendor_message_id": "dup", "from_phone": phone, "recorded_at": now, "source": "webhook"}
    try:
        with warehouse.begin() as conn:
            conn.execute(schema.inbound_messages.insert(), [row])
            conn.execute(schema.inbound_messages.insert(), [row])
    except sa.exc.DBAPIError as exc:
        assert phone not in str(exc) and "parameters hidden" in str(exc)
    else:
        raise AssertionError("the insert should have failed")


def test_a_receiver_restart_under_load_loses_nothing(warehouse):
    server = ReceiverServer(warehouse)
    total, acknowledged = 300, []

    def vendor_like_sender(start: int) -> None:
        session = requests.Session()
        for i in range(start, total, 3):
            body = json.dumps({"sent_at": "26/12/2019 16:07", "status": "SENT", "uuid": f"u-{i}"}).encode()
            while True:  # vendors retry until they get a 200
                try:
                    if session.post(server.hook_url("itd"), data=body, timeout=5).status_code == 200:
                        acknowledged.append(i)
                        break
                except requests.RequestException:
                    pass
                time.sleep(0.02)

    senders = [threading.Thread(target=vendor_like_sender, args=(s,)) for s in range(3)]
    for sender in senders:
        sender.start()
    wait_until(lambda: len(acknowledged) >= 100, timeout=60, what="100 bodies acknowledged before the restart",
               interval=0.01)
    server.stop()
    time.sleep(0.3)
    server.start()
    for sender in senders:
        sender.join(timeout=60)
    server.stop()
    assert sorted(acknowledged) == list(range(total))
    assert warehouse.count(R) == total  # stored = acknowledged, none twice


# ---- Teleprom V1 and V3 callbacks from the simulator ----------------------------------------------
def delivered(server, already: int, wanted: int) -> bool:
    """The simulator has delivered ``wanted`` webhooks since its count was ``already``."""
    return server.simulator.webhooks.stats()["delivered"] - already >= wanted


def test_v1_and_v3_callbacks_link_by_every_id_and_replies_land(receiver, warehouse, teleprom_hook, teleprom_server):
    for version in ("V1", "V3"):
        configure(
            teleprom_server,
            webhook_url=receiver.hook_url("teleprom"),
            inbound_reply_rate=1.0,
            webhook_versions={"39": version},
        )
        destinations = [HsmDestination(f"{version}-{i}", f"54935167{i:05d}", ["1"]) for i in range(12)]
        already = teleprom_server.simulator.webhooks.stats()["delivered"]
        result = teleprom_hook.send_hsm([HsmMessage(39, 24, destinations)])
        for d, r in zip(destinations, result.results, strict=True):
            add_ledger_row(warehouse, d.tracking_number, "teleprom", vendor_id=r.message_id)
        expected = {
            d.tracking_number: teleprom_server.simulator.timeline(d.tracking_number, d.phone) for d in destinations
        }
        wanted = sum(len(t) for t in expected.values()) + sum(1 for t in expected.values() if t[-1] == "read")
        wait_until(functools.partial(delivered, teleprom_server, already, wanted), timeout=20,
                   what=f"the simulator's {version} webhooks delivered")
        ingest_pending(warehouse, callback_parsers())
        versions = {r["format_version"] for r in warehouse.rows(R) if r["parse_state"] == "parsed"}
        assert version in versions
        final = {
            r["message_key"]: r["delivery_status"] for r in warehouse.rows(T) if r["message_key"].startswith(version)
        }
        assert final == {k: t[-1] for k, t in expected.items()}
        ids = {r.message_id for r in result.results}  # a reaction names WhatsApp's id of the message instead
        ids |= {i for e in warehouse.rows(E) if e["vendor_message_id"] in ids for i in e["vendor_ids"] or []}
        replies = [r for r in warehouse.rows(IN) if r["in_reply_to"] in ids]
        assert len(replies) == sum(1 for t in expected.values() if t[-1] == "read")
