"""What Teleprom relays from Meta (V1/V3 envelopes carrying WhatsApp Cloud API webhooks, as Gupshup
relays them), through the real receiver → raw_webhook_events → webhook_ingest → warehouse rows, on both
databases. Bodies follow Meta's and Gupshup's public webhook references (cited in teleprom/contract.py)."""

from __future__ import annotations

import json

import pendulum
import requests
import sqlalchemy as sa
from hypothesis import given
from hypothesis import strategies as st

from latam_messaging.common.timeparse import epoch_s_or_ms
from latam_messaging.vendors import callback_parsers
from latam_messaging.warehouse import schema
from latam_messaging.webhooks.ingest import ingest_pending
from latam_messaging.webhooks.parsers import vendor_time
from tests.helpers.ledger import add_ledger_row

R, E, IN, T = (
    schema.raw_webhook_events,
    schema.message_status_events,
    schema.inbound_messages,
    schema.outbound_messages,
)
T0 = pendulum.now("UTC").subtract(hours=1).replace(microsecond=0)


def post(url: str, body) -> int:
    data = json.dumps(body).encode()
    return requests.post(url, data=data, headers={"Content-Type": "application/json"}, timeout=30).status_code


def envelope(kind: str, value: dict, version: str = "3") -> dict:
    return {
        "Uuid": "c29915c8-d20c-4455-b322-2f3da9d55646",
        "Id": "1",
        "Version": version,
        "Type": kind,
        "Payload": {
            "gs_app_id": "app",
            "object": "whatsapp_business_account",
            "entry": [{"id": "waba", "changes": [{"field": "messages", "value": {"messaging_product": "whatsapp", **value}}]}],
        },
    }


def statuses(*items: dict, version: str = "3") -> dict:
    return envelope("STATUS", {"statuses": list(items)}, version)


def status(gs_id: str, state: str, timestamp, **extra) -> dict:
    return {"id": f"wamid.{gs_id}", "gs_id": gs_id, "status": state, "timestamp": timestamp, "recipient_id": "5493515318047", **extra}


def incoming(*messages: dict, contacts: list | None = None) -> dict:
    value = {
        "metadata": {"display_phone_number": "5491171186962", "phone_number_id": "252106964657695"},
        "contacts": contacts if contacts is not None else [{"profile": {"name": "Ana Pérez"}, "wa_id": "5493515318047"}],
        "messages": list(messages),
    }
    return envelope("INCOMING", value)


def message(mid: str, kind: str, body: dict | list, **extra) -> dict:
    return {"from": "5493515318047", "id": mid, "timestamp": str(int(T0.timestamp())), "type": kind, kind: body, **extra}


def ingest(receiver, warehouse, *bodies) -> list[dict]:
    for body in bodies:
        assert post(receiver.hook_url("teleprom"), body) == 200
    stats = ingest_pending(warehouse, callback_parsers())
    assert stats.errors == 0 and stats.partial == 0, [r["parse_error"] for r in warehouse.rows(sa.select(R))]
    return warehouse.rows(sa.select(R).order_by(R.c.id))


# ---- statuses: reasons, times, costs ---------------------------------------------------------------
def test_a_meta_failure_lands_with_its_code_and_title_in_the_failure_report(receiver, warehouse):
    add_ledger_row(warehouse, "k-fail", "teleprom", vendor_id="gs-fail")
    add_ledger_row(warehouse, "k-undeliverable", "teleprom", vendor_id="gs-und")
    errors = [
        {
            "code": 131047,
            "title": "Re-engagement message",
            "message": "Re-engagement message",
            "error_data": {"details": "Message failed to send because more than 24 hours have passed since the customer last replied to this number."},
            "href": "https://developers.facebook.com/docs/whatsapp/cloud-api/support/error-codes/",
        }
    ]
    ingest(
        receiver,
        warehouse,
        statuses(status("gs-fail", "failed", str(int(T0.timestamp())), errors=errors)),
        statuses(status("gs-und", "failed", str(int(T0.timestamp())), errors=[{"code": 131026, "title": "Message Undeliverable"}])),
    )
    events = {e["vendor_message_id"]: e for e in warehouse.rows(E)}
    assert events["gs-fail"]["reason"].startswith("131047: Re-engagement message — Message failed to send")
    assert events["gs-und"]["reason"] == "131026: Message Undeliverable"
    assert events["gs-fail"]["event_at"] == T0
    reasons = {
        r["reason"]: r["messages"]
        for r in warehouse.rows(sa.text("SELECT reason, messages FROM report_failure_reasons WHERE vendor = 'teleprom'"))
    }
    assert reasons["131026: Message Undeliverable"] == 1
    assert [n for r, n in reasons.items() if r.startswith("131047: Re-engagement message")] == [1]
    states = {r["message_key"]: r["delivery_status"] for r in warehouse.rows(T)}
    assert states == {"k-fail": "failed", "k-undeliverable": "failed"}


