"""The vendor simulators from a test's side: their state and settings, and a sink for their webhooks."""

from __future__ import annotations

import json

from tests.helpers.waiting import wait_until


def fresh(servers, name: str):
    """The session's simulator server ``name``, reset to its initial state."""
    server = servers[name]
    server.simulator.reset()
    return server


def sim_state(server) -> dict:
    import requests

    return requests.get(f"{server.url}/_sim/state", timeout=5).json()


def configure(server, **settings) -> None:
    import requests

    requests.post(f"{server.url}/_sim/config", json=settings, timeout=5).raise_for_status()


class WebhookSink:
    """A throwaway receiver for simulator webhooks: records bodies, can refuse the first N posts.

    ``hold=True`` keeps each post unanswered until ``release()`` (``arrived`` is set once one is in).
    """

    def __init__(self, refuse_first: int = 0, hold: bool = False):
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        sink = self
        self.posts: list[tuple[str, object]] = []
        self.refused = 0
        self._refuse_first = refuse_first
        self._lock = threading.Lock()
        self.arrived = threading.Event()
        self._released = threading.Event()
        if not hold:
            self._released.set()

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):  # noqa: N802 - stdlib name
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                sink.arrived.set()
                sink._released.wait(30)
                with sink._lock:
                    refuse = sink.refused < sink._refuse_first
                    if refuse:
                        sink.refused += 1
                    else:
                        sink.posts.append((self.path, json.loads(body)))
                self.send_response(500 if refuse else 200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def wait_for(self, predicate, timeout: float = 10.0) -> list[tuple[str, object]]:
        def received() -> tuple[list[tuple[str, object]]] | None:
            with self._lock:  # a 1-tuple: true even when the list the predicate accepted is empty
                return (list(self.posts),) if predicate(self.posts) else None

        [posts] = wait_until(
            received, timeout=timeout, what=lambda: f"the webhooks (got {len(self.posts)} posts)", interval=0.02
        )
        return posts

    def release(self) -> None:
        self._released.set()

    def close(self) -> None:
        self._released.set()
        self.server.shutdown()
        self.server.server_close()
