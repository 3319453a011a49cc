"""The transport's decisions (``common/transport.py``): what is retried, what is ambiguous, what an
answer means — against a real HTTP server that answers from a script.

Sends (``idempotent=False``) are retried only when the request provably never reached the vendor
(no connection, a 429); anything else is ``ambiguous`` and left to the ledger. Reads retry every
transient failure. Part of the fast selection that ``make mutants`` runs.
"""

from __future__ import annotations

import socket

import pytest
import requests
import tenacity

from latam_messaging.common import errors
from latam_messaging.common.transport import _never_connected, _retry_after_seconds, _WaitTransient
from tests.helpers.scripted import PlainHook, scripted_vendors


@pytest.fixture
def scripted(monkeypatch):
    with scripted_vendors(monkeypatch) as make:
        yield make


def closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}"


def count_attempts(hook) -> list[int]:
    """Count the requests the hook tries to send (the vendor cannot count what never reached it)."""
    attempts = [0]
    send = hook._send

    def counted(*args, **kwargs):
        attempts[0] += 1
        return send(*args, **kwargs)

    hook._send = counted
    return attempts


# ---- answers ------------------------------------------------------------------------------------------
def test_a_2xx_answer_is_its_decoded_json(scripted):
    vendor, hook = scripted([{"status": 201, "body": {"id": 7}}, {"status": 204}])
    assert hook.call("POST", "/a", json={"x": 1}) == {"id": 7}
    assert hook.call("POST", "/b", idempotent=False) is None  # no content
    assert [path for path, _ in vendor.requests] == ["/a", "/b"]


def test_a_2xx_answer_that_is_not_json_is_an_error_naming_the_path_only(scripted):
    _, hook = scripted([{"status": 200, "body": b"<html>hello</html>"}])
    with pytest.raises(errors.VendorError) as raised:
        hook.call("GET", "/page?token=abc")
    assert type(raised.value) is hook.errors.base
    assert "/page is not JSON" in str(raised.value) and "token" not in str(raised.value)
    assert raised.value.status_code == 200


@pytest.mark.parametrize(
    ("status", "kind"),
    [(400, "validation"), (415, "validation"), (422, "validation"), (401, "auth"), (403, "auth"),
     (404, "not_found")],
)
def test_a_4xx_is_raised_at_once_as_its_kind(scripted, status, kind):
    vendor, hook = scripted([{"status": status, "body": {"message": "nope"}}, 200])
    with pytest.raises(errors.VendorError) as raised:
        hook.call("POST", "/x")
    assert type(raised.value) is getattr(hook.errors, kind)
    assert (raised.value.status_code, raised.value.vendor_message) == (status, "nope")
    assert vendor.received == 1


def test_credentials_refused_says_so_with_the_vendors_text(scripted):
    _, hook = scripted([{"status": 401, "body": {"error": "token expired"}}])
    with pytest.raises(errors.VendorAuthError, match="credentials refused: token expired"):
        hook.call("GET", "/x")


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"message": "m", "errorMessage": "e"}, "m"),
        ({"errorMessage": "e", "error": "x"}, "e"),
        ({"error": "x", "title": "t"}, "x"),
        ({"title": "t"}, "t"),
        ({"message": 5, "title": "t"}, "t"),  # only text counts
        ({"message": "y" * 300}, "y" * 200),  # never the whole body
        (["message"], None),
        (b"not json", None),
    ],
)
def test_the_vendors_short_error_text_is_read_from_the_usual_keys(scripted, body, expected):
    _, hook = scripted([{"status": 400, "body": body}])
    with pytest.raises(errors.VendorValidationError) as raised:
        hook.call("GET", "/x")
    assert raised.value.vendor_message == expected
    if expected is None:  # the HTTP reason stands in
        assert "Bad Request" in str(raised.value)


# ---- retries of reads ---------------------------------------------------------------------------------
def test_a_read_retries_5xx_and_429_until_an_answer(scripted):
    vendor, hook = scripted([500, 429, 599, {"status": 200, "body": {"ok": True}}])
    assert hook.call("GET", "/x") == {"ok": True}
    assert vendor.received == 4


