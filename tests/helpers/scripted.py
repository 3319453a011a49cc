"""A vendor that answers from a script, the shared transport with nothing vendor-specific on top (what
the transport's decisions are tested against: real HTTP, real sockets), and a proxy that lets a
simulator act and then loses its answer."""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import requests

from latam_messaging.common.transport import VendorHttpHook
from latam_messaging.wavy.hook import WAVY_ERRORS
from tests.helpers.connections import hook_on


class ScriptedVendor:
    """A vendor that answers request *n* with ``script[n]`` (the last entry repeats): an HTTP status;
    ``("slow", seconds, status)`` to answer late; or a dict with ``status`` and optional ``body``
    (bytes or JSON) and ``headers``. Records every request it received (path and headers)."""

    def __init__(self, script):
        vendor = self
        self.script = list(script)
        self.received = 0
        self.requests: list[tuple[str, dict[str, str]]] = []
        self._lock = threading.Lock()

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _answer(self):
                length = int(self.headers.get("Content-Length") or 0)
                self.rfile.read(length)
                with vendor._lock:
                    step = vendor.script[min(vendor.received, len(vendor.script) - 1)]
                    vendor.received += 1
                    vendor.requests.append((self.path, dict(self.headers)))
                if isinstance(step, tuple):
                    _, seconds, step = step
                    time.sleep(seconds)
                if not isinstance(step, dict):
                    step = {"status": step, "body": {"message": f"answer {step}"}}
                body = step.get("body", b"")
                if not isinstance(body, bytes):
                    body = json.dumps(body).encode()
                try:
                    self.send_response(step["status"])
                    for name, value in {"Content-Type": "application/json", **step.get("headers", {})}.items():
                        self.send_header(name, value)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except OSError:  # the client gave up waiting
                    pass

            do_POST = do_GET = _answer

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


class PlainHook(VendorHttpHook):
    """The shared transport with nothing vendor-specific on top."""

    conn_type = "wavy"
    errors = WAVY_ERRORS

    def build_auth(self, connection):
        return None


@contextlib.contextmanager
def scripted_vendors(monkeypatch):
    """``make(script, ...)`` → (vendor, hook): a :class:`PlainHook` on a :class:`ScriptedVendor`
    (or on ``host``), with retries that do not wait; all closed afterwards."""
    made = []

    def make(script, timeout: float = 0.4, max_retries: int | None = 3, host: str | None = None, hook_cls=None):
        vendor = ScriptedVendor(script)
        made.append(vendor)
        extra = {"timeout": timeout} | ({"max_retries": max_retries} if max_retries is not None else {})
        manager = hook_on(
            monkeypatch, lambda: (hook_cls or PlainHook)("plain_vendor"), "plain_vendor", conn_type="wavy",
            host=host or vendor.url, login="user", password="secret-pass-4711", extra=extra,
        )
        hook = manager.__enter__()
        made.append(manager)
        return vendor, hook

    try:
        yield make
    finally:
        for item in reversed(made):
            if isinstance(item, ScriptedVendor):
                item.close()
            else:
                item.__exit__(None, None, None)


class FaultyProxy:
    """Forwards to a simulator; for the first ``faults`` POSTs to ``path`` it lets the vendor act, then
    answers ``504`` (``mode="504"``) or cuts the connection without an answer (``mode="cut"``)."""

    def __init__(self, target: str, path: str, mode: str, faults: int = 1):
        proxy = self
        self.target, self.path, self.mode, self.faults = target, "/" + path.lstrip("/"), mode, faults
        self.forwarded = 0
        self.lock = threading.Lock()

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _forward(self, method: str) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "content-length")}
                answer = requests.request(method, proxy.target + self.path, data=body, headers=headers, timeout=30)
                with proxy.lock:
                    fault = method == "POST" and self.path.split("?")[0] == proxy.path and proxy.faults > 0
                    proxy.faults -= fault
                    proxy.forwarded += method == "POST" and self.path.split("?")[0] == proxy.path
                if fault and proxy.mode == "cut":
                    self.connection.shutdown(socket.SHUT_RDWR)  # the vendor acted; the answer never comes
                    self.close_connection = True
                    return
                status, content = (504, b"<html>gateway timeout</html>") if fault else (answer.status_code, answer.content)
                self.send_response(status)
                self.send_header("Content-Type", "text/html" if fault else answer.headers.get("Content-Type", ""))
                self.send_header("Content-Length", str(len(content)))
                self.end_headers()
                self.wfile.write(content)

            def do_POST(self):  # noqa: N802
                self._forward("POST")

            def do_GET(self):  # noqa: N802
                self._forward("GET")

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
