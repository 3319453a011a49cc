"""Contract tests: WavyHook against the running Wavy simulator, every endpoint and error."""

from __future__ import annotations

import time

import pendulum
import pytest
import requests

from latam_messaging.wavy import contract
from latam_messaging.wavy.hook import WavyAuthError, WavyHook, WavyValidationError
from latam_messaging.wavy.models import SmsMessage, SmsStatus
from tests.helpers.connections import set_connection
from tests.helpers.simulators import configure, sim_state


def test_send_sms_and_case_insensitive_auth_headers(wavy_hook, wavy_server):
    receipt = wavy_hook.send_sms(SmsMessage("5511900000001", "hola", correlation_id="c-1"))
    assert receipt.correlation_id == "c-1" and receipt.id
    lower = {"username": "demo@wavy.global", "authenticationtoken": "wavy-demo-token"}
    answer = requests.post(
        f"{wavy_server.url}/{contract.SEND.path}",
        json={"destination": "5511900000002", "messageText": "x"},
        headers=lower,
        timeout=5,
    )
    assert answer.status_code == 200
    assert sim_state(wavy_server)["accepted_messages"] == 2


def test_wrong_token_gets_the_documented_error_body(wavy_server, monkeypatch):
    answer = requests.post(f"{wavy_server.url}/{contract.SEND.path}", json={}, timeout=5)
    assert answer.status_code == 401
    assert answer.json()["errorCode"] == 401 and answer.json()["errorMessage"].startswith("Authentication Error")
    set_connection(
        monkeypatch, "wavy_bad", conn_type="wavy", host=wavy_server.url, login="demo@wavy.global", password="x"
    )
    with pytest.raises(WavyAuthError, match="Authentication Error"):
        WavyHook("wavy_bad").send_sms(SmsMessage("5511900000001", "hola"))


def test_bulk_is_chunked_at_1000_and_keeps_order(wavy_hook, wavy_server):
    messages = [SmsMessage(f"55119{i:08d}", correlation_id=f"b-{i}") for i in range(2500)]
    receipts = wavy_hook.send_bulk(messages, default_values={"messageText": "texto por defecto"})
    assert [r.correlation_id for r in receipts] == [f"b-{i}" for i in range(2500)]
    state = sim_state(wavy_server)
    assert state["requests_served"] == 3 and state["accepted_messages"] == 2500


def test_bulk_over_1000_and_invalid_messages_are_rejected(wavy_hook, wavy_server):
    body = {"messages": [{"destination": "5511900000001", "messageText": "x"}] * 1001}
    with pytest.raises(WavyValidationError, match="at most 1000"):
        wavy_hook.call("POST", contract.SEND_BULK.path, json=body)
    with pytest.raises(WavyValidationError, match="longer than 1280"):
        wavy_hook.send_sms(SmsMessage("5511900000001", "x" * 1281))
    with pytest.raises(WavyValidationError, match="only one of"):
        wavy_hook.call(
            "POST",
            contract.SEND.path,
            json={"destination": "5511900000001", "messageText": "x", "expiresAt": 1, "expiresInMinutes": 5},
        )
    assert sim_state(wavy_server)["accepted_messages"] == 0


def test_429_above_the_send_rate_is_backed_off(wavy_hook, wavy_server):
    configure(wavy_server, send_rate_limit=2)
    wavy_hook.backoff_max_s = 2.0  # honour the simulator's Retry-After: 1
    for i in range(5):
        wavy_hook.send_sms(SmsMessage(f"551190000{i:04d}", "hola"))
    state = sim_state(wavy_server)
    assert state["accepted_messages"] == 5


def test_status_codes_search_and_normalisation(wavy_hook, wavy_server):
    sim = wavy_server.simulator
    no_credit = next(f"nc-{i}" for i in range(5000) if sim.fraction("fate", "5511900000001", f"nc-{i}") < 0.01)
    ok = next(f"ok-{i}" for i in range(100) if sim.fraction("fate", "5511900000001", f"ok-{i}") > 0.05)
    wavy_hook.send_bulk(
        [
            SmsMessage("5511900000001", "ok", correlation_id=ok),
            SmsMessage("5511900000000", "bad", correlation_id="bad-1"),
            SmsMessage("5511900000001", "nc", correlation_id=no_credit),
        ]
    )
    time.sleep(sim.step * 3)
    found = {s.correlation_id: s for s in wavy_hook.status_search(correlation_ids=[ok, "bad-1", no_credit])}
    assert (found["bad-1"].sent_status_code, found["bad-1"].sent_status, found["bad-1"].status) == (
        202,
        "INVALID_DESTINATION_NUMBER",
        "failed",
    )
    assert (found[no_credit].sent_status, found[no_credit].status) == ("NO_CREDIT", "failed")
    assert found[ok].sent_status_code == 2 and found[ok].status in {"delivered", "failed"}
    assert found[ok].sent_at.offset == 0


