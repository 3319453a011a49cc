"""Vendor timestamps to aware UTC datetimes (pendulum).

Vendors write local times without an offset (Teleprom: Argentina, ITD: Chile). Each parser takes
the vendor's timezone for such naive values; values that carry an offset keep it. Every result is
in UTC, as the warehouse stores it.
"""

from __future__ import annotations

import datetime as dt
import functools
import re

import pendulum

UTC = pendulum.UTC

#: The shape vendors send (``2022-05-13T16:43:11.123``, ``…Z``, ``…-03:00``): read by the standard
#: library: ~6.5 µs a time in all instead of ~18 µs through pendulum's parser (a `webhook_ingest` event
#: carries one or two). ASCII digits only: pendulum's parser keeps reading any other.
_PLAIN_ISO = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}(?::[0-9]{2}(?:\.[0-9]{1,6})?)?(?:Z|[+-][0-9]{2}:[0-9]{2})?")


@functools.lru_cache(maxsize=64)
def _zone(name: str) -> dt.tzinfo:
    return pendulum.timezone(name)


def _plain_iso(text: str, naive_tz: str) -> pendulum.DateTime | None:
    """``text`` in the plain shape, in UTC; ``None`` for anything else, and for a local time that a
    change of the clocks makes ambiguous or skipped (pendulum's rules decide those)."""
    if not _PLAIN_ISO.fullmatch(text):
        return None
    try:
        moment = dt.datetime.fromisoformat(text)
    except ValueError:  # e.g. 24:00 or 30 February: pendulum's parser answers as it always did
        return None
    if moment.tzinfo is None:
        local = moment.replace(tzinfo=_zone(naive_tz))
        if local.utcoffset() != local.replace(fold=1).utcoffset():
            return None
        moment = local
    utc = moment.astimezone(dt.UTC)
    return pendulum.DateTime(
        utc.year, utc.month, utc.day, utc.hour, utc.minute, utc.second, utc.microsecond, tzinfo=UTC
    )


def parse_iso(text: str, naive_tz: str) -> pendulum.DateTime:
    """ISO-8601 with any number of fraction digits; a value without offset is ``naive_tz`` local."""
    text = text.strip()
    plain = _plain_iso(text, naive_tz)
    if plain is not None:
        return plain
    parsed = pendulum.parse(text, tz=naive_tz, strict=False)
    if not isinstance(parsed, pendulum.DateTime):
        raise ValueError(f"not a date and time: {text!r}")
    return parsed.in_tz(UTC)


def parse_vendor_local(text: str, vendor_tz: str) -> pendulum.DateTime:
    """A naive vendor-local time like ``2022-05-13T16:43:11`` or ``2020-04-16 10:26:13.0``."""
    return parse_iso(text.replace(" ", "T", 1), vendor_tz)


def parse_day_month_year_minutes(text: str, vendor_tz: str) -> pendulum.DateTime:
    """``dd/MM/yyyy HH:mm`` (ITD status webhook)."""
    return pendulum.from_format(text.strip(), "DD/MM/YYYY HH:mm", tz=vendor_tz).in_tz(UTC)


def parse_ddmmyyyy(text: str) -> pendulum.Date:
    """``ddMMyyyy`` (ITD ``sendAt`` filter), a calendar day."""
    if len(text) != 8 or not text.isdigit():
        raise ValueError(f"not a ddMMyyyy date: {text!r}")
    return pendulum.Date(int(text[4:]), int(text[2:4]), int(text[:2]))


def format_ddmmyyyy(day: pendulum.Date) -> str:
    return f"{day.day:02d}{day.month:02d}{day.year:04d}"


def from_epoch_ms(value: int | float | str) -> pendulum.DateTime:
    """Epoch milliseconds (ITD, Wavy)."""
    return pendulum.from_timestamp(int(value) / 1000, tz=UTC)


def to_epoch_ms(moment: pendulum.DateTime) -> int:
    return int(round(moment.timestamp() * 1000))


#: An epoch number this large is milliseconds: as seconds it would be after the year 5000.
EPOCH_MS_FROM = 100_000_000_000


def epoch_s_or_ms(value: int | float | str) -> pendulum.DateTime:
    """An epoch time in seconds or milliseconds, as a number or a string (Meta sends seconds as
    strings, Gupshup's ``enqueued`` event and Wavy milliseconds as numbers). The unit follows from the
    size: every plausible time in milliseconds is above :data:`EPOCH_MS_FROM`, every one in seconds
    below it; a value plausible in neither is for the caller to refuse (``webhooks.parsers.vendor_time``
    then uses the receive time, with a note)."""
    if isinstance(value, bool):
        raise TypeError("a boolean is not a time")
    number = value if isinstance(value, int | float) else float(str(value).strip())
    if number != number or number in (float("inf"), float("-inf")):
        raise ValueError("not a finite number")
    seconds = number / 1000 if abs(number) >= EPOCH_MS_FROM else number
    return pendulum.from_timestamp(seconds, tz="UTC")
