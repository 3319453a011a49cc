"""What every vendor simulator shares: HTTP serving, routing, fault injection, webhooks, ``/_sim/*``.

A simulator subclasses :class:`Simulator`, declares its vendor routes with :func:`route` and keeps
its own state under ``self.lock``. Randomness comes from generators seeded with ``seed``, and a
message's fate from a hash of the seed and the message, so runs are reproducible whatever the
order in which concurrent requests arrive.
"""

from __future__ import annotations

import hashlib
import heapq
import itertools
import json
import logging
import random
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import requests

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 32 * 1024 * 1024


@dataclass
class SimRequest:
    method: str
    path: str
    query: dict[str, str]
    headers: Message
    body: bytes
    params: dict[str, str] = field(default_factory=dict)

    def header(self, name: str) -> str | None:
        """Header value, matched case-insensitively (``Message`` does that)."""
        return self.headers.get(name)

    def json(self) -> Any:
        """The JSON body; raises :class:`HttpError` 400 when it is not JSON."""
        try:
            return json.loads(self.body or b"null")
        except ValueError as exc:
            raise HttpError(400, {"message": "body is not valid JSON"}) from exc


@dataclass
class SimResponse:
    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)

    def encoded(self) -> bytes:
        if self.body is None:
            return b""
        if isinstance(self.body, bytes):
            return self.body
        return json.dumps(self.body, ensure_ascii=False).encode()


class HttpError(Exception):
    """Raised by handlers to answer with an error status and body."""

    def __init__(self, status: int, body: Any = None, headers: dict[str, str] | None = None):
        super().__init__(status)
        self.response = SimResponse(status, body, headers or {})


def route(method: str, path: str) -> Callable:
    """Declare a vendor endpoint. ``path`` may hold ``{name}`` segments; matching ignores case."""

    def mark(func: Callable) -> Callable:
        func.__dict__.setdefault("_sim_routes", []).append((method.upper(), path))
        return func

    return mark


def _compile(path: str) -> re.Pattern:
    pattern = re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/]+)", re.escape("/" + path.lstrip("/")))
    return re.compile(f"^{pattern}/?$", re.IGNORECASE)


