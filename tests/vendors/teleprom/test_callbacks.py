"""Teleprom's callback parser (``teleprom/callbacks.py``), V0 and V1/V3: every item of a body becomes an
event, an inbound message or an item error with its reason; nothing is dropped because of a value.

The vendor's own examples come from ``tests/fixtures/vendor_docs/``; the other bodies are ours.
Part of the fast selection that ``make mutants`` runs (no warehouse, no server). The parser base's
tests are in ``tests/webhooks/test_parsers.py``.
"""

from __future__ import annotations

import pendulum
import pytest

from latam_messaging.webhooks.parsers import UnparseableEvent
from tests.helpers.callbacks import RECEIVED, doc, envelope, parse


# ---- Teleprom V0 ---------------------------------------------------------------------------------------
def test_the_documented_v0_object_is_a_status_by_our_key():
    parsed = parse("teleprom", doc("teleprom", "webhook_v0_enqueued.json"))
    assert (parsed.format_version, parsed.inbound, parsed.errors) == ("V0", [], [])
    [event] = parsed.statuses
    assert (event.vendor, event.vendor_message_id, event.status, event.raw_status, event.source) == (
        "teleprom", None, "enqueued", "enqueued", "webhook",
    )
    assert event.message_key == "42" and event.note is None
    assert event.event_at == pendulum.datetime(2022, 5, 24, 16, 30, 2, 568000, tz="UTC")


@pytest.mark.parametrize(
    ("text", "status"),
    [("enqueued", "enqueued"), (" SENT ", "sent"), ("Delivered", "delivered"), ("read", "read"),
     ("failed", "failed"), ("failed: blocked", "failed"), ("FAILED - x", "failed"), ("queued", "unknown"),
     ("", "unknown")],
)
def test_teleprom_status_texts_map_to_the_vocabulary(text, status):
    [event] = parse("teleprom", {"resultado": text, "identificador": "k"}).statuses
    assert (event.status, event.raw_status) == (status, text)


def test_a_v0_array_keeps_good_items_beside_bad_ones():
    body = [
        {"resultado": "sent", "identificador": "k1", "fechaHora": "2026-03-02T10:00:00-03:00"},
        {"identificador": "k2"},  # no resultado
        "not an object",
        {"resultado": "delivered", "identificador": ""},  # no key
        {"resultado": "weird", "identificador": 7, "fechaHora": "{fechahora}"},  # a placeholder time
    ]
    parsed = parse("teleprom", body)
    assert parsed.errors == [
        "item 2: V0 item without resultado", "item 3: V0 item without resultado",
        "item 4: V0 status without identificador",
    ]
    assert [(e.message_key, e.status, e.raw_status) for e in parsed.statuses] == [
        ("k1", "sent", "sent"), ("7", "unknown", "weird"),
    ]
    assert parsed.statuses[0].event_at == pendulum.datetime(2026, 3, 2, 13, tz="UTC")
    assert parsed.statuses[1].event_at == RECEIVED
    assert parsed.statuses[1].note == "vendor time '{fechahora}' unusable: receive time used"


def test_a_v0_reply_is_an_inbound_message_identified_per_reply():
    reply = {"resultado": "received", "identificador": "k1", "telefono": "5493515238015", "empresa": "Acme",
             "mensaje": "gracias", "fechaHora": "2026-03-02T10:00:00-03:00"}
    other = dict(reply, mensaje="otra")
    parsed = parse("teleprom", [reply, other, dict(reply, identificador="x" * 129)])
    first, second, long_key = parsed.inbound
    assert (first["vendor"], first["from_phone"], first["to_account"], first["text"], first["message_type"]) == (
        "teleprom", "5493515238015", "Acme", "gracias", "text",
    )
    assert first["in_reply_to"] == "k1" and long_key["in_reply_to"] is None
    assert first["vendor_message_id"].startswith("k1#") and len(first["vendor_message_id"]) == 3 + 20
    assert first["vendor_message_id"] != second["vendor_message_id"]
    assert parse("teleprom", [reply]).inbound[0]["vendor_message_id"] == first["vendor_message_id"]  # a retry
    assert first["received_at"] == pendulum.datetime(2026, 3, 2, 13, tz="UTC") and first["raw"] == reply
    assert parsed.statuses == []


def test_a_v0_reply_keeps_its_id_whatever_the_order_of_its_keys():
    reply = {"resultado": "received", "identificador": "k1", "telefono": "5493515238015", "empresa": "Acme",
             "mensaje": "gracias", "fechaHora": "2026-03-02T10:00:00-03:00"}
    reordered = {"fechaHora": "2026-03-02T10:00:00-03:00", "mensaje": "gracias", "empresa": "Acme",
                 "telefono": "5493515238015", "identificador": "k1", "resultado": "received"}
    [first] = parse("teleprom", [reply]).inbound
    [retry] = parse("teleprom", [reordered]).inbound  # the vendor's retry, its keys printed in another order
    assert first["vendor_message_id"].startswith("k1#")
    assert retry["vendor_message_id"] == first["vendor_message_id"]


