"""The callback parsers (``webhooks/parsers.py``): every item of a body becomes an event, an inbound
message or an item error with its reason; nothing is dropped because of a value.

The vendors' own examples come from ``tests/fixtures/vendor_docs/``; the other bodies are ours. Here the
parser base (guards, times, JSON) and what every vendor's parser shares; each vendor's own bodies are
tested in ``tests/vendors/<vendor>/test_callbacks.py``.
Part of the fast selection that ``make mutants`` runs (no warehouse, no server).
"""

from __future__ import annotations

import json

import pendulum
import pytest

from latam_messaging.webhooks import parsers
from latam_messaging.webhooks.parsers import UnparseableEvent, loads, parse_body
from tests.helpers.callbacks import RECEIVED, SENT_AT, doc, envelope, parse


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
    when = parsers.vendor_time(value, RECEIVED, parsers.epoch_ms)
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


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('[{"x": {" y ": 1, "z": 2}}]', [{"x": {"y": 1, "z": 2}}]),  # a padded key, deep: read trimmed
        ('{"a": 1, "a ": 2}', {"a": 1, "a ": 2}),  # the exact key wins; the padded one is kept as it was
        ('{"t": NaN, "u": -Infinity}', {"t": "NaN", "u": "-Infinity"}),  # no JSON column holds them as numbers
        ('{"t": NaN}', {"t": "NaN"}),
        ('{"u": Infinity}', {"u": "Infinity"}),
        ('[NaN, {"nan": "banana"}]', ["NaN", {"nan": "banana"}]),
        ('{"n": ' + "7" * 1000 + "}", {"n": int("7" * 1000)}),  # 1,000 digits are still a number
        ('{"t": NaN, "n": ' + "7" * 1000 + "}", {"t": "NaN", "n": int("7" * 1000)}),  # read carefully too
        ('[["a\\ud800"], {"k": ["\\udfff"]}]', [["a\ufffd"], {"k": ["\ufffd"]}]),  # in lists too
        ('{"n": ' + "7" * 5000 + "}", {"n": "7" * 5000}),  # past Python's integer limit: kept as its digits
        ('{"s": "a\\ud800b", "\\udc00k": 1}', {"s": "a\ufffdb", "\ufffdk": 1}),  # lone surrogates replaced
        ('{"plain": " value with spaces ", "n": 12}', {"plain": " value with spaces ", "n": 12}),  # values untouched
    ],
)
def test_loads_makes_every_body_something_columns_can_hold(text, expected):
    assert loads(text) == expected


@pytest.mark.parametrize(
    ("value", "as_list_", "dicts_"),
    [
        ([{"a": 1}, 2, "x", {"b": 2}], [{"a": 1}, 2, "x", {"b": 2}], [{"a": 1}, {"b": 2}]),
        ({"a": 1}, [{"a": 1}], [{"a": 1}]),
        ("text", [], []),
        (5, [], []),
        (None, [], []),
        ([], [], []),
    ],
)
def test_a_list_field_sent_as_one_object_or_junk_is_read_as_a_list(value, as_list_, dicts_):
    assert (parsers.as_list(value), parsers.dicts(value)) == (as_list_, dicts_)


def test_a_padded_key_is_found_at_any_depth_and_only_there():
    assert parsers._has_padded_key([1, {"a": [{"b": {"c ": 1}}]}]) is True
    assert parsers._has_padded_key({" a": 1}) is True and parsers._has_padded_key({"a\t": 1}) is True
    assert parsers._has_padded_key([{"a": " padded value "}, "x ", 3]) is False
