"""Property tests for the vendor timestamp parsers (``common/timeparse.py``)."""

from __future__ import annotations

import datetime as dt

import pendulum
import pytest
from hypothesis import given, settings
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


def _pendulum_parse_iso(text: str, naive_tz: str) -> pendulum.DateTime:
    """``parse_iso`` as it was before its standard-library path: pendulum's parser alone."""
    return pendulum.parse(text.strip(), tz=naive_tz, strict=False).in_tz(pendulum.UTC)


@given(
    st.datetimes(min_value=dt.datetime(1990, 1, 1), max_value=dt.datetime(2045, 1, 1)),
    st.sampled_from([SANTIAGO, "America/Argentina/Buenos_Aires", "America/Sao_Paulo", "America/New_York", "UTC"]),
    st.sampled_from(["minutes", "seconds", *(f"fraction{n}" for n in range(1, 7))]),
    st.sampled_from(["", "Z", "+00:00", "-03:00", "+05:30", "-11:00"]),
)
@settings(max_examples=500)
def test_plain_iso_times_read_as_pendulum_reads_them(naive, zone, precision, suffix):
    """The standard library's path and pendulum's parser agree on every plain ISO time, the hours a
    change of the clocks skips or repeats included (those go to pendulum)."""
    text = naive.strftime("%Y-%m-%dT%H:%M")
    if precision != "minutes":
        text += naive.strftime(":%S")
    if precision.startswith("fraction"):
        text += "." + f"{naive.microsecond:06d}"[: int(precision[-1])]
    text += suffix
    parsed = parse_iso(text, zone)
    assert parsed == _pendulum_parse_iso(text, zone) and parsed.utcoffset() == dt.timedelta(0)
    assert isinstance(parsed, pendulum.DateTime)


def test_the_standard_library_reads_plain_times_and_pendulum_the_rest():
    from latam_messaging.common import timeparse

    assert timeparse._plain_iso("2024-05-13T16:43:11.123", SANTIAGO) == pendulum.datetime(2024, 5, 13, 20, 43, 11, 123000)
    assert timeparse._plain_iso("2024-05-13T16:43:11-03:00", SANTIAGO) == pendulum.datetime(2024, 5, 13, 19, 43, 11)
    # Chile's clocks went forward at 00:00 on 2023-09-03 and back at 00:00 on 2023-04-02 (23:00-24:00 twice)
    assert timeparse._plain_iso("2023-09-03T00:30:00", SANTIAGO) is None
    assert timeparse._plain_iso("2023-04-01T23:30:00", SANTIAGO) is None
    assert parse_iso("2023-09-03T00:30:00", SANTIAGO) == _pendulum_parse_iso("2023-09-03T00:30:00", SANTIAGO)
    assert timeparse._plain_iso("2024-05-13 16:43:11", SANTIAGO) is None  # not the plain shape: pendulum
    arabic_indic = "٢٠٢٤-05-13T16:43:11"  # digits re's \d would take: pendulum reads them, the fast path does not
    assert timeparse._plain_iso(arabic_indic, SANTIAGO) is None
    assert parse_iso(arabic_indic, SANTIAGO) == _pendulum_parse_iso(arabic_indic, SANTIAGO)
    assert parse_iso("2024-05-13T16:43:11.1234567", SANTIAGO) == _pendulum_parse_iso("2024-05-13T16:43:11.1234567", SANTIAGO)
    for odd in ("2024-05-13T24:00:00", "2024-02-30T10:00:00"):  # what the standard library refuses: pendulum's answer
        try:
            expected: object = _pendulum_parse_iso(odd, SANTIAGO)
        except ValueError as exc:
            expected = type(exc)
        try:
            got: object = parse_iso(odd, SANTIAGO)
        except ValueError as exc:
            got = type(exc)
        assert got == expected
    assert parse_iso("2024-05-13", SANTIAGO) == _pendulum_parse_iso("2024-05-13", SANTIAGO)  # pendulum's: midnight