def test_a_v0_reply_id_keeps_200_characters_of_a_long_identificador():
    [row] = parse("teleprom", [{"resultado": "received", "identificador": "k" * 250}]).inbound
    key, digest = row["vendor_message_id"].split("#")
    assert (key, len(digest)) == ("k" * 200, 20)


def test_a_v0_reply_links_to_a_key_of_exactly_128_characters():
    [row] = parse("teleprom", [{"resultado": "received", "identificador": "k" * 128}]).inbound
    assert row["in_reply_to"] == "k" * 128


def test_a_v0_reply_with_an_empty_key_links_to_nothing():
    [row] = parse("teleprom", [{"resultado": "received", "identificador": "", "mensaje": "hola"}]).inbound
    assert (row["in_reply_to"], row["text"]) == (None, "hola")


def test_a_v0_reply_with_an_unusable_time_says_so():
    reply = {"resultado": "received", "identificador": "k1", "mensaje": "hola", "fechaHora": "{fechahora}"}
    [row] = parse("teleprom", [reply]).inbound
    assert row["received_at"] == RECEIVED
    assert row["note"] == "vendor time '{fechahora}' unusable: receive time used"


def test_the_printed_v0_shape_is_not_json_and_says_so():
    with pytest.raises(UnparseableEvent, match="^body is not JSON: "):
        parse("teleprom", doc("teleprom", "webhook_v0_bulk_shape.txt"))


# ---- Teleprom V1/V3 ------------------------------------------------------------------------------------
def test_the_documented_v1_status_links_by_both_ids_and_its_placeholder_time_is_noted():
    parsed = parse("teleprom", doc("teleprom", "webhook_v1_status.json"))
    assert (parsed.format_version, parsed.errors) == ("V1", [])
    [event] = parsed.statuses
    assert (event.vendor_message_id, event.vendor_ids, event.status, event.raw_status) == (
        "MESSAGE_ID", ["MESSAGE_ID", "WHATSAPP_MESSAGE_ID"], "enqueued", "enqueued",
    )
    assert event.event_at == RECEIVED and event.note == "vendor time 'TIMESTAMP' unusable: receive time used"


def test_v1_statuses_each_item_alone():
    statuses = [
        {"gs_id": "g1", "id": "w1", "status": "read", "timestamp": "1772463600"},
        {"status": "sent"},  # no id
        {"id": "w3", "status": "failed: expired", "timestamp": 1772463600},
    ]
    parsed = parse("teleprom", envelope("STATUS", [{"statuses": statuses}, {}], version="3"))
    assert parsed.format_version == "V3"
    assert parsed.errors == ["item 2: status without gs_id or id"]
    assert [(e.vendor_message_id, e.vendor_ids, e.status, e.raw_status) for e in parsed.statuses] == [
        ("g1", ["g1", "w1"], "read", "read"), ("w3", ["w3"], "failed", "failed: expired"),
    ]
    assert parsed.statuses[0].event_at == pendulum.from_timestamp(1772463600, tz="UTC")
    assert parsed.statuses[0].note is None


def test_the_documented_v3_reply_is_an_inbound_message():
    parsed = parse("teleprom", doc("teleprom", "webhook_v3_incoming.json"))
    assert (parsed.format_version, parsed.errors, parsed.statuses) == ("V3", [], [])
    [row] = parsed.inbound
    assert row["vendor_message_id"].startswith("wamid.HBgNNTQ5MzUxNTMxODA0NxUCABIYIDc1Mjg3")
    assert (row["from_phone"], row["to_account"], row["message_type"], row["text"]) == (
        "5493515318047", "5491171186962", "button", "Quiero más info",
    )
    assert row["in_reply_to"] == "7bb2e914-271c-474f-998e-d72e267ca289"
    assert row["received_at"] == pendulum.from_timestamp(1725372609, tz="UTC") and row["media_url"] is None


