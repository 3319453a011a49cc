"""Contract tests: TelepromHook against the running Teleprom simulator."""

from __future__ import annotations

import logging
import threading
import time

import pendulum
import pytest
import requests

from latam_messaging.teleprom import contract
from latam_messaging.teleprom import hook as teleprom_hook_module
from latam_messaging.teleprom.hook import (
    TelepromAmbiguousError,
    TelepromAuthError,
    TelepromHook,
    TelepromPasswordExpiredError,
    TelepromTransientError,
    TelepromValidationError,
)
from latam_messaging.teleprom.models import FreeFormDestination, HsmDestination, HsmMessage
from tests.helpers.connections import set_connection
from tests.helpers.simulators import configure, sim_state
from tests.helpers.waiting import wait_until


def hook_for(server, monkeypatch, login: str, password: str) -> TelepromHook:
    set_connection(monkeypatch, "teleprom_other", conn_type="teleprom", host=server.url, login=login, password=password)
    TelepromHook.forget_tokens()
    return TelepromHook("teleprom_other")


# ---- auth ----------------------------------------------------------------------------------------
def test_auth_is_case_insensitive_and_sticky_for_24h(teleprom_server):
    first = requests.post(f"{teleprom_server.url}/Auth", json={"username": "demo", "password": "demo-pass"}, timeout=5)
    second = requests.post(f"{teleprom_server.url}/auth", json={"username": "demo", "password": "demo-pass"}, timeout=5)
    assert first.status_code == second.status_code == 200
    assert first.json() == second.json()
    body = first.json()
    assert body["passwordState"] == "Ok"
    expires = pendulum.parse(body["expires"])
    assert body["expires"].endswith("-03:00") and len(body["expires"].split(".")[1]) == 7 + 6
    assert abs((expires - pendulum.now()).total_hours() - 24) < 0.1


def test_calls_without_a_valid_token_get_401(teleprom_server):
    assert requests.get(f"{teleprom_server.url}/GetTemplates", timeout=5).status_code == 401
    bad = {"Authorization": "Bearer not-a-token"}
    assert requests.get(f"{teleprom_server.url}/getalLruteos", headers=bad, timeout=5).status_code == 401


def test_token_is_fetched_once_and_shared_by_hooks(teleprom_hook, teleprom_server):
    teleprom_hook.get_accounts()
    teleprom_hook.get_templates()
    TelepromHook().get_accounts()  # another hook of the same process reuses the cached token
    assert sim_state(teleprom_server)["logins"] == 1


def test_one_login_per_token_even_in_its_last_minutes(teleprom_hook, teleprom_server):
    """Teleprom returns the same token until it expires: a token close to ``expires`` is used, not
    renewed on every call; it is renewed once it has expired."""
    teleprom_hook.get_accounts()
    [(key, token)] = teleprom_hook_module._TOKENS.items()
    near_end = pendulum.now("UTC").add(minutes=2)
    teleprom_hook_module._TOKENS[key] = teleprom_hook_module._Token(token.value, near_end)
    for _ in range(5):
        teleprom_hook.get_accounts()
    assert sim_state(teleprom_server)["logins"] == 1
    teleprom_hook_module._TOKENS[key] = teleprom_hook_module._Token(
        token.value, pendulum.now("UTC").subtract(seconds=1)
    )
    teleprom_hook.get_accounts()
    teleprom_hook.get_templates()
    assert sim_state(teleprom_server)["logins"] == 2


def test_wrong_password_is_a_clear_auth_error_without_retries(teleprom_server, monkeypatch):
    hook = hook_for(teleprom_server, monkeypatch, "demo", "wrong")
    with pytest.raises(TelepromAuthError, match="check the login and password of connection 'teleprom_other'"):
        hook.get_templates()
    assert sim_state(teleprom_server)["requests_served"] == 1


def test_token_expired_mid_run_is_renewed_once_transparently(teleprom_hook, teleprom_server):
    teleprom_hook.get_accounts()
    configure(teleprom_server, expire_tokens=True)
    assert len(teleprom_hook.get_templates()) == 6
    assert sim_state(teleprom_server)["logins"] == 2


