"""Row validation of the three drop formats: every bad row gets a reason a person understands."""

from __future__ import annotations

import functools
import hashlib
import sqlite3
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pendulum

from latam_messaging.common.phones import InvalidPhoneError, normalise_phone
from latam_messaging.itd.contract import CONTENT_TYPES
from latam_messaging.wavy.contract import MAX_TEXT

MAX_TRACKING_ID = 64


class RowRejected(ValueError):
    """A row that will not be sent; ``str()`` is the reason stored in ``drop_rejects``."""


@dataclass
class ValidationContext:
    file_sha256: str
    default_region: str
    timezone: str
    #: Teleprom only: templates of ``teleprom_templates`` (dicts with the table's columns).
    templates: list[dict[str, Any]] = field(default_factory=list)
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
        the row and the context, so chunks of rows can be checked in worker processes."""
        values = {k: (v or "").strip() for k, v in raw.items()}
        if not any(values.values()):
            raise RowRejected("row is empty")
        try:
            phone = _phone(values.get("phone", ""), self.context.default_region)
        except InvalidPhoneError as exc:
            raise RowRejected(str(exc)) from exc
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

    def vendor_fields(self, values: dict[str, str]) -> dict[str, Any]:
        raise NotImplementedError

    def close(self) -> None:
        """Release the file's duplicate index."""
        if self._seen is not None:
            self._seen.close()
            self._seen = None


class TelepromRowValidator(RowValidator):
    """HSM rows: the template (id or name) must exist, be Accepted, belong to the account, and get
    exactly as many parameter values as it has placeholders."""

    vendor = "teleprom"
    required_columns = frozenset({"phone", "template"})

    def __init__(self, context: ValidationContext):
        super().__init__(context)
        self._by_id = {int(t["template_id"]): t for t in context.templates}
        self._by_name: dict[str, list[dict[str, Any]]] = {}
        for template in context.templates:
            self._by_name.setdefault(str(template["name"]).lower(), []).append(template)

    def _template(self, ref: str, account: int | None) -> dict[str, Any]:
        if not ref:
            raise RowRejected("template is empty")
        if ref.isdigit() and int(ref) in self._by_id:
            return self._by_id[int(ref)]
        candidates = self._by_name.get(ref.lower(), [])
        if account is not None:
            candidates = [t for t in candidates if int(t["account_id"]) == account] or candidates
        if not candidates:
            raise RowRejected(f"template {ref!r} does not exist in teleprom_templates (run teleprom_catalog_sync?)")
        if len(candidates) > 1:
            accounts = ", ".join(str(t["account_id"]) for t in candidates)
            raise RowRejected(f"template name {ref!r} exists in accounts {accounts}: add an account column")
        return candidates[0]

    def vendor_fields(self, values: dict[str, str]) -> dict[str, Any]:
        account_text = values.get("account", "")
        if account_text and not account_text.isdigit():
            raise RowRejected(f"account {account_text!r} is not an account id (a number from teleprom_accounts)")
        account = int(account_text) if account_text else None
        template = self._template(values.get("template", ""), account)
        name = template["name"]
        if not template["active"]:
            raise RowRejected(f"template {name!r} no longer exists at Teleprom")
        if template["status"] != "Accepted":
            raise RowRejected(f"template {name!r} is {template['status']}, not Accepted")
        if account is not None and account != int(template["account_id"]):
            raise RowRejected(f"template {name!r} belongs to account {template['account_id']}, not {account}")
        numbered = sorted((int(k.split("_")[1]), v) for k, v in values.items() if k.startswith("param_"))
        params = [v for _, v in numbered]
        while params and not params[-1]:
            params.pop()
        expected = int(template["parameter_count"])
        if len(params) != expected:
            raise RowRejected(f"template {name!r} takes {expected} parameter(s), the row has {len(params)}")
        empty = [f"param_{i}" for i, (_, v) in enumerate(numbered[: len(params)], start=1) if not v]
        if empty:
            raise RowRejected(f"{', '.join(empty)} is empty")
        return {
            "template_id": int(template["template_id"]),
            "template_name": name,
            "account_id": int(template["account_id"]),
            "params": params,
        }


class ItdRowValidator(RowValidator):
    """ITD rows: content_type TEXT, IMAGE, LINK or FILE; media content is a URL; the documented
    blank fields stay blank."""

    vendor = "itd"
    required_columns = frozenset({"phone", "content_type", "content"})

    def vendor_fields(self, values: dict[str, str]) -> dict[str, Any]:
        content_type = values.get("content_type", "").upper()
        if content_type not in CONTENT_TYPES:
            raise RowRejected(f"content_type {values.get('content_type')!r} must be one of {', '.join(CONTENT_TYPES)}")
        content = values.get("content", "")
        if not content:
            raise RowRejected("content is empty")
        if content_type != "TEXT" and not content.startswith(("http://", "https://")):
            raise RowRejected(f"content of a {content_type} message must be an http(s) URL")
        if content_type == "TEXT":
            filled = [f for f in ("caption", "description", "url_thumb") if values.get(f)]
            if filled:
                raise RowRejected(f"{', '.join(filled)} must be blank for TEXT messages")
        if content_type == "IMAGE" and values.get("url_thumb"):
            raise RowRejected("url_thumb must be blank for IMAGE messages")
        return {
            "content_type": content_type,
            "content": content,
            "caption": values.get("caption") or None,
            "description": values.get("description") or None,
            "url_thumb": values.get("url_thumb") or None,
        }


class WavyRowValidator(RowValidator):
    """SMS rows: a non-empty message of at most 1280 characters."""

    vendor = "wavy"
    required_columns = frozenset({"phone", "message"})

    def vendor_fields(self, values: dict[str, str]) -> dict[str, Any]:
        text = values.get("message", "")
        if not text:
            raise RowRejected("message is empty")
        if len(text) > MAX_TEXT:
            raise RowRejected(f"message has {len(text)} characters; SMS allows at most {MAX_TEXT}")
        return {"content_type": "SMS", "content": text}
