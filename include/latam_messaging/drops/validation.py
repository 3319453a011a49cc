"""Row validation shared by every drop format (phone, tracking id, send time, duplicates); each vendor's
validator (in ``<vendor>/send.py``) adds its own fields. Every bad row gets a reason a person understands."""

from __future__ import annotations

import functools
import hashlib
import re
import sqlite3
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pendulum

from latam_messaging.common.phones import InvalidPhoneError, normalise_phone

MAX_TRACKING_ID = 64
#: A value a spreadsheet would run as a formula when someone opens an export of it (CSV injection):
#: ``=…`` or ``@…``, or ``+``/``-`` then arithmetic (numbers, cell references, quoted strings) and a
#: function call, a DDE command or a sheet reference (``+cmd|``, ``-2+3+cmd|' /C calc'!A0``, ``+SUM(A1)``,
#: ``-A1+HYPERLINK(…)``, ``+"a"&HYPERLINK(…)``). Texts like ``-20% hoy`` or ``+info en la web`` are not
#: formulas. (Possessive parts and names of at most 64 characters: linear time on any cell.)
FORMULA = re.compile(r"""[=@]|[+-](?:[\d\s.,+\-*/^%()&<>=:]|\$?[A-Za-z]{1,3}\$?\d++|"[^"]*+")*[A-Za-z_][\w.]{0,63}+[(|!]""")


class RowRejected(ValueError):
    """A row that will not be sent; ``str()`` is the reason stored in ``drop_rejects``."""


@dataclass
class ValidationContext:
    file_sha256: str
    default_region: str
    timezone: str
    #: Reference data a vendor's validator needs, loaded by its adapter (Teleprom: its templates).
    reference: list[dict[str, Any]] = field(default_factory=list)
    #: Phones to hold (phone → reason), when the drop folder opted in to the risky-number hold.
    risky: dict[str, str] = field(default_factory=dict)


def message_key(file_sha256: str, row_number: int) -> str:
    """Deterministic ledger key and vendor tracking id: the same file row always gets the same key."""
    return f"m-{file_sha256[:16]}-{row_number}"


@functools.lru_cache(maxsize=65_536)
def _phone(raw: str, region: str) -> str:
    return normalise_phone(raw, region)


def parse_send_at(text: str, timezone: str) -> pendulum.DateTime | None:
    """ISO-8601 date and time; naive values are ``MESSAGING_TIMEZONE`` local time. Empty → now."""
    text = (text or "").strip()
    if not text:
        return None
    try:
        parsed = pendulum.parse(text, tz=timezone, strict=False)
    except (ValueError, pendulum.parsing.exceptions.ParserError) as exc:
        raise RowRejected(f"send_at {text!r} is not a date and time (use ISO-8601, e.g. 2026-12-01T09:30)") from exc
    if not isinstance(parsed, pendulum.DateTime):
        parsed = pendulum.datetime(parsed.year, parsed.month, parsed.day, tz=timezone)
    return parsed.in_tz("UTC")


class SeenRows:
    """Content fingerprints of one file's rows, with the row that first had each.

    Kept in a private temporary SQLite database (an empty file name: on disk, bounded page cache,
    deleted on close), so memory stays flat however long the file is.
    """

    def __init__(self) -> None:
        self._db = sqlite3.connect("")
        self._db.execute("PRAGMA journal_mode=OFF")
        self._db.execute("PRAGMA synchronous=OFF")
        self._db.execute("CREATE TABLE seen (fingerprint BLOB PRIMARY KEY, row_number INTEGER NOT NULL) WITHOUT ROWID")

    def first_row(self, fingerprint: bytes, row_number: int) -> int:
        """``row_number`` if the fingerprint is new, else the row that had it first."""
        if self._db.execute("INSERT OR IGNORE INTO seen VALUES (?, ?)", (fingerprint, row_number)).rowcount:
            return row_number
        return self._db.execute("SELECT row_number FROM seen WHERE fingerprint = ?", (fingerprint,)).fetchone()[0]

    def close(self) -> None:
        self._db.close()


class RowValidator:
    """What every drop format checks; vendors add their fields in :meth:`vendor_fields`."""

    vendor = ""
    required_columns: frozenset[str] = frozenset({"phone"})

    def __init__(self, context: ValidationContext):
        self.context = context
        self._seen: SeenRows | None = None

    def validate(self, row_number: int, raw: Mapping[str, str]) -> dict[str, Any]:
        """The ledger row for ``raw``, or :class:`RowRejected` with the reason."""
        return self.deduplicate(self.check(row_number, raw))

    def deduplicate(self, row: dict[str, Any]) -> dict[str, Any]:
        """``row`` unless an earlier row of the file had the same phone and content (in file order)."""
        if self._seen is None:
            self._seen = SeenRows()
        first_row = self._seen.first_row(row.pop("_fingerprint"), row["row_number"])
        if first_row != row["row_number"]:
            raise RowRejected(f"duplicate of row {first_row} (same phone and content)")
        return row

    def check(self, row_number: int, raw: Mapping[str, str]) -> dict[str, Any]:
        """Everything but the duplicate check, which needs the file's earlier rows: a pure function of
        the row and the context."""
        values = {k: (v or "").strip() for k, v in raw.items()}
        if not any(values.values()):
            raise RowRejected("row is empty")
        for column, value in values.items():
            if column != "phone" and FORMULA.match(value):
                raise RowRejected(f"looks like a spreadsheet formula (column {column})")
        phone = self.phone(values)
        if phone in self.context.risky:
            raise RowRejected(f"held: number_checks flagged this number ({self.context.risky[phone]})")
        tracking = values.get("tracking_id") or None
        if tracking and len(tracking) > MAX_TRACKING_ID:
            raise RowRejected(f"tracking_id is longer than {MAX_TRACKING_ID} characters")
        fields = self.vendor_fields(values)
        # vendor_fields builds its dict in a fixed order, so repr() is a stable (and cheap) identity
        fingerprint = hashlib.blake2b(repr((phone, fields)).encode(), digest_size=12).digest()
        return {
            "_fingerprint": fingerprint,
            "message_key": message_key(self.context.file_sha256, row_number),
            "vendor": self.vendor,
            "file_sha256": self.context.file_sha256,
            "row_number": row_number,
            "phone": phone,
            "tracking_id": tracking,
            "send_at": parse_send_at(values.get("send_at", ""), self.context.timezone),
            **fields,
        }

    def phone(self, values: Mapping[str, str]) -> str:
        """The row's ``phone`` as E.164 digits (national numbers in ``MESSAGING_DEFAULT_REGION``), or
        :class:`RowRejected` saying why it is not a number."""
        try:
            return _phone(values.get("phone", ""), self.context.default_region)
        except InvalidPhoneError as exc:
            raise RowRejected(str(exc)) from exc

    def vendor_fields(self, values: dict[str, str]) -> dict[str, Any]:
        raise NotImplementedError

    def close(self) -> None:
        """Release the file's duplicate index."""
        if self._seen is not None:
            self._seen.close()
            self._seen = None
