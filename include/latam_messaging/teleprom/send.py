"""Sending Teleprom HSM drops: the row validator (templates from ``teleprom_templates``) and the
MessageWpp adapter (rows grouped by account and template; our ``message_key`` is the trackingNumber).
Rows with no template (an opt-out's confirmation: its text in ``content``) go out as free-form
messages (MessageWppFreeForm), which WhatsApp allows inside the 24-hour customer-service window."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from itertools import groupby
from typing import Any

import sqlalchemy as sa
from airflow.sdk.exceptions import AirflowNotFoundException

from latam_messaging.consent.confirm import CannotConfirm
from latam_messaging.drops.validation import RowRejected, RowValidator, ValidationContext
from latam_messaging.lifecycle import MessageState
from latam_messaging.sending.adapters import Row, SendAdapter
from latam_messaging.sending.ledger import SendOutcome
from latam_messaging.teleprom import links
from latam_messaging.teleprom.contract import DEFAULT_BATCH_SIZE
from latam_messaging.teleprom.hook import TelepromHook
from latam_messaging.teleprom.models import FreeFormDestination, HsmDestination, HsmMessage, SendBatchResult
from latam_messaging.warehouse import schema
from latam_messaging.warehouse.db import Warehouse

log = logging.getLogger(__name__)
ACCOUNTS = schema.teleprom_accounts
OUTBOUND = schema.outbound_messages
#: The most digits an account id (BIGINT) can have: a longer number is no account id.
ACCOUNT_ID_DIGITS = 18


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

    def price_category(self, row: Mapping[str, Any], reference: Sequence[Mapping[str, Any]]) -> str | None:
        """The template's category (``MARKETING``, ``UTILITY``, …): what Meta bills a template message in."""
        memo = getattr(self, "_categories", None)
        if memo is None or memo[0] is not reference:
            by_id = {t.get("template_id"): (t.get("category") or "").lower() or None for t in reference}
            memo = self._categories = (reference, by_id)
        return memo[1].get(row.get("template_id"))

    def make_hook(self, pool_size: int) -> TelepromHook:
        return TelepromHook(pool_size=pool_size)

    def claim_size(self, hook: TelepromHook) -> int:
        return hook.batch_size  # the connection extra ``batch_size``

    def batches(self, rows: Sequence[Row], size: int | None = None) -> list[list[Row]]:
        """One request per (kind, account, template): HSM rows by template, free-form rows (no
        template) by the account they are sent from."""

        def request_of(r: Row) -> tuple[bool, int, int]:
            return (r.template_id is None, r.account_id or 0, r.template_id or 0)

        return [list(group) for _, group in groupby(sorted(rows, key=request_of), key=request_of)]

    def send_batch(self, hook: TelepromHook, rows: Sequence[Row]) -> list[SendOutcome]:
        if rows[0].template_id is None:
            return self._send_free_form(hook, rows)
        message = HsmMessage(
            account_id=rows[0].account_id,
            template_id=rows[0].template_id,
            destinations=[HsmDestination(r.message_key, r.phone, r.params or []) for r in rows],
        )
        return self._outcomes(rows, hook.send_hsm([message]))

    def _send_free_form(self, hook: TelepromHook, rows: Sequence[Row]) -> list[SendOutcome]:
        """Rows of one account as free-form messages (their ``content`` is the text). A row with no
        account or no text is refused here: there is nothing Teleprom could send."""
        sendable = [r for r in rows if r.account_id is not None and r.content]
        keys = {r.message_key for r in sendable}
        refused = [
            SendOutcome(r.message_key, MessageState.REJECTED, error="a free-form message needs an account and a text")
            for r in rows
            if r.message_key not in keys
        ]
        if not sendable:
            return refused
        destinations = [FreeFormDestination(r.message_key, r.phone, text=r.content) for r in sendable]
        return self._outcomes(sendable, hook.send_free_form(sendable[0].account_id, destinations)) + refused

    @staticmethod
    def _outcomes(rows: Sequence[Row], answer: SendBatchResult) -> list[SendOutcome]:
        """Teleprom's answer, one result per destination in request order (MessageWpp and free form alike)."""
        return [
            SendOutcome(row.message_key, MessageState.ACCEPTED, result.message_id, vendor_answer=result.status)
            if result.accepted
            else SendOutcome(row.message_key, MessageState.REJECTED, error=f"Teleprom: {result.status}", vendor_answer=result.status)
            for row, result in zip(rows, answer.results, strict=True)
        ]

    # ---- links of template parameters (teleprom/links.py) -------------------------------------------
    def prepare_rows(self, warehouse: Warehouse, campaign_id: str, rows: list[dict[str, Any]]) -> None:
        """With the ``shorten_links`` extra of ``teleprom_default`` on: each http(s) link of the rows'
        parameters becomes the campaign's short link for it (``links.shorten_rows``)."""
        hook = self._shortener()
        if hook is not None:
            stats = links.shorten_rows(warehouse, hook, campaign_id, rows)
            if stats.urls:
                log.info("campaign %s: links %s", campaign_id, stats)

    def _shortener(self) -> TelepromHook | None:
        """The hook that shortens links, when the connection asks for it (read once per adapter)."""
        if not hasattr(self, "_shortener_hook"):
            self._shortener_hook: TelepromHook | None = None
            try:
                hook = TelepromHook(pool_size=1)
                wanted = hook.extras.get("shorten_links")
            except AirflowNotFoundException:
                wanted = None
            if wanted is True or str(wanted).strip().lower() in ("true", "1", "yes"):
                self._shortener_hook = hook
        return self._shortener_hook

    # ---- confirmations of opt-outs (consent/confirm.py) ----------------------------------------------
    def confirmation_fields(self, conn: sa.Connection, message: Mapping[str, Any]) -> dict[str, Any]:
        """A free-form text from the account the customer wrote to: the account of our message it answers
        (``in_reply_to``: V3's ``gs_id`` is the id MessageWpp answered, V0's ``identificador`` our
        message_key), else the reply's ``to_account`` when it is a known active account written as a number
        (its id, or its number: V3 replies carry the display phone number; V0's ``empresa`` is a company
        name, never read for digits), else the connection's ``default_account``."""
        account = (
            self._account_replied_to(conn, message.get("in_reply_to"))
            or self._account_named(conn, message.get("to_account"))
            or self._default_account()
        )
        if account is None:
            raise CannotConfirm(
                "no Teleprom account to answer from: the reply names no known account and no message of ours, "
                "and connection teleprom_default has no default_account extra"
            )
        return {"account_id": account, "content_type": "TEXT"}

    @staticmethod
    def _account_named(conn: sa.Connection, to_account: Any) -> int | None:
        text = to_account.strip() if isinstance(to_account, str) else ""
        if not text or not all(c.isdigit() or c in "+ -" for c in text):
            return None  # a name ("Farmacia 2"), not a number
        digits = "".join(c for c in text if c.isdigit())
        if not digits:
            return None
        named = ACCOUNTS.c.source_number == digits
        if len(digits) <= ACCOUNT_ID_DIGITS:
            named = sa.or_(ACCOUNTS.c.account_id == int(digits), named)
        query = sa.select(ACCOUNTS.c.account_id).where(ACCOUNTS.c.active, named).order_by(ACCOUNTS.c.account_id)
        return conn.execute(query.limit(1)).scalar()

    @staticmethod
    def _account_replied_to(conn: sa.Connection, in_reply_to: Any) -> int | None:
        if not isinstance(in_reply_to, str) or not in_reply_to:
            return None
        ours = sa.or_(OUTBOUND.c.vendor_message_id == in_reply_to, OUTBOUND.c.message_key == in_reply_to)
        query = sa.select(OUTBOUND.c.account_id).where(
            OUTBOUND.c.vendor == "teleprom", ours, OUTBOUND.c.account_id.is_not(None)
        )
        return conn.execute(query.limit(1)).scalar()

    def _default_account(self) -> int | None:
        """The ``default_account`` extra of ``teleprom_default`` (read once per adapter), or None."""
        if not hasattr(self, "_default"):
            self._default: int | None = None
            try:
                value = TelepromHook().extras.get("default_account")
            except AirflowNotFoundException:
                value = None
            if value not in (None, ""):
                try:
                    self._default = int(value)
                except (TypeError, ValueError):
                    log.warning("connection teleprom_default: default_account %r is not an account id", value)
        return self._default