def test_a_read_gives_up_after_max_retries_with_the_last_error(scripted):
    vendor, hook = scripted([503], max_retries=2)
    with pytest.raises(errors.VendorTransientError) as raised:
        hook.call("GET", "/x")
    assert type(raised.value) is hook.errors.transient and raised.value.status_code == 503
    assert vendor.received == 3  # the first try and two retries


def test_the_retry_count_comes_from_the_connection_or_the_hook(scripted):
    vendor, hook = scripted([503], max_retries=None)
    assert (hook.max_retries, hook.timeout) == (5, 0.4)  # the form's default
    hook.max_retries = 1
    with pytest.raises(errors.VendorTransientError):
        hook.call("GET", "/x")
    assert vendor.received == 2
    assert PlainHook("plain_vendor", max_retries=4).max_retries == 4


def test_without_extras_the_forms_defaults_apply(scripted):
    _, hook = scripted([200], timeout=None, max_retries=None)
    hook.connection.extra = "{}"
    assert (hook.timeout, hook.max_retries) == (30, 5)


def test_a_read_that_times_out_is_retried(scripted):
    vendor, hook = scripted([("slow", 1.0, 200), {"status": 200, "body": [1]}], timeout=0.3)
    assert hook.call("GET", "/x") == [1]
    assert vendor.received == 2


def test_every_retry_is_logged_with_its_count(scripted):
    from structlog.testing import capture_logs

    _, hook = scripted([503, 503, 200])
    with capture_logs() as logs:
        hook.call("GET", "/x")
    retries = [entry["event"] for entry in logs if entry.get("log_level") == "warning"]
    assert retries == ["Wavy: answer 503 (HTTP 503); retry 1/3 in 0.0s", "Wavy: answer 503 (HTTP 503); retry 2/3 in 0.0s"]


# ---- retries of sends ---------------------------------------------------------------------------------
def test_a_send_retries_a_429_which_provably_did_not_act(scripted):
    vendor, hook = scripted([429, 429, {"status": 200, "body": {"id": 1}}])
    assert hook.call("POST", "/send", idempotent=False) == {"id": 1}
    assert vendor.received == 3


def test_a_send_throttled_to_the_end_is_transient_not_ambiguous(scripted):
    vendor, hook = scripted([429], max_retries=2)
    with pytest.raises(errors.VendorTransientError) as raised:
        hook.call("POST", "/send", idempotent=False)
    assert not isinstance(raised.value, errors.VendorAmbiguousError)
    assert vendor.received == 3


@pytest.mark.parametrize("status", [500, 502, 503, 504, 599])
def test_a_send_answered_5xx_is_ambiguous_and_asked_once(scripted, status):
    vendor, hook = scripted([{"status": status, "body": {"message": "busy"}}, 200])
    with pytest.raises(errors.VendorAmbiguousError) as raised:
        hook.call("POST", "/send", idempotent=False)
    assert type(raised.value) is hook.errors.ambiguous
    assert (raised.value.status_code, raised.value.vendor_message) == (status, "busy")
    assert f"/send answered {status}: it may have been processed" in str(raised.value)
    assert vendor.received == 1


def test_a_read_answered_5xx_is_transient_not_ambiguous(scripted):
    _, hook = scripted([500], max_retries=0)
    with pytest.raises(errors.VendorTransientError) as raised:
        hook.call("GET", "/x")
    assert not isinstance(raised.value, errors.VendorAmbiguousError)


class NoCreditsOn503(PlainHook):
    """A vendor whose 503 means something final (as ITD's 502 'no credits')."""

    def error_for(self, response):
        if response.status_code == 503:
            return self.errors.no_credits("no credits", status_code=503)
        return super().error_for(response)


