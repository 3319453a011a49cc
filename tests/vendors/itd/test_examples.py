"""ITD Chile: every documented example of ``tests/fixtures/vendor_docs/itd/`` (byte-identical
copies of the document's examples) through the real hook, on SQLite and PostgreSQL:

* answers: served verbatim by a canned HTTP server and decoded by the hook;
* requests: what the hook sends compared with the printed request.

Expected values are written out from the documents here, never computed with the code under test.
The completeness test and the callbacks are in ``tests/vendors/test_examples.py``.
"""

from __future__ import annotations

import json

import pendulum
import pytest

from latam_messaging.itd.hook import ItdAuthError, ItdNoCreditsError, ItdNotFoundError, ItdValidationError
from latam_messaging.itd.models import ItdMessage
from latam_messaging.warehouse import schema
from tests.helpers.vendor_docs import doc

IN = schema.inbound_messages
SANTIAGO = "America/Santiago"


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
