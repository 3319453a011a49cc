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
        ({"Version": "1", "Payload": {}}, "envelope Type '' is not STATUS or INCOMING"),
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


# ---- Meta's vocabulary through the V1/V3 envelopes (contract.py cites Meta's and Gupshup's references) -------
T0 = pendulum.datetime(2026, 3, 2, 14, 0, tz="UTC")
S0 = str(int(T0.timestamp()))


def meta_status(state="sent", timestamp=S0, **extra):
    return {"id": "wamid.A", "gs_id": "gs-A", "status": state, "timestamp": timestamp, "recipient_id": "549", **extra}


def one_status(**extra):
    parsed = parse("teleprom", envelope("STATUS", [{"statuses": [meta_status(**extra)]}], version="3"))
    assert parsed.errors == [] and parsed.format_version == "V3"
    [event] = parsed.statuses
    return event


def one_message(kind, body, profiles=None, **extra):
    message = {"from": "5493515318047", "id": "wamid.M", "timestamp": S0, "type": kind, kind: body, **extra}
    value = {
        "metadata": {"display_phone_number": "5491171186962"},
        "contacts": [{"profile": {"name": "Ana"}, "wa_id": "5493515318047"}] if profiles is None else profiles,
        "messages": [message],
    }
    parsed = parse("teleprom", envelope("INCOMING", [value], version="3"))
    assert parsed.errors == []
    [row] = parsed.inbound
    return row


@pytest.mark.parametrize(
    ("errors", "reason"),
    [
        ([{"code": 131047, "title": "Re-engagement message"}], "131047: Re-engagement message"),
        ([{"code": 131047, "message": "Re-engagement message"}], "131047: Re-engagement message"),
        ([{"code": 131026, "title": "Undeliverable", "error_data": {"details": "not a WhatsApp user"}}],
         "131026: Undeliverable — not a WhatsApp user"),
        ([{"code": 1, "title": "Same", "error_data": {"details": "Same"}}], "1: Same"),
        ([{"title": "Only a title"}], "Only a title"),
        ([{"code": 7}], "7"),
        ([{}], "error without code or title"),
        ([5, {"code": 2, "title": "second is first object"}], "2: second is first object"),
        ({"code": 131050, "title": "stopped marketing"}, "131050: stopped marketing"),
        ("plain text error", "plain text error"),
        (5, None),
        ([], None),
        (None, None),
    ],
)
def test_a_failed_status_keeps_metas_first_error_as_its_reason(errors, reason):
    event = one_status(state="failed", errors=errors)
    assert (event.status, event.reason) == ("failed", reason)


def test_pricing_and_conversation_are_the_events_cost():
    event = one_status(
        conversation={"id": "conv-9", "expiration_timestamp": str(int(T0.timestamp()) + 86400), "origin": {"type": "utility"}},
        pricing={"billable": False, "pricing_model": "CBP", "category": "utility"},
    )
    cost = event.cost
    assert (cost.billable, cost.pricing_category, cost.pricing_model) == (False, "utility", "CBP")
    assert (cost.conversation_id, cost.conversation_origin) == ("conv-9", "utility")
    assert cost.conversation_expires_at == T0.add(days=1)


@pytest.mark.parametrize(("billable", "read"), [(True, True), (False, False), ("true", True), (" FALSE ", False), ("yes", None), (1, None), (None, None)])
def test_billable_is_a_boolean_or_its_spelling_else_unknown(billable, read):
    assert one_status(pricing={"billable": billable}).cost.billable is read


def test_a_conversation_expiry_more_than_three_days_after_the_receive_time_is_unusable():
    def expiry(at):
        return one_status(conversation={"id": "c", "expiration_timestamp": str(int(at.timestamp()))}).cost
    assert expiry(RECEIVED.add(days=3)).conversation_expires_at == RECEIVED.add(days=3)  # two days, a day of slack
    assert expiry(RECEIVED.add(days=3, minutes=1)).conversation_expires_at is None


def test_no_pricing_nor_conversation_is_no_cost_and_an_unusable_expiry_is_none():
    assert one_status().cost is None and one_status(pricing={}, conversation={}).cost is None
    cost = one_status(conversation={"id": "c", "expiration_timestamp": "TIMESTAMP"}).cost
    assert (cost.conversation_id, cost.conversation_expires_at, cost.billable, cost.pricing_category) == ("c", None, None, None)
    assert one_status(conversation={"id": "c", "expiration_timestamp": ""}).cost.conversation_expires_at is None
    assert one_status(pricing={"category": "marketing"}).cost.conversation_origin is None


