"""Shared fixtures: an isolated Airflow home, the vendor simulators as real servers, connections."""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
_AIRFLOW_HOME = Path(tempfile.mkdtemp(prefix="airflow-test-home-"))
os.environ["AIRFLOW_HOME"] = str(_AIRFLOW_HOME)
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(ROOT / "dags")
os.environ["AIRFLOW__CORE__UNIT_TEST_MODE"] = "False"
os.environ.setdefault("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", f"sqlite:///{_AIRFLOW_HOME}/airflow.db")

import pytest  # noqa: E402
from hypothesis import settings as hypothesis_settings  # noqa: E402

from latam_messaging.simulators.framework import SimulatorServer  # noqa: E402
from latam_messaging.vendors import VENDORS  # noqa: E402

# phonenumbers and pendulum load metadata lazily: a first example may be slow, never wrong
hypothesis_settings.register_profile("project", deadline=None, max_examples=200)
hypothesis_settings.load_profile("project")


def set_connection(monkeypatch: pytest.MonkeyPatch, conn_id: str, **fields) -> None:
    """Define an Airflow connection the way deployments do: an ``AIRFLOW_CONN_*`` JSON variable."""
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(fields))


@pytest.fixture(scope="session")
def simulator_servers():
    """One real HTTP server per vendor on an ephemeral 127.0.0.1 port, for the whole session."""
    servers = {}
    for name, vendor in VENDORS.items():
        servers[name] = SimulatorServer(vendor.simulator_class()(seed=7, step_seconds=0.05), port=0).start()
    yield servers
    for server in servers.values():
        server.stop()


def _fresh(servers, name: str):
    server = servers[name]
    server.simulator.reset()
    return server


@contextlib.contextmanager
def _hook_on(monkeypatch, make_hook, conn_id: str, **fields):
    """A hook on connection ``conn_id`` (defined from ``fields``), with retries that do not wait
    seconds (the retry logic is the same), closed afterwards."""
    set_connection(monkeypatch, conn_id, **fields)
    hook = make_hook()
    hook.backoff_initial_s = 0.001
    hook.backoff_max_s = 0.01
    try:
        yield hook
    finally:
        hook.close()


@pytest.fixture
def teleprom_server(simulator_servers):
    return _fresh(simulator_servers, "teleprom")


@pytest.fixture
def itd_server(simulator_servers):
    return _fresh(simulator_servers, "itd")


@pytest.fixture
def wavy_server(simulator_servers):
    server = _fresh(simulator_servers, "wavy")
    server.simulator.configure({"status_rate_limit": 1000})  # the documented 1/s is tested on its own
    return server


@pytest.fixture
def teleprom_hook(teleprom_server, monkeypatch):
    from latam_messaging.teleprom.hook import TelepromHook

    TelepromHook.forget_tokens()
    fields = {"host": teleprom_server.url, "login": "demo", "password": "demo-pass"}
    with _hook_on(monkeypatch, TelepromHook, "teleprom_default", conn_type="teleprom", **fields) as hook:
        yield hook
    TelepromHook.forget_tokens()


@pytest.fixture
def itd_hook(itd_server, monkeypatch):
    from latam_messaging.itd.hook import ItdHook

    fields = {"host": itd_server.url, "password": "itd-demo-token"}
    with _hook_on(monkeypatch, ItdHook, "itd_default", conn_type="itd_chile", **fields) as hook:
        yield hook


@pytest.fixture
def wavy_hook(wavy_server, monkeypatch):
    from latam_messaging.wavy.hook import WavyHook

    fields = {"host": wavy_server.url, "login": "demo@wavy.global", "password": "wavy-demo-token"}
    with _hook_on(
        monkeypatch, lambda: WavyHook(status_queries_per_s=0), "wavy_default", conn_type="wavy", **fields
    ) as hook:
        yield hook


def sim_state(server) -> dict:
    import requests

    return requests.get(f"{server.url}/_sim/state", timeout=5).json()


def configure(server, **settings) -> None:
    import requests

    requests.post(f"{server.url}/_sim/config", json=settings, timeout=5).raise_for_status()


class WebhookSink:
    """A throwaway receiver for simulator webhooks: records bodies, can refuse the first N posts."""

    def __init__(self, refuse_first: int = 0):
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        sink = self
        self.posts: list[tuple[str, object]] = []
        self.refused = 0
        self._refuse_first = refuse_first
        self._lock = threading.Lock()

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):  # noqa: N802 - stdlib name
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
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
        import time

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if predicate(self.posts):
                    return list(self.posts)
            time.sleep(0.02)
        raise AssertionError(f"webhooks not received in {timeout}s; got {len(self.posts)} posts")

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def webhook_sink():
    sinks: list[WebhookSink] = []

    def make(refuse_first: int = 0) -> WebhookSink:
        sinks.append(WebhookSink(refuse_first))
        return sinks[-1]

    yield make
    for sink in sinks:
        sink.close()


# ---- the warehouse, on both databases --------------------------------------------------------------
@pytest.fixture(scope="session")
def postgres_server():
    """A real PostgreSQL for the session: ``TEST_POSTGRES_URL`` (a server URL, e.g.
    ``postgresql://user:pass@host:5432/postgres``) to use an existing server, in which each test
    creates its own database; otherwise a throwaway cluster."""
    from tests.postgres import ExistingPostgres, ThrowawayPostgres

    url = os.environ.get("TEST_POSTGRES_URL")
    server = ExistingPostgres(url) if url else ThrowawayPostgres()
    yield server
    server.stop()