def test_a_5xx_the_vendor_gives_a_meaning_keeps_it_for_sends(scripted):
    vendor, hook = scripted([503], hook_cls=NoCreditsOn503)
    with pytest.raises(errors.VendorNoCreditsError):
        hook.call("POST", "/send", idempotent=False)
    assert vendor.received == 1


def test_a_send_that_never_connected_is_retried_and_then_transient(scripted):
    _, hook = scripted([200], host=closed_port_url(), max_retries=2)
    attempts = count_attempts(hook)
    with pytest.raises(errors.VendorTransientError) as raised:
        hook.call("POST", "/send", idempotent=False)
    assert not isinstance(raised.value, errors.VendorAmbiguousError)
    assert "could not connect for /send" in str(raised.value)
    assert attempts[0] == 3


def test_a_tls_failure_is_retried_for_reads_and_ambiguous_for_sends(scripted):
    vendor, hook = scripted([200], max_retries=2)
    hook.get_conn()  # the session reads the connection once; then speak TLS to a plain server
    hook.base_url = vendor.url.replace("http://", "https://")
    attempts = count_attempts(hook)
    with pytest.raises(errors.VendorTransientError) as raised:
        hook.call("GET", "/x")
    assert not isinstance(raised.value, errors.VendorAmbiguousError) and attempts[0] == 3
    assert "TLS error during /x" in str(raised.value)
    with pytest.raises(errors.VendorAmbiguousError):
        hook.call("POST", "/send", idempotent=False)
    assert attempts[0] == 4


def test_a_send_cut_after_connecting_is_ambiguous(scripted):
    vendor, hook = scripted([200])
    attempts = count_attempts(hook)

    def cut(*args, **kwargs):  # the server closes the connection without an answer
        raise requests.ConnectionError(ConnectionResetError(104, "Connection reset by peer"))

    hook.get_conn().request = cut
    with pytest.raises(errors.VendorAmbiguousError, match="connection lost during /send"):
        hook.call("POST", "/send", idempotent=False)
    assert attempts[0] == 1


# ---- backoff ------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("header", "seconds"), [("2", 2.0), ("0.5", 0.5), ("soon", None), (None, None)])
def test_retry_after_is_read_as_seconds(header, seconds):
    response = requests.Response()
    if header is not None:
        response.headers["Retry-After"] = header
    assert _retry_after_seconds(response) == seconds


def _state_after(exc: BaseException) -> tenacity.RetryCallState:
    state = tenacity.RetryCallState(retry_object=tenacity.Retrying(), fn=None, args=(), kwargs={})
    state.set_exception((type(exc), exc, None))
    return state


def test_the_wait_is_never_shorter_than_retry_after_but_capped():
    wait = _WaitTransient(0.001, 5.0)
    assert 3.0 <= wait(_state_after(errors.VendorTransientError("x", retry_after=3.0))) <= 5.0
    assert wait(_state_after(errors.VendorTransientError("x", retry_after=60.0))) == 5.0
    assert wait(_state_after(errors.VendorTransientError("x"))) < 0.01


def test_a_429_with_retry_after_reaches_the_hook_as_seconds(scripted):
    _, hook = scripted([{"status": 429, "headers": {"Retry-After": "7"}}], max_retries=0)
    with pytest.raises(errors.VendorTransientError) as raised:
        hook.call("GET", "/x")
    assert raised.value.retry_after == 7.0 and raised.value.status_code == 429


def test_only_a_connect_failure_counts_as_never_connected():
    from urllib3.exceptions import MaxRetryError, NewConnectionError, ProtocolError

    refused = requests.ConnectionError(MaxRetryError(None, "/x", NewConnectionError(None, "refused")))
    reset = requests.ConnectionError(MaxRetryError(None, "/x", ProtocolError("reset")))
    assert _never_connected(refused) is True
    assert _never_connected(reset) is False
    assert _never_connected(requests.ConnectionError()) is False


