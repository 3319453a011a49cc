"""The dry run before a confirmation (issue 24): the same checks as ingest, counted and priced, with
nothing written anywhere. Both databases."""

from __future__ import annotations

from decimal import Decimal

import pendulum
import pytest

from latam_messaging.campaigns import pricing
from latam_messaging.campaigns.preview import preview_file, reason_category
from latam_messaging.consent import suppressions
from latam_messaging.consent.suppressions import Source, Suppression
from latam_messaging.sending.pipeline import ingest_drops
from latam_messaging.wavy.send import WavyAdapter

NOW = pendulum.datetime(2026, 11, 29, 12, 0, tz="UTC")
PRICES = {"wavy": {"default": Decimal("0.0125")}}


def write(tmp_path, text: str, name: str = "p.csv"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_the_preview_counts_what_ingest_would_do_and_writes_nothing(warehouse, tmp_path, drop_dir):
    with warehouse.begin() as conn:
        suppressions.add(warehouse, conn, [Suppression("5511987650003", "all", Source.MANUAL, "t", NOW, "x")], NOW)
    text = (
        "phone,message,send_at,campaign\n"
        "5511987650001,hola,,Martes\n"
        "12,hola,,\n"  # not a number
        "5511987650001,hola,,\n"  # duplicate of row 1
        "5511987650003,hola,,\n"  # suppressed
        "5511987650004,hola,2026-12-01T09:00:00,\n"  # later
        "5511987650005,=HYPERLINK(\"http://x\"),,\n"
    )
    path = write(tmp_path, text)
    before = warehouse.table_counts()
    preview = preview_file(
        path, WavyAdapter(), warehouse, region="BR", timezone="UTC", prices=PRICES, currency="USD", now=NOW
    )
    assert warehouse.table_counts() == before
    assert (preview.rows_total, preview.rows_suppressed) == (6, 1)
    assert preview.rows_valid + preview.rows_rejected == 6
    rejected_rows = [r["row"] for r in preview.rejects]
    assert rejected_rows == sorted(rejected_rows) and {2, 3, 4} <= set(rejected_rows)
    assert next(r for r in preview.rejects if r["row"] == 4)["reason"].startswith("suppressed: manual")
    assert preview.campaign_name == "Martes"
    assert preview.rows_scheduled == 1
    assert preview.first_send_at == NOW.isoformat()
    assert preview.last_send_at == pendulum.datetime(2026, 12, 1, 9, tz="UTC").isoformat()
    assert Decimal(preview.estimated_cost) == Decimal("0.0125") * preview.rows_valid
    assert preview.currency == "USD"
    assert sum(preview.reasons.values()) == preview.rows_rejected

    # what ingest then does with the same file agrees with what the preview said
    (drop_dir / "wavy_sms").mkdir(parents=True, exist_ok=True)
    (drop_dir / "wavy_sms" / "p.csv").write_bytes(path.read_bytes())
    stats = ingest_drops(WavyAdapter(), warehouse, drop_dir, region="BR", timezone="UTC", now=NOW)
    assert (stats.rows_valid, stats.rows_rejected, stats.rows_screened) == (
        preview.rows_valid, preview.rows_rejected, preview.rows_suppressed
    )


def test_an_unreadable_file_previews_as_its_error(warehouse, tmp_path):
    path = write(tmp_path, "nothing,useful\n1,2\n")
    preview = preview_file(path, WavyAdapter(), warehouse, region="BR", timezone="UTC", prices={}, currency="USD")
    assert preview.error and "phone" in preview.error
    assert preview.rows_valid == 0 and preview.estimated_cost is None


def test_without_a_price_there_is_no_estimate(warehouse, tmp_path):
    path = write(tmp_path, "phone,message\n5511987650001,hola\n")
    preview = preview_file(
        path, WavyAdapter(), warehouse, region="BR", timezone="UTC", prices={"teleprom": {"default": Decimal(1)}},
        currency="USD",
    )
    assert preview.rows_valid == 1 and preview.estimated_cost is None and preview.currency is None


def test_reason_categories():
    assert reason_category("phone '12' is not a number") == "phone"
    assert reason_category("suppressed: keyword (inbound_messages itd/1)") == "suppressed: keyword"
    assert reason_category("duplicate of row 3 (same phone and content)") == "duplicate"


@pytest.mark.parametrize(
    "text",
    ["not json", "[1]", '{"wavy": 3}', '{"wavy": {"default": "abc"}}', '{"wavy": {"default": -1}}', '{"wavy": {"x": "NaN"}}'],
)
def test_a_bad_price_table_is_refused_with_the_reason(text):
    with pytest.raises(pricing.PriceTableError):
        pricing.parse_prices(text)


def test_prices_by_category_fall_back_to_default(warehouse):
    prices = pricing.parse_prices('{"Teleprom": {"MARKETING": 0.06, "default": "0.02"}}')
    assert pricing.unit_price(prices, "teleprom", "marketing") == Decimal("0.06")
    assert pricing.unit_price(prices, "teleprom", "utility") == Decimal("0.02")
    assert pricing.unit_price(prices, "wavy", None) is None
    assert pricing.estimate(prices, "teleprom", ["marketing", None]) == Decimal("0.08")
    assert pricing.sync_prices(warehouse, prices, "USD") == 2
    assert pricing.sync_prices(warehouse, prices, "USD") == 0  # unchanged: nothing rewritten
    assert warehouse.count("message_prices") == 2
