"""Phone numbers: one normal form (E.164 digits, no ``+``) and the vendor-specific splits."""

from __future__ import annotations

import phonenumbers


class InvalidPhoneError(ValueError):
    """The text is not a valid phone number; the message says why, for a person."""


def normalise_phone(raw: str, default_region: str = "AR") -> str:
    """Parse ``+54 9 351 672-3999``, ``5493516723999`` or a national number of ``default_region``.

    Digits with a country code but no ``+`` are tried as international first. Returns E.164 digits.
    """
    text = (raw or "").strip()
    if not text:
        raise InvalidPhoneError("phone is empty")
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
