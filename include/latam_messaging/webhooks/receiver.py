"""The webhook receiver: stores every authenticated body raw in ``raw_webhook_events``, then says 200.

``POST /webhooks/{vendor}/{secret}``, or ``POST /webhooks/{vendor}/{secret}/{channel}`` for a vendor
that declares channels in the registry (Wavy: ``callback``, ``dlr``, ``mo``).
A wrong secret or vendor → 404 and nothing stored; a body over 1 MiB → 413; anything else, valid or
not, JSON or not, is stored (deduplicated by body hash per vendor) **before** the 200, because
vendors retry until they get one. A warehouse outage → 503, so the vendor retries later. Parsing
happens in the ``webhook_ingest`` DAG.

Stores are group-committed: concurrent requests wait for one shared transaction, which keeps the
"stored before acknowledged" promise at hundreds of requests per second on SQLite. Bodies are stored
losslessly whatever their bytes (``raw.body_text``: UTF-8 text, or ``base64:`` for bytes a text
column cannot hold exactly, NUL included). A group whose commit fails is written again row by row,
so one row the warehouse refuses answers 503 alone. Memory stays bounded: at most ``MAX_QUEUE``
bodies wait, and a request waits at most ``WAIT_LIMIT_S``; beyond either it answers 503 with
``Retry-After`` (the vendors retry) instead of queueing more. Statements time out
(``WRITE_TIMEOUT_MS``); SQL errors never show bound values (``hide_parameters``), and nothing
here logs a body.

Scaling out: any number of receiver processes (``--workers N`` on one host, or hosts behind a load
balancer) may write to one PostgreSQL warehouse. Each acknowledges only what it committed itself, and
the ``(vendor, body_sha256)`` unique constraint deduplicates across them: the same body arriving at two
processes at once becomes one row (the second insert waits for the first transaction, then does
nothing) and both answer 200. Each group's rows are inserted in key order, so two processes' groups
never deadlock on each other's keys; a deadlock or serialization failure the server reports anyway is
retried. A process holds at most ``POSTGRES_POOL`` connections (one writer at a time), so N processes
cost N (+ N spare) server connections. ``--workers N`` is uvicorn's supervisor: one listening socket
shared by N worker processes, a worker that dies is replaced (the others keep serving meanwhile), and
SIGTERM stops accepting, lets the requests in flight finish their commit, then exits. SQLite refuses
``--workers`` > 1: one file has one writer at a time, so more processes would only queue on its write
lock (and answer 503 once ``busy_timeout`` passes) while one process's group commit already batches
every concurrent request into one transaction.

Run: ``python -m latam_messaging.webhooks.receiver`` (127.0.0.1:8090; ``--host/--port/--workers``).
"""

from __future__ import annotations

import argparse
import asyncio
import hmac
import logging
from contextlib import asynccontextmanager
from typing import Any

import sqlalchemy as sa
from fastapi import FastAPI, Request, Response

from latam_messaging.warehouse import schema
from latam_messaging.warehouse.db import Warehouse, open_warehouse
from latam_messaging.webhooks.raw import raw_event_row

log = logging.getLogger(__name__)
MAX_BODY = 1024 * 1024
MAX_GROUP = 500
#: Bodies (and their bytes) waiting to be stored, at most; more answer 503 at once.
MAX_QUEUE = 2000
MAX_QUEUED_BYTES = 64 * 1024 * 1024
#: A request waits this long for its row to commit, then answers 503 (the row may still land: the
#: vendor's retry is then a duplicate, recognised by its body hash).
WAIT_LIMIT_S = 10.0
#: A group commit gives up after this long (PostgreSQL statement and lock timeouts of its transaction).
WRITE_TIMEOUT_MS = 8000
#: uvicorn's supervisor replaces a worker that died at once, and one that does not answer its ping for
#: this long. Generous: a worker starting on a loaded host (imports before its ping thread runs) is not hung.
#: The supervisor handles SIGTERM between pings, so a stop can wait this long behind a starting worker.
WORKER_HEALTHCHECK_S = 30
#: PostgreSQL SQLSTATEs after which the same transaction may simply run again (serialization, deadlock).
RETRYABLE_SQLSTATES = {"40001", "40P01"}
#: One receiver process's PostgreSQL pool: its single writer, plus one spare while a dropped connection
#: is replaced. Never more, whatever runs beside it: N processes × hosts share ``max_connections``.
POSTGRES_POOL = {"pool_size": 1, "max_overflow": 1, "pool_timeout": WAIT_LIMIT_S}


