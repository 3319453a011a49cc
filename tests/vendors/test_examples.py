"""Every vendor example of ``tests/fixtures/vendor_docs/`` (byte-identical copies of the documents'
examples) through the real path, on SQLite and PostgreSQL:

* answers: served verbatim by a canned HTTP server and decoded by the hooks;
* requests: what the hooks send compared with the printed request;
* callbacks: posted verbatim to the real receiver → ``raw_webhook_events`` → the ``webhook_ingest``
  DAG → warehouse rows.

Expected values are written out from the documents here, never computed with the code under test.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pendulum
import pytest
import requests
import sqlalchemy as sa

from latam_messaging.itd.hook import ItdAuthError, ItdHook, ItdNoCreditsError, ItdNotFoundError, ItdValidationError
from latam_messaging.itd.models import ItdMessage
from latam_messaging.teleprom.hook import TelepromHook, _Token
from latam_messaging.warehouse import schema
from latam_messaging.webhooks.ingest import body_bytes
from tests.helpers.connections import set_connection
from tests.helpers.ledger import add_ledger_row
from tests.helpers.paths import SHARED_EXAMPLES as SHARED
from tests.helpers.paths import VENDOR_DOCS as DOCS

R, E, IN, T = (
    schema.raw_webhook_events,
    schema.message_status_events,
    schema.inbound_messages,
    schema.outbound_messages,
)
SANTIAGO = "America/Santiago"


def doc(name: str) -> bytes:
    return (DOCS / name).read_bytes()


# Each file is used by exactly one test below; this list is how the completeness test knows.
ANSWERS_TELEPROM = ["auth_200.json", "simswap_auth_200.json", "get_templates_200.json", "get_all_ruteos_200.json"]
ITD_FILES = sorted(p.name for p in (DOCS / "itd").iterdir() if not p.name.startswith("webhook_"))
CALLBACKS = [
    "teleprom/webhook_v0_enqueued.json",
    "teleprom/webhook_v0_bulk_shape.txt",
    "teleprom/webhook_v1_status.json",
    "teleprom/webhook_v3_incoming.json",
    "itd/webhook_status.json",
    "itd/webhook_inbound.json",
]


def test_every_example_is_covered_and_the_copies_are_byte_identical():
    covered = {f"teleprom/{n}" for n in ANSWERS_TELEPROM} | {f"itd/{n}" for n in ITD_FILES} | set(CALLBACKS)
    present = {str(p.relative_to(DOCS)) for p in DOCS.rglob("*") if p.is_file()}
    assert present == covered
    assert len(present) == 33  # 25 ITD, 8 Teleprom
    if SHARED.is_dir():  # the ground truth beside the repository
        shared = {str(p.relative_to(SHARED)) for p in SHARED.rglob("*") if p.is_file() and p.name != "README.md"}
        assert shared == present
        for name in present:
            assert (SHARED / name).read_bytes() == doc(name), name


# ---- a vendor that answers exactly what the document prints --------------------------------------
class CannedVendor:
    """Answers every request with one (status, body) as bytes; records the requests' JSON bodies."""

    def __init__(self):
        self.status, self.body, self.requests = 200, b"{}", []
        canned = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _answer(self):
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                canned.requests.append((self.command, self.path, json.loads(raw) if raw else None))
                self.send_response(canned.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(canned.body)))
                self.end_headers()
                self.wfile.write(canned.body)

            do_GET = do_POST = _answer  # noqa: N815

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def answer(self, name: str, status: int = 200) -> None:
        self.status, self.body = status, doc(name)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def canned():
    vendor = CannedVendor()
    yield vendor
    vendor.close()


@pytest.fixture
def canned_itd(canned, monkeypatch):
    set_connection(monkeypatch, "itd_default", conn_type="itd_chile", host=canned.url, password="itd-demo-token")
    hook = ItdHook()
    hook.backoff_initial_s = hook.backoff_max_s = 0.001
    yield canned, hook
    hook.close()