# ---- the session and auth -----------------------------------------------------------------------------
def test_one_session_is_reused_and_sends_no_hook_extras_as_headers(scripted):
    vendor, hook = scripted([200])
    session = hook.get_conn()
    hook.call("GET", "/a")
    hook.call("GET", "/b")
    assert hook.get_conn() is session
    for _, headers in vendor.requests:
        assert headers.get("Accept") == "application/json"
        assert "timeout" not in {h.lower() for h in headers} and "max_retries" not in {h.lower() for h in headers}
    hook.close()
    assert hook.get_conn() is not session


class RefreshingAuth(requests.auth.AuthBase):
    def __init__(self):
        self.refreshed = []

    def __call__(self, request):
        request.headers["Authorization"] = f"Bearer t{len(self.refreshed)}"
        return request

    def refresh(self, request):
        self.refreshed.append(request.headers.get("Authorization"))


class RefreshingHook(PlainHook):
    def build_auth(self, connection):
        return RefreshingAuth()


def test_a_401_renews_the_auth_once_and_repeats_the_request_once(scripted):
    vendor, hook = scripted([401, {"status": 200, "body": {"ok": 1}}], hook_cls=RefreshingHook)
    assert hook.call("POST", "/send", idempotent=False) == {"ok": 1}
    assert hook.get_conn().auth.refreshed == ["Bearer t0"]
    assert [h["Authorization"] for _, h in vendor.requests] == ["Bearer t0", "Bearer t1"]


def test_a_second_401_is_an_auth_error(scripted):
    vendor, hook = scripted([401], hook_cls=RefreshingHook)
    with pytest.raises(errors.VendorAuthError):
        hook.call("GET", "/x")
    assert vendor.received == 2 and len(hook.get_conn().auth.refreshed) == 1


def test_a_call_with_its_own_auth_never_renews(scripted):
    vendor, hook = scripted([401, 200], hook_cls=RefreshingHook)
    with pytest.raises(errors.VendorAuthError):
        hook.call("POST", "/login", auth=("u", "p"))
    assert vendor.received == 1 and hook.get_conn().auth.refreshed == []


def test_an_auth_that_cannot_renew_raises_the_401(scripted):
    vendor, hook = scripted([401, 200])
    with pytest.raises(errors.VendorAuthError):
        hook.call("GET", "/x")
    assert vendor.received == 1


def test_the_connection_password_is_masked_in_logs(scripted):
    from airflow.sdk.log import redact

    _, hook = scripted([200])
    assert hook.connection.password == "secret-pass-4711"
    assert "secret-pass-4711" not in str(redact("the password is secret-pass-4711"))


# ---- what a call sends --------------------------------------------------------------------------------
def test_a_call_sends_its_query_headers_and_own_auth(scripted):
    vendor, hook = scripted([{"status": 200, "body": {"ok": 1}}])
    assert hook.call("GET", "/x", params={"page": "2"}, headers={"X-Trace": "t-1"}, auth=("u", "p")) == {"ok": 1}
    [(path, headers)] = vendor.requests
    assert path == "/x?page=2"
    assert headers["X-Trace"] == "t-1"
    assert headers["Authorization"] == "Basic dTpw"  # base64 of "u:p"


class LoginHook(PlainHook):
    """A vendor whose auth is built from the connection's login and password."""

    def build_auth(self, connection):
        return requests.auth.HTTPBasicAuth(connection.login, connection.password)


def test_the_vendors_auth_is_built_from_the_connection(scripted):
    import base64

    vendor, hook = scripted([200], hook_cls=LoginHook)
    hook.call("GET", "/x")
    expected = "Basic " + base64.b64encode(b"user:secret-pass-4711").decode()
    assert vendor.requests[0][1]["Authorization"] == expected


def test_a_request_repeated_after_a_401_is_the_same_request(scripted):
    vendor, hook = scripted([401, {"status": 200, "body": {"ok": 1}}], hook_cls=RefreshingHook)
    sent = []
    hook.get_conn().hooks["response"].append(lambda response, **_: sent.append(response.request))
    hook.call("POST", "/send", json={"to": "5491100000000"}, params={"p": "1"}, headers={"X-Id": "9"},
              idempotent=False)
    assert [request.path_url for request in sent] == ["/send?p=1", "/send?p=1"]
    assert [request.body for request in sent] == [b'{"to": "5491100000000"}'] * 2
    assert [request.headers["X-Id"] for request in sent] == ["9", "9"]