@pytest.mark.parametrize(
    ("timestamp", "at"),
    [
        (S0, T0),
        (int(S0), T0),
        (int(S0) * 1000, T0),
        (str(int(S0) * 1000 + 500), T0.add(microseconds=500_000)),
        (float(S0) + 0.25, T0.add(microseconds=250_000)),
    ],
)
def test_meta_times_in_seconds_or_gupshups_in_milliseconds_are_the_vendors_time(timestamp, at):
    event = one_status(timestamp=timestamp)
    assert (event.event_at, event.note) == (at, None)


@pytest.mark.parametrize("timestamp", ["TIMESTAMP", 99_999_999_999, True, None, "", 10**30])
def test_an_unusable_meta_time_is_the_receive_time_with_a_note(timestamp):
    event = one_status(timestamp=timestamp)
    assert event.event_at == RECEIVED and event.note == f"vendor time {timestamp!r:.40} unusable: receive time used"


@pytest.mark.parametrize(("state", "status"), [("enqueued", "enqueued"), ("sent", "sent"), ("delivered", "delivered"),
                                              ("read", "read"), ("failed", "failed"), ("deleted", "deleted"),
                                              (" READ ", "read"), ("deliv\u0000ered", "delivered"), ("warning", "unknown")])
def test_meta_status_texts_map_to_the_vocabulary(state, status):
    event = one_status(state=state)
    assert (event.status, event.raw_status) == (status, state)


def test_a_status_is_filed_under_gs_id_and_tried_by_every_id():
    event = one_status(meta_msg_id="wamid.META")
    assert (event.vendor_message_id, event.vendor_ids) == ("gs-A", ["gs-A", "wamid.A", "wamid.META"])
    only_meta = parse("teleprom", envelope("STATUS", [{"statuses": [{"id": "wamid.B", "status": "sent", "timestamp": S0}]}]))
    assert only_meta.statuses[0].vendor_ids == ["wamid.B"] and only_meta.statuses[0].vendor_message_id == "wamid.B"


def test_envelope_keys_and_type_are_read_whatever_their_case_and_padding():
    body = {"version": "3", "type": " status ", "payload": {"entry": [{"changes": [{"value": {"statuses": [meta_status()]}}]}]}}
    parsed = parse("teleprom", body)
    assert (parsed.format_version, [e.vendor_message_id for e in parsed.statuses]) == ("V3", ["gs-A"])


def test_an_object_where_meta_has_a_list_is_a_list_of_one():
    body = {"Version": "3", "Type": "STATUS", "Payload": {"entry": {"changes": {"value": {"statuses": meta_status()}}}}}
    assert [e.vendor_message_id for e in parse("teleprom", body).statuses] == ["gs-A"]
    junk = {"Version": "3", "Type": "STATUS", "Payload": {"entry": [5, {"changes": "x"}, {"changes": [{"value": [1]}]}]}}
    assert parse("teleprom", junk).statuses == []


def test_a_status_item_that_is_not_an_object_is_an_item_error_beside_good_ones():
    parsed = parse("teleprom", envelope("STATUS", [{"statuses": [7, meta_status()]}]))
    assert [e.vendor_message_id for e in parsed.statuses] == ["gs-A"] and parsed.errors == ["item 1: AttributeError"]


@pytest.mark.parametrize(
    ("kind", "body", "expected"),
    [
        ("text", {"body": "hola"}, {"text": "hola"}),
        ("text", "texto plano", {"text": "texto plano"}),
        ("button", {"payload": "P1", "text": "Sí"}, {"text": "Sí", "reply_id": "P1"}),
        ("button", {"payload": "ONLY_PAYLOAD"}, {"text": "ONLY_PAYLOAD", "reply_id": "ONLY_PAYLOAD"}),
        ("interactive", {"type": "button_reply", "button_reply": {"id": "b1", "title": "Confirmo"}}, {"text": "Confirmo", "reply_id": "b1"}),
        ("interactive", {"type": "list_reply", "list_reply": {"id": "r2", "title": "Martes", "description": "10 hs"}}, {"text": "Martes", "reply_id": "r2"}),
        ("interactive", {"type": "nfm_reply", "nfm_reply": {"body": "Sent", "response_json": "{}"}}, {"text": "Sent", "reply_id": None}),
        ("interactive", {"type": "other"}, {"text": None, "reply_id": None}),
        ("image", {"id": "i1", "mime_type": "image/png", "caption": "foto", "url": "https://m/x"},
         {"media_id": "i1", "media_mime_type": "image/png", "caption": "foto", "media_url": "https://m/x", "text": "foto"}),
        ("document", {"id": "d1", "mime_type": "application/pdf", "filename": "f.pdf", "link": "https://m/d"},
         {"media_id": "d1", "media_mime_type": "application/pdf", "caption": None, "media_url": "https://m/d", "text": "f.pdf"}),
        ("voice", {"id": "v1", "mime_type": "audio/ogg"}, {"media_id": "v1", "media_mime_type": "audio/ogg", "text": None}),
        ("sticker", {"id": "s1", "mime_type": "image/webp"}, {"media_id": "s1", "text": None}),
        ("location", {"latitude": -31.4, "longitude": -64.2, "name": "Centro", "address": "Colón 100"}, {"text": "Centro, Colón 100 (-31.4, -64.2)"}),
        ("location", {"latitude": -31.4, "longitude": -64.2}, {"text": "(-31.4, -64.2)"}),
        ("location", {"name": "Sin coordenadas", "latitude": 1}, {"text": "Sin coordenadas"}),
        ("location", {}, {"text": None}),
        ("reaction", {"message_id": "wamid.X", "emoji": "❤"}, {"text": "❤", "in_reply_to": "wamid.X"}),
        ("order", {"text": "2 cajas"}, {"text": "2 cajas"}),
        ("system", {"body": "cambió de número"}, {"text": "cambió de número"}),
        ("unsupported", {"x": 1}, {"text": None, "media_id": None, "reply_id": None}),
    ],
)
def test_every_meta_message_type_lands_with_what_it_carries(kind, body, expected):
    row = one_message(kind, body)
    assert {k: row.get(k) for k in expected} == expected
    assert (row["message_type"], row["vendor_message_id"], row["from_phone"], row["to_account"]) == (
        kind, "wamid.M", "5493515318047", "5491171186962",
    )
    assert (row["received_at"], row["note"], row["profile_name"]) == (T0, None, "Ana")


