"""The vendors' documented examples (``tests/fixtures/vendor_docs/``, byte-identical copies of the
documents' examples), which test uses which, and a vendor that answers exactly what a document prints."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from tests.helpers.paths import VENDOR_DOCS as DOCS


def doc(name: str) -> bytes:
    return (DOCS / name).read_bytes()


# Each file is used by exactly one test (tests/vendors/test_examples.py and each vendor's test_examples.py);
# these lists are how the completeness test knows.
ANSWERS_TELEPROM = ["auth_200.json", "simswap_auth_200.json", "get_templates_200.json", "get_all_ruteos_200.json"]
ITD_FILES = sorted(p.name for p in (DOCS / "itd").iterdir() if not p.name.startswith("webhook_"))
CALLBACKS = [
    "teleprom/webhook_v0_enqueued.json",
    "teleprom/webhook_v0_bulk_shape.txt",
    "teleprom/webhook_v1_status.json",
    "teleprom/webhook_v3_incoming.json",
    "itd/webhook_status.json",
    "itd/webhook_inbound.json",
]


# ---- a vendor that answers exactly what the document prints --------------------------------------
class CannedVendor:
    """Answers every request with one (status, body) as bytes; records the requests' JSON bodies."""

    def __init__(self):
        self.status, self.body, self.requests = 200, b"{}", []
        canned = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _answer(self):
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                canned.requests.append((self.command, self.path, json.loads(raw) if raw else None))
                self.send_response(canned.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(canned.body)))
                self.end_headers()
                self.wfile.write(canned.body)

            do_GET = do_POST = _answer  # noqa: N815

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def answer(self, name: str, status: int = 200) -> None:
        self.status, self.body = status, doc(name)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
