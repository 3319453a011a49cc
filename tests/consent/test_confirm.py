"""The confirmation reply to an opt-out (``consent/confirm.py``), on both databases: off by default; on,
one row per new opt-out from every WhatsApp inbound path (Teleprom V3 and V0 webhooks, ITD webhook and
poll), never a second one (a replayed reply, a second "BAJA" while suppressed), sent once through the
vendor's send run to the phone that opted out — and nothing else reaches that phone —, expired unsent
after WhatsApp's 24-hour window, left ``unknown`` (never re-sent) after an ambiguous answer, in the
reply's language. SMS opt-outs (Wavy MO) are not confirmed."""

from __future__ import annotations

import dataclasses
import json
import logging

import pendulum
import pytest
import requests
import sqlalchemy as sa

from latam_messaging.consent import confirm
from latam_messaging.consent.suppressions import active
from latam_messaging.itd.poller import poll_itd_received
from latam_messaging.itd.send import ItdAdapter
from latam_messaging.sending.pipeline import dispatch, ingest_drops
from latam_messaging.teleprom import contract as teleprom_contract
from latam_messaging.teleprom.hook import TelepromHook
from latam_messaging.teleprom.send import TelepromAdapter
from latam_messaging.vendors import callback_parsers, consent_rules
from latam_messaging.warehouse import schema
from latam_messaging.webhooks.inbound import store_inbound
from latam_messaging.webhooks.ingest import ingest_pending
from tests.helpers.callbacks import envelope
from tests.helpers.connections import set_connection
from tests.helpers.drops import drop_csv
from tests.helpers.ledger import states
from tests.helpers.scripted import FaultyProxy
from tests.helpers.sending import hsm_rows, load_catalog
from tests.helpers.simulators import sim_state

T, IN = schema.outbound_messages, schema.inbound_messages
TELEPROM_PHONE = "5493516000001"  # row 1 of hsm_rows
ITD_PHONE = "56936858019"
ES_TEXT = confirm.DEFAULT_TEXTS["es"]


def confirm_on(monkeypatch, vendors: str = "teleprom,itd,wavy") -> None:
    monkeypatch.setenv("MESSAGING_CONSENT_CONFIRM", vendors)


def post(url: str, body) -> None:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    answer = requests.post(url, data=data, headers={"Content-Type": "application/json"}, timeout=10)
    assert answer.status_code == 200


def ingest(warehouse) -> None:
    """``webhook_ingest``'s task: the stored bodies parsed, with the rules and adapters of the registry."""
    stats = ingest_pending(warehouse, callback_parsers(), consent=consent_rules())
    assert stats.errors == 0 and stats.partial == 0


def confirmations(warehouse, phone: str | None = None) -> list[dict]:
    query = sa.select(T).where(T.c.consent_exempt == confirm.EXEMPTION).order_by(T.c.message_key)
    return [r for r in warehouse.rows(query) if phone is None or r["phone"] == phone]


def suppressed(warehouse, phone: str) -> list[dict]:
    with warehouse.engine.connect() as conn:
        return active(conn, phone)


def sim_messages(server, phone: str) -> list[dict]:
    return [m for m in sim_state(server)["messages"] if m["phone"] == phone]


# ---- the inbound paths -----------------------------------------------------------------------------
def v3_incoming(mid: str, text: str, at: pendulum.DateTime, *, account: str = "5493513582830", retry: bool = False):
    value = {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": account, "phone_number_id": "39"},
        "contacts": [{"profile": {"name": "Ana"}, "wa_id": TELEPROM_PHONE}],
        "messages": [
            {"from": TELEPROM_PHONE, "id": mid, "timestamp": str(int(at.timestamp())), "type": "text", "text": {"body": text}}
        ],
    }
    body = envelope("INCOMING", [value], version="3")
    return {**body, "Uuid": "retried-envelope"} if retry else body


def v0_received(identificador: str, text: str, at: pendulum.DateTime) -> dict:
    return {
        "fechaHora": at.in_tz(teleprom_contract.VENDOR_TIMEZONE).isoformat(),
        "identificador": identificador,
        "telefono": TELEPROM_PHONE,
        "resultado": "received",
        "empresa": "MaytenCloud",
        "origen": "WSP",
        "mensaje": text,
    }