def test_persistent_401_after_relogin_raises_auth_error(teleprom_hook, teleprom_server):
    teleprom_hook.get_accounts()
    configure(teleprom_server, reject_all_tokens=True)
    with pytest.raises(TelepromAuthError):
        teleprom_hook.get_templates()
    assert sim_state(teleprom_server)["logins"] == 2  # one re-login, then it gives up


def test_password_expiring_soon_warns_in_the_task_log(teleprom_server, monkeypatch, capfd):
    hook = hook_for(teleprom_server, monkeypatch, "soon", "soon-pass")
    assert hook.get_accounts()
    log = "".join(capfd.readouterr())
    assert "warning" in log and "password of user 'soon' expires soon" in log


def test_expired_password_says_what_to_do(teleprom_server, monkeypatch):
    hook = hook_for(teleprom_server, monkeypatch, "expired", "expired-pass")
    with pytest.raises(TelepromPasswordExpiredError, match="Ask your Teleprom account manager to renew it"):
        hook.get_accounts()


# ---- retries -------------------------------------------------------------------------------------
def test_bursts_of_5xx_and_429_are_retried_until_success(teleprom_hook, teleprom_server):
    teleprom_hook.get_accounts()
    configure(teleprom_server, error_rate=0.3, throttle_rate=0.2)
    for _ in range(20):
        assert len(teleprom_hook.get_templates()) == 6
    assert sim_state(teleprom_server)["faults_injected"] > 0


def test_transient_errors_give_up_after_max_retries(teleprom_hook, teleprom_server):
    teleprom_hook.get_accounts()
    configure(teleprom_server, error_rate=1.0)
    served_before = sim_state(teleprom_server)["faults_injected"]
    with pytest.raises(TelepromTransientError):
        teleprom_hook.get_templates()
    assert sim_state(teleprom_server)["faults_injected"] - served_before == teleprom_hook.max_retries + 1


def test_a_400_is_raised_at_once_and_not_retried(teleprom_hook, teleprom_server):
    teleprom_hook.get_accounts()
    before = sim_state(teleprom_server)["requests_served"]
    with pytest.raises(TelepromValidationError, match="messages field is required"):
        teleprom_hook.call("POST", contract.SEND_HSM.path, json={"messages": []})
    assert sim_state(teleprom_server)["requests_served"] == before + 1


def test_connection_refused_is_transient(monkeypatch):
    set_connection(
        monkeypatch, "teleprom_down", conn_type="teleprom", host="http://127.0.0.1:9", login="a", password="b"
    )
    hook = TelepromHook("teleprom_down", max_retries=1)
    hook.backoff_initial_s = 0.001
    with pytest.raises(TelepromTransientError, match="could not connect"):
        hook.get_templates()


# ---- catalogue -----------------------------------------------------------------------------------
def test_templates_and_accounts_are_typed(teleprom_hook):
    templates = {t.template_id: t for t in teleprom_hook.get_templates()}
    accounts = {a.account_id: a for a in teleprom_hook.get_accounts()}
    assert set(accounts) == {39, 41}
    assert accounts[39].source_number == "5493513582830"
    assert {t.parameter_count for t in templates.values()} == {0, 1, 2, 3}
    assert {t.account_id for t in templates.values()} == {39, 41}
    assert not all(t.accepted for t in templates.values())
    shipping = templates[24]
    assert shipping.name == "shipping_confirmation" and shipping.accepted
    # fechaCreacion is Argentine local time without offset: stored as UTC (+3 h)
    assert shipping.created_at == pendulum.datetime(2022, 5, 13, 19, 43, 11, tz="UTC")