def test_times_in_seconds_or_milliseconds_as_strings_or_numbers_are_the_vendors_time(receiver, warehouse):
    seconds = int(T0.timestamp())
    bodies = [
        statuses(status("gs-1", "enqueued", seconds * 1000)),  # Gupshup's enqueued: an integer in ms
        statuses(status("gs-2", "sent", str(seconds))),  # Meta: a string in seconds
        statuses(status("gs-3", "sent", seconds)),
        statuses(status("gs-4", "sent", str(seconds * 1000 + 250))),
        statuses(status("gs-5", "sent", 99_999_999_999)),  # seconds in the year 5138, ms in 1973: neither
    ]
    raw = ingest(receiver, warehouse, *bodies)
    events = {e["vendor_message_id"]: e for e in warehouse.rows(E)}
    for gs_id in ("gs-1", "gs-2", "gs-3"):
        assert (events[gs_id]["event_at"], events[gs_id]["note"]) == (T0, None), gs_id
    assert events["gs-4"]["event_at"] == T0.add(microseconds=250_000)
    assert events["gs-5"]["event_at"] == raw[4]["received_at"]
    assert events["gs-5"]["note"] == "vendor time 99999999999 unusable: receive time used"


def test_pricing_and_conversation_land_as_cost_columns_and_in_the_conversation_report(receiver, warehouse):
    expires = int(T0.add(hours=24).timestamp())
    conversation = {"id": "conv-1", "expiration_timestamp": str(expires), "origin": {"type": "marketing"}}
    pricing = {"billable": True, "pricing_model": "CBP", "category": "marketing"}
    ingest(
        receiver,
        warehouse,
        statuses(status("gs-a", "sent", str(int(T0.timestamp())), conversation=conversation, pricing=pricing)),
        statuses(status("gs-b", "sent", str(int(T0.timestamp())), conversation=conversation, pricing=pricing)),
        statuses(status("gs-c", "delivered", str(int(T0.timestamp())))),  # no cost data
    )
    events = {e["vendor_message_id"]: e for e in warehouse.rows(E)}
    a = events["gs-a"]
    assert (a["billable"], a["pricing_category"], a["pricing_model"]) == (True, "marketing", "CBP")
    assert (a["conversation_id"], a["conversation_origin"]) == ("conv-1", "marketing")
    assert a["conversation_expires_at"] == pendulum.from_timestamp(expires, tz="UTC")
    assert events["gs-c"]["billable"] is None and events["gs-c"]["conversation_id"] is None
    [row] = warehouse.rows(sa.text("SELECT * FROM report_conversations"))
    assert (row["vendor"], row["pricing_category"], row["conversation_origin"]) == ("teleprom", "marketing", "marketing")
    assert (int(row["billable"]), int(row["conversations"]), int(row["messages"])) == (1, 1, 2)


def test_a_deleted_status_is_recorded_and_moves_nothing(receiver, warehouse):
    add_ledger_row(warehouse, "k-del", "teleprom", vendor_id="gs-del")
    ingest(
        receiver,
        warehouse,
        statuses(status("gs-del", "read", str(int(T0.timestamp())))),
        statuses(status("gs-del", "deleted", str(int(T0.timestamp()) + 60))),
    )
    assert {e["status"] for e in warehouse.rows(E)} == {"read", "deleted"}
    assert [r["delivery_status"] for r in warehouse.rows(T)] == ["read"]
    assert warehouse.rows(sa.text("SELECT * FROM report_unrecognised_statuses")) == []