def itd_inbound(uuid: str, text: str, at: pendulum.DateTime) -> dict:
    at_ms = int(at.timestamp() * 1000)
    return {
        "uuid": uuid,
        "accountPhone": "56932028245",
        "senderPhone": ITD_PHONE,
        "content": text,
        "sendAt": at_ms,
        "createdAt": at_ms,
        "messageType": "chat",
        "direction": 1,
    }


class Paths:
    """Each inbound path delivers a reply (``send``) and the same reply again (``replay``: a vendor's
    retry in another body, or the next poll), then parses what arrived the way its DAG does."""

    def __init__(self, request, warehouse, drop_dir):
        self.request, self.warehouse, self.drop_dir = request, warehouse, drop_dir
        self.campaign_key: str | None = None

    def fixture(self, name: str):
        return self.request.getfixturevalue(name)

    def teleprom_campaign(self) -> None:
        """Three HSM rows pending (the opt-out lands between ingest and claim), one to the phone."""
        load_catalog(self.warehouse, self.fixture("teleprom_hook"))
        drop_csv(self.drop_dir, "teleprom_hsm", "campaign.csv", hsm_rows(3))
        ingest_drops(TelepromAdapter(), self.warehouse, self.drop_dir, region="AR", timezone="UTC")
        [self.campaign_key] = [r["message_key"] for r in self.warehouse.rows(T) if r["phone"] == TELEPROM_PHONE]

    def send(self, path: str, mid: str, text: str, at: pendulum.DateTime, *, replay: bool = False) -> None:
        receiver = self.fixture("receiver")
        if path == "teleprom-v3":
            post(receiver.hook_url("teleprom"), v3_incoming(mid, text, at, retry=replay))
        elif path == "teleprom-v0":
            item = v0_received(self.campaign_key if mid == "first" else mid, text, at)
            post(receiver.hook_url("teleprom"), item if replay else [item])  # a single object, or a bulk array
        elif path == "itd-webhook":
            post(receiver.hook_url("itd"), {**itd_inbound(mid, text, at), **({"title": ""} if replay else {})})
        elif path == "itd-poll":
            if not replay:
                self.fixture("itd_server").simulator.inbound.append(itd_inbound(mid, text, at))
            hook = self.fixture("itd_hook")
            poll_itd_received(self.warehouse, hook, [ITD_PHONE], lookback_days=1, workers=1, consent=consent_rules())
            return
        ingest(self.warehouse)


@pytest.fixture
def paths(request, warehouse, drop_dir):
    return Paths(request, warehouse, drop_dir)


EXPECTED = {  # vendor, phone, account, content type of each path's confirmation
    "teleprom-v3": ("teleprom", TELEPROM_PHONE, 39, "TEXT"),
    "teleprom-v0": ("teleprom", TELEPROM_PHONE, 39, "TEXT"),
    "itd-webhook": ("itd", ITD_PHONE, None, "TEXT"),
    "itd-poll": ("itd", ITD_PHONE, None, "TEXT"),
}


# ---- off by default ---------------------------------------------------------------------------------
@pytest.mark.parametrize("path", ["teleprom-v3", "itd-webhook"])
def test_off_by_default_an_opt_out_queues_nothing(paths, warehouse, monkeypatch, path):
    monkeypatch.delenv("MESSAGING_CONSENT_CONFIRM", raising=False)
    paths.send(path, "first", "baja.", pendulum.now("UTC").subtract(minutes=1))
    phone = EXPECTED[path][1]
    assert [s["source"] for s in suppressed(warehouse, phone)] == ["keyword"]  # suppressed
    assert warehouse.count(T) == 0


# ---- on: one confirmation per opt-out, on every WhatsApp path --------------------------------------
@pytest.mark.parametrize("path", list(EXPECTED))
def test_each_path_queues_one_confirmation_and_never_a_second(paths, warehouse, monkeypatch, path):
    confirm_on(monkeypatch)
    if path.startswith("teleprom"):
        paths.teleprom_campaign()
    at = pendulum.now("UTC").subtract(minutes=5).replace(microsecond=0)
    paths.send(path, "first", "baja.", at)
    vendor, phone, account, content_type = EXPECTED[path]
    [row] = confirmations(warehouse)
    assert (row["vendor"], row["phone"], row["account_id"], row["content_type"]) == (vendor, phone, account, content_type)
    assert (row["state"], row["content"], row["template_id"]) == ("pending", ES_TEXT, None)
    assert pendulum.instance(row["expires_at"]) == at.add(hours=24)  # WhatsApp's window from the reply
    [suppression] = suppressed(warehouse, phone)
    assert row["message_key"] == confirm.confirmation_key(suppression["evidence"])

    paths.send(path, "first", "baja.", at, replay=True)  # the same reply again: stored once, confirmed once
    paths.send(path, "second", "BAJA", at.add(minutes=1))  # a second opt-out while suppressed: no new one
    assert [r["message_key"] for r in confirmations(warehouse)] == [row["message_key"]]
    assert warehouse.count(IN) == 2 and len(suppressed(warehouse, phone)) == 1


