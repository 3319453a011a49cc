"""Property tests for the vendor timestamp parsers and phone handling."""

from __future__ import annotations

import datetime as dt

import pendulum
import phonenumbers
import pytest
from hypothesis import given
from hypothesis import strategies as st

from latam_messaging.common.phones import (
    InvalidPhoneError,
    _international_fast,
    _normalise_parsed,
    normalise_phone,
    split_country_code,
)
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


MOBILE_EXAMPLES = [
    phonenumbers.format_number(n, phonenumbers.PhoneNumberFormat.E164)[1:]
    for region in ("AR", "CL", "BR", "MX", "CO", "PE", "UY", "US", "ES")
    if (n := phonenumbers.example_number_for_type(region, phonenumbers.PhoneNumberType.MOBILE))
]


@given(st.sampled_from(MOBILE_EXAMPLES))
def test_split_country_code_rejoins(e164):
    prefix, national = split_country_code(e164)
    assert prefix + national == e164
    assert phonenumbers.country_code_for_region(phonenumbers.region_code_for_country_code(int(prefix))) == int(prefix)


@given(st.sampled_from(MOBILE_EXAMPLES), st.sampled_from(["+{}", "{}", "+{} ", " {}"]))
def test_normalise_accepts_plus_spaces_and_bare_digits(e164, shape):
    assert normalise_phone(shape.format(e164)) == e164


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("+54 9 351 672-3999", "5493516723999"),
        ("5493516723999", "5493516723999"),
        ("351 15 672 3999", "5493516723999"),  # national Argentine mobile with the 15
        ("+56 9 6123 4567", "56961234567"),
    ],
)
def test_normalise_known_shapes(raw, expected):
    assert normalise_phone(raw, "AR") == expected


@pytest.mark.parametrize("raw", ["", "abc", "123", "+99 123"])
def test_normalise_rejects_with_a_reason(raw):
    with pytest.raises(InvalidPhoneError):
        normalise_phone(raw)


# ---- the fast path for plain international digits gives exactly the full parser's answer ----------
def _parser_answer(text: str, region: str) -> str | None:
    try:
        return _normalise_parsed(text, region)
    except InvalidPhoneError:
        return None


def _answer(text: str, region: str) -> str | None:
    try:
        return normalise_phone(text, region)
    except InvalidPhoneError:
        return None


EVERY_EXAMPLE = sorted(
    {
        phonenumbers.format_number(n, phonenumbers.PhoneNumberFormat.E164)[1:]
        for region in phonenumbers.SUPPORTED_REGIONS
        for kind in (phonenumbers.PhoneNumberType.MOBILE, phonenumbers.PhoneNumberType.FIXED_LINE)
        if (n := phonenumbers.example_number_for_type(region, kind))
    }
)


def test_fast_path_takes_most_plain_numbers_and_agrees_with_the_parser_on_every_example():
    """Every region's example numbers (mobile and fixed), as ``+digits``, bare digits and with spaces:
    the fast path either declines or answers what the full parser answers; and it does answer for most
    of them, so this test is not vacuous."""
    taken = 0
    for e164 in EVERY_EXAMPLE:
        for text in (f"+{e164}", e164, f"+{e164[:2]} {e164[2:5]}-{e164[5:]}"):
            fast = _international_fast(text.replace(" ", "").replace("-", "").lstrip("+"))
            assert fast in (None, _parser_answer(text, "AR")), text
            assert _answer(text, "AR") == _parser_answer(text, "AR"), text
            taken += fast is not None
    assert taken > 0.8 * 3 * len(EVERY_EXAMPLE)


def test_fast_path_declines_what_the_parser_rewrites():
    # Argentina's "15" mobile prefix after the area code is rewritten to 9 + area code by the parser.
    assert _international_fast("541115" + "55551234") is None
    # Italian fixed lines keep their leading zero.
    assert _international_fast("390236618300") is None
    assert normalise_phone("+39 02 3661 8300") == "390236618300"
    # No country code 0, 28 or 999; a leading 0 is never dropped to find one ("+031…" is not +31).
    assert _international_fast("0111") is None
    assert _international_fast("031100000001") is None
    with pytest.raises(InvalidPhoneError):
        normalise_phone("+03110000000 1")
    assert _international_fast("2812345678") is None


@given(
    st.text(alphabet="0123456789", min_size=1, max_size=18),
    st.sampled_from(["+{}", "{}", " {} ", "+{} 1", "{}-9"]),
    st.sampled_from(["AR", "CL", "BR", "US", "IT"]),
)
def test_fast_path_agrees_with_the_parser_on_any_digits(digits, shape, region):
    text = shape.format(digits)
    assert _answer(text, region) == _parser_answer(text, region)