# ---- inbound: every message type ---------------------------------------------------------------------
def test_every_inbound_type_lands_with_its_text_media_and_profile_name(receiver, warehouse):
    bodies = [
        incoming(message("m-text", "text", {"body": "Hola, quiero info"})),
        incoming(message("m-button", "button", {"payload": "STOP_PROMOS", "text": "No me interesa"})),
        incoming(message("m-list", "interactive", {"type": "list_reply", "list_reply": {"id": "row-2", "title": "Turno martes", "description": "10 a 12"}})),
        incoming(message("m-reply", "interactive", {"type": "button_reply", "button_reply": {"id": "yes-1", "title": "Sí"}})),
        incoming(message("m-image", "image", {"id": "media-1", "mime_type": "image/jpeg", "sha256": "x", "caption": "mi DNI"})),
        incoming(message("m-doc", "document", {"id": "media-2", "mime_type": "application/pdf", "filename": "factura.pdf"})),
        incoming(message("m-audio", "audio", {"id": "media-3", "mime_type": "audio/ogg; codecs=opus", "voice": True})),
        incoming(message("m-video", "video", {"id": "media-4", "mime_type": "video/mp4"})),
        incoming(message("m-sticker", "sticker", {"id": "media-5", "mime_type": "image/webp", "animated": False})),
        incoming(message("m-loc", "location", {"latitude": -31.4135, "longitude": -64.18105, "name": "Sucursal Centro", "address": "Av. Colón 100"})),
        incoming({**message("m-card", "contacts", []), "contacts": [{"name": {"formatted_name": "Juan Gómez", "first_name": "Juan"}, "phones": [{"phone": "+54 9 351 555-0101", "type": "CELL"}]}]}),
        incoming(message("m-react", "reaction", {"message_id": "wamid.sent-1", "emoji": "👍"})),
        incoming(message("m-other", "text", {"body": "sin perfil"}), contacts=[]),
    ]
    ingest(receiver, warehouse, *bodies)
    rows = {r["vendor_message_id"]: r for r in warehouse.rows(IN)}
    shown = {k: (r["message_type"], r["text"], r["reply_id"], r["media_id"], r["media_mime_type"], r["caption"]) for k, r in rows.items()}
    assert shown == {
        "m-text": ("text", "Hola, quiero info", None, None, None, None),
        "m-button": ("button", "No me interesa", "STOP_PROMOS", None, None, None),
        "m-list": ("interactive", "Turno martes", "row-2", None, None, None),
        "m-reply": ("interactive", "Sí", "yes-1", None, None, None),
        "m-image": ("image", "mi DNI", None, "media-1", "image/jpeg", "mi DNI"),
        "m-doc": ("document", "factura.pdf", None, "media-2", "application/pdf", None),
        "m-audio": ("audio", None, None, "media-3", "audio/ogg; codecs=opus", None),
        "m-video": ("video", None, None, "media-4", "video/mp4", None),
        "m-sticker": ("sticker", None, None, "media-5", "image/webp", None),
        "m-loc": ("location", "Sucursal Centro, Av. Colón 100 (-31.4135, -64.18105)", None, None, None, None),
        "m-card": ("contacts", "Juan Gómez +54 9 351 555-0101", None, None, None, None),
        "m-react": ("reaction", "👍", None, None, None, None),
        "m-other": ("text", "sin perfil", None, None, None, None),
    }
    assert rows["m-react"]["in_reply_to"] == "wamid.sent-1"
    assert {k: r["profile_name"] for k, r in rows.items() if k != "m-other"} == dict.fromkeys(set(rows) - {"m-other"}, "Ana Pérez")
    assert rows["m-other"]["profile_name"] is None
    assert all(r["received_at"] == T0 and r["from_phone"] == "5493515318047" for r in rows.values())


# ---- Wavy and ITD: times and fields ----------------------------------------------------------------------
def test_a_wavy_status_without_times_and_with_a_padded_key_lands_at_the_receive_time(receiver, warehouse):
    add_ledger_row(warehouse, "k-w", "wavy", vendor_id="W-1")
    body = {"id": "W-1", "correlationId": "k-w", "sentStatusCode ": 2, "sentStatus": "SENT_SUCCESS", "deliveredStatusCode": 4, "deliveredStatus": "DELIVERED_SUCCESS"}
    assert post(receiver.hook_url("wavy", "dlr"), body) == 200
    stats = ingest_pending(warehouse, callback_parsers())
    assert (stats.parsed, stats.errors) == (1, 0)
    [raw] = warehouse.rows(R)
    events = {e["status"]: e for e in warehouse.rows(E)}
    assert set(events) == {"sent", "delivered"}
    for event in events.values():
        assert (event["event_at"], event["note"]) == (raw["received_at"], "no vendor time for this stage: receive time used")
    assert [r["delivery_status"] for r in warehouse.rows(T)] == ["delivered"]


