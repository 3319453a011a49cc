"""Sending Teleprom HSM drops: the row validator (templates from ``teleprom_templates``) and the
MessageWpp adapter (rows grouped by account and template; our ``message_key`` is the trackingNumber)."""

from __future__ import annotations

from collections.abc import Sequence
from itertools import groupby
from typing import Any

from latam_messaging.drops.validation import RowRejected, RowValidator, ValidationContext
from latam_messaging.lifecycle import MessageState
from latam_messaging.sending.adapters import Row, SendAdapter
from latam_messaging.sending.ledger import SendOutcome
from latam_messaging.teleprom.contract import DEFAULT_BATCH_SIZE
from latam_messaging.teleprom.hook import TelepromHook
from latam_messaging.teleprom.models import HsmDestination, HsmMessage
from latam_messaging.warehouse import schema
from latam_messaging.warehouse.db import Warehouse


class TelepromRowValidator(RowValidator):
    """HSM rows: the template (id or name) must exist, be Accepted, belong to the account, and get
    exactly as many parameter values as it has placeholders."""

    vendor = "teleprom"
    required_columns = frozenset({"phone", "template"})

    def __init__(self, context: ValidationContext):
        super().__init__(context)
        self._by_id = {int(t["template_id"]): t for t in context.reference}
        self._by_name: dict[str, list[dict[str, Any]]] = {}
        for template in context.reference:
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


class TelepromAdapter(SendAdapter):
    """MessageWpp batches: rows grouped by (account, template); our ``message_key`` is the trackingNumber."""

    vendor = "teleprom"
    folder = "teleprom_hsm"
    channel = "whatsapp"
    validator = TelepromRowValidator
    batch_size = DEFAULT_BATCH_SIZE
    concurrency = 4

    def load_reference(self, warehouse: Warehouse) -> list[dict[str, Any]]:
        return warehouse.rows(schema.teleprom_templates)

    def make_hook(self, pool_size: int) -> TelepromHook:
        return TelepromHook(pool_size=pool_size)

    def claim_size(self, hook: TelepromHook) -> int:
        return hook.batch_size  # the connection extra ``batch_size``

    def batches(self, rows: Sequence[Row], size: int | None = None) -> list[list[Row]]:
        def by_template(r: Row) -> tuple[int, int]:
            return (r.account_id, r.template_id)

        return [list(group) for _, group in groupby(sorted(rows, key=by_template), key=by_template)]

    def send_batch(self, hook: TelepromHook, rows: Sequence[Row]) -> list[SendOutcome]:
        message = HsmMessage(
            account_id=rows[0].account_id,
            template_id=rows[0].template_id,
            destinations=[HsmDestination(r.message_key, r.phone, r.params or []) for r in rows],
        )
        answer = hook.send_hsm([message])
        return [
            SendOutcome(row.message_key, MessageState.ACCEPTED, result.message_id, vendor_answer=result.status)
            if result.accepted
            else SendOutcome(row.message_key, MessageState.REJECTED, error=f"Teleprom: {result.status}", vendor_answer=result.status)
            for row, result in zip(rows, answer.results, strict=True)
        ]
