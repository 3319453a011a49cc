"""The webhook receiver: stores every authenticated body raw in ``raw_webhook_events``, then says 200.

``POST /webhooks/{teleprom|itd}/{secret}`` and ``POST /webhooks/wavy/{secret}/{callback|dlr|mo}``.
A wrong secret or vendor → 404 and nothing stored; a body over 1 MiB → 413; anything else, valid or
not, JSON or not, is stored (deduplicated by body hash per vendor) **before** the 200, because
vendors retry until they get one. A warehouse outage → 503, so the vendor retries later. Parsing
happens in the ``webhook_ingest`` DAG.

Stores are group-committed: concurrent requests wait for one shared transaction, which keeps the
"stored before acknowledged" promise at hundreds of requests per second on SQLite.

Run: ``python -m latam_messaging.webhooks.receiver`` (127.0.0.1:8090; ``--host/--port`` to change).
"""

from __future__ import annotations

import argparse
import asyncio
import hmac
import logging
import os
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request, Response

from latam_messaging.warehouse import schema
from latam_messaging.warehouse.db import Warehouse, open_warehouse
from latam_messaging.webhooks.ingest import raw_event_row

log = logging.getLogger(__name__)
MAX_BODY = 1024 * 1024
VENDORS = {"teleprom", "itd"}
WAVY_CHANNELS = {"callback", "dlr", "mo"}
MAX_GROUP = 500


class GroupCommitStore:
    """Queue of rows to insert; one writer commits them in groups and then wakes their requests."""

    def __init__(self, warehouse: Warehouse):
        self.warehouse = warehouse
        self._queue: asyncio.Queue[tuple[dict[str, Any], asyncio.Future]] | None = None
        self._task: asyncio.Task | None = None

    async def start(self) -> None:
        self._queue = asyncio.Queue()
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()

    async def put(self, row: dict[str, Any]) -> None:
        """Returns once the row is committed; raises if the warehouse refused it."""
        future = asyncio.get_running_loop().create_future()
        await self._queue.put((row, future))
        await future

    def _write(self, rows: list[dict[str, Any]]) -> None:
        with self.warehouse.begin() as conn:
            self.warehouse.insert_new(conn, schema.raw_webhook_events, rows)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            group = [await self._queue.get()]
            while not self._queue.empty() and len(group) < MAX_GROUP:
                group.append(self._queue.get_nowait())
            try:
                await loop.run_in_executor(None, self._write, [row for row, _ in group])
            except Exception as exc:  # warehouse down: every waiting request answers 503
                log.error("could not store %d webhook(s): %s", len(group), exc)
                for _, future in group:
                    if not future.done():
                        future.set_exception(exc)
                continue
            for _, future in group:
                if not future.done():
                    future.set_result(None)


def create_app(warehouse: Warehouse | None = None, secret: str | None = None) -> FastAPI:
    secret = secret or os.environ.get("MESSAGING_WEBHOOK_SECRET", "")
    if not secret:
        raise SystemExit("MESSAGING_WEBHOOK_SECRET is not set: the receiver will not accept unauthenticated webhooks")

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        app.state.store = GroupCommitStore(warehouse or open_warehouse())
        await app.state.store.start()
        yield
        await app.state.store.stop()

    app = FastAPI(title="Messaging webhook receiver", lifespan=lifespan, docs_url=None, redoc_url=None)

    async def receive(request: Request, vendor: str, given_secret: str, channel: str | None) -> Response:
        if not hmac.compare_digest(given_secret.encode(), secret.encode()):
            return Response(status_code=404)
        declared = request.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > MAX_BODY:
            return Response(status_code=413)
        raw = bytearray()
        async for part in request.stream():
            raw.extend(part)
            if len(raw) > MAX_BODY:
                return Response(status_code=413)
        row = raw_event_row(vendor, channel, bytes(raw), request.headers.get("content-type"))
        try:
            await request.app.state.store.put(row)
        except Exception:
            return Response(status_code=503, headers={"Retry-After": "30"})
        return Response(status_code=200)

    @app.post("/webhooks/wavy/{given_secret}/{channel}")
    async def wavy(request: Request, given_secret: str, channel: str) -> Response:
        if channel not in WAVY_CHANNELS:
            return Response(status_code=404)
        return await receive(request, "wavy", given_secret, channel)

    @app.post("/webhooks/{vendor}/{given_secret}")
    async def vendor_hook(request: Request, vendor: str, given_secret: str) -> Response:
        if vendor not in VENDORS:
            return Response(status_code=404)
        return await receive(request, vendor, given_secret, None)

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    return app


def main(argv: list[str] | None = None) -> None:
    import uvicorn

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8090)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO)
    uvicorn.run(create_app(), host=args.host, port=args.port, log_level="warning", proxy_headers=True)


if __name__ == "__main__":
    main()
