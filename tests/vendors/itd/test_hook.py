"""Contract tests: ItdHook against the running ITD Chile simulator, every endpoint and error."""

from __future__ import annotations

import time

import pendulum
import pytest
import requests

from latam_messaging.itd import contract
from latam_messaging.itd.hook import (
    ItdAuthError,
    ItdHook,
    ItdNoCreditsError,
    ItdNotFoundError,
    ItdValidationError,
)
from latam_messaging.itd.models import ItdMessage
from latam_messaging.vendors import callback_parsers
from latam_messaging.warehouse import schema
from latam_messaging.webhooks.ingest import ingest_pending
from tests.helpers.connections import set_connection
from tests.helpers.simulators import configure, sim_state
from tests.helpers.waiting import wait_until

AUTH = {"Authorization": "Bearer itd-demo-token"}


def url(server, endpoint) -> str:
    return f"{server.url}/{endpoint.path}"


def test_send_text_returns_the_key_and_spends_credits(itd_hook, itd_server):
    key = itd_hook.send(ItdMessage("TEXT", "hola", "56912345678"))
    assert key
    state = sim_state(itd_server)
    assert state["messages"] == [{"id": key, "phone": "56912345678", "tracking": None, "content_type": "TEXT"}]
    assert state["credits"] == 999
    itd_hook.send(ItdMessage("IMAGE", "https://example.com/a.png", "56912345678", caption="c"))
    assert itd_hook.credits() == 997


@pytest.mark.parametrize("endpoint", [contract.SEND, contract.STATUS, contract.CREDITS, contract.RECEIVED])
def test_every_endpoint_answers_get_and_post(itd_server, endpoint):
    params = {
        contract.SEND.path: {"content_type": "TEXT", "content": "hola", "phone": "912345678"},
        contract.STATUS.path: {"key": "nope"},
        contract.CREDITS.path: {},
        contract.RECEIVED.path: {"senderPhone": "56912345678", "sendAt": "25042020", "top": 10},
    }[endpoint.path]
    by_get = requests.get(url(itd_server, endpoint), params=params, headers=AUTH, timeout=5)
    by_post = requests.post(url(itd_server, endpoint), json=params, headers=AUTH, timeout=5)
    assert by_get.status_code == by_post.status_code
    assert by_get.json().keys() == by_post.json().keys()
    assert "statusApi" in by_get.json() and "code" in by_get.json()


def test_post_without_content_type_is_415(itd_server):
    answer = requests.post(url(itd_server, contract.CREDITS), data=b"{}", headers=AUTH, timeout=5)
    assert answer.status_code == 415


def test_wrong_token_is_401_and_not_retried(itd_server, monkeypatch):
    set_connection(monkeypatch, "itd_bad", conn_type="itd_chile", host=itd_server.url, password="nope")
    with pytest.raises(ItdAuthError, match="UNAUTHORIZED"):
        ItdHook("itd_bad").credits()
    assert sim_state(itd_server)["requests_served"] == 1


def test_auth_scheme_comes_from_the_connection_extra(itd_server, monkeypatch):
    set_connection(
        monkeypatch,
        "itd_scheme",
        conn_type="itd_chile",
        host=itd_server.url,
        password="itd-demo-token",
        extra={"auth_scheme": "Token"},
    )
    with pytest.raises(ItdAuthError):  # the simulator, like our reading of ITD, expects Bearer
        ItdHook("itd_scheme").credits()


def test_bad_parameters_and_bad_content_type_are_validation_errors(itd_hook, itd_server):
    with pytest.raises(ItdValidationError, match="solo puede ser TEXT, IMAGE, LINK o FILE"):
        itd_hook.send(ItdMessage("VIDEO", "https://example.com/v.mp4", "56912345678"))
    with pytest.raises(ItdValidationError, match="BAD PARAMETERS"):
        itd_hook.send(ItdMessage("TEXT", "", "56912345678"))
    assert sim_state(itd_server)["requests_served"] == 2  # neither retried
    assert sim_state(itd_server)["credits"] == 1000


def test_status_key_missing_empty_and_unknown(itd_hook, itd_server):
    missing = requests.post(url(itd_server, contract.STATUS), json={}, headers=AUTH, timeout=5)
    assert (missing.status_code, missing.json()["message"]) == (400, "Introduzca parámetro key")
    with pytest.raises(ItdValidationError, match="BAD PARAMETERS"):
        itd_hook.status("")
    with pytest.raises(ItdNotFoundError, match="WHATSAPP MESSAGE NOT FOUND"):
        itd_hook.status("00000000-0000-0000-0000-000000000000")