def test_a_phone_toggling_baja_and_alta_gets_one_confirmation_a_day(paths, warehouse, monkeypatch):
    """Each opt-out suppresses; only the first of the day is confirmed: a customer (or whoever holds the
    webhook path) toggling BAJA/ALTA cannot turn confirmations into a spam loop."""
    confirm_on(monkeypatch)
    at = pendulum.now("UTC").subtract(minutes=30)
    paths.send("itd-webhook", "out-1", "baja", at)
    paths.send("itd-webhook", "in-1", "alta", at.add(minutes=1))
    paths.send("itd-webhook", "out-2", "Baja!", at.add(minutes=2))
    assert len(confirmations(warehouse)) == 1
    assert warehouse.count(schema.suppressions) == 2


# ---- sent once, through the vendor's send run, and nothing else reaches the phone -----------------
def test_teleprom_sends_the_confirmation_once_as_free_form_and_the_campaign_never(
    paths, warehouse, monkeypatch, teleprom_hook, teleprom_server
):
    confirm_on(monkeypatch, "teleprom")
    paths.teleprom_campaign()
    paths.send("teleprom-v3", "wamid.OPTOUT", "baja.", pendulum.now("UTC").subtract(minutes=1))
    stats = dispatch(TelepromAdapter(), warehouse, hook=teleprom_hook)
    assert stats.suppressed == 1 and stats.states == {"accepted": 3}  # two campaign rows, the confirmation
    [row] = confirmations(warehouse)
    [sent] = sim_messages(teleprom_server, TELEPROM_PHONE)  # counted at the vendor: exactly one message
    assert (sent["kind"], sent["tracking"], sent["account_id"], sent["template_id"]) == ("free", row["message_key"], 39, None)
    ledger = {r["message_key"]: r for r in warehouse.rows(T)}
    assert ledger[row["message_key"]]["state"] == "accepted"
    assert ledger[row["message_key"]]["vendor_message_id"] == sent["id"]
    campaign = ledger[paths.campaign_key]
    assert campaign["state"] == "suppressed" and campaign["error"].startswith("suppressed: keyword (inbound_messages")
    assert sum(1 for m in sim_state(teleprom_server)["messages"] if m["kind"] == "hsm") == 2

    assert dispatch(TelepromAdapter(), warehouse, hook=teleprom_hook).attempted == 0  # nothing twice
    assert len(sim_messages(teleprom_server, TELEPROM_PHONE)) == 1


def test_itd_sends_the_confirmation_once_as_text_and_the_campaign_never(
    paths, warehouse, monkeypatch, itd_hook, itd_server, drop_dir
):
    confirm_on(monkeypatch, "itd")
    drop_csv(drop_dir, "itd_whatsapp", "c.csv", f"phone,content_type,content\n+{ITD_PHONE},TEXT,promo\n")
    ingest_drops(ItdAdapter(), warehouse, drop_dir, region="CL", timezone="UTC")
    paths.send("itd-webhook", "itd-optout", "BAJA", pendulum.now("UTC").subtract(minutes=1))
    stats = dispatch(ItdAdapter(), warehouse, hook=itd_hook)
    assert stats.suppressed == 1 and stats.states == {"accepted": 1}
    [sent] = sim_messages(itd_server, ITD_PHONE)
    assert sent["content_type"] == "TEXT"
    assert states(warehouse, "itd") == {"accepted": 1, "suppressed": 1}
    [row] = confirmations(warehouse)
    assert (row["state"], row["vendor_message_id"]) == ("accepted", sent["id"])
    assert dispatch(ItdAdapter(), warehouse, hook=itd_hook).attempted == 0
    assert len(sim_messages(itd_server, ITD_PHONE)) == 1