class Simulator:
    """Base of the three vendor simulators."""

    name = "vendor"
    default_port = 0
    #: Statuses used for injected server errors (a vendor where 502 means something else overrides).
    fault_statuses: tuple[int, ...] = (500, 502, 503)
    #: Extra config keys a simulator accepts besides the common ones.
    extra_config: dict[str, Any] = {}

    def __init__(self, *, seed: int = 0, webhook_url: str | None = None, step_seconds: float = 1.0):
        self.seed = seed
        self.lock = threading.RLock()
        self._routes = [
            (method, _compile(path), getattr(self, attr))
            for attr in dir(type(self))
            for method, path in getattr(getattr(type(self), attr), "_sim_routes", [])
        ]
        self._initial = {
            "latency_ms": 0,
            "error_rate": 0.0,
            "throttle_rate": 0.0,
            "webhook_url": webhook_url,
            "step_seconds": step_seconds,
            # phones whose owner opted out at the vendor: a vendor that reports it (Wavy 204, Meta 131050) does
            "opted_out": [],
            **self.extra_config,
        }
        self.webhooks = WebhookDispatcher(self)
        self.reset()

    # ---- state ---------------------------------------------------------------------------------
    def reset(self) -> None:
        with self.lock:
            self.config = dict(self._initial)
            self.rng = random.Random(self.seed)
            self._fault_rng = random.Random(f"{self.seed}:faults")
            self.requests_served = 0
            self.faults_injected = 0
            self.webhooks.clear()
            self.reset_state()

    def reset_state(self) -> None:
        """Subclasses clear their vendor state here."""

    def configure(self, values: dict[str, Any]) -> None:
        unknown = set(values) - set(self.config) - self.config_actions()
        if unknown:
            raise HttpError(400, {"message": f"unknown settings: {sorted(unknown)}"})
        with self.lock:
            for key, value in values.items():
                if key in self.config_actions():
                    self.apply_action(key, value)
                else:
                    self.config[key] = value

    def config_actions(self) -> set[str]:
        """Config keys that act once (e.g. ``expire_tokens``) rather than being stored."""
        return set()

    def opted_out(self, phone: Any) -> bool:
        """Whether ``phone``'s owner opted out at the vendor (``/_sim/config {"opted_out": [...]}``)."""
        digits = "".join(c for c in str(phone or "") if c.isdigit())
        return any(digits.endswith("".join(c for c in str(p) if c.isdigit())[-8:]) for p in self.config.get("opted_out") or [])

    def customer_says(self, phone: str, text: str) -> dict[str, Any]:
        """``POST /_sim/inbound {"phone", "text"}``: the customer at ``phone`` sends ``text``, delivered the
        way this vendor delivers inbound messages (webhook and/or its poll). Returns ``{"id": ...}``."""
        raise HttpError(404, {"message": f"{self.name} simulates no inbound messages"})

    def control(self, action: str, request: SimRequest) -> SimResponse | None:
        """A vendor's own ``/_sim/<action>`` route (e.g. Teleprom's ``/_sim/click``); None: not one."""
        return None

    def apply_action(self, key: str, value: Any) -> None:  # pragma: no cover - overridden
        raise HttpError(400, {"message": f"unknown action {key}"})

    def state(self) -> dict[str, Any]:
        """The ``/_sim/state`` body. Subclasses add ``accepted_messages`` and ``messages``."""
        return {
            "vendor": self.name,
            "requests_served": self.requests_served,
            "faults_injected": self.faults_injected,
            "webhooks": self.webhooks.stats(),
            "config": {k: v for k, v in self.config.items()},
        }

    # ---- helpers for subclasses ---------------------------------------------------------------
    def new_uuid(self) -> str:
        with self.lock:
            return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def fraction(self, *key: Any) -> float:
        """A number in [0, 1) fixed by the seed and ``key``: the fate of one message or phone."""
        digest = hashlib.blake2b(repr((self.seed, *key)).encode(), digest_size=8).digest()
        return int.from_bytes(digest, "big") / 2**64

    def now(self) -> float:
        return time.time()

    @property
    def step(self) -> float:
        """Seconds between two status steps of a message (``step_seconds`` setting)."""
        return float(self.config["step_seconds"])

    # ---- request handling ---------------------------------------------------------------------
    def handle(self, request: SimRequest) -> SimResponse:
        if request.path.startswith("/_sim/"):
            return self._control(request)
        found = self._find_route(request)
        if found is None:
            return SimResponse(404, {"message": f"no route {request.method} {request.path}"})
        handler, match = found
        fault = self._inject_fault()
        if fault is not None:
            return fault
        request.params = match.groupdict()
        with self.lock:
            self.requests_served += 1
        try:
            return handler(request)
        except HttpError as exc:
            return exc.response

    def _find_route(self, request: SimRequest) -> tuple[Callable, re.Match] | None:
        for method, pattern, handler in self._routes:
            match = pattern.match(request.path)
            if match and method == request.method:
                return handler, match
        return None

    def _inject_fault(self) -> SimResponse | None:
        latency = self.config["latency_ms"]
        if latency:
            time.sleep(latency / 1000)
        with self.lock:
            draw = self._fault_rng.random()
            throttle, errors = float(self.config["throttle_rate"]), float(self.config["error_rate"])
            if draw < throttle:
                self.faults_injected += 1
                return SimResponse(429, {"message": "Too Many Requests"}, {"Retry-After": "0"})
            if draw < throttle + errors:
                self.faults_injected += 1
                status = self._fault_rng.choice(self.fault_statuses)
                return SimResponse(status, b"<html><body>upstream error</body></html>", {"Content-Type": "text/html"})
        return None

    def _control(self, request: SimRequest) -> SimResponse:
        action = request.path[len("/_sim/") :].strip("/")
        try:
            if action == "state" and request.method == "GET":
                with self.lock:
                    return SimResponse(200, self.state_with_limit(request.query))
            if action == "config" and request.method == "POST":
                body = request.json()
                if not isinstance(body, dict):
                    raise HttpError(400, {"message": "config body must be a JSON object"})
                self.configure(body)
                return SimResponse(200, {"config": self.config})
            if action == "reset" and request.method == "POST":
                self.reset()
                return SimResponse(200, {"reset": True})
            if action == "inbound" and request.method == "POST":
                body = request.json()
                if not isinstance(body, dict) or not isinstance(body.get("phone"), str) or not isinstance(body.get("text"), str):
                    raise HttpError(400, {"message": 'inbound body is {"phone": "<digits>", "text": "..."}'})
                return SimResponse(200, self.customer_says(body["phone"], body["text"]))
            own = self.control(action, request)
            if own is not None:
                return own
        except HttpError as exc:
            return exc.response
        return SimResponse(404, {"message": f"no control {request.method} {action}"})

    def state_with_limit(self, query: dict[str, str]) -> dict[str, Any]:
        state = self.state()
        if "messages" in state:
            if "tracking" in query:
                state["messages"] = [m for m in state["messages"] if m.get("tracking") == query["tracking"]]
            limit = int(query.get("limit", "100000"))
            state["messages"] = state["messages"][:limit]
        return state

    # ---- webhooks -----------------------------------------------------------------------------
    def webhook_posts(self, channel: str, events: list[Any]) -> Iterable[tuple[str, Any, list[Any]]]:
        """How due events become HTTP posts: ``(url, json_body, events_it_carries)``.

        Default: one post per event to ``channel_url(channel)``. Teleprom overrides to batch.
        """
        url = self.channel_url(channel)
        for event in events:
            yield url, event, [event]

    def channel_url(self, channel: str) -> str:
        return self.config["webhook_url"]