def _first_try_then(hook, error: Exception) -> list[int]:
    """The hook's session makes its first request for real (the scripted 401) and raises ``error`` on
    every later one; returns the list that counts the tries."""
    session = hook.get_conn()
    real_request = session.request
    tries: list[int] = []

    def first_then_error(*args, **kwargs):
        tries.append(1)
        if len(tries) == 1:
            return real_request(*args, **kwargs)
        raise error

    session.request = first_then_error
    return tries


def test_a_send_repeated_after_a_401_stays_a_send(scripted):
    """The repeat of a send that then breaks on TLS is ambiguous, as the first try would be."""
    vendor, hook = scripted([401], hook_cls=RefreshingHook)
    tries = _first_try_then(hook, requests.exceptions.SSLError("stream cut"))
    with pytest.raises(errors.VendorAmbiguousError):
        hook.call("POST", "/send", idempotent=False)
    assert len(tries) == 2


def test_a_3xx_answer_is_not_a_success(scripted):
    _, hook = scripted([{"status": 300, "body": {"message": "multiple choices"}}])
    with pytest.raises(errors.VendorValidationError) as raised:
        hook.call("GET", "/x")
    assert raised.value.status_code == 300


def test_an_error_without_text_or_reason_says_error(scripted):
    _, hook = scripted([{"status": 499, "body": b""}])  # no reason phrase for an unknown status
    with pytest.raises(errors.VendorValidationError) as raised:
        hook.call("GET", "/x")
    assert str(raised.value) == "Wavy: error (HTTP 499)"


def test_not_found_carries_the_vendors_text(scripted):
    _, hook = scripted([{"status": 404, "body": {"message": "no such message"}}])
    with pytest.raises(errors.VendorNotFoundError, match="no such message"):
        hook.call("GET", "/x")


# ---- failures name the endpoint and what happened -----------------------------------------------------
def _failing(hook, exc):
    def fail(*args, **kwargs):
        raise exc

    hook.get_conn().request = fail


@pytest.mark.parametrize(
    ("exc", "kind", "text"),
    [
        (requests.ConnectTimeout("slow SYN"), "transient", "could not connect for /send: ConnectTimeout"),
        (requests.exceptions.SSLError("bad record"), "ambiguous", "TLS error during /send: SSLError"),
        (requests.ConnectionError("reset"), "ambiguous", "connection lost during /send: ConnectionError"),
        (requests.ReadTimeout("late"), "ambiguous", "no answer to /send within 0.4s"),
    ],
)
def test_a_failed_send_names_the_endpoint_and_the_failure(scripted, exc, kind, text):
    _, hook = scripted([200], max_retries=0)
    _failing(hook, exc)
    with pytest.raises(errors.VendorError) as raised:
        hook.call("POST", "/send", idempotent=False)
    assert type(raised.value) is getattr(hook.errors, kind)
    assert str(raised.value) == f"Wavy: {text}"


def test_a_retry_waits_the_backoff_and_logs_that_wait(scripted):
    import time

    from structlog.testing import capture_logs

    vendor, hook = scripted([503, 200])
    hook.backoff_initial_s = hook.backoff_max_s = 0.3
    started = time.monotonic()
    with capture_logs() as logs:
        hook.call("GET", "/x")
    assert time.monotonic() - started >= 0.3
    retries = [entry["event"] for entry in logs if entry.get("log_level") == "warning"]
    assert retries == ["Wavy: answer 503 (HTTP 503); retry 1/3 in 0.3s"]