def test_no_credits_is_its_own_error_and_never_retried(itd_hook, itd_server):
    configure(itd_server, credits=0)
    with pytest.raises(ItdNoCreditsError) as caught:
        itd_hook.send(ItdMessage("TEXT", "hola", "56912345678"))
    assert caught.value.status_code == 502 and caught.value.vendor_message == "NOT ENOUGH CREDITS"
    assert sim_state(itd_server)["requests_served"] == 1
    configure(itd_server, credits=1)
    itd_hook.send(ItdMessage("TEXT", "hola", "56912345678"))
    with pytest.raises(ItdNoCreditsError):
        itd_hook.send(ItdMessage("TEXT", "otra", "56912345678"))


def test_injected_500_and_503_are_transient_and_retried(itd_hook, itd_server):
    configure(itd_server, error_rate=0.5)
    for _ in range(10):
        assert itd_hook.credits() == 1000
    assert sim_state(itd_server)["faults_injected"] > 0


def test_status_progresses_and_times_are_utc(itd_hook, itd_server):
    for _ in range(10):  # the simulator draws each message's fate: take one that is SENT on its way
        key = itd_hook.send(ItdMessage("TEXT", "hola", "56912345678"))
        timeline = itd_server.simulator.timeline(key, "56912345678")
        if "SENT" in timeline:
            break
    assert "SENT" in timeline
    first = itd_hook.status(key)
    assert (first.raw_status, first.status, first.credit_usage) == ("MESSAGE QUEUED", "enqueued", 1)
    time.sleep(itd_server.simulator.step * (len(timeline) + 1))
    last = itd_hook.status(key)
    assert last.raw_status == timeline[-1]
    assert last.sent_at.tzinfo is not None and last.sent_at.offset == 0
    assert abs((last.sent_at - pendulum.now("UTC")).total_seconds()) < 5


def test_received_messages_per_phone_and_day(itd_hook, itd_server):
    configure(itd_server, reply_rate=1.0)
    today = pendulum.now(contract.VENDOR_TIMEZONE).date()
    assert itd_hook.received("56912345678", today) == []  # 503 NO WHATSAPP MESSAGES is an empty day
    key = itd_hook.send(ItdMessage("TEXT", "hola", "56912345678"))
    if itd_server.simulator.timeline(key, "56912345678")[-1] != "READ":
        pytest.fail("seeded fate changed: pick another phone")
    time.sleep(itd_server.simulator.step * 7)
    inbound = itd_hook.received("56912345678", today)
    assert len(inbound) == 1
    assert inbound[0].sender_phone == "56912345678" and inbound[0].direction == 1  # as the document's examples
    assert inbound[0].sent_at.offset == 0
    with pytest.raises(ItdValidationError, match="senderPhone es necesario"):
        itd_hook.call("POST", contract.RECEIVED.path, json={"sendAt": "25042020", "top": 1})
    with pytest.raises(ItdValidationError, match="formato ddMMyyyy"):
        itd_hook.call(
            "POST", contract.RECEIVED.path, json={"senderPhone": "56912345678", "sendAt": "2020-04-25", "top": 1}
        )


def test_status_and_inbound_webhooks_land_through_the_receiver(itd_hook, itd_server, receiver, warehouse):
    """The simulator posts the document's bodies (status with its trailing comma, inbound with
    direction 1); each lands through the receiver and webhook_ingest."""
    configure(itd_server, webhook_url=receiver.hook_url("itd"), reply_rate=1.0)
    phones = [f"5691234{i:04d}" for i in range(1, 6)]
    keys = [itd_hook.send(ItdMessage("TEXT", "hola", phone)) for phone in phones]
    expected = {k: itd_server.simulator.timeline(k, phone)[1:] for k, phone in zip(keys, phones, strict=True)}
    replies = sum(1 for t in expected.values() if t[-1] == "READ")
    total = sum(len(t) for t in expected.values()) + replies
    wait_until(lambda: itd_server.simulator.webhooks.stats()["delivered"] >= total, timeout=20,
               what=f"the simulator's {total} webhooks delivered")
    raw = warehouse.rows(schema.raw_webhook_events)
    assert len(raw) == total
    assert sum(1 for r in raw if r["body"].endswith('",\n}')) == total - replies  # printed with a trailing comma
    stats = ingest_pending(warehouse, callback_parsers())
    assert (stats.parsed, stats.errors) == (total, 0)
    events = {(e["vendor_message_id"], e["raw_status"]) for e in warehouse.rows(schema.message_status_events)}
    assert events == {(k, s) for k, t in expected.items() for s in t}
    inbound = warehouse.rows(schema.inbound_messages)
    assert len(inbound) == replies and {r["direction"] for r in inbound} == {1}
    assert {r["from_phone"] for r in inbound} == {
        p for k, p in zip(keys, phones, strict=True) if expected[k][-1] == "READ"
    }


def test_test_connection_reports_credits(itd_hook):
    assert itd_hook.test_connection() == (True, "Connected to ITD Chile: 1000 credits left")
