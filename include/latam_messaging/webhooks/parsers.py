"""The shared part of reading stored webhook bodies; each vendor's parser lives in its folder
(``<vendor>/callbacks.py``) and is handed in by the caller (the registry is read only at the top).

Nothing is dropped because of a value: every item of a body becomes a status event or an inbound
message, or an item error with its reason (kept beside the raw body). One bad item costs only
that item. Statuses the vocabulary does not know are events with status ``unknown`` and the
vendor's text; placeholder or absurd timestamps fall back to the receive time, with a note.
Bodies too large or too deeply nested are refused before ``json.loads``; trailing commas (as in
ITD's printed example) are tolerated.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import pendulum

from latam_messaging.common.timeparse import from_epoch_ms
from latam_messaging.status import StatusEvent

#: Larger bodies are refused before parsing (the receiver stores at most 1 MiB).
MAX_BODY_CHARS = 1024 * 1024
#: Deeper nesting is refused before ``json.loads`` (the vendors' bodies nest 8 levels at most).
MAX_DEPTH = 64
#: Vendor times outside this range are not believed (placeholders, 1e20, zero).
EARLIEST = pendulum.datetime(2000, 1, 1, tz="UTC")
FUTURE_SLACK = pendulum.duration(days=1)


class UnparseableEvent(ValueError):
    pass


@dataclass
class Parsed:
    format_version: str
    statuses: list[StatusEvent] = field(default_factory=list)
    inbound: list[dict[str, Any]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)  # one reason per item that could not be used


def items_of(parsed: Parsed, items: Iterable[Any], one: Callable[[Any], None]) -> Parsed:
    """Apply ``one`` to each item; an item that fails is recorded as an error, its neighbours stay."""
    for number, item in enumerate(items, start=1):
        try:
            one(item)
        except (UnparseableEvent, KeyError, TypeError, ValueError, AttributeError, OverflowError) as exc:
            parsed.errors.append(f"item {number}: {item_reason(exc)}")
    return parsed


def item_reason(exc: BaseException) -> str:
    text = str(exc) if isinstance(exc, UnparseableEvent) else f"{type(exc).__name__}"
    return text[:300]


def inbound_row(vendor: str, message_id: Any, **fields: Any) -> dict[str, Any]:
    if message_id in (None, ""):
        raise UnparseableEvent("message without an id")
    return {"vendor": vendor, "vendor_message_id": str(message_id), **fields}


@dataclass(frozen=True)
class When:
    at: pendulum.DateTime
    note: str | None = None


def vendor_time(value: Any, received_at: pendulum.DateTime, parse: Callable[[Any], pendulum.DateTime]) -> When:
    """The vendor's time, or the receive time (with a note) when it is missing, a placeholder or absurd."""
    try:
        at = parse(value)
    except (TypeError, ValueError, OverflowError, OSError, AttributeError, KeyError):
        at = None
    if at is not None and EARLIEST <= at <= received_at + FUTURE_SLACK:
        return When(at)
    shown = repr(value)[:40]
    return When(received_at, f"vendor time {shown} unusable: receive time used")


def epoch_ms(value: Any) -> pendulum.DateTime:
    return from_epoch_ms(int(str(value).strip()) if not isinstance(value, int | float) else value)


def text_or_none(value: Any) -> str | None:
    if value is None or value == "":
        return None
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


# ---- JSON, guarded ------------------------------------------------------------------------------------
_TOKENS = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{}]|,(?=\s*[\]}])', re.S)


def _nesting_depth(text: str) -> int:
    depth = deepest = 0
    for match in _TOKENS.finditer(text):
        token = match.group()
        if token in "[{":
            depth += 1
            if depth > deepest:
                deepest = depth
                if deepest > MAX_DEPTH:
                    return deepest
        elif token in "]}":
            depth -= 1
    return deepest


def _without_trailing_commas(text: str) -> str:
    return _TOKENS.sub(lambda m: "" if m.group() == "," else m.group(), text)


def _trimmed_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """An object whose keys are read trimmed of whitespace (``"sentAt "`` is ``sentAt``); where a key is
    also spelled exactly, the exact one wins and the padded one stays as it was (nothing is lost)."""
    exact = {key for key, _ in pairs if key == key.strip()}
    obj: dict[str, Any] = {}
    for key, value in pairs:
        trimmed = key.strip()
        obj[key if trimmed != key and trimmed in exact else trimmed] = value
    return obj


