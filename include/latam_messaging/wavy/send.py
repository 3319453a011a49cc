"""Sending Wavy SMS drops: the row validator (a message of at most 1,280 characters) and the
send-bulk-sms adapter (bulks of up to 1,000; our ``message_key`` is the correlationId, so ``unknown``
rows are looked up by it)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pendulum

from latam_messaging.drops.validation import RowRejected, RowValidator
from latam_messaging.lifecycle import MessageState
from latam_messaging.sending.adapters import Row, SendAdapter
from latam_messaging.sending.ledger import Ledger, SendOutcome
from latam_messaging.warehouse.db import Warehouse
from latam_messaging.wavy.contract import MAX_BULK, MAX_TEXT
from latam_messaging.wavy.hook import WavyHook
from latam_messaging.wavy.models import SmsMessage


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


class WavyAdapter(SendAdapter):
    """send-bulk-sms, up to 1000 a request; our ``message_key`` is the correlationId. Opt-outs by SMS
    (MO) get no confirmation reply: ``confirmation_fields`` keeps the default (it cannot); confirmations
    go through the WhatsApp vendors' free-text sends only."""

    vendor = "wavy"
    folder = "wavy_sms"
    channel = "sms"
    validator = WavyRowValidator
    batch_size = MAX_BULK
    concurrency = 4
    requests_per_s = 50.0

    def make_hook(self, pool_size: int) -> WavyHook:
        return WavyHook(pool_size=pool_size)

    def send_batch(self, hook: WavyHook, rows: Sequence[Row]) -> list[SendOutcome]:
        receipts = hook.send_bulk([SmsMessage(r.phone, r.content, correlation_id=r.message_key) for r in rows])
        return [SendOutcome(row.message_key, MessageState.ACCEPTED, receipt.id) for row, receipt in zip(rows, receipts, strict=True)]

    reconciles_unknown = True

    def reconcile_unknown(self, warehouse: Warehouse, hook: WavyHook, search_ids: int = 100) -> int:
        """Look up every ``unknown`` row by correlationId (our message_key): those Wavy has are
        ``accepted`` after all; the rest stay ``unknown`` for an operator."""
        ledger = Ledger(warehouse, self.vendor)
        resolved = 0
        for page in ledger.unknown_keys():
            found: dict[str, str] = {}
            for start in range(0, len(page), search_ids):
                keys = set(page[start : start + search_ids])
                for status in hook.status_search(correlation_ids=sorted(keys)):
                    if status.correlation_id in keys:
                        found[status.correlation_id] = status.id
            resolved += ledger.resolve_unknown(found, pendulum.now("UTC"))
        return resolved