class Overloaded(Exception):
    """The queue is full or the wait limit passed: answer 503."""


class GroupCommitStore:
    """Queue of rows to insert; one writer commits them in groups and then wakes their requests."""

    def __init__(self, warehouse: Warehouse):
        self.warehouse = warehouse
        self._queue: asyncio.Queue[tuple[dict[str, Any], asyncio.Future]] | None = None
        self._task: asyncio.Task | None = None
        self.queued_bytes = 0

    def full(self) -> bool:
        return self._queue.full() or self.queued_bytes >= MAX_QUEUED_BYTES

    async def start(self) -> None:
        self._queue = asyncio.Queue(maxsize=MAX_QUEUE)
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()

    async def put(self, row: dict[str, Any]) -> None:
        """Returns once the row is committed; raises if the warehouse refused it or took too long."""
        future = asyncio.get_running_loop().create_future()
        size = len(row["body"])
        if self.queued_bytes + size > MAX_QUEUED_BYTES:
            raise Overloaded("queue full")
        try:
            self._queue.put_nowait((row, future))
        except asyncio.QueueFull as exc:
            raise Overloaded("queue full") from exc
        self.queued_bytes += size
        future.add_done_callback(lambda done: self._release(size, done))
        try:
            await asyncio.wait_for(asyncio.shield(future), WAIT_LIMIT_S)
        except TimeoutError as exc:
            raise Overloaded("wait limit") from exc

    def _release(self, size: int, done: asyncio.Future) -> None:
        self.queued_bytes -= size
        if not done.cancelled():
            done.exception()  # retrieved even when the request stopped waiting

    def _write(self, rows: list[dict[str, Any]]) -> None:
        """One transaction; rows in (vendor, body_sha256) order, so concurrent groups (other processes
        storing the same bodies) take the unique index's entries in one order and never deadlock."""
        rows = sorted(rows, key=lambda row: (row["vendor"], row["body_sha256"]))
        for attempt in range(3):
            try:
                with self.warehouse.begin() as conn:
                    if self.warehouse.dialect == "postgresql":
                        conn.execute(sa.text(f"SET LOCAL statement_timeout = {WRITE_TIMEOUT_MS}"))
                        conn.execute(sa.text(f"SET LOCAL lock_timeout = {WRITE_TIMEOUT_MS}"))
                    self.warehouse.insert_new(conn, schema.raw_webhook_events, rows)
                return
            except sa.exc.DBAPIError as exc:
                if attempt == 2 or getattr(exc.orig, "pgcode", None) not in RETRYABLE_SQLSTATES:
                    raise

    def _write_group(self, rows: list[dict[str, Any]]) -> list[BaseException | None]:
        """Commit the group; if that fails, each row on its own. Returns each row's failure (or None)."""
        try:
            self._write(rows)
            return [None] * len(rows)
        except Exception as exc:  # noqa: BLE001
            if len(rows) == 1:
                return [exc]
            if isinstance(exc, sa.exc.OperationalError):  # warehouse away or locked: no row would do better
                return [exc] * len(rows)
        outcome: list[BaseException | None] = []
        for row in rows:
            try:
                self._write([row])
                outcome.append(None)
            except Exception as exc:  # noqa: BLE001
                outcome.append(exc)
        return outcome

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            group = [await self._queue.get()]
            while not self._queue.empty() and len(group) < MAX_GROUP:
                group.append(self._queue.get_nowait())
            try:
                failures = await loop.run_in_executor(None, self._write_group, [row for row, _ in group])
            except Exception as exc:  # noqa: BLE001 - never let the writer die
                failures = [exc] * len(group)
            refused = [f for f in failures if f is not None]
            if refused:  # the type only: a database message may quote what was sent
                log.error(
                    "could not store %d of %d webhook(s): %s", len(refused), len(group), type(refused[0]).__name__
                )
            for (_, future), failure in zip(group, failures, strict=True):
                if future.done():
                    continue
                if failure is None:
                    future.set_result(None)
                else:
                    future.set_exception(failure)