@pytest.fixture
def canned_teleprom(canned, monkeypatch):
    set_connection(monkeypatch, "teleprom_default", conn_type="teleprom", host=canned.url, login="u", password="p")
    TelepromHook.forget_tokens()
    hook = TelepromHook()
    yield canned, hook
    hook.close()
    TelepromHook.forget_tokens()


# ---- Teleprom answers ------------------------------------------------------------------------------
def test_teleprom_auth_answers(canned_teleprom):
    canned, hook = canned_teleprom
    canned.answer("teleprom/auth_200.json")
    token = hook.login()
    assert token.value == "****"
    assert token.expires_at == pendulum.datetime(2022, 5, 6, 17, 35, 25, 172388, tz="UTC")  # -03:00 kept
    canned.answer("teleprom/simswap_auth_200.json")  # no passwordState: accepted
    token = hook.login()
    assert token.value == "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9..."
    assert canned.requests[-1] == ("POST", "/Auth", {"username": "u", "password": "p"})


def test_teleprom_catalogue_answers(canned_teleprom):
    canned, hook = canned_teleprom
    canned.answer("teleprom/get_all_ruteos_200.json")
    hook.login = lambda: _Token("t", pendulum.now("UTC").add(hours=1))  # logged in already
    [account] = hook.get_accounts()
    assert (account.account_id, account.name, account.source_number) == (39, "MaytenCloud", "5493513582830")
    canned.answer("teleprom/get_templates_200.json")
    [template] = hook.get_templates()
    assert (template.template_id, template.name, template.account_id) == (24, "shipping_confirmation", 39)
    assert (template.status, template.category, template.language, template.parameter_count) == (
        "Accepted",
        "SHIPPING_UPDATE",
        "es",
        1,
    )
    assert template.structure.startswith("Your package has been shipped. It will be delivered in {{1}} business days.")


# ---- ITD answers and requests ----------------------------------------------------------------------
def test_itd_send_requests_and_answers(canned_itd):
    canned, hook = canned_itd
    canned.answer("itd/send_200.json")
    for kind in ("text", "image", "link", "file"):
        printed = json.loads(doc(f"itd/send_request_{kind}.json"))
        message = ItdMessage(
            printed["content_type"],
            printed["content"],
            "56" + printed["phone"],
            printed.get("caption"),
            printed.get("description"),
            printed.get("url_thumb"),
        )
        assert hook.send(message) == "d225bf9b-187c-4fca-a12f-94be83168129"
        sent = canned.requests[-1][2]
        assert {k: sent[k] for k in printed} == printed  # every printed field, as printed
        assert sent["prefijo"] == "56"  # the documented default, sent explicitly
    for name, error, text in [
        ("send_400_bad_parameters", ItdValidationError, "BAD PARAMETERS"),
        ("send_400_content_type", ItdValidationError, "solo puede ser TEXT, IMAGE, LINK o FILE"),
        ("send_401", ItdAuthError, None),
        ("send_502_not_credits", ItdNoCreditsError, "not enough credits"),
    ]:
        canned.answer(f"itd/{name}.json", int(name.split("_")[1]))
        with pytest.raises(error, match=text):
            hook.send(ItdMessage("TEXT", "hola", "56912345678"))


def test_itd_status_requests_and_answers(canned_itd):
    canned, hook = canned_itd
    canned.answer("itd/status_200.json")
    printed = json.loads(doc("itd/status_request.json"))
    status = hook.status(printed["key"])
    assert canned.requests[-1][2] == printed
    assert (status.raw_status, status.status, status.credit_usage) == ("READ", "read", 1)
    assert status.sent_at == pendulum.datetime(2020, 4, 16, 10, 26, 13, tz=SANTIAGO)
    assert status.delivered_at == pendulum.datetime(2020, 4, 16, 10, 26, 17, tz=SANTIAGO)
    for name, error in [
        ("status_400_bad_parameters", ItdValidationError),
        ("status_400_missing_key", ItdValidationError),
        ("status_401", ItdAuthError),
        ("status_503_not_found", ItdNotFoundError),
    ]:
        canned.answer(f"itd/{name}.json", int(name.split("_")[1]))
        with pytest.raises(error):
            hook.status(printed["key"])