def test_contact_cards_are_read_as_names_and_phones():
    cards = [
        {"name": {"formatted_name": "Juan Gómez"}, "phones": [{"phone": "+54 9 351 555-0101"}, {"phone": "+54 11 4000"}]},
        {"name": {"formatted_name": "Sin teléfono"}},
        {"phones": 7},
        5,
    ]
    row = one_message("contacts", None, **{"contacts": cards})
    assert row["text"] == "Juan Gómez +54 9 351 555-0101 +54 11 4000; Sin teléfono"
    assert one_message("contacts", None, **{"contacts": 5})["text"] is None


def test_the_profile_name_is_the_senders_or_the_only_one_given():
    two = [{"profile": {"name": "Otro"}, "wa_id": "111"}, {"profile": {"name": "Ana"}, "wa_id": "5493515318047"}]
    assert one_message("text", {"body": "x"}, profiles=two)["profile_name"] == "Ana"
    only = [{"profile": {"name": "Única"}, "wa_id": "999"}]
    assert one_message("text", {"body": "x"}, profiles=only)["profile_name"] == "Única"
    others = [{"profile": {"name": "A"}, "wa_id": "1"}, {"profile": {"name": "B"}, "wa_id": "2"}]
    assert one_message("text", {"body": "x"}, profiles=others)["profile_name"] is None
    unnamed = [{"profile": {}, "wa_id": "5493515318047"}, {"profile": {"name": "Sin id"}}, {"wa_id": "", "profile": {"name": "Vacío"}}]
    assert one_message("text", {"body": "x"}, profiles=unnamed)["profile_name"] is None
    assert one_message("text", {"body": "x"}, profiles=5)["profile_name"] is None


def test_a_reply_links_to_our_message_by_gs_id_else_by_whatsapps_id():
    by_gs = one_message("text", {"body": "x"}, context={"gs_id": "gs-9", "id": "wamid.9"})
    by_id = one_message("text", {"body": "x"}, context={"id": "wamid.9"})
    assert (by_gs["in_reply_to"], by_id["in_reply_to"], one_message("text", {"body": "x"})["in_reply_to"]) == (
        "gs-9", "wamid.9", None,
    )


def test_a_message_type_that_is_not_text_is_kept_as_json_and_reads_nothing():
    row = one_message("text", {"body": "x"}, **{"type": ["text"]})
    assert (row["message_type"], row["text"]) == ('["text"]', None)


def test_an_unusable_message_time_is_the_receive_time_with_a_note():
    row = one_message("text", {"body": "x"}, timestamp="TIMESTAMP")
    assert (row["received_at"], row["note"]) == (RECEIVED, "vendor time 'TIMESTAMP' unusable: receive time used")


def test_a_message_without_an_id_is_an_item_error_beside_good_ones():
    good = {"from": "1", "id": "wamid.ok", "timestamp": S0, "type": "text", "text": {"body": "ok"}}
    parsed = parse("teleprom", envelope("INCOMING", [{"messages": [{**good, "id": ""}, good, 3]}], version="3"))
    assert [r["vendor_message_id"] for r in parsed.inbound] == ["wamid.ok"]
    assert parsed.errors == ["item 1: message without an id", "item 3: AttributeError"]
