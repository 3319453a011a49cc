"""Airflow hook for Teleprom WhatsApp: login token, catalogue, HSM and free-form sends, number checks."""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import pendulum
import requests
from airflow.sdk.log import mask_secret

from latam_messaging.common import errors as base
from latam_messaging.common.timeparse import parse_iso
from latam_messaging.common.transport import VendorHttpHook
from latam_messaging.teleprom import contract
from latam_messaging.teleprom.connection import CONN_TYPE, FORM
from latam_messaging.teleprom.exceptions import (  # noqa: F401 - re-exported for callers of the hook
    TELEPROM_ERRORS,
    TelepromAmbiguousError,
    TelepromAuthError,
    TelepromError,
    TelepromNoCreditsError,
    TelepromNotFoundError,
    TelepromPasswordExpiredError,
    TelepromTransientError,
    TelepromValidationError,
)
from latam_messaging.teleprom.models import (
    Account,
    FreeFormDestination,
    HsmMessage,
    LinkClicks,
    NumberLookupResult,
    SendBatchResult,
    SendResult,
    SimSwapResult,
    Template,
)


@dataclass(frozen=True)
class _Token:
    value: str
    expires_at: pendulum.DateTime


# One token per (base URL, user) for the whole process: Teleprom hands out the same token for 24 h,
# so every hook, thread and task in this worker shares it instead of logging in again.
_TOKENS: dict[tuple[str, str], _Token] = {}
_TOKENS_LOCK = threading.Lock()


def _no_auth(request: requests.PreparedRequest) -> requests.PreparedRequest:
    return request


class TelepromTokenAuth(requests.auth.AuthBase):
    """``Authorization: Bearer <token>``: one login per token. Teleprom hands out the same token until
    it expires, so it is renewed only once ``expires`` has passed, or when the vendor refuses it (401)."""

    def __init__(self, hook: TelepromHook):
        self._hook = hook

    @property
    def _key(self) -> tuple[str, str]:
        return (self._hook.base_url, self._hook.connection.login or "")

    def token(self) -> str:
        with _TOKENS_LOCK:
            cached = _TOKENS.get(self._key)
            if cached is None or pendulum.now("UTC") >= cached.expires_at:
                cached = _TOKENS[self._key] = self._hook.login()
            return cached.value

    def refresh(self, refused: requests.PreparedRequest) -> None:
        """Forget the token the vendor refused (unless another thread already replaced it)."""
        with _TOKENS_LOCK:
            cached = _TOKENS.get(self._key)
            if cached is not None and refused.headers.get("Authorization") == f"Bearer {cached.value}":
                del _TOKENS[self._key]

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers["Authorization"] = f"Bearer {self.token()}"
        return request