def test_itd_credits_answers(canned_itd):
    canned, hook = canned_itd
    canned.answer("itd/credits_200.json")
    assert hook.credits() == 100
    canned.answer("itd/credits_401.json", 401)
    with pytest.raises(ItdAuthError):
        hook.credits()


def test_itd_received_requests_and_answers(canned_itd):
    canned, hook = canned_itd
    printed = json.loads(doc("itd/received_request.json"))
    canned.answer("itd/received_200.json")
    [message] = hook.received(printed["senderPhone"], pendulum.date(2020, 4, 25), top=printed["top"])
    assert canned.requests[-1][2] == printed
    assert (message.uuid, message.direction, message.sender_phone, message.account_phone) == (
        "2a7907d9-612e-401b-bc54-ce1eab3dce3a",
        1,
        "56987654321",
        "56123456789",
    )
    assert (message.content, message.message_type, message.sender_name) == ("hola desde la web", "chat", "Tu nombre")
    assert message.sent_at == pendulum.from_timestamp(1582637824, tz="UTC")
    assert message.created_at == pendulum.from_timestamp(1582637707, tz="UTC")
    canned.answer("itd/received_503_no_messages.json", 503)
    assert hook.received("56912345678", pendulum.date(2020, 4, 25)) == []
    for name, error, text in [
        ("received_400_send_at", ItdValidationError, "formato ddMMyyyy"),
        ("received_400_sender_phone", ItdValidationError, "senderPhone es necesario"),
        ("received_401", ItdAuthError, None),
    ]:
        canned.answer(f"itd/{name}.json", int(name.split("_")[1]))
        with pytest.raises(error, match=text):
            hook.received("56912345678", pendulum.date(2020, 4, 25))


def test_itd_poll_stores_the_documented_received_message(canned_itd, warehouse):
    """The ITD poll keeps the message with ``direction: 1`` (the document's only example) as a row."""
    from latam_messaging.itd import poller as itd_poller

    canned, hook = canned_itd
    canned.answer("itd/received_200.json")
    stats = itd_poller.poll_itd_received(warehouse, hook, ["56987654321"], lookback_days=0)
    assert stats.new_messages == 1
    [row] = warehouse.rows(IN)
    assert (row["vendor"], row["vendor_message_id"], row["direction"], row["source"]) == (
        "itd",
        "2a7907d9-612e-401b-bc54-ce1eab3dce3a",
        1,
        "poll",
    )
    assert (row["from_phone"], row["to_account"], row["message_type"], row["text"]) == (
        "56987654321",
        "56123456789",
        "chat",
        "hola desde la web",
    )
    assert row["received_at"] == pendulum.from_timestamp(1582637824, tz="UTC")


