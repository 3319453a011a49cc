"""Property tests for phone handling (``common/phones.py``); the timestamp parsers' are in ``test_timeparse.py``."""

from __future__ import annotations

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


# ---- the fast validity check is phonenumbers' is_valid_number, for regions alone on their code ----------
SINGLE_REGION_EXAMPLES = sorted(
    (region, str(n.national_number))
    for code, regions in phonenumbers.COUNTRY_CODE_TO_REGION_CODE.items()
    if len(regions) == 1 and regions[0] != phonenumbers.UNKNOWN_REGION
    for region in regions
    for kind in (phonenumbers.PhoneNumberType.MOBILE, phonenumbers.PhoneNumberType.FIXED_LINE)
    if (n := phonenumbers.example_number_for_type(region, kind)) and not n.italian_leading_zero
)


def _library_valid(region: str, national: str) -> bool:
    code = phonenumbers.country_code_for_region(region)
    return phonenumbers.is_valid_number(phonenumbers.PhoneNumber(country_code=code, national_number=int(national)))


def test_fast_validity_agrees_with_phonenumbers_on_every_example():
    from latam_messaging.common.phones import _valid_national

    assert len(SINGLE_REGION_EXAMPLES) > 300
    for region, national in SINGLE_REGION_EXAMPLES:
        assert _valid_national(region, len(national), national) is True, (region, national)
        assert _library_valid(region, national), (region, national)


@given(
    st.sampled_from(SINGLE_REGION_EXAMPLES),
    st.integers(min_value=0, max_value=16),
    st.text(alphabet="0123456789", min_size=0, max_size=3),
    st.sampled_from(["replace", "append", "drop"]),
)
def test_fast_validity_agrees_with_phonenumbers_on_numbers_near_the_examples(example, at, digits, how):
    """Examples with digits replaced, added or dropped: valid and invalid numbers of every length."""
    from latam_messaging.common.phones import _valid_national

    region, national = example
    at = min(at, len(national))
    if how == "replace":
        national = national[:at] + digits + national[at + len(digits) :]
    elif how == "append":
        national = national[:at] + digits + national[at:]
    else:
        national = national[:at] + national[at + len(digits) :]
    national = national.lstrip("0")
    if not national:
        return
    assert _valid_national(region, len(national), national) == _library_valid(region, national), (region, national)