class TelepromHook(VendorHttpHook):
    """Teleprom WhatsApp API (``https://mayten.cloud``).

    Connection: host = base URL, login = username, password = password. Extras: ``timeout``,
    ``max_retries``, ``batch_size`` (destinations per MessageWpp request), ``default_account`` (the
    account that answers an opt-out's confirmation when the reply names none of ours), ``shorten_links``
    (true: links in template parameters are shortened per campaign at ingest, ``teleprom/links.py``).

    :param teleprom_conn_id: the Airflow connection to use.
    """

    conn_name_attr = "teleprom_conn_id"
    default_conn_name = "teleprom_default"
    conn_type = CONN_TYPE
    connection_form = FORM
    hook_name = "Teleprom (WhatsApp)"
    errors = TELEPROM_ERRORS
    hook_extras = VendorHttpHook.hook_extras | {"batch_size", "default_account", "shorten_links"}

    def __init__(self, teleprom_conn_id: str = default_conn_name, **kwargs: Any) -> None:
        super().__init__(teleprom_conn_id, **kwargs)
        self.teleprom_conn_id = teleprom_conn_id

    @staticmethod
    def forget_tokens() -> None:
        """Drop every cached token of this process (the next call logs in again)."""
        with _TOKENS_LOCK:
            _TOKENS.clear()

    def build_auth(self, connection) -> requests.auth.AuthBase:
        return TelepromTokenAuth(self)

    @property
    def batch_size(self) -> int:
        return int(self.extras.get("batch_size") or contract.DEFAULT_BATCH_SIZE)

    # ---- auth ----------------------------------------------------------------------------------
    def login(self) -> _Token:
        """POST /Auth. Warns when the password expires soon; raises when it has expired."""
        conn = self.connection
        if not conn.login or not conn.password:
            raise TelepromAuthError(f"connection {self.conn_id!r} needs a login (username) and a password")
        self.get_conn()  # sets base_url
        try:
            answer = self.call(
                contract.AUTH.method,
                contract.AUTH.path,
                json={"username": conn.login, "password": conn.password},
                auth=_no_auth,
            )
        except base.VendorAuthError as exc:
            raise TelepromAuthError(
                f"login refused for user {conn.login!r}: check the login and password of connection {self.conn_id!r}",
                status_code=exc.status_code,
            ) from exc
        token = str(answer["token"])
        mask_secret(token)
        state = answer.get("passwordState")  # Sim Swap's /Auth may omit it
        if state == "Expired":
            raise TelepromPasswordExpiredError(
                f"the password of user {conn.login!r} has expired. Ask your Teleprom account manager to "
                f"renew it, then update the password of Airflow connection {self.conn_id!r}"
            )
        if state == "ExpiresSoon":
            self.log.warning(
                "Teleprom says the password of user %r expires soon: renew it with your account manager "
                "and update connection %r before sends start failing",
                conn.login,
                self.conn_id,
            )
        expires_at = parse_iso(answer["expires"], contract.VENDOR_TIMEZONE)
        self.log.info("Logged in to Teleprom as %r; token valid until %s", conn.login, expires_at.to_iso8601_string())
        return _Token(token, expires_at)

    # ---- catalogue -----------------------------------------------------------------------------
    def get_templates(self) -> list[Template]:
        answer = self.call(contract.TEMPLATES.method, contract.TEMPLATES.path)
        return [Template.from_api(item) for item in (answer or {}).get("hsms", [])]

    def get_accounts(self) -> list[Account]:
        answer = self.call(contract.ACCOUNTS.method, contract.ACCOUNTS.path)
        return [Account.from_api(item) for item in (answer or {}).get("ruteadors", [])]

    # ---- sends ---------------------------------------------------------------------------------
    def send_hsm(self, messages: Sequence[HsmMessage]) -> SendBatchResult:
        """One MessageWpp request. Results come one per destination, in request order.

        Not retried when the request may have reached Teleprom (``TelepromAmbiguousError``): the
        caller's ledger decides, so that no message goes out twice.
        """
        body = {"messages": [m.to_api() for m in messages]}
        answer = self.call(contract.SEND_HSM.method, contract.SEND_HSM.path, json=body, idempotent=False)
        expected = [d.tracking_number for m in messages for d in m.destinations]
        return self._send_results(answer, expected)

    def send_free_form(self, account_id: int, destinations: Sequence[FreeFormDestination]) -> SendBatchResult:
        """Session message inside WhatsApp's 24 h window [INFERRED contract, see ``contract.py``]."""
        body = contract.free_form_body(account_id, [d.to_api() for d in destinations])
        answer = self.call(contract.SEND_FREE_FORM.method, contract.SEND_FREE_FORM.path, json=body, idempotent=False)
        return self._send_results(answer, [d.tracking_number for d in destinations])

    def _send_results(self, answer: Any, expected: list[str]) -> SendBatchResult:
        responses = (answer or {}).get("responses", [])
        if len(responses) != len(expected):
            raise TelepromError(f"answer has {len(responses)} results for {len(expected)} destinations")
        results = []
        for tracking, item in zip(expected, responses, strict=True):
            results.append(
                SendResult(
                    tracking_number=str(item.get("trackingNumber") or tracking),
                    message_id=item.get("messageId"),
                    status=str(item.get("status") or ""),
                )
            )
        return SendBatchResult(results=results, track_uuid=(answer or {}).get("trackUuid"))

    # ---- number checks and shortener -----------------------------------------------------------
    def number_lookup(self, numbers: Iterable[str]) -> list[NumberLookupResult]:
        body = contract.number_lookup_body(list(numbers))
        answer = self.call(contract.NUMBER_LOOKUP.method, contract.NUMBER_LOOKUP.path, json=body)
        return [NumberLookupResult.from_api(item) for item in contract.number_lookup_results(answer or {})]

    def sim_swap(self, number: str, max_age_hours: int = 240) -> SimSwapResult:
        body = contract.sim_swap_body(number, max_age_hours)
        answer = self.call(contract.SIM_SWAP.method, contract.SIM_SWAP.path, json=body)
        return SimSwapResult.from_api(answer or {})

    def shorten(self, url: str) -> str:
        answer = self.call(contract.SHORTEN.method, contract.SHORTEN.path, json=contract.shorten_body(url))
        return contract.short_url(answer)

    def click_export(self) -> list[LinkClicks]:
        """Every short link with its clicks so far; an item without a ``shortUrl`` is skipped (logged)."""
        answer = self.call(contract.CLICK_EXPORT.method, contract.CLICK_EXPORT.path)
        links = []
        for item in contract.click_export_items(answer):
            try:
                links.append(LinkClicks.from_api(item))
            except (KeyError, TypeError, ValueError, AttributeError):
                self.log.warning("Teleprom click export item without a usable shortUrl/qtyClicks skipped")
        return links

    def test_connection(self) -> tuple[bool, str]:
        """Log in and list the accounts: proves host, credentials and token use."""
        try:
            accounts = self.get_accounts()
        except Exception as exc:
            return False, str(exc)
        return True, f"Connected to Teleprom: {len(accounts)} WhatsApp account(s) visible"