# ---- sends ---------------------------------------------------------------------------------------
def test_send_hsm_answers_per_destination_in_order(teleprom_hook, teleprom_server):
    batch = teleprom_hook.send_hsm(
        [
            HsmMessage(
                39,
                24,
                [
                    HsmDestination("t-1", "5493516723999", ["3"]),
                    HsmDestination("t-2", "5493516723998", ["line\nbreak"]),
                ],
            ),
            HsmMessage(39, 25, [HsmDestination("t-3", "5493516723997", ["extra", "ignored"])]),
            HsmMessage(41, 24, [HsmDestination("t-4", "5493516723996", ["3"])]),
            HsmMessage(41, 28, [HsmDestination("t-5", "5493516723995", ["x"])]),
            HsmMessage(39, 999, [HsmDestination("t-6", "5493516723994", [])]),
            HsmMessage(39, 24, [HsmDestination("t-7", "12ab", ["3"])]),
        ]
    )
    assert [r.tracking_number for r in batch.results] == [f"t-{i}" for i in range(1, 8)]
    assert [r.status for r in batch.results] == [
        "OK",
        "OK, with line break",
        "OK",
        "Template does not belong to account",
        "Template not approved",
        "Template not found",
        "Invalid destination number",
    ]
    assert [r.accepted for r in batch.results] == [True, True, True, False, False, False, False]
    assert batch.results[1].line_break_stripped
    assert batch.track_uuid and all(r.message_id for r in batch.results[:3])
    state = sim_state(teleprom_server)
    assert state["accepted_messages"] == 3
    assert {m["tracking"] for m in state["messages"]} == {"t-1", "t-2", "t-3"}


def test_send_free_form(teleprom_hook, teleprom_server):
    batch = teleprom_hook.send_free_form(
        39, [FreeFormDestination("f-1", "5493516723999", text="hola"), FreeFormDestination("f-2", "5493516723998")]
    )
    assert [r.status for r in batch.results] == ["OK", "text or mediaUrl is required"]
    assert sim_state(teleprom_server)["messages"][0]["kind"] == "free"


def test_the_simulated_free_form_endpoint_answers_as_the_contract_infers(teleprom_hook, teleprom_server):
    """``contract.SEND_FREE_FORM``: MessageWpp's body without ``hsmId`` (``text``/``mediaUrl`` per
    destination) and MessageWpp's answers: 401 without a token, 400 for a body it cannot read, one
    result per destination in request order, refusals per destination."""
    url = f"{teleprom_server.url}/{contract.SEND_FREE_FORM.path}"
    body = contract.free_form_body(39, [FreeFormDestination("f-1", "5493516723999", text="hola").to_api()])
    assert requests.post(url, json=body, timeout=5).status_code == 401
    token = {"Authorization": f"Bearer {teleprom_hook.login().value}"}
    for bad in ({}, {"messages": []}, {"messages": [{"sourceId": "39", "destinations": []}]}, {"messages": [{"sourceId": 39}]}):
        assert requests.post(url, json=bad, headers=token, timeout=5).status_code == 400
    answer = requests.post(url, json=body, headers=token, timeout=5).json()
    assert set(answer) == {"responses", "trackUuid"} and answer["responses"][0]["status"] == "OK"
    with pytest.raises(TelepromValidationError):  # what the hook makes of a 400
        teleprom_hook.send_free_form("39", [FreeFormDestination("f-2", "5493516723999", text="hola")])
    batch = teleprom_hook.send_free_form(
        41,
        [
            FreeFormDestination("f-3", "123", text="hola"),
            FreeFormDestination("f-4", "5493516723999", media_url="https://x.y/a.jpg"),
            FreeFormDestination("f-5", "5493516723998", text="línea 1\nlínea 2"),
        ],
    )
    assert [r.status for r in batch.results] == ["Invalid destination number", "OK", "OK, with line break"]
    assert [r.accepted for r in batch.results] == [False, True, True]
    [refused] = teleprom_hook.send_free_form(99, [FreeFormDestination("f-6", "5493516723999", text="hola")]).results
    assert (refused.status, refused.message_id) == ("Account not found", None)
    sent = sim_state(teleprom_server)["messages"]
    assert [(m["tracking"], m["kind"], m["account_id"]) for m in sent] == [("f-1", "free", 39), ("f-4", "free", 41), ("f-5", "free", 41)]


