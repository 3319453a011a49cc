"""Wavy's callback parser (``wavy/callbacks.py``): every item of a body becomes an event, an inbound
message or an item error with its reason; nothing is dropped because of a value.

The bodies are ours. Part of the fast selection that ``make mutants`` runs (no warehouse, no server).
The parser base's tests are in ``tests/webhooks/test_parsers.py``.
"""

from __future__ import annotations

import pendulum
import pytest

from latam_messaging.webhooks.parsers import UnparseableEvent
from tests.helpers.callbacks import DELIVERED_AT, RECEIVED, SENT_AT, parse


# ---- Wavy -----------------------------------------------------------------------------------------------
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


def test_a_wavy_status_without_a_code_is_refused_and_one_without_a_time_lands_at_the_receive_time():
    with pytest.raises(UnparseableEvent, match="^Wavy status without a status code$"):
        parse("wavy", {"id": "W1", "sentAt": SENT_AT}, "callback")
    [event] = parse("wavy", {"id": "W1", "sentStatusCode": 2}, "callback").statuses
    assert (event.status, event.event_at) == ("sent", RECEIVED)
    assert event.note == "no vendor time for this stage: receive time used"
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
    sent_stage = [("W1", "sent", "SENT_SUCCESS")] if sent else []  # a code without a time: at the receive time
    assert [(e.vendor_message_id, e.status, e.raw_status) for e in parsed.statuses] == [
        *sent_stage,
        ("W1", "delivered", "DELIVERED_SUCCESS"),
    ]
    assert parsed.statuses[-1].event_at == pendulum.datetime(2026, 3, 2, 15, 1, tz="UTC")
    assert [e.event_at for e in parsed.statuses[:-1]] == [RECEIVED] * len(sent_stage)


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


def test_a_wavy_mo_is_placed_at_its_own_receivedat_or_else_at_the_receive_time_with_a_note():
    mo = {"id": "MO1", "source": "5511987654321", "shortCode": "28888", "messageText": "SIM"}
    timed, untimed = {**mo, "receivedAt": SENT_AT - 60_000}, {**mo, "id": "MO2"}  # a minute before we got it
    at_its_time, at_receive = (RECEIVED.subtract(minutes=1), None), (RECEIVED, "vendor time None unusable: receive time used")

    def placed(body, channel):
        return [(row["received_at"], row["note"]) for row in parse("wavy", body, channel).inbound]

    assert (placed(timed, "mo"), placed(untimed, "mo")) == ([at_its_time], [at_receive])
    for channel in ("receive_list", "receive_search"):  # polled pages
        assert placed({"messages": [timed, untimed]}, channel) == [at_its_time, at_receive]
