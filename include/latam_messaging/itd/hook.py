"""Airflow hook for ITD Chile WhatsApp: send, status by key, credits, received messages."""

from __future__ import annotations

from typing import Any

import pendulum
import requests

from latam_messaging.common import errors as base
from latam_messaging.common.phones import split_country_code
from latam_messaging.common.timeparse import format_ddmmyyyy
from latam_messaging.common.transport import VendorHttpHook
from latam_messaging.itd import contract
from latam_messaging.itd.connection import CONN_TYPE, FORM
from latam_messaging.itd.exceptions import (  # noqa: F401 - re-exported for callers of the hook
    ITD_ERRORS,
    ItdAmbiguousError,
    ItdAuthError,
    ItdError,
    ItdNoCreditsError,
    ItdNotFoundError,
    ItdPasswordExpiredError,
    ItdTransientError,
    ItdValidationError,
)
from latam_messaging.itd.models import ItdInbound, ItdMessage, ItdStatus


class ItdTokenAuth(requests.auth.AuthBase):
    """``Authorization: <scheme> <API token>``; the token is made in ITD's web panel."""

    def __init__(self, scheme: str, token: str):
        self._header = f"{scheme} {token}".strip()

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers["Authorization"] = self._header
        return request


class ItdHook(VendorHttpHook):
    """ITD Chile WhatsApp API (``https://ida.itdchile.cl``, paths under ``/api/v2/whatsapp/``).

    Connection: host = base URL, password = API token (JWT). Extras: ``auth_scheme`` (default
    ``Bearer``), ``timeout``, ``max_retries``.

    A 502 ``NOT ENOUGH CREDITS`` raises :class:`ItdNoCreditsError` (never retried); a 503
    ``NO WHATSAPP MESSAGES`` is an empty result.
    """

    conn_name_attr = "itd_conn_id"
    default_conn_name = "itd_default"
    conn_type = CONN_TYPE
    connection_form = FORM
    hook_name = "ITD Chile (WhatsApp)"
    errors = ITD_ERRORS
    hook_extras = VendorHttpHook.hook_extras | {"auth_scheme"}

    def __init__(self, itd_conn_id: str = default_conn_name, **kwargs: Any) -> None:
        super().__init__(itd_conn_id, **kwargs)
        self.itd_conn_id = itd_conn_id

    def build_auth(self, connection) -> requests.auth.AuthBase:
        if not connection.password:
            raise ItdAuthError(f"connection {self.conn_id!r} needs the API token in its password field")
        scheme = connection.extra_dejson.get("auth_scheme") or contract.DEFAULT_AUTH_SCHEME
        return ItdTokenAuth(scheme, connection.password)

    def error_for(self, response: requests.Response) -> base.VendorError:
        """ITD reuses 502 and 503 for business answers; the body's ``statusApi`` tells them apart."""
        try:
            body = response.json()
        except ValueError:
            body = None
        status_api = body.get("statusApi") if isinstance(body, dict) else None
        message = body.get("message") if isinstance(body, dict) else None
        if status_api == contract.NO_CREDITS_STATUS:
            return ItdNoCreditsError(
                "not enough credits: sending stops until the account is topped up",
                status_code=response.status_code,
                vendor_message=message,
            )
        if status_api == contract.INVALID_MESSAGE_STATUS:
            return ItdNotFoundError(message or "not found", status_code=response.status_code, vendor_message=message)
        return super().error_for(response)

    # ---- endpoints -----------------------------------------------------------------------------
    def send(self, message: ItdMessage) -> str:
        """Send one WhatsApp message; returns its ``uuid`` (the key for status look-ups)."""
        prefix, national = split_country_code(message.phone)
        body = {
            "content_type": message.content_type,
            "content": message.content,
            "phone": national,
            "prefijo": prefix,
        }
        for name in ("caption", "description", "url_thumb"):
            if getattr(message, name):
                body[name] = getattr(message, name)
        answer = self.call(contract.SEND.method, contract.SEND.path, json=body, idempotent=False)
        return str(answer["uuid"])

    def status(self, key: str) -> ItdStatus:
        """Status of one sent message. Unknown key → :class:`ItdNotFoundError`."""
        answer = self.call(contract.STATUS.method, contract.STATUS.path, json={"key": key})
        return ItdStatus.from_api(key, answer.get("data") or {})

    def credits(self) -> int:
        """Credits left (documented as a String, shown as a number: both accepted)."""
        answer = self.call(contract.CREDITS.method, contract.CREDITS.path, json={})
        return int(float(answer["data"]))

    def received(self, sender_phone: str, day: pendulum.Date, top: int = 100) -> list[ItdInbound]:
        """Messages of one phone (E.164 digits) on one day; an empty day is ``[]``, not an error."""
        body = {"senderPhone": sender_phone, "sendAt": format_ddmmyyyy(day), "top": top}
        try:
            answer = self.call(contract.RECEIVED.method, contract.RECEIVED.path, json=body)
        except ItdNotFoundError as exc:
            if exc.vendor_message == contract.NO_MESSAGES_TEXT:
                return []
            raise
        messages = []
        for item in answer.get("data") or []:  # every direction; an item without a uuid costs only itself
            try:
                messages.append(ItdInbound.from_api(item))
            except (KeyError, TypeError, AttributeError):
                self.log.warning("ITD received message without a uuid skipped")
        return messages

    def test_connection(self) -> tuple[bool, str]:
        try:
            left = self.credits()
        except Exception as exc:
            return False, str(exc)
        return True, f"Connected to ITD Chile: {left} credits left"
