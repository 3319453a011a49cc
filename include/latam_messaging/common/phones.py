"""Phone numbers: one normal form (E.164 digits, no ``+``) and the vendor-specific splits."""

from __future__ import annotations

import functools
import re

import phonenumbers
from phonenumbers import PhoneMetadata, PhoneNumber

#: What the fast path reads: digits, spaces and dashes, with an optional leading ``+``.
_PLAIN = re.compile(r"\+?[0-9][0-9 \-]*")


class InvalidPhoneError(ValueError):
    """The text is not a valid phone number; the message says why, for a person."""


def normalise_phone(raw: str, default_region: str = "AR") -> str:
    """Parse ``+54 9 351 672-3999``, ``5493516723999`` or a national number of ``default_region``.

    Digits with a country code but no ``+`` are tried as international first. Returns E.164 digits.
    """
    text = (raw or "").strip()
    if not text:
        raise InvalidPhoneError("phone is empty")
    if _PLAIN.fullmatch(text):
        fast = _international_fast(text.replace(" ", "").replace("-", "").lstrip("+"))
        if fast is not None:
            return fast
    return _normalise_parsed(text, default_region)


def _international_fast(digits: str) -> str | None:
    """E.164 digits for ``+<digits>`` when phonenumbers would read them unchanged, else ``None``.

    ``phonenumbers.parse`` costs ~14 µs a number (its generic extraction regexes); for plain
    international digits this builds the same ``PhoneNumber`` directly and keeps only the validity
    check. Anything the parser would rewrite (a national prefix or carrier code to strip, Italian
    leading zeros, an unknown country code) returns ``None`` and takes the full parser, so the result
    is always the parser's (``tests/engines/test_phones.py`` checks the two agree).
    """
    if not digits or digits[0] == "0":  # no country code starts with 0 ("+031…" is not +31)
        return None
    for length in (1, 2, 3):
        country_code = int(digits[:length])
        if country_code in phonenumbers.COUNTRY_CODE_TO_REGION_CODE:
            break
    else:
        return None
    national = digits[length:]
    if not 2 <= len(national) <= 17 or national[0] == "0":
        return None
    region = phonenumbers.region_code_for_country_code(country_code)
    metadata = PhoneMetadata.metadata_for_region_or_calling_code(country_code, region)
    if metadata is None:
        return None
    prefix = metadata.national_prefix_for_parsing
    if prefix:
        match = re.match(prefix, national)  # re caches the compiled pattern
        if match is not None and (match.end() or any(group is not None for group in match.groups())):
            return None
    if len(phonenumbers.COUNTRY_CODE_TO_REGION_CODE[country_code]) == 1 and region != phonenumbers.UNKNOWN_REGION:
        valid = _valid_national(region, len(national), national)
    else:  # a code shared by regions (+1, +7, ...) or not geographic: phonenumbers picks the region
        valid = phonenumbers.is_valid_number(PhoneNumber(country_code=country_code, national_number=int(national)))
    return f"{country_code}{national}" if valid else None


#: The number types ``phonenumbers`` tries, in its order (``_number_type_helper``): a number is valid
#: when it matches the region's general pattern and the pattern of any of them.
_TYPES = (
    "premium_rate", "toll_free", "shared_cost", "voip", "personal_number", "pager", "uan", "voicemail",
    "fixed_line", "mobile",
)


@functools.lru_cache(maxsize=2048)
def _validity_patterns(region: str, length: int) -> tuple[re.Pattern[str], re.Pattern[str]] | None:
    """The region's general pattern, and one alternation of every type's pattern, for numbers of
    ``length`` digits (a type whose ``possible_length`` excludes it is left out, as phonenumbers
    skips it); ``None`` when no number of that length can be valid."""
    metadata = PhoneMetadata.metadata_for_region(region)

    def admits(desc) -> bool:
        return (
            desc is not None
            and bool(desc.national_number_pattern)
            and (not desc.possible_length or length in desc.possible_length)
        )

    if metadata is None or not admits(metadata.general_desc):
        return None
    kinds = [getattr(metadata, kind) for kind in _TYPES]
    alternatives = [desc.national_number_pattern for desc in kinds if admits(desc)]
    if not alternatives:
        return None
    either = "|".join(f"(?:{pattern})" for pattern in alternatives)
    return re.compile(metadata.general_desc.national_number_pattern), re.compile(either)


def _valid_national(region: str, length: int, national: str) -> bool:
    """``phonenumbers.is_valid_number`` for a region that alone has its country code, in two regex
    matches instead of up to eleven (``tests/engines/test_phones.py`` checks the two agree)."""
    patterns = _validity_patterns(region, length)
    return patterns is not None and bool(patterns[0].fullmatch(national)) and bool(patterns[1].fullmatch(national))


def _normalise_parsed(text: str, default_region: str) -> str:
    """The full phonenumbers parse of every candidate reading of ``text``."""
    candidates = [text]
    digits = "".join(ch for ch in text if ch.isdigit())
    if not text.startswith("+") and digits:
        candidates = [f"+{digits}", text]
    for candidate in candidates:
        region = None if candidate.startswith("+") else default_region
        try:
            number = phonenumbers.parse(candidate, region)
        except phonenumbers.NumberParseException:
            continue
        if phonenumbers.is_valid_number(number):
            return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)[1:]
    raise InvalidPhoneError(
        f"phone {text!r} is not a valid number (with country code, or national in {default_region})"
    )


def split_country_code(e164_digits: str) -> tuple[str, str]:
    """``56912345678`` → (``56``, ``912345678``): ITD wants the national number and the prefix apart."""
    try:
        number = phonenumbers.parse(f"+{e164_digits}", None)
    except phonenumbers.NumberParseException as exc:
        raise InvalidPhoneError(f"phone {e164_digits!r} has no recognisable country code") from exc
    national = e164_digits[len(str(number.country_code)) :]
    return str(number.country_code), national


def consent_key(e164_digits: str) -> str:
    """The form under which consent matches a phone: one subscriber, one key, however the number is written.

    Three markets write one mobile two valid ways, and a customer who opts out under one must not be
    reached under the other: Argentina's mobile ``54 9 …`` (WhatsApp, international dialling) and ``54 …``
    (the national number, as SMS gateways and many CSVs have it) → ``54 …``; Mexico's old ``52 1 …`` → ``52 …``;
    Brazil's mobiles without the ninth digit (``55 DD 8xxx-xxxx``, still sent by WhatsApp for some accounts)
    → ``55 DD 9 8xxx-xxxx``. Anything else is its own key."""
    digits = e164_digits
    if len(digits) == 13 and digits.startswith("549"):
        return "54" + digits[3:]
    if len(digits) == 13 and digits.startswith("521"):
        return "52" + digits[3:]
    if len(digits) == 12 and digits.startswith("55") and digits[4] in "6789":
        return digits[:4] + "9" + digits[4:]
    return digits


def normalise_any_form(raw: str, default_region: str = "AR") -> str:
    """:func:`normalise_phone`, also reading the forms WhatsApp sends that are no longer valid numbers
    (Brazil without the ninth digit, Mexico's ``52 1``): their :func:`consent_key` form is parsed instead."""
    try:
        return normalise_phone(raw, default_region)
    except InvalidPhoneError:
        digits = "".join(ch for ch in (raw or "") if ch.isdigit())
        key = consent_key(digits)
        if key == digits:
            raise
        return normalise_phone(f"+{key}", default_region)