def test_a_reply_older_than_24_hours_expires_unsent(paths, warehouse, monkeypatch, teleprom_hook, teleprom_server):
    confirm_on(monkeypatch, "teleprom")
    load_catalog(warehouse, teleprom_hook)
    paths.send("teleprom-v3", "wamid.OLD", "baja.", pendulum.now("UTC").subtract(hours=25))
    [row] = confirmations(warehouse)
    assert row["state"] == "pending" and pendulum.instance(row["expires_at"]) < pendulum.now("UTC")
    stats = dispatch(TelepromAdapter(), warehouse, hook=teleprom_hook)
    assert (stats.expired, stats.attempted) == (1, 0)
    [row] = confirmations(warehouse)
    assert row["state"] == "failed" and "expired" in row["error"]
    assert sim_messages(teleprom_server, TELEPROM_PHONE) == []


def test_an_ambiguous_answer_after_the_vendor_acted_is_unknown_and_never_resent(
    paths, warehouse, monkeypatch, teleprom_hook, teleprom_server
):
    confirm_on(monkeypatch, "teleprom")
    load_catalog(warehouse, teleprom_hook)
    paths.send("teleprom-v3", "wamid.504", "baja.", pendulum.now("UTC").subtract(minutes=1))
    proxy = FaultyProxy(teleprom_server.url, teleprom_contract.SEND_FREE_FORM.path, "504")
    try:
        TelepromHook.forget_tokens()
        set_connection(
            monkeypatch, "teleprom_default", conn_type="teleprom", host=proxy.url, login="demo", password="demo-pass"
        )
        assert dispatch(TelepromAdapter(), warehouse, concurrency=1).states == {"unknown": 1}
        assert len(sim_messages(teleprom_server, TELEPROM_PHONE)) == 1  # the vendor had acted
        assert dispatch(TelepromAdapter(), warehouse, concurrency=1).attempted == 0
        assert proxy.forwarded == 1 and len(sim_messages(teleprom_server, TELEPROM_PHONE)) == 1
        assert [r["state"] for r in confirmations(warehouse)] == ["unknown"]
    finally:
        proxy.close()
        TelepromHook.forget_tokens()


# ---- the text, the vendors that cannot, the reasons a reply is not confirmed ---------------------
def reply(mid: str, text: str, vendor: str = "itd", **fields) -> dict:
    return {
        "vendor": vendor,
        "vendor_message_id": mid,
        "from_phone": ITD_PHONE,
        "text": text,
        "received_at": pendulum.now("UTC").subtract(minutes=1),
        **fields,
    }


@pytest.mark.parametrize(
    ("text", "env", "expected"),
    [
        ("baja.", {}, confirm.DEFAULT_TEXTS["es"]),
        ("Sair", {}, confirm.DEFAULT_TEXTS["pt"]),
        ("unsubscribe", {}, confirm.DEFAULT_TEXTS["en"]),
        ("Baja", {"MESSAGING_CONSENT_CONFIRM_TEXT_ES": "Hecho, no te escribimos más."}, "Hecho, no te escribimos más."),
        ("arrêt", {"MESSAGING_OPTOUT_KEYWORDS_FR": "arret"}, confirm.DEFAULT_TEXTS["es"]),  # no French text: fallback
        ("arrêt", {"MESSAGING_OPTOUT_KEYWORDS_FR": "arret", "MESSAGING_CONSENT_CONFIRM_TEXT_FR": "C'est noté."}, "C'est noté."),
    ],
)
def test_the_text_is_the_replys_language(warehouse, monkeypatch, text, env, expected):
    confirm_on(monkeypatch, "itd")
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with warehouse.begin() as conn:
        store_inbound(warehouse, conn, [reply("r-1", text)], "webhook", consent=consent_rules())
    assert [r["content"] for r in confirmations(warehouse)] == [expected]


def test_every_default_text_names_an_opt_in_keyword_of_its_language():
    from latam_messaging.consent.keywords import DEFAULT_KEYWORDS, Intent, normalise

    for language, text in confirm.DEFAULT_TEXTS.items():
        words = set(normalise(text).split())
        assert words & {normalise(k) for k in DEFAULT_KEYWORDS[language][Intent.OPT_IN]}, language