# ---- callbacks: receiver → raw_webhook_events → webhook_ingest DAG → rows ------------------------------
def test_every_documented_callback_lands_through_the_receiver_and_webhook_ingest(receiver, warehouse, run_dag):
    add_ledger_row(warehouse, "42", "teleprom")  # V0 identificador = our message key
    add_ledger_row(warehouse, "m-v1", "teleprom", vendor_id="MESSAGE_ID")  # V1 gs_id = MessageWpp's id
    add_ledger_row(warehouse, "m-itd", "itd", vendor_id="f927f0fb-649f-45eb-92bf-15cb975f1bac")
    content_types = {"teleprom/webhook_v3_incoming.json": "application/x-www-form-urlencoded"}
    for name in CALLBACKS:
        vendor = name.split("/")[0]
        answer = requests.post(
            receiver.hook_url(vendor),
            data=doc(name),
            headers={"Content-Type": content_types.get(name, "application/json")},
            timeout=10,
        )
        assert answer.status_code == 200, name
    raw = warehouse.rows(sa.select(R).order_by(R.c.id))
    assert [body_bytes(r["body"]) for r in raw] == [doc(n) for n in CALLBACKS]  # stored byte for byte
    assert raw[3]["content_type"] == "application/x-www-form-urlencoded"

    assert run_dag("webhook_ingest").state == "success"
    states = {
        n: (r["parse_state"], r["parse_error"])
        for n, r in zip(CALLBACKS, warehouse.rows(sa.select(R).order_by(R.c.id)), strict=True)
    }
    shape_state, shape_error = states.pop("teleprom/webhook_v0_bulk_shape.txt")
    assert shape_state == "error" and "not JSON" in shape_error  # placeholders and typographic quotes
    assert states == {n: ("parsed", None) for n in states}

    events = {(e["vendor"], e["vendor_message_id"]): e for e in warehouse.rows(E)}
    assert len(events) == 3
    v0 = events[("teleprom", "42")]
    assert (v0["status"], v0["raw_status"], v0["message_key"], v0["source"]) == (
        "enqueued",
        "enqueued",
        "42",
        "webhook",
    )
    assert v0["event_at"] == pendulum.datetime(2022, 5, 24, 16, 30, 2, 568000, tz="UTC")
    v1 = events[("teleprom", "MESSAGE_ID")]
    assert (v1["status"], v1["raw_status"], v1["message_key"]) == ("enqueued", "enqueued", "m-v1")
    assert set(v1["vendor_ids"]) == {"MESSAGE_ID", "WHATSAPP_MESSAGE_ID"}
    assert v1["event_at"] == raw[2]["received_at"] and "'TIMESTAMP'" in v1["note"]  # placeholder: receive time
    itd = events[("itd", "f927f0fb-649f-45eb-92bf-15cb975f1bac")]
    assert (itd["status"], itd["raw_status"], itd["message_key"]) == ("read", "READ", "m-itd")
    assert itd["event_at"] == pendulum.datetime(2019, 12, 26, 16, 7, tz=SANTIAGO)

    ledger = {r["message_key"]: r["delivery_status"] for r in warehouse.rows(T)}
    assert ledger == {"42": "enqueued", "m-v1": "enqueued", "m-itd": "read"}

    inbound = {(r["vendor"], r["vendor_message_id"]): r for r in warehouse.rows(IN)}
    assert len(inbound) == 2
    v3 = inbound[
        (
            "teleprom",
            "wamid.HBgNNTQ5MzUxNTMxODA0NxUCABIYIDc1Mjg3OUE1OThEREE4MDFENTVBMUVDQTFEOEJFQzU5AA==",
        )
    ]
    assert (v3["from_phone"], v3["to_account"], v3["message_type"], v3["text"], v3["in_reply_to"]) == (
        "5493515318047",
        "5491171186962",
        "button",
        "Quiero más info",
        "7bb2e914-271c-474f-998e-d72e267ca289",
    )
    assert v3["received_at"] == pendulum.from_timestamp(1725372609, tz="UTC")
    itd_in = inbound[("itd", "2a7907d9-612e-401b-bc54-ce1eab3dce3a")]
    assert (itd_in["direction"], itd_in["from_phone"], itd_in["to_account"], itd_in["message_type"]) == (
        1,
        "56936858019",
        "56932028245",
        "chat",
    )
    assert (itd_in["text"], itd_in["media_url"]) == (
        "hola desde la web",
        "http://content.itdchile.cl/files/1/(copia)_image.jpg",
    )
    assert itd_in["received_at"] == pendulum.from_timestamp(1582637824, tz="UTC")
    assert itd_in["raw"]["lat"] == "-33.4036893"  # the whole message is kept