class WebhookDispatcher:
    """Posts due webhook events and retries each until the receiver answers 200, like the vendors."""

    batch_size = 100
    max_backoff_s = 30.0

    def __init__(self, sim: Simulator):
        self.sim = sim
        self._heap: list[tuple[float, int, str, Any, int]] = []
        self._seq = itertools.count()
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self._stopping = False
        self.delivered = 0
        self.failed_attempts = 0
        self._in_flight = 0  # taken off the heap, post not yet answered: still pending
        self._session = requests.Session()

    def clear(self) -> None:
        with self._cond:
            self._heap.clear()
            self.delivered = 0
            self.failed_attempts = 0

    def stats(self) -> dict[str, int]:
        with self._cond:
            pending = len(self._heap) + self._in_flight
            return {"pending": pending, "delivered": self.delivered, "failed_attempts": self.failed_attempts}

    def schedule(self, due: float, channel: str, event: Any, attempt: int = 0) -> None:
        """Queue ``event`` for ``due`` (epoch s). Nothing is queued while no URL is configured."""
        if not self.sim.config.get("webhook_url"):
            return
        with self._cond:
            heapq.heappush(self._heap, (due, next(self._seq), channel, event, attempt))
            self._cond.notify()
        self._ensure_thread()

    def _ensure_thread(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            self._stopping = False
            self._thread = threading.Thread(target=self._run, name=f"{self.sim.name}-webhooks", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify()

    def _take_due(self) -> list[tuple[str, Any, int]]:
        with self._cond:
            while not self._stopping:
                now = time.time()
                if self._heap and self._heap[0][0] <= now:
                    due = []
                    while self._heap and self._heap[0][0] <= now and len(due) < self.batch_size:
                        _, _, channel, event, attempt = heapq.heappop(self._heap)
                        due.append((channel, event, attempt))
                    self._in_flight += len(due)
                    return due
                timeout = (self._heap[0][0] - now) if self._heap else None
                self._cond.wait(timeout)
            return []

    def _run(self) -> None:
        while not self._stopping:
            due = self._take_due()
            try:
                by_channel: dict[tuple[str, int], list[Any]] = {}
                for channel, event, attempt in due:
                    by_channel.setdefault((channel, attempt), []).append(event)
                for (channel, attempt), events in by_channel.items():
                    for url, body, carried in self.sim.webhook_posts(channel, events):
                        self._post(url, body, carried, channel, attempt)
            finally:
                # a failed post is back on the heap before this, so "pending" never dips to
                # zero while an event is on its way or waiting for its retry
                with self._cond:
                    self._in_flight -= len(due)

    def _post(self, url: str, body: Any, carried: list[Any], channel: str, attempt: int) -> None:
        try:
            if isinstance(body, bytes):  # a body exactly as the vendor's document prints it
                headers = {"Content-Type": "application/json"}
                ok = self._session.post(url, data=body, headers=headers, timeout=10).status_code == 200
            else:
                ok = self._session.post(url, json=body, timeout=10).status_code == 200
        except requests.RequestException:
            ok = False
        with self._cond:
            if ok:
                self.delivered += len(carried)
                return
            self.failed_attempts += 1
        delay = min(self.max_backoff_s, 0.5 * 2**attempt)
        for event in carried:
            self.schedule(time.time() + delay, channel, event, attempt + 1)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "VendorSimulator/1.0"
    # headers and body go out in separate writes: without TCP_NODELAY, Nagle's algorithm and the
    # client's delayed ACK add ~40 ms to every keep-alive request
    disable_nagle_algorithm = True

    def _dispatch(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY_BYTES:
            self._write(SimResponse(413, {"message": "body too large"}))
            self.close_connection = True
            return
        body = self.rfile.read(length) if length else b""
        parts = urlsplit(self.path)
        request = SimRequest(
            method=self.command,
            path=parts.path,
            query=dict(parse_qsl(parts.query, keep_blank_values=True)),
            headers=self.headers,
            body=body,
        )
        try:
            response = self.server.simulator.handle(request)  # type: ignore[attr-defined]
        except Exception:  # a simulator bug must show as a 500, not a dropped connection
            log.exception("simulator %s failed on %s %s", self.server.simulator.name, self.command, parts.path)
            response = SimResponse(500, {"message": "simulator error"})
        self._write(response)

    def _write(self, response: SimResponse) -> None:
        payload = response.encoded()
        self.send_response(response.status)
        headers = {"Content-Type": "application/json; charset=utf-8", **response.headers}
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _dispatch

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        log.debug("%s %s", self.address_string(), format % args)


class SimulatorServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 256

    def __init__(self, simulator: Simulator, host: str = "127.0.0.1", port: int | None = None):
        super().__init__((host, simulator.default_port if port is None else port), _Handler)
        self.simulator = simulator
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> SimulatorServer:
        self._thread = threading.Thread(target=self.serve_forever, name=f"{self.simulator.name}-http", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.simulator.webhooks.stop()
        self.shutdown()
        self.server_close()
