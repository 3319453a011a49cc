"""Airflow hook for Wavy SMS: single and bulk sends, status search and queue, inbound (MO)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import pendulum
import requests

from latam_messaging.common.ratelimit import RateLimiter
from latam_messaging.common.transport import VendorHttpHook
from latam_messaging.wavy import contract
from latam_messaging.wavy.connection import CONN_TYPE, FORM
from latam_messaging.wavy.exceptions import (  # noqa: F401 - re-exported for callers of the hook
    WAVY_ERRORS,
    WavyAmbiguousError,
    WavyAuthError,
    WavyError,
    WavyNoCreditsError,
    WavyNotFoundError,
    WavyPasswordExpiredError,
    WavyTransientError,
    WavyValidationError,
)
from latam_messaging.wavy.models import SmsInbound, SmsMessage, SmsReceipt, SmsStatus


class WavyHeaderAuth(requests.auth.AuthBase):
    """``UserName`` and ``AuthenticationToken`` headers on every call."""

    def __init__(self, user: str, token: str):
        self._headers = {contract.USER_HEADER: user, contract.TOKEN_HEADER: token}

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers.update(self._headers)
        return request


class WavyHook(VendorHttpHook):
    """Wavy SMS API (``https://api-messaging.wavy.global``).

    Connection: host = base URL, login = UserName (user or e-mail), password = AuthenticationToken.
    Status queries are paced to the vendor's 1 request/s (``status_queries_per_s``).
    """

    conn_name_attr = "wavy_conn_id"
    default_conn_name = "wavy_default"
    conn_type = CONN_TYPE
    connection_form = FORM
    hook_name = "Wavy (SMS)"
    errors = WAVY_ERRORS

    def __init__(
        self,
        wavy_conn_id: str = default_conn_name,
        *,
        status_queries_per_s: float = contract.STATUS_QUERIES_PER_S,
        **kwargs: Any,
    ) -> None:
        super().__init__(wavy_conn_id, **kwargs)
        self.wavy_conn_id = wavy_conn_id
        # a little under the vendor's ceiling: network jitter must not push two calls into one second
        self._status_pace = RateLimiter(status_queries_per_s * 0.9)

    def build_auth(self, connection) -> requests.auth.AuthBase:
        if not connection.login or not connection.password:
            raise WavyAuthError(
                f"connection {self.conn_id!r} needs the UserName (login) and AuthenticationToken (password)"
            )
        return WavyHeaderAuth(connection.login, connection.password)

    # ---- sends ---------------------------------------------------------------------------------
    def send_sms(self, message: SmsMessage) -> SmsReceipt:
        answer = self.call(contract.SEND.method, contract.SEND.path, json=message.to_api(), idempotent=False)
        return SmsReceipt(id=str(answer["id"]), correlation_id=answer.get("correlationId"))

    def send_bulk(
        self, messages: Sequence[SmsMessage], default_values: dict[str, Any] | None = None
    ) -> list[SmsReceipt]:
        """Send in requests of at most 1000 messages; receipts come back in input order."""
        receipts: list[SmsReceipt] = []
        for start in range(0, len(messages), contract.MAX_BULK):
            chunk = messages[start : start + contract.MAX_BULK]
            body: dict[str, Any] = {"messages": [m.to_api() for m in chunk]}
            if default_values:
                body["defaultValues"] = default_values
            answer = self.call(contract.SEND_BULK.method, contract.SEND_BULK.path, json=body, idempotent=False)
            items = answer.get("messages") or []
            if len(items) != len(chunk):
                raise WavyError(f"bulk answer has {len(items)} receipts for {len(chunk)} messages")
            receipts.extend(SmsReceipt(id=str(i["id"]), correlation_id=i.get("correlationId")) for i in items)
        return receipts

    # ---- statuses ------------------------------------------------------------------------------
    def status_search(self, ids: Iterable[str] = (), correlation_ids: Iterable[str] = ()) -> list[SmsStatus]:
        body = {"ids": list(ids), "correlationIds": list(correlation_ids)}
        self._status_pace.acquire()
        answer = self.call(contract.STATUS_SEARCH.method, contract.STATUS_SEARCH.path, json=body)
        return [SmsStatus.from_api(item) for item in (answer or {}).get(contract.STATUS_ENVELOPE, [])]

    def status_queue_page(self) -> dict[str, Any]:
        """One raw page of ``status/list``. It is a consume-once queue: store the raw page before
        parsing it (``SmsStatus.from_api``), or a crash loses those statuses for good."""
        self._status_pace.acquire()
        return self.call(contract.STATUS_LIST.method, contract.STATUS_LIST.path) or {}

    # ---- inbound (MO) --------------------------------------------------------------------------
    def inbound_queue_page(self) -> dict[str, Any]:
        """One raw page of ``receive/list`` (consume-once, ≤1000): store before parsing."""
        self._status_pace.acquire()
        return self.call(contract.RECEIVE_LIST.method, contract.RECEIVE_LIST.path) or {}

    def inbound_search(self, start: pendulum.DateTime, end: pendulum.DateTime) -> list[SmsInbound]:
        """MO received between two aware times (any zone: sent as Wavy's wall-clock time)."""
        params = {
            name: pendulum.instance(at).in_tz(contract.SEARCH_TIMEZONE).format(contract.SEARCH_TIME_FORMAT)
            for name, at in (("start", start), ("end", end))
        }
        self._status_pace.acquire()
        answer = self.call(contract.RECEIVE_SEARCH.method, contract.RECEIVE_SEARCH.path, params=params) or {}
        return [SmsInbound.from_api(item) for item in answer.get("messages", [])]

    @staticmethod
    def parse_statuses(page: dict[str, Any]) -> list[SmsStatus]:
        return [SmsStatus.from_api(item) for item in page.get(contract.STATUS_ENVELOPE, [])]

    @staticmethod
    def parse_inbound(page: dict[str, Any]) -> list[SmsInbound]:
        return [SmsInbound.from_api(item) for item in page.get("messages", [])]

    def test_connection(self) -> tuple[bool, str]:
        try:
            self.status_search(ids=["00000000-0000-0000-0000-000000000000"])
        except Exception as exc:
            return False, str(exc)
        return True, "Connected to Wavy: credentials accepted"