# ---- number checks and shortener -----------------------------------------------------------------
def test_number_lookup_and_sim_swap(teleprom_hook):
    results = teleprom_hook.number_lookup(["5493516723999", "541143214321", "123"])
    assert [r.number for r in results] == ["5493516723999", "541143214321", "123"]
    assert results[2].valid is False and results[2].line_type == "unknown"
    assert results[1].line_type in {"landline", "unknown"}
    swaps = [teleprom_hook.sim_swap(f"54935167{i:05d}", max_age_hours=24 * 31) for i in range(30)]
    assert any(s.changed for s in swaps) and not all(s.changed for s in swaps)
    changed = next(s for s in swaps if s.changed)
    assert changed.last_change_at < pendulum.now("UTC")
    with pytest.raises(TelepromValidationError):
        teleprom_hook.sim_swap("not-a-number")


def test_shortener_and_click_export(teleprom_hook):
    short = teleprom_hook.shorten("https://example.com/promo")
    assert short.startswith("https://tpm.li/")
    assert teleprom_hook.shorten("https://example.com/promo") == short
    [link] = teleprom_hook.click_export()
    assert (link.short_url, link.long_url, link.link_id) == (short, "https://example.com/promo", "1")
    assert link.clicks >= 0 and (link.last_click_at is None) == (link.clicks == 0)
    # the simulator answers with the field names a real client reads
    assert set(link.raw) == {"idTemp", "longUrl", "shortUrl", "qtyClicks", "lastDatetimeClick"}


def test_click_export_items_parse_as_a_public_client_reads_them():
    from latam_messaging.teleprom.models import LinkClicks

    item = {"idTemp": 7, "longUrl": "https://x.y/a", "shortUrl": "https://tpm.li/Ab", "qtyClicks": "12",
            "lastDatetimeClick": "2026-03-02T10:15:00"}
    link = LinkClicks.from_api(item)
    assert (link.link_id, link.clicks) == ("7", 12)
    assert link.last_click_at == pendulum.datetime(2026, 3, 2, 13, 15, tz="UTC")  # Buenos Aires local time


# ---- secrets and PII -----------------------------------------------------------------------------
def test_no_secret_or_message_content_in_logs(teleprom_hook, teleprom_server, caplog, capfd):
    with caplog.at_level(logging.DEBUG):
        teleprom_hook.get_accounts()
        configure(teleprom_server, expire_tokens=True, error_rate=0.5)
        try:
            teleprom_hook.send_hsm(
                [HsmMessage(39, 26, [HsmDestination("pii-1", "5493516720001", ["Juana", "$ 1.234"])])]
            )
        except TelepromAmbiguousError:  # a 5xx on a send is left to the ledger, never repeated
            pass
        with pytest.raises(TelepromValidationError):
            teleprom_hook.call("POST", contract.SEND_HSM.path, json={"messages": []})
    configure(teleprom_server, error_rate=0.0)
    token = requests.post(
        f"{teleprom_server.url}/Auth", json={"username": "demo", "password": "demo-pass"}, timeout=5
    ).json()["token"]
    log = caplog.text + "".join(capfd.readouterr())
    assert "Logged in to Teleprom" in log and "retry 1/5" in log  # the log did capture the calls
    for secret in ("demo-pass", token, "5493516720001", "Juana"):
        assert secret not in log


def test_test_connection(teleprom_hook, teleprom_server, monkeypatch):
    assert teleprom_hook.test_connection() == (True, "Connected to Teleprom: 2 WhatsApp account(s) visible")
    ok, message = hook_for(teleprom_server, monkeypatch, "demo", "nope").test_connection()
    assert not ok and "login refused" in message