# ---- the hook's connection settings -------------------------------------------------------------------
def test_the_pool_keeps_connections_alive_and_sized(scripted):
    import socket as s

    _, hook = scripted([200])
    adapter = hook.get_conn().get_adapter(hook.base_url)
    options = set(adapter.socket_options)
    assert {(s.IPPROTO_TCP, s.TCP_KEEPIDLE, 120), (s.IPPROTO_TCP, s.TCP_KEEPCNT, 20),
            (s.IPPROTO_TCP, s.TCP_KEEPINTVL, 30)} <= options
    assert (adapter._pool_connections, adapter._pool_maxsize) == (4, 32)
    assert PlainHook("plain_vendor", pool_size=8).adapter._pool_maxsize == 8


class OwnDefaults(PlainHook):
    connection_form = {"conn-fields": {
        "timeout": {"label": "T", "schema": {"type": ["integer", "null"], "default": 12}},
        "max_retries": {"label": "R", "schema": {"type": ["integer", "null"]}},  # no default
    }}


class NoFields(PlainHook):
    connection_form = {"conn-fields": {}}


def test_an_empty_extra_takes_the_vendors_form_default_else_the_transports(scripted):
    _, hook = scripted([200], timeout=None, max_retries=None, hook_cls=OwnDefaults)
    hook.connection.extra = '{"timeout": "", "max_retries": ""}'
    assert (hook.timeout, hook.max_retries) == (12, 5)
    _, bare = scripted([200], timeout=None, max_retries=None, hook_cls=NoFields)
    bare.connection.extra = "{}"
    assert (bare.timeout, bare.max_retries) == (30, 5)


def test_the_connection_form_is_the_vendors():
    from latam_messaging.wavy.hook import WavyHook

    behaviour = WavyHook.get_ui_field_behaviour()
    assert behaviour["hidden_fields"] == ["schema", "port", "extra"]
    assert behaviour["relabeling"]["password"] == "AuthenticationToken"


def test_the_backoff_grows_but_never_past_its_maximum():
    wait = _WaitTransient(1.0, 2.0)
    state = _state_after(errors.VendorTransientError("x"))
    state.attempt_number = 10
    assert wait(state) == 2.0
    assert wait(_state_after(ValueError("no retry_after here"))) <= 2.0


def test_a_read_repeated_after_a_401_stays_a_read(scripted):
    """The repeat of a read that then breaks on TLS is transient (retryable), as the first try would be."""
    _, hook = scripted([401], hook_cls=RefreshingHook, max_retries=0)
    tries = _first_try_then(hook, requests.exceptions.SSLError("handshake"))
    with pytest.raises(errors.VendorTransientError) as raised:
        hook.call("GET", "/x")
    assert type(raised.value) is hook.errors.transient and len(tries) == 2


class RecordingLog:
    """Every line the hook logs, formatted as the logging call would format it."""

    def __init__(self):
        self.lines: list[tuple[str, str]] = []

    def _record(self, level, message, *args):
        self.lines.append((level, message % args))

    def debug(self, message, *args):
        self._record("debug", message, *args)

    def info(self, message, *args):
        self._record("info", message, *args)

    def warning(self, message, *args):
        self._record("warning", message, *args)


def test_log_lines_name_the_request_and_its_timing_never_a_body(scripted):
    import re

    vendor, hook = scripted([401, ("slow", 0.2, {"status": 200, "body": {"to": "5491100000000"}})],
                            hook_cls=RefreshingHook)
    hook._log = log = RecordingLog()
    hook.call("POST", "/send", json={"to": "5491100000000", "text": "hola"}, idempotent=False)
    levels = [level for level, _ in log.lines]
    assert levels == ["debug", "info", "debug"]
    assert re.fullmatch(r"POST /send -> 401 in \d+ ms", log.lines[0][1])
    assert log.lines[1][1] == "wavy answered 401: logged in again, repeating /send once"
    took = re.fullmatch(r"POST /send -> 200 in (\d+) ms", log.lines[2][1])
    assert took and 150 <= int(took[1]) < 5000
    assert not any("5491100000000" in line or "hola" in line for _, line in log.lines)
