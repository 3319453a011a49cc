"""One test per promise a reviewer broke on purpose (issue 15): each fails if that bug is planted.

| promise | planted bug it catches |
|---|---|
| ``failed`` is final | ``status.advances`` lets anything follow ``failed`` |
| send window across midnight | drop the ``or local < end`` branch of ``SendWindow.contains`` |
| ITD inbound kept whatever ``direction`` | filter (or invert a filter on) ``direction``, webhook or poll |
| ``release_unknown`` releases only ``unknown`` rows | drop the ``state == unknown`` condition |
| sends not retried after a read timeout or a 5xx | ``should_retry`` always true (or 5xx not ambiguous) |
| duplicate file recognised by SHA-256 | skip the known-file check (``duplicates`` stays 0) |

Expectations come from each test's own data, never from the code under test.
"""

from __future__ import annotations

import json

import pendulum
import pytest
import requests
import sqlalchemy as sa

from latam_messaging.common import errors
from latam_messaging.drops.folder import DropFolder
from latam_messaging.drops.process import process_drops
from latam_messaging.drops.registry import DropRegistry
from latam_messaging.drops.validation import ValidationContext
from latam_messaging.itd.poller import poll_itd_received
from latam_messaging.sending.ledger import Ledger
from latam_messaging.sending.pipeline import ingest_drops
from latam_messaging.sending.window import SendWindow, may_send
from latam_messaging.status import StatusEvent, advances, apply_status_events
from latam_messaging.vendors import VENDORS, callback_parsers
from latam_messaging.warehouse import schema
from latam_messaging.wavy.send import WavyAdapter
from latam_messaging.webhooks.ingest import ingest_pending
from latam_messaging.webhooks.parsers import parse_body
from tests.helpers.drops import drop_csv
from tests.helpers.ledger import add_ledger_row
from tests.helpers.scripted import scripted_vendors

T = schema.outbound_messages
BA = "America/Argentina/Buenos_Aires"
ORDER = ["accepted", "enqueued", "sent", "delivered", "read"]


# ---- `failed` is final --------------------------------------------------------------------------------
@pytest.mark.parametrize("new", [*ORDER, "failed", "unknown"])
def test_failed_is_final_nothing_advances_past_it(new):
    assert advances("failed", new) is False


def test_failed_is_final_in_the_ledger_a_later_read_changes_nothing(warehouse):
    add_ledger_row(warehouse, "m-f", "wavy", vendor_id="W-1")
    t0 = pendulum.datetime(2026, 3, 1, 12, tz="UTC")
    events = [
        StatusEvent("wavy", "W-1", "failed", "NOT_DELIVERED", t0, "webhook"),
        StatusEvent("wavy", "W-1", "delivered", "DELIVERED_SUCCESS", t0.add(minutes=1), "webhook"),
        StatusEvent("wavy", "W-1", "read", "READ", t0.add(minutes=2), "poll"),
    ]
    with warehouse.begin() as conn:
        assert apply_status_events(warehouse, conn, events) == 3  # every event is kept as history
    [row] = warehouse.rows(sa.select(T.c.delivery_status, T.c.delivery_status_at))
    assert row["delivery_status"] == "failed"
    assert pendulum.instance(row["delivery_status_at"]) == t0


# ---- the send window, across midnight --------------------------------------------------------------
@pytest.mark.parametrize(
    ("local", "open_"),
    [
        ("21:59", False),
        ("22:00", True),  # the start is inside
        ("23:30", True),
        ("00:00", True),
        ("05:59", True),  # after midnight, before the end: the branch the planted bug dropped
        ("06:00", False),  # the end is outside
        ("12:00", False),
    ],
)
def test_a_send_window_across_midnight_is_open_on_both_sides_of_it(local, open_):
    window = SendWindow.parse("22:00-06:00", BA)
    hour, minute = map(int, local.split(":"))
    moment = pendulum.datetime(2026, 3, 2, hour, minute, tz=BA).in_tz("UTC")
    assert window.contains(moment) is open_
    assert may_send(window, moment) is open_


# ---- ITD inbound kept whatever `direction` ----------------------------------------------------------
ITD_INBOUND = {
    "uuid": "",
    "accountPhone": "56932028245",
    "senderPhone": "56936858019",
    "content": "hola",
    "sendAt": 1582637824000,
    "messageType": "chat",
}
DIRECTIONS = {"itd-in-0": 0, "itd-in-1": 1, "itd-in-2": 2, "itd-in-none": None}


def _itd_body(uuid: str, direction: int | None) -> dict:
    body = dict(ITD_INBOUND, uuid=uuid)
    if direction is not None:
        body["direction"] = direction
    return body


@pytest.mark.parametrize(("uuid", "direction"), DIRECTIONS.items())
def test_itd_inbound_is_parsed_whatever_its_direction(uuid, direction):
    parsed = parse_body(VENDORS["itd"].parse_callback(), None, json.dumps(_itd_body(uuid, direction)))
    assert parsed.errors == []
    [row] = parsed.inbound
    assert (row["vendor_message_id"], row["direction"], row["from_phone"]) == (uuid, direction, "56936858019")


def test_itd_inbound_webhooks_land_whatever_their_direction(receiver, warehouse):
    for uuid, direction in DIRECTIONS.items():
        answer = requests.post(receiver.hook_url("itd"), json=_itd_body(uuid, direction), timeout=10)
        assert answer.status_code == 200
    stats = ingest_pending(warehouse, callback_parsers())
    assert (stats.events, stats.parsed, stats.errors) == (4, 4, 0)
    rows = warehouse.rows(sa.select(schema.inbound_messages).where(schema.inbound_messages.c.vendor == "itd"))
    assert {r["vendor_message_id"]: r["direction"] for r in rows} == DIRECTIONS