def test_status_list_returns_each_status_once(wavy_hook, wavy_server):
    wavy_hook.send_bulk([SmsMessage(f"55119{i:08d}", "x", correlation_id=f"q-{i}") for i in range(1, 21)])
    time.sleep(wavy_server.simulator.step * 3)
    first = WavyHook.parse_statuses(wavy_hook.status_queue_page())
    assert len({(s.id, s.status) for s in first}) == len(first) >= 20
    assert WavyHook.parse_statuses(wavy_hook.status_queue_page()) == []


def test_inbound_list_once_and_search(wavy_hook, wavy_server):
    configure(wavy_server, reply_rate=1.0)
    wavy_hook.send_bulk([SmsMessage(f"55119{i:08d}", "x", correlation_id=f"m-{i}") for i in range(1, 11)])
    time.sleep(wavy_server.simulator.step * 5)
    page = WavyHook.parse_inbound(wavy_hook.inbound_queue_page())
    assert page and all(m.mt_correlation_id and m.mt_correlation_id.startswith("m-") for m in page)
    assert WavyHook.parse_inbound(wavy_hook.inbound_queue_page()) == []
    now = pendulum.now("America/Sao_Paulo")
    searched = wavy_hook.inbound_search(now.subtract(hours=1), now.add(minutes=1))
    assert {m.id for m in searched} == {m.id for m in page}
    with pytest.raises(WavyValidationError, match="at most 5 days"):
        wavy_hook.inbound_search(now.subtract(days=6), now)


def test_inbound_search_sends_wavy_wall_clock_time_whatever_the_zone_given(wavy_hook, wavy_server):
    """The poller asks in UTC; Wavy reads start/end as São Paulo time (wavy/contract.py): a window of
    the last minutes given in UTC (or any zone) finds what arrived in them."""
    configure(wavy_server, reply_rate=1.0)
    wavy_hook.send_bulk([SmsMessage(f"55119{i:08d}", "x", correlation_id=f"z-{i}") for i in range(1, 6)])
    time.sleep(wavy_server.simulator.step * 5)
    arrived = {m.id for m in WavyHook.parse_inbound(wavy_hook.inbound_queue_page())}
    assert arrived
    now = pendulum.now("UTC")
    assert {m.id for m in wavy_hook.inbound_search(now.subtract(minutes=10), now.add(minutes=1))} == arrived
    assert wavy_hook.inbound_search(now.in_tz("Asia/Tokyo").subtract(minutes=10), now.add(minutes=1)) != []


def test_status_queries_are_paced_to_one_per_second(wavy_server, monkeypatch):
    configure(wavy_server, status_rate_limit=1)
    set_connection(
        monkeypatch,
        "wavy_paced",
        conn_type="wavy",
        host=wavy_server.url,
        login="demo@wavy.global",
        password="wavy-demo-token",
    )
    hook = WavyHook("wavy_paced", max_retries=0)  # pacing alone must keep it under the limit
    started = time.monotonic()
    for _ in range(3):
        hook.status_queue_page()
    assert time.monotonic() - started >= 1.9


def test_callback_dlr_and_mo_webhooks(wavy_hook, wavy_server, webhook_sink):
    sink = webhook_sink()
    configure(wavy_server, webhook_url=f"{sink.url}/webhooks/wavy/s3cret", reply_rate=1.0)
    wavy_hook.send_bulk([SmsMessage(f"55119{i:08d}", "x", correlation_id=f"w-{i}") for i in range(1, 11)])
    records = wavy_server.simulator.messages.values()
    delivered = sum(1 for r in records if r["delivered_code"] is not None)
    posts = sink.wait_for(lambda posts: len(posts) >= 10 + 2 * delivered)
    by_path: dict[str, list] = {}
    for path, body in posts:
        by_path.setdefault(path.rsplit("/", 1)[1], []).append(body)
    assert len(by_path["callback"]) == 10 and len(by_path["dlr"]) == delivered == len(by_path["mo"])
    assert all("sentAt" in b for b in by_path["callback"])
    spellings = {b["id"]: ("sentStatusAt" in b) for b in by_path["dlr"]}  # the simulator drew each one
    assert spellings == {
        mid: r["dlr_spelling"] == "sentStatusAt"
        for mid, r in wavy_server.simulator.messages.items()
        if r["delivered_code"] is not None
    }
    for body in by_path["dlr"]:
        parsed = SmsStatus.from_api(body)
        assert parsed.sent_at is not None and parsed.delivered_status_code in (4, 104)
    assert all(b["mt"]["correlationId"].startswith("w-") for b in by_path["mo"])