# ---- simulator behaviour the other parts rely on ------------------------------------------------
def test_v0_webhooks_come_in_bulk_in_order_and_are_retried_until_200(teleprom_hook, teleprom_server, webhook_sink):
    sink = webhook_sink(refuse_first=2)
    configure(teleprom_server, webhook_url=f"{sink.url}/webhooks/teleprom/s3cret")
    destinations = [HsmDestination(f"w-{i}", f"54935167{i:05d}", ["1"]) for i in range(40)]
    teleprom_hook.send_hsm([HsmMessage(39, 24, destinations)])
    timelines = {
        d.tracking_number: teleprom_server.simulator.timeline(d.tracking_number, d.phone) for d in destinations
    }
    expected = sum(len(t) for t in timelines.values())

    def events(posts):
        return [e for _, body in posts for e in body if e["resultado"] != "received"]

    posts = sink.wait_for(lambda posts: len(events(posts)) >= expected)
    assert sink.refused == 2
    assert all(path == "/webhooks/teleprom/s3cret" and isinstance(body, list) for path, body in posts)
    assert any(len(body) > 1 for _, body in posts)  # bulk arrays
    seen: dict[str, list[str]] = {}
    # a refused post is retried later, so arrival order may differ: fechaHora gives the true order
    for event in sorted(events(posts), key=lambda e: e["fechaHora"]):
        assert event["origen"] == "WSP" and event["telefono"].startswith("549")
        assert "sentTime" in event or "senttime" in event
        seen.setdefault(event["identificador"], []).append(event["resultado"])
    assert seen == timelines
    outcomes = {t[-1] for t in timelines.values()}
    assert {"read", "failed"} <= outcomes


def test_a_webhook_on_its_way_or_waiting_for_its_retry_still_counts_as_pending(teleprom_server, webhook_sink, monkeypatch):
    # tests wait for "pending" to reach zero before they ingest: an event taken off the queue whose
    # post is not yet answered, or refused and not yet back on the queue, must not read as done
    sink = webhook_sink(refuse_first=1, hold=True)
    configure(teleprom_server, webhook_url=f"{sink.url}/webhooks/teleprom/s3cret")
    dispatcher = teleprom_server.simulator.webhooks
    monkeypatch.setattr(dispatcher, "max_backoff_s", 0.1)
    dispatcher.schedule(time.time(), "V1", {"object": "whatsapp_business_account", "entry": []})
    assert sink.arrived.wait(10)
    assert dispatcher.stats() == {"pending": 1, "delivered": 0, "failed_attempts": 0}  # the only event, held
    early: list[dict[str, int]] = []
    done = threading.Event()

    def watch() -> None:
        while not done.is_set():
            stats = dispatcher.stats()
            if stats["pending"] == 0 and stats["delivered"] == 0:
                early.append(stats)

    watcher = threading.Thread(target=watch)
    watcher.start()
    sink.release()  # the held post is refused (500), put back, retried and taken
    wait_until(lambda: dispatcher.stats()["delivered"] == 1, timeout=10, what="the event delivered")
    done.set()
    watcher.join(5)
    assert dispatcher.stats() == {"pending": 0, "delivered": 1, "failed_attempts": 1} and early == []


def test_simulator_is_deterministic_under_a_seed():
    from latam_messaging.teleprom.simulator import TelepromSimulator

    first, second = TelepromSimulator(seed=3), TelepromSimulator(seed=3)
    assert [first.new_uuid() for _ in range(3)] == [second.new_uuid() for _ in range(3)]
    assert first.timeline("x-1", "5491100000001") == second.timeline("x-1", "5491100000001")
    assert TelepromSimulator(seed=4).new_uuid() != TelepromSimulator(seed=3).new_uuid()


def test_connection_types_are_registered_with_airflow():
    from airflow.providers_manager import ProvidersManager
    from airflow.sdk.providers_manager_runtime import ProvidersManagerTaskRuntime

    manager = ProvidersManager()
    hooks = ProvidersManagerTaskRuntime().hooks
    assert hooks["teleprom"].hook_class_name == "latam_messaging.teleprom.hook.TelepromHook"
    assert hooks["teleprom"].connection_id_attribute_name == "teleprom_conn_id"
    behaviour = manager.field_behaviours["teleprom"]
    assert behaviour["relabeling"]["login"] == "Username"
    assert "extra__teleprom__timeout" in manager.connection_form_widgets
    assert TelepromHook.get_ui_field_behaviour()["hidden_fields"] == ["schema", "port", "extra"]
