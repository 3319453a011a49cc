"""The vendor-specific part of sending: which hook, how rows group into requests, how answers map.

Everything else (drops, validation, ledger, scheduling, concurrency, accounting) is shared in
``pipeline.py``. An adapter raises the vendor's typed errors for a whole-batch failure and returns
one :class:`Outcome` per row otherwise.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import groupby
from typing import Any, ClassVar

from latam_messaging.common.transport import VendorHttpHook
from latam_messaging.itd.hook import ItdHook
from latam_messaging.itd.models import ItdMessage
from latam_messaging.sending.ledger import MessageState, Outcome, SendRow
from latam_messaging.sending.validation import ItdRowValidator, RowValidator, TelepromRowValidator, WavyRowValidator
from latam_messaging.teleprom.contract import DEFAULT_BATCH_SIZE
from latam_messaging.teleprom.hook import TelepromHook
from latam_messaging.teleprom.models import HsmDestination, HsmMessage
from latam_messaging.wavy.contract import MAX_BULK
from latam_messaging.wavy.hook import WavyHook
from latam_messaging.wavy.models import SmsMessage

Row = SendRow
ACCEPTED, REJECTED = MessageState.ACCEPTED, MessageState.REJECTED


class SendAdapter:
    vendor: ClassVar[str]
    folder: ClassVar[str]
    validator: ClassVar[type[RowValidator]]
    batch_size: ClassVar[int]
    #: Defaults of the DAG params: worker threads and the requests-per-second ceiling.
    concurrency: ClassVar[int] = 4
    requests_per_s: ClassVar[float] = 0.0
    #: Default of the ``send_instances`` param: mapped ``send_due`` instances (each on any worker).
    instances: ClassVar[int] = 1

    def make_hook(self, pool_size: int) -> VendorHttpHook:
        raise NotImplementedError

    def claim_size(self, hook: Any) -> int:
        """Rows claimed at once: one request's worth (so a crash leaves at most that in doubt)."""
        return self.batch_size

    def batches(self, rows: Sequence[Row], size: int | None = None) -> list[list[Row]]:
        size = size or self.batch_size
        return [list(rows[i : i + size]) for i in range(0, len(rows), size)]

    def send_batch(self, hook: Any, rows: Sequence[Row]) -> list[Outcome]:
        raise NotImplementedError


class TelepromAdapter(SendAdapter):
    """MessageWpp batches: rows grouped by (account, template); our ``message_key`` is the trackingNumber."""

    vendor = "teleprom"
    folder = "teleprom_hsm"
    validator = TelepromRowValidator
    batch_size = DEFAULT_BATCH_SIZE
    concurrency = 4

    def make_hook(self, pool_size: int) -> TelepromHook:
        return TelepromHook(pool_size=pool_size)

    def claim_size(self, hook: TelepromHook) -> int:
        return hook.batch_size  # the connection extra ``batch_size``

    def batches(self, rows: Sequence[Row], size: int | None = None) -> list[list[Row]]:
        def by_template(r: Row) -> tuple[int, int]:
            return (r.account_id, r.template_id)

        return [list(group) for _, group in groupby(sorted(rows, key=by_template), key=by_template)]

    def send_batch(self, hook: TelepromHook, rows: Sequence[Row]) -> list[Outcome]:
        message = HsmMessage(
            account_id=rows[0].account_id,
            template_id=rows[0].template_id,
            destinations=[HsmDestination(r.message_key, r.phone, r.params or []) for r in rows],
        )
        answer = hook.send_hsm([message])
        return [
            Outcome(row.message_key, ACCEPTED, result.message_id, vendor_answer=result.status)
            if result.accepted
            else Outcome(row.message_key, REJECTED, error=f"Teleprom: {result.status}", vendor_answer=result.status)
            for row, result in zip(rows, answer.results, strict=True)
        ]


class ItdAdapter(SendAdapter):
    """sendWhatsapp, one message per request; ITD takes no client id, so its ``uuid`` is the link."""

    vendor = "itd"
    folder = "itd_whatsapp"
    validator = ItdRowValidator
    batch_size = 1
    concurrency = 8
    requests_per_s = 50.0

    def make_hook(self, pool_size: int) -> ItdHook:
        return ItdHook(pool_size=pool_size)

    def send_batch(self, hook: ItdHook, rows: Sequence[Row]) -> list[Outcome]:
        outcomes = []
        for row in rows:
            message = ItdMessage(row.content_type, row.content, row.phone, row.caption, row.description, row.url_thumb)
            outcomes.append(Outcome(row.message_key, ACCEPTED, hook.send(message)))
        return outcomes


class WavyAdapter(SendAdapter):
    """send-bulk-sms, up to 1000 a request; our ``message_key`` is the correlationId."""

    vendor = "wavy"
    folder = "wavy_sms"
    validator = WavyRowValidator
    batch_size = MAX_BULK
    concurrency = 4
    requests_per_s = 50.0

    def make_hook(self, pool_size: int) -> WavyHook:
        return WavyHook(pool_size=pool_size)

    def send_batch(self, hook: WavyHook, rows: Sequence[Row]) -> list[Outcome]:
        receipts = hook.send_bulk([SmsMessage(r.phone, r.content, correlation_id=r.message_key) for r in rows])
        return [Outcome(row.message_key, ACCEPTED, receipt.id) for row, receipt in zip(rows, receipts, strict=True)]


ADAPTERS: dict[str, type[SendAdapter]] = {a.vendor: a for a in (TelepromAdapter, ItdAdapter, WavyAdapter)}
