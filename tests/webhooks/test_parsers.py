"""The callback parsers (``webhooks/parsers.py``): every item of a body becomes an event, an inbound
message or an item error with its reason; nothing is dropped because of a value.

The vendors' own examples come from ``tests/fixtures/vendor_docs/``; the other bodies are ours.
Part of the fast selection that ``make mutants`` runs (no warehouse, no server).
"""

from __future__ import annotations

import json

import pendulum
import pytest

from latam_messaging.webhooks import parsers
from latam_messaging.webhooks.parsers import UnparseableEvent, loads, parse_body
from tests.helpers.paths import VENDOR_DOCS as DOCS

RECEIVED = pendulum.datetime(2026, 3, 2, 15, 0, tz="UTC")


def doc(vendor: str, name: str) -> str:
    return (DOCS / vendor / name).read_text(encoding="utf-8")


def parse(vendor, body, channel=None):
    """A stored body through ``parse_body``, as ``webhook_ingest`` parses it."""
    text = body if isinstance(body, str) else json.dumps(body)
    from latam_messaging.vendors import VENDORS  # the top hands parse_body the vendor's parser

    if vendor not in VENDORS:
        return parse_body(None, channel, text, RECEIVED)
    return parse_body(VENDORS[vendor].parse_callback(), channel, text, RECEIVED)


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


def envelope(kind: str, values: list, version="1"):
    return {"Version": version, "Type": kind, "Payload": {"entry": [{"changes": [{"value": v} for v in values]}]}}


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


# ---- ITD ------------------------------------------------------------------------------------------------
def test_the_documented_itd_status_with_its_trailing_comma():
    parsed = parse("itd", doc("itd", "webhook_status.json"))
    assert (parsed.format_version, parsed.errors) == ("status", [])
    [event] = parsed.statuses
    assert (event.vendor, event.vendor_message_id, event.status, event.raw_status, event.precision_s) == (
        "itd", "f927f0fb-649f-45eb-92bf-15cb975f1bac", "read", "READ", 60,
    )
    assert event.event_at == pendulum.datetime(2019, 12, 26, 16, 7, tz="America/Santiago").in_tz("UTC")


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


# ---- Wavy -----------------------------------------------------------------------------------------------
SENT_AT, DELIVERED_AT = 1772463600000, 1772463660000


def test_a_wavy_callback_is_a_sent_event():
    body = {"id": "W1", "correlationId": "m-1", "sentStatusCode": 2, "sentStatus": "SENT_SUCCESS", "sentAt": SENT_AT}
    parsed = parse("wavy", body, "callback")
    assert parsed.format_version == "callback"
    [event] = parsed.statuses
    assert (event.vendor, event.vendor_message_id, event.message_key, event.status, event.raw_status, event.source) == (
        "wavy", "W1", "m-1", "sent", "SENT_SUCCESS", "webhook",
    )
    assert event.event_at == pendulum.from_timestamp(SENT_AT / 1000, tz="UTC")


@pytest.mark.parametrize(
    ("sent", "delivered", "statuses"),
    [
        ((2, "SENT_SUCCESS"), (4, "DELIVERED_SUCCESS"), [("sent", "SENT_SUCCESS"), ("delivered", "DELIVERED_SUCCESS")]),
        ((2, "SENT_SUCCESS"), (104, "NOT_DELIVERED"), [("sent", "SENT_SUCCESS"), ("failed", "NOT_DELIVERED")]),
        ((2, None), (999, None), [("sent", "2"), ("unknown", "999")]),
        ((202, "INVALID_DESTINATION_NUMBER"), None, [("failed", "INVALID_DESTINATION_NUMBER")]),
        ((77, "NEW_CODE"), None, [("unknown", "NEW_CODE")]),
    ],
)
def test_a_wavy_dlr_is_a_sent_event_then_a_delivery_event(sent, delivered, statuses):
    body = {"id": "W1", "sentStatusCode": sent[0], "sentStatus": sent[1], "sentStatusAt": SENT_AT}
    if delivered:
        body.update(deliveredStatusCode=delivered[0], deliveredStatus=delivered[1], deliveredAt=DELIVERED_AT)
    parsed = parse("wavy", body, "dlr")
    assert parsed.format_version == ("dlr" if delivered else "callback")
    assert [(e.status, e.raw_status) for e in parsed.statuses] == statuses
    assert parsed.statuses[-1].event_at == pendulum.from_timestamp(
        (DELIVERED_AT if delivered else SENT_AT) / 1000, tz="UTC"
    )