def test_a_wavy_mo_opt_out_is_suppressed_but_not_confirmed(receiver, warehouse, monkeypatch, caplog):
    confirm_on(monkeypatch)  # even when listed: SMS opt-outs get no confirmation
    mo = {"id": "MO-BAJA", "source": "5511987654321", "shortCode": "28888", "messageText": "SAIR"}
    with caplog.at_level(logging.WARNING, logger="latam_messaging.consent.confirm"):
        post(receiver.hook_url("wavy", "mo"), mo)
        ingest(warehouse)
    assert [s["source"] for s in suppressed(warehouse, "5511987654321")] == ["keyword"]
    assert warehouse.count(T) == 0
    assert "wavy sends no free-text reply" in caplog.text


def test_a_reply_no_account_can_answer_is_stored_and_suppressed_and_the_reason_logged(
    paths, warehouse, monkeypatch, caplog
):
    confirm_on(monkeypatch, "teleprom")  # no catalogue, no message of ours, no default_account
    set_connection(monkeypatch, "teleprom_default", conn_type="teleprom", host="http://127.0.0.1:9", login="u", password="p")
    with caplog.at_level(logging.WARNING, logger="latam_messaging.consent.confirm"):
        paths.send("teleprom-v3", "wamid.NOACCOUNT", "baja.", pendulum.now("UTC").subtract(minutes=1))
    assert warehouse.count(IN) == 1 and len(suppressed(warehouse, TELEPROM_PHONE)) == 1
    assert warehouse.count(T) == 0
    assert "no Teleprom account to answer from" in caplog.text and TELEPROM_PHONE not in caplog.text

    set_connection(
        monkeypatch, "teleprom_default", conn_type="teleprom", host="http://127.0.0.1:9", login="u", password="p",
        extra={"default_account": 41},
    )
    with warehouse.begin() as conn:
        message = reply("wamid.DEFAULT", "stop", vendor="teleprom", to_account="MaytenCloud")
        store_inbound(warehouse, conn, [message], "webhook", consent=consent_rules())
    [row] = confirmations(warehouse)
    assert (row["vendor"], row["account_id"]) == ("teleprom", 41)


def test_rules_without_adapters_confirm_nothing_and_say_so(warehouse, monkeypatch, caplog):
    """A path whose top handed in no send adapters (``consent=None``): stored and suppressed, loudly unconfirmed."""
    confirm_on(monkeypatch, "itd")
    with caplog.at_level(logging.WARNING, logger="latam_messaging.consent.confirm"), warehouse.begin() as conn:
        store_inbound(warehouse, conn, [reply("r-1", "baja")], "webhook")
    assert warehouse.count(T) == 0 and "no send adapter was handed in" in caplog.text


def test_an_adapter_failure_costs_only_the_confirmation(warehouse, monkeypatch, caplog):
    confirm_on(monkeypatch, "itd")

    class Broken(ItdAdapter):
        def confirmation_fields(self, conn, message):
            raise RuntimeError("a bug")

    rules = dataclasses.replace(consent_rules(), confirmers={"itd": Broken()})
    with caplog.at_level(logging.WARNING, logger="latam_messaging.consent.confirm"), warehouse.begin() as conn:
        assert store_inbound(warehouse, conn, [reply("r-1", "baja")], "webhook", consent=rules) == 1
    assert len(suppressed(warehouse, ITD_PHONE)) == 1 and warehouse.count(T) == 0
    assert "RuntimeError in its adapter" in caplog.text


# ---- the DAGs: webhook_ingest queues it, the send DAG sends it ------------------------------------
def test_the_dags_queue_and_send_the_confirmation(
    run_dag, receiver, warehouse, monkeypatch, teleprom_hook, teleprom_server, drop_dir
):
    confirm_on(monkeypatch, "teleprom")
    load_catalog(warehouse, teleprom_hook)
    post(receiver.hook_url("teleprom"), v3_incoming("wamid.DAG", "Baja.", pendulum.now("UTC").subtract(minutes=2)))
    assert run_dag("webhook_ingest").state == "success"
    [row] = confirmations(warehouse)
    assert row["state"] == "pending"
    assert run_dag("teleprom_hsm_send").state == "success"
    [sent] = sim_messages(teleprom_server, TELEPROM_PHONE)
    assert (sent["kind"], sent["tracking"]) == ("free", row["message_key"])
    assert [r["state"] for r in confirmations(warehouse)] == ["accepted"]
