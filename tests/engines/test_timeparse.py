"""Property tests for the vendor timestamp parsers (``common/timeparse.py``)."""

from __future__ import annotations

import datetime as dt

import pendulum
import pytest
from hypothesis import given
from hypothesis import strategies as st

from latam_messaging.common.timeparse import (
    format_ddmmyyyy,
    from_epoch_ms,
    parse_day_month_year_minutes,
    parse_ddmmyyyy,
    parse_iso,
    parse_vendor_local,
    to_epoch_ms,
)

SANTIAGO = "America/Santiago"
moments = st.datetimes(min_value=dt.datetime(2000, 1, 1), max_value=dt.datetime(2040, 1, 1))
days = st.dates(min_value=dt.date(1900, 1, 1), max_value=dt.date(2199, 12, 31))


@given(days)
def test_ddmmyyyy_round_trips(day):
    text = format_ddmmyyyy(pendulum.Date(day.year, day.month, day.day))
    assert len(text) == 8 and parse_ddmmyyyy(text) == day


@given(st.text(max_size=10).filter(lambda t: not (len(t) == 8 and t.isdigit())))
def test_ddmmyyyy_rejects_anything_else(text):
    with pytest.raises(ValueError):
        parse_ddmmyyyy(text)


@given(moments)
def test_day_month_year_minutes_is_chile_local(naive):
    local = pendulum.instance(naive.replace(second=0, microsecond=0), tz=SANTIAGO)
    parsed = parse_day_month_year_minutes(local.format("DD/MM/YYYY HH:mm"), SANTIAGO)
    assert parsed.offset == 0
    assert parsed.in_tz(SANTIAGO).format("DD/MM/YYYY HH:mm") == local.format("DD/MM/YYYY HH:mm")


@given(moments, st.integers(min_value=1, max_value=7))
def test_sql_style_timestamp_with_any_fraction(naive, digits):
    local = pendulum.instance(naive, tz=SANTIAGO)
    fraction = f"{local.microsecond:06d}0"[:digits]
    text = local.format("YYYY-MM-DD HH:mm:ss") + "." + fraction
    parsed = parse_vendor_local(text, SANTIAGO)
    assert parsed.offset == 0
    assert parsed.in_tz(SANTIAGO).replace(microsecond=0) == local.replace(microsecond=0)


@given(st.integers(min_value=0, max_value=4_102_444_800_000))
def test_epoch_ms_round_trips(ms):
    assert to_epoch_ms(from_epoch_ms(ms)) == ms
    assert from_epoch_ms(str(ms)) == from_epoch_ms(ms)


def test_iso_with_offset_keeps_it_and_seven_fraction_digits_parse():
    parsed = parse_iso("2022-05-06T14:35:25.1723881-03:00", "UTC")
    assert parsed == pendulum.datetime(2022, 5, 6, 17, 35, 25, 172388, tz="UTC")