_database_counter = iter(range(1, 1_000_000))


@pytest.fixture(params=["sqlite", "postgres"])
def warehouse(request, monkeypatch, tmp_path):
    """A fresh, migrated warehouse behind the ``messaging_warehouse`` connection, on each database."""
    import sqlalchemy as sa

    from latam_messaging.warehouse.db import Warehouse

    if request.param == "sqlite":
        set_connection(monkeypatch, "messaging_warehouse", conn_type="sqlite", host=str(tmp_path / "warehouse.db"))
    else:
        server = request.getfixturevalue("postgres_server")
        name = f"warehouse_{os.getpid()}_{next(_database_counter)}"
        admin = sa.create_engine(server.url(), isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
        admin.dispose()
        set_connection(
            monkeypatch,
            "messaging_warehouse",
            conn_type="postgres",
            host=server.host,
            port=server.port,
            login=server.login,
            schema=name,
            **({"password": server.password} if server.password else {}),
        )
    wh = Warehouse.from_connection()
    wh.migrate()
    yield wh
    wh.engine.dispose()


@pytest.fixture(scope="session")
def airflow_db():
    """The Airflow metadata database that ``dag.test()`` needs, migrated once per session."""
    import subprocess
    import sys

    airflow = Path(sys.executable).parent / "airflow"
    subprocess.run([str(airflow), "db", "migrate"], check=True, capture_output=True, env=os.environ.copy())
    pools = ROOT / "deploy" / "pools.json"
    subprocess.run(
        [str(airflow), "pools", "import", str(pools)], check=True, capture_output=True, env=os.environ.copy()
    )
    return True


@pytest.fixture
def run_dag(airflow_db):
    """Run a DAG of ``dags/`` in-process with ``dag.test()``; returns the finished DagRun."""
    from airflow.dag_processing.dagbag import DagBag

    def run(dag_id: str, *, retries: int | None = 0, **kwargs):
        """``retries``: dag.test() would really wait out the DAG's retry delays, so tests set them;
        ``retries=None`` keeps each task's own retries (and only zeroes the delay between them)."""
        bag = DagBag(dag_folder=str(ROOT / "dags" / f"{dag_id}.py"))
        assert not bag.import_errors, bag.import_errors
        dag = bag.dags[dag_id]
        for task in dag.tasks:
            if retries is not None:
                task.retries = retries
            task.retry_delay = datetime.timedelta(seconds=0)
        return dag.test(**kwargs)

    return run


@pytest.fixture
def drop_dir(tmp_path, monkeypatch):
    """An empty ``MESSAGING_DROP_DIR`` for the test."""
    root = tmp_path / "drops"
    root.mkdir()
    monkeypatch.setenv("MESSAGING_DROP_DIR", str(root))
    return root


def drop_csv(root: Path, folder: str, name: str, text: str, encoding: str = "utf-8") -> Path:
    """Drop a file the way writers must: upload as ``.part``, then rename."""
    target = root / folder
    target.mkdir(parents=True, exist_ok=True)
    part = target / f"{name}.part"
    part.write_bytes(text.encode(encoding))
    return part.rename(target / name)


class ReceiverServer:
    """The webhook receiver as a real uvicorn server on 127.0.0.1, restartable on the same port."""

    def __init__(self, warehouse, secret: str = "s3cret", port: int = 0):
        import socket

        if not port:
            with socket.socket() as sock:
                sock.bind(("127.0.0.1", 0))
                port = sock.getsockname()[1]
        self.port, self.secret, self.warehouse = port, secret, warehouse
        self.url = f"http://127.0.0.1:{port}"
        self.start()

    def start(self) -> None:
        import threading
        import time

        import uvicorn

        from latam_messaging.webhooks.receiver import create_app

        config = uvicorn.Config(
            create_app(self.warehouse, self.secret), host="127.0.0.1", port=self.port, log_level="error"
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            assert time.monotonic() < deadline, "receiver did not start"
            time.sleep(0.01)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)

    def hook_url(self, vendor: str, channel: str | None = None) -> str:
        return f"{self.url}/webhooks/{vendor}/{self.secret}" + (f"/{channel}" if channel else "")


@pytest.fixture
def receiver(warehouse):
    server = ReceiverServer(warehouse)
    yield server
    server.stop()


def add_ledger_row(
    warehouse,
    key: str,
    vendor: str,
    *,
    phone: str = "5493515238015",
    state: str = "accepted",
    vendor_id: str | None = None,
) -> None:
    """A row of ``outbound_messages`` as the send pipeline leaves it."""
    import pendulum

    from latam_messaging.warehouse import schema

    now = pendulum.now("UTC")
    with warehouse.begin() as conn:
        conn.execute(
            schema.outbound_messages.insert().values(
                message_key=key,
                vendor=vendor,
                phone=phone,
                state=state,
                vendor_message_id=vendor_id,
                created_at=now,
                updated_at=now,
                accepted_at=now if state == "accepted" else None,
            )
        )
