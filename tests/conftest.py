"""Shared fixtures: an isolated Airflow home, the vendor simulators as real servers, connections.

Fixtures only: what tests share that is not a fixture is in ``tests/helpers/``.
"""

from __future__ import annotations

import datetime
import os
import tempfile
from pathlib import Path

import pytest

pytest.register_assert_rewrite("tests.helpers")  # before any helper is imported: their asserts report in full

from tests.helpers.paths import ROOT  # noqa: E402

_AIRFLOW_HOME = Path(tempfile.mkdtemp(prefix="airflow-test-home-"))
os.environ["AIRFLOW_HOME"] = str(_AIRFLOW_HOME)
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(ROOT / "dags")
os.environ["AIRFLOW__CORE__UNIT_TEST_MODE"] = "False"
os.environ.setdefault("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", f"sqlite:///{_AIRFLOW_HOME}/airflow.db")

from hypothesis import settings as hypothesis_settings  # noqa: E402

from latam_messaging.simulators.framework import SimulatorServer  # noqa: E402
from latam_messaging.vendors import VENDORS  # noqa: E402
from tests.helpers.connections import hook_on, set_connection  # noqa: E402
from tests.helpers.postgres import create_database  # noqa: E402
from tests.helpers.receiver import ReceiverServer  # noqa: E402
from tests.helpers.simulators import WebhookSink, fresh  # noqa: E402

# phonenumbers and pendulum load metadata lazily: a first example may be slow, never wrong
hypothesis_settings.register_profile("project", deadline=None, max_examples=200)
hypothesis_settings.load_profile("project")


@pytest.fixture(scope="session")
def simulator_servers():
    """One real HTTP server per vendor on an ephemeral 127.0.0.1 port, for the whole session."""
    servers = {}
    for name, vendor in VENDORS.items():
        servers[name] = SimulatorServer(vendor.simulator_class()(seed=7, step_seconds=0.05), port=0).start()
    yield servers
    for server in servers.values():
        server.stop()


@pytest.fixture
def teleprom_server(simulator_servers):
    return fresh(simulator_servers, "teleprom")


@pytest.fixture
def itd_server(simulator_servers):
    return fresh(simulator_servers, "itd")


@pytest.fixture
def wavy_server(simulator_servers):
    server = fresh(simulator_servers, "wavy")
    server.simulator.configure({"status_rate_limit": 1000})  # the documented 1/s is tested on its own
    return server


@pytest.fixture
def teleprom_hook(teleprom_server, monkeypatch):
    from latam_messaging.teleprom.hook import TelepromHook

    TelepromHook.forget_tokens()
    fields = {"host": teleprom_server.url, "login": "demo", "password": "demo-pass"}
    with hook_on(monkeypatch, TelepromHook, "teleprom_default", conn_type="teleprom", **fields) as hook:
        yield hook
    TelepromHook.forget_tokens()


@pytest.fixture
def itd_hook(itd_server, monkeypatch):
    from latam_messaging.itd.hook import ItdHook

    fields = {"host": itd_server.url, "password": "itd-demo-token"}
    with hook_on(monkeypatch, ItdHook, "itd_default", conn_type="itd_chile", **fields) as hook:
        yield hook


@pytest.fixture
def wavy_hook(wavy_server, monkeypatch):
    from latam_messaging.wavy.hook import WavyHook

    fields = {"host": wavy_server.url, "login": "demo@wavy.global", "password": "wavy-demo-token"}
    with hook_on(
        monkeypatch, lambda: WavyHook(status_queries_per_s=0), "wavy_default", conn_type="wavy", **fields
    ) as hook:
        yield hook


@pytest.fixture
def webhook_sink():
    sinks: list[WebhookSink] = []

    def make(refuse_first: int = 0, hold: bool = False) -> WebhookSink:
        sinks.append(WebhookSink(refuse_first, hold))
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
    from tests.helpers.postgres import ExistingPostgres, ThrowawayPostgres

    url = os.environ.get("TEST_POSTGRES_URL")
    server = ExistingPostgres(url) if url else ThrowawayPostgres()
    yield server
    server.stop()


_database_counter = iter(range(1, 1_000_000))


@pytest.fixture(params=["sqlite", "postgres"])
def warehouse(request, monkeypatch, tmp_path):
    """A fresh, migrated warehouse behind the ``messaging_warehouse`` connection, on each database."""

    from latam_messaging.warehouse.db import Warehouse

    if request.param == "sqlite":
        set_connection(monkeypatch, "messaging_warehouse", conn_type="sqlite", host=str(tmp_path / "warehouse.db"))
    else:
        server = request.getfixturevalue("postgres_server")
        name = f"warehouse_{os.getpid()}_{next(_database_counter)}"
        create_database(server, name)
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


@pytest.fixture
def receiver(warehouse):
    server = ReceiverServer(warehouse)
    yield server
    server.stop()