def test_v3_replies_of_every_kind():
    messages = [
        {"id": "t", "from": "1", "type": "text", "text": {"body": "hola"}, "timestamp": "1772463600",
         "context": {"id": "ctx-id"}},
        {"id": "i", "from": "1", "type": "image", "image": {"url": "https://x/i.jpg"}, "timestamp": "1772463600"},
        {"id": "d", "from": "1", "type": "document", "document": {"link": "https://x/d.pdf"}},
        {"id": "", "from": "1", "type": "text", "text": {"body": "no id"}},
        {"id": "l", "from": "1", "type": "location", "location": {"url": "https://maps"}},
    ]
    parsed = parse("teleprom", envelope("INCOMING", [{"metadata": {"display_phone_number": "549"},
                                                      "messages": messages}]))
    assert parsed.errors == ["item 4: message without an id"]
    got = {r["vendor_message_id"]: (r["text"], r["media_url"], r["in_reply_to"], r["to_account"], r["note"])
           for r in parsed.inbound}
    assert got == {
        "t": ("hola", None, "ctx-id", "549", None),
        "i": (None, "https://x/i.jpg", None, "549", None),
        "d": (None, "https://x/d.pdf", None, "549", "vendor time None unusable: receive time used"),
        "l": (None, None, None, "549", "vendor time None unusable: receive time used"),
    }


def test_a_v1_status_ignores_an_empty_id_beside_a_good_one():
    statuses = [{"gs_id": "", "id": "w1", "status": "sent"}, {"gs_id": "", "id": "", "status": "sent"}]
    parsed = parse("teleprom", envelope("STATUS", [{"statuses": statuses}]))
    assert [(e.vendor_message_id, e.vendor_ids) for e in parsed.statuses] == [("w1", ["w1"])]
    assert parsed.errors == ["item 2: status without gs_id or id"]


@pytest.mark.parametrize("text", [None, ""])
def test_a_v1_status_without_a_status_text_is_unknown_with_an_empty_raw_status(text):
    [event] = parse("teleprom", envelope("STATUS", [{"statuses": [{"id": "w1", "status": text}]}])).statuses
    assert (event.vendor_message_id, event.status, event.raw_status) == ("w1", "unknown", "")


def test_v3_video_and_audio_replies_keep_their_media_url():
    messages = [
        {"id": "v", "from": "1", "type": "video", "video": {"url": "https://x/v.mp4"}, "timestamp": "1772463600"},
        {"id": "a", "from": "1", "type": "audio", "audio": {"link": "https://x/a.ogg"}, "timestamp": "1772463600"},
    ]
    parsed = parse("teleprom", envelope("INCOMING", [{"messages": messages}], version="3"))
    assert parsed.errors == []
    assert [(r["vendor_message_id"], r["message_type"], r["media_url"]) for r in parsed.inbound] == [
        ("v", "video", "https://x/v.mp4"), ("a", "audio", "https://x/a.ogg"),
    ]


def test_an_envelope_version_is_kept_in_16_characters():
    parsed = parse("teleprom", envelope("STATUS", [], version="3" * 20))
    assert parsed.format_version == "V333333333333333"  # V and 15 digits


def test_an_envelope_of_an_unknown_long_type_is_refused_showing_40_characters():
    with pytest.raises(UnparseableEvent) as raised:
        parse("teleprom", {"Version": "1", "Type": "t" * 50, "Payload": {}})
    assert str(raised.value) == f"envelope Type '{'T' * 40}' is not STATUS or INCOMING"


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ({"Version": "1", "Type": "STATUS"}, "envelope without a Payload object"),
        ({"Version": "1", "Type": "OTHER", "Payload": {}}, "envelope Type 'OTHER' is not STATUS or INCOMING"),
        ({"foo": 1}, "neither a V0 array nor a V1/V3 envelope"),
        (5, "neither a V0 array nor a V1/V3 envelope"),
    ],
)
def test_a_teleprom_body_of_no_known_shape_is_refused_with_a_reason(body, reason):
    with pytest.raises(UnparseableEvent) as raised:
        parse("teleprom", body)
    assert str(raised.value) == reason


def test_an_empty_envelope_is_parsed_with_nothing_in_it():
    parsed = parse("teleprom", {"Version": "1", "Type": "status", "Payload": {"entry": [1, {"changes": [2]}]}})
    assert (parsed.statuses, parsed.inbound, parsed.errors) == ([], [], [])


def test_v0_times_without_an_offset_are_buenos_aires_local_time():
    """Teleprom prints ``fechaHora`` in Argentina's local time (UTC-3); the warehouse keeps UTC."""
    body = {"fechaHora": "2026-03-02T10:15:00", "identificador": "m-1", "telefono": "5493510000000",
            "resultado": "delivered", "empresa": "MaytenCloud", "origen": "WSP"}
    [event] = parse("teleprom", body).statuses
    assert event.event_at == pendulum.datetime(2026, 3, 2, 13, 15, tz="UTC") and event.note is None
    offset = {**body, "fechaHora": "2026-03-02T10:15:00.000-05:00"}  # an explicit offset wins
    assert parse("teleprom", offset).statuses[0].event_at == pendulum.datetime(2026, 3, 2, 15, 15, tz="UTC")
