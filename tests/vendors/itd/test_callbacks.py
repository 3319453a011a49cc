"""ITD Chile's callback parser (``itd/callbacks.py``): every item of a body becomes an event, an inbound
message or an item error with its reason; nothing is dropped because of a value.

The vendor's own examples come from ``tests/fixtures/vendor_docs/``; the other bodies are ours.
Part of the fast selection that ``make mutants`` runs (no warehouse, no server). The parser base's
tests are in ``tests/webhooks/test_parsers.py``.
"""

from __future__ import annotations

import pendulum
import pytest

from latam_messaging.webhooks.parsers import UnparseableEvent
from tests.helpers.callbacks import RECEIVED, doc, parse


# ---- ITD ------------------------------------------------------------------------------------------------
def test_the_documented_itd_status_with_its_trailing_comma():
    parsed = parse("itd", doc("itd", "webhook_status.json"))
    assert (parsed.format_version, parsed.errors) == ("status", [])
    [event] = parsed.statuses
    assert (event.vendor, event.vendor_message_id, event.status, event.raw_status, event.precision_s) == (
        "itd", "f927f0fb-649f-45eb-92bf-15cb975f1bac", "read", "READ", 0,
    )
    # sent_at is "Fecha de envío", the send date: kept as such; the READ is placed when we learned it
    assert event.message_sent_at == pendulum.datetime(2019, 12, 26, 16, 7, tz="America/Santiago").in_tz("UTC")
    assert event.event_at == RECEIVED and event.note is None


def test_an_itd_sent_status_is_placed_at_its_sent_at_to_the_minute():
    body = {"sent_at": "26/12/2019 16:07", "status": "SENT", "uuid": "u-1"}
    [event] = parse("itd", body).statuses
    sent = pendulum.datetime(2019, 12, 26, 16, 7, tz="America/Santiago").in_tz("UTC")
    assert (event.status, event.event_at, event.message_sent_at, event.precision_s) == ("sent", sent, sent, 60)


def test_an_itd_status_without_a_usable_sent_at_is_placed_at_the_receive_time():
    for sent_at in (None, "TIMESTAMP"):
        [event] = parse("itd", {"sent_at": sent_at, "status": "SENT", "uuid": "u-1"}).statuses
        assert (event.event_at, event.message_sent_at, event.precision_s) == (RECEIVED, None, 0)
        assert event.note == f"vendor time {sent_at!r} unusable: receive time used"  # said, even when absent


@pytest.mark.parametrize(
    ("text", "status"),
    [("MESSAGE QUEUED", "enqueued"), ("queued", "enqueued"), (" sent ", "sent"), ("DELIVERED", "delivered"),
     ("READ", "read"), ("FAILED", "failed"), ("ERROR", "failed"), ("PENDING", "unknown"), (3, "unknown")],
)
def test_itd_status_texts_map_to_the_vocabulary(text, status):
    [event] = parse("itd", {"uuid": "u", "status": text, "sent_at": "26/12/2019 16:07"}).statuses
    assert (event.status, event.raw_status) == (status, str(text))


def test_an_itd_status_with_an_unusable_time_uses_the_receive_time_exactly():
    parsed = parse("itd", {"uuid": "u1", "status": "SENT", "sent_at": "2019-12-26"})
    [event] = parsed.statuses
    assert (event.event_at, event.precision_s) == (RECEIVED, 0)
    assert event.note == "vendor time '2019-12-26' unusable: receive time used"


@pytest.mark.parametrize("text", [None, ""])
def test_an_itd_status_without_a_status_text_is_unknown_with_an_empty_raw_status(text):
    [event] = parse("itd", {"uuid": "u1", "status": text, "sent_at": "26/12/2019 16:07"}).statuses
    assert (event.vendor_message_id, event.status, event.raw_status) == ("u1", "unknown", "")


def test_an_itd_status_without_a_uuid_is_an_item_error():
    parsed = parse("itd", {"uuid": "", "status": "SENT"})
    assert (parsed.statuses, parsed.errors) == ([], ["item 1: status without uuid"])


def test_the_documented_itd_inbound_keeps_every_field():
    parsed = parse("itd", doc("itd", "webhook_inbound.json"))
    assert (parsed.format_version, parsed.errors) == ("inbound", [])
    [row] = parsed.inbound
    assert row["vendor_message_id"] == "2a7907d9-612e-401b-bc54-ce1eab3dce3a"
    assert (row["from_phone"], row["to_account"], row["message_type"], row["text"], row["direction"]) == (
        "56936858019", "56932028245", "chat", "hola desde la web", 1,
    )
    assert row["media_url"] == "http://content.itdchile.cl/files/1/(copia)_image.jpg"
    assert row["received_at"] == pendulum.from_timestamp(1582637824, tz="UTC") and row["note"] is None
    assert row["raw"]["lat"] == "-33.4036893"


def test_an_itd_inbound_without_content_keeps_its_caption_and_an_odd_direction():
    body = {"uuid": "u", "senderPhone": "569", "content": "", "caption": "foto", "direction": "x", "sendAt": "abc"}
    [row] = parse("itd", body).inbound
    assert (row["text"], row["direction"], row["received_at"]) == ("foto", None, RECEIVED)


@pytest.mark.parametrize("body", [[1], {"uuid": "u"}, {"status": "SENT"}, {"senderPhone": "1"}])
def test_an_itd_body_of_no_known_shape_is_refused(body):
    with pytest.raises(UnparseableEvent, match="^(ITD webhooks are JSON objects|neither an ITD status nor an inbound)"):
        parse("itd", body)


@pytest.mark.parametrize(
    ("sent_at", "note"),
    [("26/12/2019 16:07", None), ("2019-12-26", "vendor time '2019-12-26' unusable: receive time used"),
     (None, None), ("", None), ("absent", None)],
)
def test_a_later_itd_status_notes_an_unusable_sent_at_but_not_a_missing_one(sent_at, note):
    body = {"uuid": "u1", "status": "DELIVERED"} | ({} if sent_at == "absent" else {"sent_at": sent_at})
    [event] = parse("itd", body).statuses
    assert (event.status, event.event_at, event.note) == ("delivered", RECEIVED, note)
