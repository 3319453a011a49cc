"""Every vendor example of ``tests/fixtures/vendor_docs/`` (byte-identical copies of the documents'
examples) through the real path, on SQLite and PostgreSQL:

* answers: served verbatim by a canned HTTP server and decoded by the hooks;
* requests: what the hooks send compared with the printed request;
* callbacks: posted verbatim to the real receiver → ``raw_webhook_events`` → the ``webhook_ingest``
  DAG → warehouse rows.

Here: every example is used, and the callbacks; the answers and requests are in each vendor's
``test_examples.py``.

Expected values are written out from the documents here, never computed with the code under test.
"""

from __future__ import annotations

import pendulum
import requests
import sqlalchemy as sa

from latam_messaging.warehouse import schema
from latam_messaging.webhooks.raw import body_bytes
from tests.helpers.ledger import add_ledger_row
from tests.helpers.paths import SHARED_EXAMPLES as SHARED
from tests.helpers.paths import VENDOR_DOCS as DOCS
from tests.helpers.vendor_docs import ANSWERS_TELEPROM, CALLBACKS, ITD_FILES, doc

R, E, IN, T = (
    schema.raw_webhook_events,
    schema.message_status_events,
    schema.inbound_messages,
    schema.outbound_messages,
)
SANTIAGO = "America/Santiago"


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
    # sent_at is the message's send date ("Fecha de envío"); the READ is placed when the webhook came
    assert itd["message_sent_at"] == pendulum.datetime(2019, 12, 26, 16, 7, tz=SANTIAGO)
    assert itd["event_at"] == raw[CALLBACKS.index("itd/webhook_status.json")]["received_at"]

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