#: Longest integer read as a number; a longer one is kept as its text (Python refuses over 4,300 digits).
MAX_INT_DIGITS = 1000
_LONE_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")
_SURROGATE = re.compile("[\ud800-\udfff]")


def _int_or_text(digits: str) -> int | str:
    return int(digits) if len(digits) <= MAX_INT_DIGITS else digits


def _without_surrogates(value: Any) -> Any:
    """Lone surrogates (a ``\\ud800`` escape with no pair) replaced by U+FFFD, in keys and strings at
    any depth: no text column, nor PostgreSQL's JSON, can hold them."""
    if isinstance(value, str):
        return _SURROGATE.sub("\ufffd", value)
    if isinstance(value, list):
        return [_without_surrogates(v) for v in value]
    if isinstance(value, dict):
        return {_without_surrogates(k): _without_surrogates(v) for k, v in value.items()}
    return value


def _careful_json(text: str) -> Any:
    # NaN and Infinity are read as their names (text): PostgreSQL's JSON refuses them as numbers
    return json.loads(text, object_pairs_hook=_trimmed_keys, parse_int=_int_or_text, parse_constant=str)


def _has_padded_key(value: Any) -> bool:
    if isinstance(value, dict):
        return any(k != k.strip() or _has_padded_key(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_padded_key(v) for v in value)
    return False


def _json(text: str) -> Any:
    """The C parser for the common body (a third of the careful reading's cost); the careful one when
    the body needs it (a padded key, NaN, Infinity) or the C parser refuses it (an integer of thousands
    of digits)."""
    if "NaN" in text or "Infinity" in text:
        return _careful_json(text)
    try:
        body = json.loads(text)
    except ValueError:
        return _careful_json(text)
    return _careful_json(text) if _has_padded_key(body) else body


def loads(text: str) -> Any:
    """``json.loads`` behind guards: size and nesting first; a trailing comma is tolerated; keys are
    also readable trimmed of whitespace; what no column can hold (integers of thousands of digits,
    NaN, lone surrogates) is made text a column can hold."""
    if len(text) > MAX_BODY_CHARS:
        raise UnparseableEvent(f"body of {len(text)} characters is over the {MAX_BODY_CHARS} limit")
    if _nesting_depth(text) > MAX_DEPTH:
        raise UnparseableEvent(f"body nests deeper than {MAX_DEPTH} levels")
    try:
        body = _json(text)
    except ValueError as exc:
        try:
            body = _json(_without_trailing_commas(text))
        except ValueError:
            raise UnparseableEvent(f"body is not JSON: {exc}") from exc
    if _LONE_SURROGATE_ESCAPE.search(text):  # UTF-8 text holds no surrogate but through an escape
        body = _without_surrogates(body)
    return body


def as_list(value: Any) -> list[Any]:
    """A field that should be a list: a single object is a list of one; null or a scalar, empty."""
    if isinstance(value, list):
        return value
    return [value] if isinstance(value, dict) else []


def dicts(value: Any) -> list[dict[str, Any]]:
    """A field that should be a list of objects, as one: a single object is a list of one; anything
    else (a number, a string, null) is an empty list; non-objects in a list are left out."""
    if isinstance(value, dict):
        return [value]
    if isinstance(value, list):
        return [item for item in value if isinstance(item, dict)]
    return []


#: A vendor's parser: a decoded body (and the channel it came in on) → events and inbound messages.
VendorParser = Callable[[Any, "str | None", pendulum.DateTime], Parsed]


def parse_body(
    parse: VendorParser | None, channel: str | None, text: str, received_at: pendulum.DateTime | None = None
) -> Parsed:
    """Parse a stored body as JSON whatever its Content-Type said (Teleprom V3 sends form-encoded)."""
    received_at = received_at or pendulum.now("UTC")
    if parse is None:
        raise UnparseableEvent("no parser for this vendor")
    body = loads(text)
    try:
        return parse(body, channel, received_at)
    except UnparseableEvent:
        raise
    except (KeyError, TypeError, ValueError, AttributeError, OverflowError, RecursionError) as exc:
        raise UnparseableEvent(f"{type(exc).__name__} while reading the body") from exc