def create_app(
    warehouse: Warehouse | None = None, secret: str | None = None, channels: dict[str, set[str]] | None = None
) -> FastAPI:
    """The receiver app. ``channels``: vendor name → its webhook channels (empty: the bare path only);
    by default from the vendor registry (this factory is the top of the receiver)."""
    if channels is None:
        from latam_messaging.vendors import VENDORS

        channels = {name: set(vendor.webhook_channels) for name, vendor in VENDORS.items()}
    from latam_messaging.settings import current

    secret = secret or current().webhook_secret
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
        if request.app.state.store.full():  # before reading the body: memory stays bounded
            return Response(status_code=503, headers={"Retry-After": "30"})
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
        except Exception:  # noqa: BLE001 - refused, overloaded or away: the vendor retries later
            return Response(status_code=503, headers={"Retry-After": "30"})
        return Response(status_code=200)

    @app.post("/webhooks/{vendor}/{given_secret}/{channel}")
    async def vendor_channel(request: Request, vendor: str, given_secret: str, channel: str) -> Response:
        if channel not in channels.get(vendor, ()):
            return Response(status_code=404)
        return await receive(request, vendor, given_secret, channel)

    @app.post("/webhooks/{vendor}/{given_secret}")
    async def vendor_hook(request: Request, vendor: str, given_secret: str) -> Response:
        if vendor not in channels or channels[vendor]:  # a vendor with channels posts to one of them
            return Response(status_code=404)
        return await receive(request, vendor, given_secret, None)

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    return app


def process_warehouse() -> Warehouse:
    """The warehouse of one receiver process (``messaging_warehouse``), with :data:`POSTGRES_POOL` on
    PostgreSQL. Not migrated here: :func:`main` migrates once before any worker starts."""
    warehouse = Warehouse.from_connection()
    if warehouse.dialect == "postgresql":  # the engine has no connection yet: rebuilt with the small pool
        warehouse.engine.dispose()
        warehouse = Warehouse.from_connection(**POSTGRES_POOL)
    return warehouse


def worker_app() -> FastAPI:
    """The app of one worker process (uvicorn factory: each worker builds its own engine and writer)."""
    return create_app(process_warehouse())


def main(argv: list[str] | None = None) -> None:
    import uvicorn

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8090)
    parser.add_argument(
        "--workers", type=int, default=1,
        help="worker processes sharing the port (PostgreSQL only); a worker that dies is replaced",
    )
    args = parser.parse_args(argv)
    if args.workers < 1:
        parser.error("--workers must be at least 1")
    logging.basicConfig(level=logging.INFO)
    from latam_messaging.settings import current

    if not current().webhook_secret:
        raise SystemExit("MESSAGING_WEBHOOK_SECRET is not set: the receiver will not accept unauthenticated webhooks")
    warehouse = open_warehouse()  # migrated once here, never by N workers at once
    dialect = warehouse.dialect
    warehouse.engine.dispose()
    if args.workers > 1 and dialect != "postgresql":
        raise SystemExit(
            f"--workers {args.workers} needs a PostgreSQL warehouse: {dialect} has one writer at a time, so more "
            "receiver processes would only wait on its write lock (one process already group-commits every "
            "concurrent request). Run one process, or point messaging_warehouse at PostgreSQL."
        )
    uvicorn.run(
        "latam_messaging.webhooks.receiver:worker_app",
        factory=True,
        host=args.host,
        port=args.port,
        workers=args.workers,
        log_level="warning",
        access_log=False,
        proxy_headers=True,
        timeout_graceful_shutdown=int(WAIT_LIMIT_S) + 5,  # in-flight requests finish their commit (or 503)
        timeout_worker_healthcheck=WORKER_HEALTHCHECK_S,
    )


if __name__ == "__main__":
    main()
