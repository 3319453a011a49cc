"""One transport for the three vendors, built on the http provider's ``HttpHook``.

``HttpHook`` gives connection parsing, the base URL, extras and adapter mounting, but opens a new
Session per ``run()``, never retries 429 and logs response bodies on errors. ``VendorHttpHook`` keeps
what it gives and adds what a messaging client needs:

* one pooled, keep-alive ``requests.Session`` per hook, safe to share between worker threads;
* vendor auth as a ``requests.auth.AuthBase`` on that session, refreshed once on a 401;
* retries with exponential backoff and jitter (tenacity) on connection errors, timeouts, 429 and
  5xx only, honouring ``Retry-After``; other 4xx raise at once. Sends (``idempotent=False``) retry
  only what never reached the vendor (no connection, 429); a 5xx, timeout or cut stream is
  ``ambiguous`` and left to the ledger;
* typed errors per vendor, and no request or response bodies in any log line (they hold PII).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from functools import cached_property
from typing import Any, ClassVar

import requests
import tenacity
from airflow.providers.http.hooks.http import HttpHook
from airflow.sdk.log import mask_secret
from requests_toolbelt.adapters.socket_options import TCPKeepAliveAdapter
from urllib3.exceptions import ConnectTimeoutError

from latam_messaging.common import errors as base_errors
from latam_messaging.common.connection_form import COMMON_FIELDS, form_widgets, ui_field_behaviour
from latam_messaging.common.errors import VendorErrors

DEFAULT_TIMEOUT_S = 30
DEFAULT_MAX_RETRIES = 5


def _retry_after_seconds(response: requests.Response) -> float | None:
    value = response.headers.get("Retry-After")
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


class _WaitTransient(tenacity.wait.wait_base):
    """Exponential backoff with jitter, but never shorter than the vendor's ``Retry-After``."""

    def __init__(self, initial: float, maximum: float):
        self._backoff = tenacity.wait_exponential_jitter(initial=initial, max=maximum, jitter=initial)
        self._maximum = maximum

    def __call__(self, retry_state: tenacity.RetryCallState) -> float:
        wait = self._backoff(retry_state)
        exc = retry_state.outcome.exception() if retry_state.outcome else None
        retry_after = getattr(exc, "retry_after", None)
        if retry_after:
            wait = max(wait, min(retry_after, self._maximum))
        return wait