def test_a_wavy_status_without_code_and_time_is_refused():
    with pytest.raises(UnparseableEvent, match="^Wavy status without a status code and time$"):
        parse("wavy", {"id": "W1", "sentStatusCode": 2}, "callback")
    with pytest.raises(UnparseableEvent, match="^Wavy webhooks are JSON objects with an id$"):
        parse("wavy", {"sentStatusCode": 2}, "callback")


def test_a_wavy_mo_is_an_inbound_reply():
    body = {"id": "MO1", "source": "5511987654321", "shortCode": "28888", "messageText": "SIM",
            "receivedAt": SENT_AT, "mt": {"correlationId": "m-1"}}
    for channel in ("mo", "callback"):  # a messageText makes it an MO whatever the path
        parsed = parse("wavy", body, channel)
        assert parsed.format_version == "mo"
        [row] = parsed.inbound
        assert (row["vendor"], row["vendor_message_id"], row["from_phone"], row["to_account"], row["text"]) == (
            "wavy", "MO1", "5511987654321", "28888", "SIM",
        )
        assert (row["message_type"], row["in_reply_to"], row["raw"]) == ("sms", "m-1", body)


def test_a_wavy_mo_keeps_its_receive_time():
    body = {"id": "MO1", "source": "5511987654321", "shortCode": "28888", "messageText": "SIM", "receivedAt": SENT_AT}
    [row] = parse("wavy", body, "mo").inbound
    assert row["received_at"] == pendulum.datetime(2026, 3, 2, 15, 0, tz="UTC")


def test_a_wavy_mo_without_text_on_the_mo_channel_is_still_an_inbound_reply():
    body = {"id": "MO2", "source": "5511987654321", "shortCode": "28888", "receivedAt": SENT_AT}
    parsed = parse("wavy", body, "mo")
    assert (parsed.format_version, parsed.statuses, parsed.errors) == ("mo", [], [])
    [row] = parsed.inbound
    assert (row["vendor_message_id"], row["from_phone"], row["text"]) == ("MO2", "5511987654321", None)


@pytest.mark.parametrize("sent", [{}, {"sentStatusCode": 2, "sentStatus": "SENT_SUCCESS"}])  # no code, or no time
def test_a_wavy_dlr_without_a_usable_sent_stage_still_gives_its_delivery_event(sent):
    body = {"id": "W1", **sent, "deliveredStatusCode": 4, "deliveredStatus": "DELIVERED_SUCCESS",
            "deliveredAt": DELIVERED_AT}
    parsed = parse("wavy", body, "dlr")
    assert parsed.format_version == "dlr"
    assert [(e.vendor_message_id, e.status, e.raw_status) for e in parsed.statuses] == [
        ("W1", "delivered", "DELIVERED_SUCCESS"),
    ]
    assert parsed.statuses[0].event_at == pendulum.datetime(2026, 3, 2, 15, 1, tz="UTC")


def test_polled_wavy_pages_keep_good_items_beside_bad_ones():
    statuses = {"smsStatuses": [{"id": "W1", "sentStatusCode": 2, "sentAt": SENT_AT}, {"sentStatusCode": 2}]}
    parsed = parse("wavy", statuses, "status_list")
    assert parsed.format_version == "status_list"
    assert [(e.vendor_message_id, e.source) for e in parsed.statuses] == [("W1", "poll")]
    assert parsed.errors == ["item 2: KeyError"]
    messages = {"messages": [{"id": "MO1", "messageText": "x"}, {"messageText": "no id"}]}
    for channel in ("receive_list", "receive_search"):
        parsed = parse("wavy", messages, channel)
        assert (parsed.format_version, [r["vendor_message_id"] for r in parsed.inbound]) == (channel, ["MO1"])
        assert parsed.errors == ["item 2: KeyError"]
    assert parse("wavy", {}, "status_list").statuses == []