def test_itd_time_to_deliver_is_measured_from_when_the_status_was_learned(receiver, warehouse):
    accepted = pendulum.now("UTC").subtract(minutes=5).replace(microsecond=0)
    add_ledger_row(warehouse, "k-itd", "itd", vendor_id="uuid-7")
    with warehouse.begin() as conn:
        conn.execute(sa.update(T).where(T.c.message_key == "k-itd").values(state="accepted", accepted_at=accepted))
    minute = accepted.in_tz("America/Santiago").format("DD/MM/YYYY HH:mm")
    assert post(receiver.hook_url("itd"), {"sent_at": minute, "status": "DELIVERED", "uuid": "uuid-7"}) == 200
    ingest_pending(warehouse, callback_parsers())
    [raw] = warehouse.rows(R)
    [event] = warehouse.rows(E)
    assert event["event_at"] == raw["received_at"]
    assert event["message_sent_at"] == accepted.replace(second=0)
    [latency] = warehouse.rows(sa.text("SELECT seconds_to_deliver FROM report_time_to_deliver"))
    learned = (raw["received_at"] - accepted).total_seconds()
    assert abs(float(latency["seconds_to_deliver"]) - learned) < 1 and learned >= 300


# ---- the unit rule, for any time ----------------------------------------------------------------------
@given(st.datetimes(min_value=pendulum.datetime(2000, 1, 1).naive(), max_value=pendulum.datetime(2100, 1, 1).naive()))
def test_epoch_seconds_and_milliseconds_read_as_the_same_time(moment):
    at = pendulum.instance(moment, tz="UTC").replace(microsecond=moment.microsecond // 1000 * 1000)
    seconds, millis = at.timestamp(), int(round(at.timestamp() * 1000))
    for value in (millis, str(millis), int(seconds) if seconds.is_integer() else seconds, str(seconds)):
        parsed = epoch_s_or_ms(value)
        assert abs((parsed - at).total_seconds()) < 0.002, value
    received = pendulum.datetime(2100, 1, 2, tz="UTC")
    assert vendor_time(millis, received, epoch_s_or_ms).note is None


def test_the_messaging_page_shows_failures_by_their_vendor_reason(receiver, warehouse, tmp_path):
    from latam_messaging.page.app import render_page, snapshot

    add_ledger_row(warehouse, "k-p", "teleprom", vendor_id="gs-p")
    errors = [{"code": 131050, "title": "User stopped marketing messages <script>"}]
    ingest(receiver, warehouse, statuses(status("gs-p", "failed", str(int(T0.timestamp())), errors=errors)))
    data = snapshot(warehouse, report_dir=tmp_path)
    assert data["failures"] == [
        {"vendor": "teleprom", "stage": "delivery", "reason": "131050: User stopped marketing messages <script>", "messages": 1}
    ]
    page = render_page(data, None, base="/messaging")
    assert 'id="failures"' in page and "131050: User stopped marketing messages &lt;script&gt;" in page


# ---- hostile and odd bodies: each item lands, or fails alone with its reason -------------------------------
def states_of(warehouse) -> list[tuple[str, str | None]]:
    return [(r["parse_state"], r["parse_error"]) for r in warehouse.rows(sa.select(R).order_by(R.c.id))]


def test_odd_types_in_side_fields_cost_nothing(receiver, warehouse):
    bodies = [
        statuses(status("gs-e5", "failed", str(int(T0.timestamp())), errors=5)),  # errors: a number
        statuses(status("gs-eo", "failed", str(int(T0.timestamp())), errors={"code": 131026, "title": "Message Undeliverable"})),
        statuses(status("gs-bt", "sent", str(int(T0.timestamp())), pricing={"billable": "true", "category": "utility"})),
        statuses(status("gs-nul", "deliv\u0000ered", str(int(T0.timestamp())), pricing={"category": "mark\u0000eting"})),
        statuses(status("gs-long", "sent", str(int(T0.timestamp())), meta_msg_id="m" * 300)),
        incoming(message("m-c5", "text", {"body": "hola"}), contacts=5),
        incoming({**message("m-type", "text", {"body": "x"}), "type": ["text"]}),
        incoming({**message("m-card", "contacts", []), "contacts": [{"name": {"formatted_name": "Ana"}, "phones": 7}]}),
        incoming(message("m-str", "text", "hola en texto plano")),
        incoming(message("m-order", "order", {"catalog_id": "c", "text": "quiero 2"})),
    ]
    for body in bodies:
        assert post(receiver.hook_url("teleprom"), body) == 200
    stats = ingest_pending(warehouse, callback_parsers())
    assert (stats.events, stats.parsed, stats.errors, stats.partial) == (10, 10, 0, 0), states_of(warehouse)
    events = {e["vendor_message_id"]: e for e in warehouse.rows(E)}
    assert events["gs-e5"]["status"] == "failed" and events["gs-e5"]["reason"] is None
    assert events["gs-eo"]["reason"] == "131026: Message Undeliverable"
    assert events["gs-bt"]["billable"] is True
    nul = events["gs-nul"]
    assert (nul["status"], nul["raw_status"], nul["pricing_category"]) == ("delivered", "delivered", "marketing")
    assert "NUL removed" in nul["note"] and "full value in the raw body" in nul["note"]
    assert set(events["gs-long"]["vendor_ids"]) == {"gs-long", "wamid.gs-long"}
    assert "1 vendor id(s) that do not fit" in events["gs-long"]["note"]
    rows = {r["vendor_message_id"]: r for r in warehouse.rows(IN)}
    assert (rows["m-c5"]["text"], rows["m-c5"]["profile_name"]) == ("hola", None)
    assert rows["m-type"]["message_type"] == '["text"]' and rows["m-card"]["text"] == "Ana"
    assert (rows["m-str"]["text"], rows["m-order"]["text"]) == ("hola en texto plano", "quiero 2")


def test_values_no_column_can_hold_are_made_to_fit_and_the_body_lands(receiver, warehouse):
    seconds = str(int(T0.timestamp()))
    raw_bodies = [
        # a lone surrogate in an id and in the conversation id (JSON escapes, as a hostile sender writes them)
        json.dumps(statuses(status("gs-sur", "sent", seconds, conversation={"id": "c-1"}))).replace("c-1", "c\\ud800").replace('"gs-sur"', '"gs-\\udc80sur"'),
        # NaN in a location (Python reads it; PostgreSQL's JSON refuses it as a number)
        json.dumps(incoming(message("m-nan", "location", {"latitude": 1.5, "longitude": 2.5}))).replace("1.5", "NaN"),
        # an integer of 5,000 digits in a field nobody reads
        json.dumps(incoming(message("m-big", "text", {"body": "hola"}, extra=1))).replace('"extra": 1', '"extra": ' + "1" * 5000),
    ]
    for body in raw_bodies:
        answer = requests.post(receiver.hook_url("teleprom"), data=body.encode(), headers={"Content-Type": "application/json"}, timeout=30)
        assert answer.status_code == 200
    stats = ingest_pending(warehouse, callback_parsers())
    assert (stats.parsed, stats.errors) == (3, 0), states_of(warehouse)
    [event] = warehouse.rows(E)
    assert event["vendor_message_id"] == "gs-\ufffdsur" and event["conversation_id"] == "c\ufffd"
    rows = {r["vendor_message_id"]: r for r in warehouse.rows(IN)}
    assert rows["m-nan"]["text"] == "(NaN, 2.5)" and rows["m-big"]["text"] == "hola"


def test_a_body_of_a_known_shape_that_carries_nothing_is_an_error_not_parsed(receiver, warehouse):
    empty = [
        envelope("STATUS", {"messages": []}),  # a STATUS envelope without statuses
        {"Version": "3", "Type": "INCOMING", "Payload": {"object": "whatsapp_business_account"}},
        [],  # an empty V0 array
    ]
    one_object = {**statuses(status("gs-obj", "read", str(int(T0.timestamp())))), "Type": " status "}
    one_object["Payload"]["entry"] = one_object["Payload"]["entry"][0]  # an object where Meta has a list
    for body in [*empty, one_object]:
        assert post(receiver.hook_url("teleprom"), body) == 200
    ingest_pending(warehouse, callback_parsers())
    assert states_of(warehouse) == [("error", "no status or message found in the body")] * 3 + [("parsed", None)]
    assert [e["vendor_message_id"] for e in warehouse.rows(E)] == ["gs-obj"]


def test_billable_unknown_stays_unknown_and_per_message_pricing_counts(receiver, warehouse):
    seconds = str(int(T0.timestamp()))
    ingest(
        receiver,
        warehouse,
        statuses(status("gs-pmp", "sent", seconds, pricing={"billable": True, "pricing_model": "PMP", "category": "utility"})),
        statuses(status("gs-unk", "sent", seconds, pricing={"category": "service"})),
    )
    rows = {r["pricing_category"]: r for r in warehouse.rows(sa.text("SELECT * FROM report_conversations"))}
    assert (int(rows["utility"]["billable"]), int(rows["utility"]["conversations"]), int(rows["utility"]["messages"])) == (1, 0, 1)
    assert rows["service"]["billable"] is None and int(rows["service"]["messages"]) == 1