class VendorHttpHook(HttpHook):
    """Base of the vendor hooks. Subclasses set the class attributes and ``build_auth``."""

    conn_type: ClassVar[str]
    #: The connection form (``<vendor>/connection.py``): fields, labels, defaults of the extras.
    connection_form: ClassVar[dict[str, Any]] = {"conn-fields": COMMON_FIELDS}
    errors: ClassVar[VendorErrors]
    #: Connection extras that configure the hook; HttpHook would otherwise send them as headers.
    hook_extras: ClassVar[frozenset[str]] = frozenset({"timeout", "max_retries"})
    #: Base of the backoff, seconds. Tests and benchmarks may lower it.
    backoff_initial_s: float = 0.2
    backoff_max_s: float = 10.0

    def __init__(self, conn_id: str, *, pool_size: int = 32, max_retries: int | None = None) -> None:
        super().__init__(
            method="POST",
            http_conn_id=conn_id,
            auth_type=self._vendor_auth,
            adapter=TCPKeepAliveAdapter(idle=120, count=20, interval=30, pool_connections=4, pool_maxsize=pool_size),
        )
        self.conn_id = conn_id
        self._max_retries_override = max_retries

    # ---- Airflow connection form -------------------------------------------------------------
    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        return ui_field_behaviour(cls.connection_form)

    @classmethod
    def get_connection_form_widgets(cls) -> dict[str, Any]:
        return form_widgets(cls.connection_form)

    # ---- configuration -------------------------------------------------------------------------
    @cached_property
    def connection(self):
        """The Airflow connection, fetched once; its password is registered with the masker."""
        conn = self.get_connection(self.conn_id)
        if conn.password:
            mask_secret(conn.password)
        return conn

    @property
    def extras(self) -> Mapping[str, Any]:
        return self.connection.extra_dejson

    def _extra_number(self, name: str, default: float) -> float:
        value = self.extras.get(name)
        if value in (None, ""):
            default_from_form = self.connection_form["conn-fields"].get(name, {})
            return default_from_form.get("schema", {}).get("default", default)
        return float(value)

    @property
    def timeout(self) -> float:
        return self._extra_number("timeout", DEFAULT_TIMEOUT_S)

    @property
    def max_retries(self) -> int:
        if self._max_retries_override is not None:
            return self._max_retries_override
        return int(self._extra_number("max_retries", DEFAULT_MAX_RETRIES))

    @max_retries.setter
    def max_retries(self, value: int) -> None:
        self._max_retries_override = value

    # ---- session -----------------------------------------------------------------------------
    @cached_property
    def session(self) -> requests.Session:
        """The hook's one pooled Session (HttpHook's, with the vendor's auth), shared by every call and
        thread. ``cached_property`` builds it once, under its lock."""
        self.connection  # noqa: B018 - fetch and mask before HttpHook reads it
        session = super().get_conn()
        for name in self.hook_extras:
            session.headers.pop(name, None)
        session.headers.update({"Accept": "application/json"})
        return session

    def get_conn(self, headers: dict[str, Any] | None = None, extra_options: dict[str, Any] | None = None):
        """The hook's one pooled Session, created on first use and then reused by every call."""
        return self.session

    def _vendor_auth(self, *_login_password: Any) -> requests.auth.AuthBase | None:
        """HttpHook's public ``auth_type``: it calls it with (login, password) when the connection
        has a login, else without arguments; the vendor's auth is built from the whole connection."""
        return self.build_auth(self.connection)

    def build_auth(self, connection) -> requests.auth.AuthBase | None:
        """The vendor's authentication, attached to the Session."""
        raise NotImplementedError

    def close(self) -> None:
        session = self.__dict__.pop("session", None)
        if session is not None:
            session.close()

    # ---- calls -------------------------------------------------------------------------------
    def call(
        self,
        method: str,
        endpoint: str,
        *,
        json: Any = None,
        params: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        auth: Any = None,
        idempotent: bool = True,
    ) -> Any:
        """Send one request and return the decoded JSON of a 2xx answer.

        Transient failures of idempotent calls are retried. When ``idempotent`` is false (a send),
        only what provably did not reach the vendor is retried — a connection never made, a 429 —
        and anything else that may have reached it (a 5xx, a read timeout, a broken stream, a TLS
        error after connecting) is raised at once as ``errors.ambiguous``, so a send is never
        repeated blindly. ``auth`` replaces the session's auth for this call (a login request) and
        disables the re-login on 401.
        """

        def should_retry(exc: BaseException) -> bool:
            if not isinstance(exc, base_errors.VendorTransientError):
                return False
            return idempotent or not isinstance(exc, base_errors.VendorAmbiguousError)

        retrying = tenacity.Retrying(
            stop=tenacity.stop_after_attempt(self.max_retries + 1),
            wait=_WaitTransient(self.backoff_initial_s, self.backoff_max_s),
            retry=tenacity.retry_if_exception(should_retry),
            before_sleep=self._log_retry,
            reraise=True,
        )
        for attempt in retrying:
            with attempt:
                return self._call_once(method, endpoint, json, params, headers, auth, idempotent)
        raise AssertionError("unreachable")  # pragma: no cover

    def _call_once(self, method, endpoint, json, params, headers, auth, idempotent: bool = True) -> Any:
        response = self._send(method, endpoint, json, params, headers, auth, idempotent)
        if response.status_code == 401 and auth is None and self._refresh_auth(response):
            self.log.info("%s answered 401: logged in again, repeating %s once", self.conn_type, endpoint)
            response = self._send(method, endpoint, json, params, headers, auth, idempotent)
        if 200 <= response.status_code < 300:
            return self.decode(response)
        error = self.error_for(response)
        if not idempotent and response.status_code >= 500 and type(error) is self.errors.transient:
            # the vendor may have acted before failing: a send is not repeated on a 5xx
            raise self.errors.ambiguous(
                f"{endpoint} answered {response.status_code}: it may have been processed",
                status_code=response.status_code,
                vendor_message=error.vendor_message,
            )
        raise error

    def _send(self, method, endpoint, json, params, headers, auth=None, idempotent: bool = True) -> requests.Response:
        session = self.get_conn()
        url = self.url_from_endpoint(endpoint)
        started = time.monotonic()
        try:
            response = session.request(
                method, url, json=json, params=params, headers=headers, auth=auth, timeout=self.timeout
            )
        except requests.ConnectTimeout as exc:
            raise self.errors.transient(f"could not connect for {endpoint}: {type(exc).__name__}") from exc
        except requests.exceptions.SSLError as exc:  # a handshake failure, or a stream cut after sending
            kind = self.errors.transient if idempotent else self.errors.ambiguous
            raise kind(f"TLS error during {endpoint}: {type(exc).__name__}") from exc
        except requests.ConnectionError as exc:
            if _never_connected(exc):
                raise self.errors.transient(f"could not connect for {endpoint}") from exc
            raise self.errors.ambiguous(f"connection lost during {endpoint}: {type(exc).__name__}") from exc
        except requests.Timeout as exc:
            raise self.errors.ambiguous(f"no answer to {endpoint} within {self.timeout:g}s") from exc
        self.log.debug(
            "%s %s -> %s in %.0f ms", method, endpoint, response.status_code, (time.monotonic() - started) * 1000
        )
        return response

    def _refresh_auth(self, response: requests.Response) -> bool:
        """Renew credentials after a 401, if the vendor's auth can. Returns whether it did.

        The auth gets the refused request, so that of many threads refused at once, only the
        first logs in again and the others reuse its new token.
        """
        refresh = getattr(self.get_conn().auth, "refresh", None)
        if refresh is None:
            return False
        refresh(response.request)
        return True

    def _log_retry(self, retry_state: tenacity.RetryCallState) -> None:
        exc = retry_state.outcome.exception() if retry_state.outcome else None
        self.log.warning(
            "%s; retry %d/%d in %.1fs",
            exc,
            retry_state.attempt_number,
            self.max_retries,
            retry_state.next_action.sleep if retry_state.next_action else 0,
        )

    # ---- answers -----------------------------------------------------------------------------
    def decode(self, response: requests.Response) -> Any:
        if not response.content:
            return None
        try:
            return response.json()
        except ValueError as exc:
            raise self.errors.base(
                f"answer to {response.request.path_url.split('?')[0]} is not JSON", status_code=response.status_code
            ) from exc

    def vendor_message(self, response: requests.Response) -> str | None:
        """The vendor's short error text from an error body (never the whole body)."""
        try:
            body = response.json()
        except ValueError:
            return None
        if isinstance(body, dict):
            for key in ("message", "errorMessage", "error", "title"):
                if isinstance(body.get(key), str):
                    return body[key][:200]
        return None

    def error_for(self, response: requests.Response) -> base_errors.VendorError:
        """Map an error answer to the vendor's typed error. Vendors override for special bodies."""
        status = response.status_code
        message = self.vendor_message(response)
        text = message or response.reason or "error"
        kwargs = {"status_code": status, "vendor_message": message}
        if status == 429 or status >= 500:
            return self.errors.transient(text, retry_after=_retry_after_seconds(response), **kwargs)
        if status in (401, 403):
            return self.errors.auth(f"credentials refused: {text}", **kwargs)
        if status == 404:
            return self.errors.not_found(text, **kwargs)
        return self.errors.validation(text, **kwargs)


def _never_connected(exc: requests.ConnectionError) -> bool:
    """True when the connection failed before any byte of the request could have been sent.

    The same test as HttpHook's private ``_is_connect_failure``: urllib3's reason is a
    ``ConnectTimeoutError``, which ``NewConnectionError`` (refused, DNS) also is.
    """
    reason = getattr(exc.args[0], "reason", None) if exc.args else None
    return isinstance(reason, ConnectTimeoutError)
