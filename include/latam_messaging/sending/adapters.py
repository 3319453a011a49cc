"""What a vendor's send adapter provides (each in ``<vendor>/send.py``): which hook, which row
validator and reference data, how rows group into requests, how answers map, and how ``unknown``
rows are looked up at the vendor, if they can be.

Everything else (drops, validation, ledger, claims, scheduling, concurrency, accounting) is shared
in ``pipeline.py``. An adapter raises the vendor's typed errors for a whole-batch failure and
returns one :class:`SendOutcome` per row otherwise.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import sqlalchemy as sa

from latam_messaging.common.transport import VendorHttpHook
from latam_messaging.consent.confirm import CannotConfirm
from latam_messaging.drops.validation import RowValidator
from latam_messaging.sending.ledger import SendOutcome, SendRow
from latam_messaging.warehouse.db import Warehouse

Row = SendRow


class SendAdapter:
    vendor: ClassVar[str]
    folder: ClassVar[str]
    #: The channel (``whatsapp``, ``sms``): a suppression scoped to it blocks this vendor's sends.
    channel: ClassVar[str | None] = None
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

    def send_batch(self, hook: Any, rows: Sequence[Row]) -> list[SendOutcome]:
        raise NotImplementedError

    def confirmation_fields(self, conn: sa.Connection, message: Mapping[str, Any]) -> dict[str, Any]:
        """What a free-text answer to the inbound ``message`` (an opt-out's confirmation,
        ``consent/confirm.py``) needs on its ledger row beyond vendor, phone and content: e.g. the
        account to send from, the content type :meth:`send_batch` expects. Raises
        :class:`CannotConfirm` (the reason, no phone or text) when it cannot be answered; by default a
        vendor cannot."""
        raise CannotConfirm(f"{self.vendor} sends no free-text reply")

    def prepare_rows(self, warehouse: Warehouse, campaign_id: str, rows: list[dict[str, Any]]) -> None:
        """Adjust one chunk of a campaign's validated rows, in place, before ingest stages them (e.g.
        shorten the links of their parameters): never adds or drops a row. An exception is logged by
        the pipeline and the rows are staged as they are. By default: nothing."""

    def price_category(self, row: Mapping[str, Any], reference: Sequence[Mapping[str, Any]]) -> str | None:
        """The pricing category a validated ``row`` will likely be billed in (``campaigns.pricing``), for a
        preview's estimate: e.g. its template's category. None: the vendor's ``default`` price."""
        return None

    def load_reference(self, warehouse: Warehouse) -> list[dict[str, Any]]:
        """Reference data the row validator needs (``ValidationContext.reference``); none by default."""
        return []

    #: Whether :meth:`reconcile_unknown` can look ``unknown`` rows up at the vendor.
    reconciles_unknown: ClassVar[bool] = False

    def reconcile_unknown(self, warehouse: Warehouse, hook: Any) -> int:
        """Look ``unknown`` rows up at the vendor; those it has become ``accepted``. Returns how many."""
        raise NotImplementedError