# ---- times ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("value", "usable"),
    [
        ("1772463600", True), (1772463600, True), ("946684800", True),  # 2000-01-01 itself
        ("946684799", False), ("0", False), ("1e20", False), (str(int(RECEIVED.add(days=1).timestamp())), True),
        (str(int(RECEIVED.add(days=1, seconds=1).timestamp())), False), (None, False), ("", False),
    ],
)
def test_a_vendor_time_is_believed_from_2000_to_a_day_ahead(value, usable):
    status = {"id": "w", "status": "sent", "timestamp": value}
    [event] = parse("teleprom", envelope("STATUS", [{"statuses": [status]}])).statuses
    assert (event.event_at != RECEIVED or event.note is None) if usable else event.event_at == RECEIVED
    assert (event.note is None) is usable


def test_epoch_milliseconds_are_read_from_text_or_numbers():
    for value in (SENT_AT, str(SENT_AT), f" {SENT_AT} ", float(SENT_AT)):
        [row] = parse("itd", {"uuid": "u", "senderPhone": "1", "sendAt": value}).inbound
        assert row["received_at"] == pendulum.from_timestamp(SENT_AT / 1000, tz="UTC")


# ---- guarded JSON -------------------------------------------------------------------------------------------
def test_trailing_commas_are_tolerated_but_not_inside_strings():
    assert loads('{"a": [1, 2,], "b": "x,]",}') == {"a": [1, 2], "b": "x,]"}
    assert loads('["a\\",]",]') == ['a",]']


def test_bodies_too_large_or_too_deep_are_refused_before_parsing(monkeypatch):
    monkeypatch.setattr(parsers, "MAX_BODY_CHARS", 10)
    assert loads('"123456"') == "123456"
    with pytest.raises(UnparseableEvent, match="^body of 12 characters is over the 10 limit$"):
        loads('"1234567890"')
    monkeypatch.setattr(parsers, "MAX_BODY_CHARS", 10_000)
    assert loads("[" * parsers.MAX_DEPTH + "]" * parsers.MAX_DEPTH) is not None
    with pytest.raises(UnparseableEvent, match=f"^body nests deeper than {parsers.MAX_DEPTH} levels$"):
        loads("[" * (parsers.MAX_DEPTH + 1) + "]" * (parsers.MAX_DEPTH + 1))
    assert loads('["[[[[", {"x": "{{{{"}]') == ["[[[[", {"x": "{{{{"}]  # brackets in strings do not nest


def test_nesting_depth_counts_the_deepest_level():
    assert parsers._nesting_depth('{"a": [1, {"b": []}], "c": {}}') == 4
    assert parsers._nesting_depth("[][][]") == 1
    assert parsers._nesting_depth('"no brackets"') == 0


def test_a_body_that_is_not_json_says_why():
    with pytest.raises(UnparseableEvent, match="^body is not JSON: Expecting value: line 1 column 1"):
        loads("nope")


def test_an_unknown_vendor_is_refused():
    with pytest.raises(UnparseableEvent, match="^(unknown vendor 'acme'|no parser for this vendor)$"):
        parse("acme", {})


def test_item_errors_name_the_type_not_the_content():
    parsed = parse("teleprom", envelope("STATUS", [{"statuses": ["secret text 5493515238015"]}]))
    assert parsed.errors == ["item 1: AttributeError"]


# ---- guards and helpers, at their edges ----------------------------------------------------------------
def test_a_body_exactly_at_the_size_limit_is_read():
    text = '"' + "a" * (1024 * 1024 - 2) + '"'  # 1 MiB of characters, quotes included
    assert len(loads(text)) == 1024 * 1024 - 2


