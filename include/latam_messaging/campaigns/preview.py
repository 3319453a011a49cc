"""The dry run of a file before anyone confirms it: what its rows would do, with nothing written.

The same checks as the send DAG's ingest (``drops.process``: the vendor's row validator, duplicates, the
consent screen), read in chunks with bounded memory; it counts, keeps the first rejects with their row
numbers and reasons, the send times, and prices the valid rows (``campaigns.pricing``). What it shows can
change before the file is sent (an opt-out arriving meanwhile is still enforced when the row is claimed).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import pendulum

from latam_messaging.campaigns.pricing import unit_price
from latam_messaging.consent import suppressions
from latam_messaging.drops.csvfile import UnreadableDropError, read_layout, read_rows
from latam_messaging.drops.folder import NotARegularFileError, fingerprint
from latam_messaging.drops.process import check_rows
from latam_messaging.drops.validation import RowRejected, ValidationContext
from latam_messaging.warehouse.db import Warehouse

#: Rejects listed in a preview (all of them are counted; the file's ingest records every one).
FIRST_REJECTS = 50
CAMPAIGN_COLUMN = "campaign"


@dataclass
class Preview:
    file_sha256: str
    rows_total: int = 0
    rows_valid: int = 0
    rows_rejected: int = 0
    rows_suppressed: int = 0
    rows_scheduled: int = 0  # valid rows with a send_at in the future
    rejects: list[dict[str, Any]] = field(default_factory=list)
    reasons: dict[str, int] = field(default_factory=dict)  # reject reasons (first words) → rows
    first_send_at: str | None = None
    last_send_at: str | None = None
    estimated_cost: str | None = None  # a decimal as text; None: some row's category has no price
    currency: str | None = None
    campaign_name: str | None = None  # the file's ``campaign`` column, if it has one
    error: str | None = None  # the file as a whole cannot be read: nothing of it would be sent

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def reason_category(reason: str) -> str:
    """``"phone '12' is not a number"`` → ``"phone"``; ``"suppressed: keyword (…)"`` → ``"suppressed: keyword"``."""
    head = reason.split(" (", 1)[0]
    return head if head.startswith("suppressed:") else head.split(" ", 1)[0].strip(":")


def preview_file(
    path: Path,
    adapter: Any,
    warehouse: Warehouse,
    *,
    region: str,
    timezone: str,
    prices: dict[str, dict[str, Decimal]],
    currency: str,
    now: pendulum.DateTime | None = None,
    reference: list[dict[str, Any]] | None = None,
    risky: dict[str, str] | None = None,
) -> Preview:
    """What ingesting ``path`` into ``adapter``'s folder would do now (a send adapter of
    ``sending.adapters``). Nothing is written anywhere."""
    now = now or pendulum.now("UTC")
    fp = fingerprint(path)
    preview = Preview(fp.sha256, currency=currency if prices.get(adapter.vendor) else None)
    reference = adapter.load_reference(warehouse) if reference is None else reference
    validator = adapter.validator(ValidationContext(fp.sha256, region, timezone, reference, risky or {}))
    scopes = suppressions.scopes_of(adapter.vendor, adapter.channel)
    categories: Counter[str | None] = Counter()
    reasons: Counter[str] = Counter()
    first = last = None
    try:
        layout = read_layout(path, fp.encoding, set(validator.required_columns))
        for chunk in read_rows(path, layout):
            kept = []
            for row, (good, reason) in zip(chunk, check_rows(validator, chunk), strict=True):
                if preview.campaign_name is None and row.values.get(CAMPAIGN_COLUMN, "").strip():
                    preview.campaign_name = row.values[CAMPAIGN_COLUMN].strip()
                if good is not None:
                    try:
                        kept.append((row.number, validator.deduplicate(good)))
                        continue
                    except RowRejected as exc:
                        reason = str(exc)
                _reject(preview, reasons, row.number, reason)
            with warehouse.engine.connect() as conn:
                blocked = suppressions.screen(conn, [g["phone"] for _, g in kept], scopes) if kept else {}
            for number, good in kept:
                if good["phone"] in blocked:
                    preview.rows_suppressed += 1
                    _reject(preview, reasons, number, blocked[good["phone"]])
                    continue
                preview.rows_valid += 1
                categories[adapter.price_category(good, reference)] += 1
                send_at = good.get("send_at") or now
                send_at = max(send_at, now)
                preview.rows_scheduled += send_at > now
                first = send_at if first is None or send_at < first else first
                last = send_at if last is None or send_at > last else last
            preview.rows_total += len(chunk)
    except (UnreadableDropError, NotARegularFileError) as exc:
        return Preview(fp.sha256, error=str(exc))
    finally:
        validator.close()
    preview.rows_rejected = preview.rows_total - preview.rows_valid
    preview.reasons = dict(reasons.most_common())
    preview.rejects.sort(key=lambda r: r["row"])
    preview.first_send_at = first.isoformat() if first else None
    preview.last_send_at = last.isoformat() if last else None
    if prices.get(adapter.vendor):
        total = Decimal(0)
        for category, rows in categories.items():
            price = unit_price(prices, adapter.vendor, category)
            if price is None:
                total = None
                break
            total += price * rows
        preview.estimated_cost = None if total is None else str(total.quantize(Decimal("0.0001")))
    return preview


def _reject(preview: Preview, reasons: Counter[str], number: int, reason: str) -> None:
    reasons[reason_category(reason)] += 1
    if len(preview.rejects) < FIRST_REJECTS:
        preview.rejects.append({"row": number, "reason": reason})