def test_itd_inbound_polls_keep_every_direction(warehouse, itd_hook, itd_server):
    phone = "56936858019"
    at_ms = int(pendulum.now("America/Santiago").subtract(minutes=5).timestamp() * 1000)
    for uuid, direction in DIRECTIONS.items():
        item = dict(_itd_body(uuid, direction), senderPhone=phone, createdAt=at_ms, sendAt=at_ms)
        itd_server.simulator.inbound.append(item)
    stats = poll_itd_received(warehouse, itd_hook, [phone], lookback_days=1, workers=1)
    assert stats.new_messages == 4
    rows = warehouse.rows(sa.select(schema.inbound_messages).where(schema.inbound_messages.c.vendor == "itd"))
    assert {r["vendor_message_id"]: r["direction"] for r in rows} == DIRECTIONS
    assert {r["source"] for r in rows} == {"poll"}


# ---- release_unknown releases only `unknown` rows ----------------------------------------------------
def test_release_unknown_releases_only_unknown_rows_of_its_vendor(warehouse):
    mine = {f"m-{s}": s for s in ("staged", "scheduled", "pending", "sending", "accepted", "rejected", "failed", "unknown")}
    for key, state in mine.items():
        add_ledger_row(warehouse, key, "wavy", state=state)
    add_ledger_row(warehouse, "m-other-vendor", "itd", state="unknown")
    asked = [*mine, "m-other-vendor", "m-never-seen", "m-unknown"]  # repeated keys count once
    released = Ledger(warehouse, "wavy").release_unknown(asked, pendulum.now("UTC"))
    assert released == ["m-unknown"]
    after = {r["message_key"]: r["state"] for r in warehouse.rows(sa.select(T.c.message_key, T.c.state))}
    assert after == {**mine, "m-unknown": "pending", "m-other-vendor": "unknown"}


# ---- sends are not retried after a read timeout or a 5xx ----------------------------------------------
@pytest.fixture
def scripted(monkeypatch):
    with scripted_vendors(monkeypatch) as make:
        yield make


def test_a_send_is_not_retried_after_a_read_timeout(scripted):
    vendor, hook = scripted([("slow", 1.0, 200), 200])
    with pytest.raises(errors.VendorAmbiguousError):
        hook.call("POST", "/send", json={"to": "x"}, idempotent=False)
    assert vendor.received == 1  # the vendor may have acted: asked once, never again


def test_a_send_is_not_retried_after_a_5xx(scripted):
    vendor, hook = scripted([503, 200])
    with pytest.raises(errors.VendorAmbiguousError) as raised:
        hook.call("POST", "/send", json={"to": "x"}, idempotent=False)
    assert raised.value.status_code == 503
    assert vendor.received == 1


def test_a_read_after_a_read_timeout_or_a_5xx_is_retried(scripted):
    """The contrast that shows the two tests above test the send rule, not a transport that never retries."""
    vendor, hook = scripted([("slow", 1.0, 200), 503, 200])
    assert hook.call("POST", "/status", json={}) == {"message": "answer 200"}
    assert vendor.received == 3


# ---- a duplicate file is recognised by its SHA-256 ---------------------------------------------------
WAVY_DROP = "phone,message\n5511987654321,hola\n5511987654322,chau\n"


def test_a_duplicate_file_is_recognised_by_its_sha256_and_counted(warehouse, drop_dir):
    drop_csv(drop_dir, "wavy_sms", "monday.csv", WAVY_DROP)
    first = ingest_drops(WavyAdapter(), warehouse, drop_dir, region="BR", timezone="UTC")
    assert (first.files, first.duplicates, first.rows_valid) == (1, 0, 2)
    drop_csv(drop_dir, "wavy_sms", "monday (copy).csv", WAVY_DROP)  # same bytes, another name
    second = ingest_drops(WavyAdapter(), warehouse, drop_dir, region="BR", timezone="UTC")
    assert (second.files, second.duplicates, second.rows_valid) == (0, 1, 0)
    [file] = warehouse.rows(schema.drop_files)
    assert file["path"].endswith("monday.csv") and file["rows_valid"] == 2
    assert warehouse.count(T) == 2
    assert sorted(p.name.split("-", 2)[2] for p in (drop_dir / "wavy_sms" / "archive").iterdir()) == [
        "monday (copy).csv",
        "monday.csv",
    ]


def test_a_failed_file_dropped_again_is_a_duplicate_too(warehouse, tmp_path):
    """Known in state ``failed`` counts as known: the same broken bytes are not read twice."""
    registry = DropRegistry(warehouse, "wavy")
    seen = []

    def make_validator(sha256):
        seen.append(sha256)
        return WavyAdapter().validator(ValidationContext(sha256, "BR", "UTC"))

    broken = "nombre\nAna\n"
    for name in ("a.csv", "b.csv"):
        drop_csv(tmp_path, "wavy_sms", name, broken)
        stats = process_drops(DropFolder(tmp_path, "wavy_sms"), registry, make_validator, lambda r, j: None,
                              pendulum.now("UTC"))
        if name == "a.csv":
            assert (stats.failed, stats.duplicates) == (1, 0)
        else:
            assert (stats.failed, stats.duplicates) == (0, 1)
    assert len(seen) == 1