def test_a_deep_branch_after_shallow_siblings_is_refused():
    text = "[" + "[]," * 40 + "[" * 64 + "]" * 64 + "]"  # 65 levels at the last branch
    with pytest.raises(UnparseableEvent, match="deeper than"):
        loads(text)
    assert loads("[" + "[]," * 40 + "[" * 63 + "]" * 63 + "]")[-1] is not None  # 64 levels are read


def test_an_item_reason_is_cut_at_300_characters():
    parsed = parsers.items_of(parsers.Parsed("v"), ["x"], lambda item: (_ for _ in ()).throw(UnparseableEvent("r" * 400)))
    assert parsed.errors == ["item 1: " + "r" * 300]


def test_an_unusable_vendor_time_is_shown_in_40_characters():
    value = "9" * 50
    when = parsers.vendor_time(value, RECEIVED, parsers.epoch_s)
    assert when.at == RECEIVED
    assert when.note == f"vendor time '{'9' * 39} unusable: receive time used"


@pytest.mark.parametrize("value", ["1772463600000", " 1772463600000 ", 1772463600000, 1772463600000.0])
def test_the_shared_epoch_ms_reads_text_or_numbers(value):
    assert parsers.epoch_ms(value) == pendulum.datetime(2026, 3, 2, 15, 0, tz="UTC")


def test_a_parser_that_breaks_on_a_body_names_the_error():
    def broken(body, channel, received_at):
        return body["missing"]

    with pytest.raises(UnparseableEvent, match="^KeyError while reading the body$"):
        parse_body(broken, None, "{}", RECEIVED)


@pytest.mark.parametrize(
    ("value", "expected"),
    [(None, None), ("", None), ("olá", "olá"), ({"texto": "olá"}, '{"texto": "olá"}'), (0, "0")],
)
def test_a_vendor_text_is_kept_as_text_with_its_accents(value, expected):
    assert parsers.text_or_none(value) == expected


# ---- every event and message says whose it is and how it came ------------------------------------------
@pytest.mark.parametrize(
    ("vendor", "name"),
    [("teleprom", "webhook_v1_status.json"), ("teleprom", "webhook_v3_incoming.json"),
     ("itd", "webhook_status.json"), ("itd", "webhook_inbound.json")],
)
def test_a_webhook_body_yields_events_and_messages_of_its_vendor_from_the_webhook(vendor, name):
    parsed = parse(vendor, doc(vendor, name))
    assert parsed.statuses or parsed.inbound
    for event in parsed.statuses:
        assert (event.vendor, event.source) == (vendor, "webhook")
    for row in parsed.inbound:
        assert row["vendor"] == vendor
        assert isinstance(row["raw"], dict) and row["raw"]  # the item as received, kept beside the row


@pytest.mark.parametrize("vendor", ["teleprom", "itd"])
def test_an_inbound_message_with_an_unusable_time_says_so(vendor):
    body = json.loads(doc(vendor, "webhook_v3_incoming.json" if vendor == "teleprom" else "webhook_inbound.json"))
    text = json.dumps(body).replace("1725372609", "0") if vendor == "teleprom" else None
    if vendor == "itd":
        items = body if isinstance(body, list) else [body]
        for item in items:
            item["sendAt"] = "not a time"
        text = json.dumps(body)
    [row] = parse(vendor, text).inbound
    assert row["received_at"] == RECEIVED
    assert row["note"] and row["note"].endswith("unusable: receive time used")


def test_v0_times_without_an_offset_are_buenos_aires_local_time():
    """Teleprom prints ``fechaHora`` in Argentina's local time (UTC-3); the warehouse keeps UTC."""
    body = {"fechaHora": "2026-03-02T10:15:00", "identificador": "m-1", "telefono": "5493510000000",
            "resultado": "delivered", "empresa": "MaytenCloud", "origen": "WSP"}
    [event] = parse("teleprom", body).statuses
    assert event.event_at == pendulum.datetime(2026, 3, 2, 13, 15, tz="UTC") and event.note is None
    offset = {**body, "fechaHora": "2026-03-02T10:15:00.000-05:00"}  # an explicit offset wins
    assert parse("teleprom", offset).statuses[0].event_at == pendulum.datetime(2026, 3, 2, 15, 15, tz="UTC")
