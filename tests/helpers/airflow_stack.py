"""A real Airflow stack for the tests, started the way ``make airflow`` starts it (``scripts/airflow_local.py``):
API server, scheduler, dag-processor, triggerer (plus Celery workers and Redis when asked), on a temporary
``AIRFLOW_HOME`` and free ports on 127.0.0.1, with the vendor simulators (in this process) and the webhook
receiver (a process). The REST API is driven with the JWT of the simple auth manager's generated password.
:meth:`AirflowStack.stop` ends every process it started, whatever happened.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import sys
from pathlib import Path

import requests

from tests.helpers.paths import ROOT
from tests.helpers.waiting import wait_until

sys.path.insert(0, str(ROOT / "scripts"))
import airflow_local  # noqa: E402  (scripts/airflow_local.py: what make airflow runs)

from latam_messaging.simulators.framework import SimulatorServer  # noqa: E402
from latam_messaging.vendors import VENDORS  # noqa: E402

SECRET = "stack-test-secret"
TERMINAL = {"success", "failed"}
#: the eleven DAGs of ``dags/``
DAG_IDS = [
    "teleprom_catalog_sync",
    "teleprom_hsm_send",
    "itd_whatsapp_send",
    "wavy_sms_send",
    "itd_poll",
    "wavy_poll",
    "number_checks",
    "suppression_lists",
    "webhook_ingest",
    "messaging_report",
    "messaging_maintenance",
]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class AirflowStack:
    def __init__(
        self,
        base: Path,
        *,
        executor: str = "LocalExecutor",
        metadata_url: str | None = None,
        warehouse: dict | None = None,
        extra_env: dict[str, str] | None = None,
        workers: int = 0,
        broker_port: int | None = None,
    ):
        self.base = base
        self.home = base / "airflow"
        self.home.mkdir(parents=True, exist_ok=True)
        self.drops = base / "drops"
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.executor, self.workers, self.broker_port = executor, workers, broker_port
        self.warehouse = warehouse or {"conn_type": "sqlite", "host": str(base / "warehouse.db")}
        self.receiver_port = free_port()
        self.receiver_url = f"http://127.0.0.1:{self.receiver_port}"
        self.processes = airflow_local.Processes(self.home / "logs")
        self.simulators: dict[str, SimulatorServer] = {}
        self._token: str | None = None

        env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "MESSAGING_"))}
        env.update(airflow_local.airflow_settings(self.home, self.url, executor))
        env.update(
            AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=metadata_url or f"sqlite:///{self.home}/airflow.db",
            AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT=str(free_port()),
            AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT=str(free_port()),
            AIRFLOW__CORE__PARALLELISM="8",
            AIRFLOW__API__WORKERS="1",
            MESSAGING_DROP_DIR=str(self.drops),
            MESSAGING_REPORT_DIR=str(base / "reports"),
            MESSAGING_SPOOL_DIR=str(base / "spool"),
            MESSAGING_WEBHOOK_SECRET=SECRET,
            MESSAGING_PRICES=airflow_local.demo.DEMO_PRICES,
            MESSAGING_CURRENCY="USD",
            PYTHONUNBUFFERED="1",
        )
        if broker_port:
            env.update(
                AIRFLOW__CELERY__BROKER_URL=f"redis://127.0.0.1:{broker_port}/0",
                AIRFLOW__CELERY__RESULT_BACKEND="db+" + env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"],
                AIRFLOW__CELERY__WORKER_CONCURRENCY="4",
            )
        env.update(extra_env or {})
        self.env = env

    # ---- life cycle --------------------------------------------------------------------------------------
    def start(self) -> AirflowStack:
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def _start(self) -> None:
        if self.broker_port:
            redis = shutil.which("redis-server") or "/usr/bin/redis-server"
            command = [
                redis,
                "--port",
                str(self.broker_port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ]
            self.processes.start("redis", command + ["--dir", str(self.base)], self.env)
        hooks = f"{self.receiver_url}/webhooks/{{vendor}}/{SECRET}"
        for name, vendor in VENDORS.items():
            sim = vendor.simulator_class()(seed=11, webhook_url=hooks.format(vendor=name), step_seconds=0.5)
            self.simulators[name] = SimulatorServer(sim, port=0).start()
        connections = {
            "teleprom_default": {
                "conn_type": "teleprom",
                "host": self.simulators["teleprom"].url,
                "login": "demo",
                "password": "demo-pass",
            },
            "itd_default": {"conn_type": "itd_chile", "host": self.simulators["itd"].url, "password": "itd-demo-token"},
            "wavy_default": {
                "conn_type": "wavy",
                "host": self.simulators["wavy"].url,
                "login": "demo@wavy.global",
                "password": "wavy-demo-token",
            },
            "messaging_warehouse": self.warehouse,
        }
        airflow_local.prepare(self.env, {k: json.dumps(v) for k, v in connections.items()}, say=lambda _: None)
        receiver_env = self.env | {"AIRFLOW_CONN_MESSAGING_WAREHOUSE": json.dumps(self.warehouse)}
        receiver = [sys.executable, "-m", "latam_messaging.webhooks.receiver", "--port", str(self.receiver_port)]
        self.processes.start("receiver", receiver, receiver_env)
        for name, args in airflow_local.components("127.0.0.1", self.port).items():
            self.processes.start_airflow(name, args, self.env)
        for n in range(1, self.workers + 1):
            args = ["celery", "worker", "--celery-hostname", f"worker{n}@%h", "--skip-serve-logs", "--concurrency", "4"]
            self.processes.start_airflow(f"worker-{n}", args, self.env)
        self.wait_until(lambda: airflow_local.answers(f"{self.receiver_url}/health"), "the receiver", 60)
        self.wait_until(lambda: airflow_local.answers(f"{self.url}/api/v2/monitor/health"), "the API server", 240)
        self.wait_until(lambda: self.passwords_file.exists(), "the generated passwords file", 30)

    def stop(self) -> None:
        self.processes.stop()
        for server in self.simulators.values():
            server.stop()

    # ---- helpers -----------------------------------------------------------------------------------------
    @property
    def passwords_file(self) -> Path:
        return self.home / airflow_local.PASSWORDS.name

    @property
    def password(self) -> str:
        return json.loads(self.passwords_file.read_text())["admin"]

    def wait_until(self, predicate, what: str, timeout: float) -> None:
        """:func:`~tests.helpers.waiting.wait_until` that stops at once when a process of the stack died,
        and shows the logs' tails when it fails."""

        def done() -> bool:
            if predicate():
                return True
            dead = self.processes.dead()
            if dead:
                raise AssertionError(f"stopped while waiting for {what}: {dead}\n{self.log_tails(list(dead))}")
            return False

        wait_until(done, timeout=timeout, what=lambda: f"{what}\n{self.log_tails()}", interval=1)

    def log_tails(self, names: list[str] | None = None, lines: int = 25) -> str:
        out = []
        for path in sorted((self.home / "logs").glob("*.log")):
            if names is None or path.stem in names:
                tail = path.read_text(errors="replace").splitlines()[-lines:]
                out.append(f"--- {path.name} ---\n" + "\n".join(tail))
        return "\n".join(out)

    def token(self) -> str:
        if self._token is None:
            answer = requests.post(
                f"{self.url}/auth/token", json={"username": "admin", "password": self.password}, timeout=30
            )
            assert answer.status_code in (200, 201), answer.text
            self._token = answer.json()["access_token"]
        return self._token

    def api(self, method: str, path: str, **kwargs) -> requests.Response:
        headers = {"Authorization": f"Bearer {self.token()}"}
        return requests.request(method, f"{self.url}/api/v2{path}", headers=headers, timeout=60, **kwargs)

    def get(self, path: str, **params) -> dict:
        answer = self.api("GET", path, params=params)
        answer.raise_for_status()
        return answer.json()

    def wait_for_dags(self, dag_ids: list[str], timeout: float = 240) -> None:
        def parsed() -> bool:
            known = {d["dag_id"] for d in self.get("/dags", limit=100)["dags"]}
            return set(dag_ids) <= known

        self.wait_until(parsed, f"the DAGs {dag_ids} parsed", timeout)

    def runs(self, dag_id: str) -> list[dict]:
        return self.get(f"/dags/{dag_id}/dagRuns", limit=100)["dag_runs"]

    def wait_idle(self, dag_id: str, timeout: float = 300) -> None:
        """Until the run that unpausing schedules at once (catchup=False: the latest interval) has ended."""
        self.wait_until(lambda: self.runs(dag_id), f"the run {dag_id} was given when it was unpaused", 60)
        try:
            self.wait_until(
                lambda: all(r["state"] in TERMINAL for r in self.runs(dag_id)), f"{dag_id}'s runs ended", timeout
            )
        except AssertionError as exc:  # say where each run stands: queued, or which task is stuck where
            waiting = {
                r["dag_run_id"]: (r["state"], self.task_states(dag_id, r["dag_run_id"]))
                for r in self.runs(dag_id)
                if r["state"] not in TERMINAL
            }
            raise AssertionError(f"{exc}; runs not ended: {waiting}") from exc

    def trigger(self, dag_id: str, conf: dict | None = None) -> requests.Response:
        return self.api("POST", f"/dags/{dag_id}/dagRuns", json={"logical_date": None, "conf": conf or {}})

    def wait_run(self, dag_id: str, run_id: str, timeout: float = 300) -> dict:
        path = f"/dags/{dag_id}/dagRuns/{run_id}"
        self.wait_until(lambda: self.get(path)["state"] in TERMINAL, f"{dag_id} run {run_id}", timeout)
        return self.get(path)

    def task_states(self, dag_id: str, run_id: str) -> dict[str, str]:
        tis = self.get(f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances", limit=100)["task_instances"]
        return {f"{t['task_id']}[{t['map_index']}]": t["state"] for t in tis}

    def sim_state(self, vendor: str) -> dict:
        return requests.get(f"{self.simulators[vendor].url}/_sim/state", timeout=10).json()

    def sim_config(self, vendor: str, **values) -> None:
        """``POST /_sim/config`` of ``vendor``'s simulator (latency, error rate, ...)."""
        requests.post(f"{self.simulators[vendor].url}/_sim/config", json=values, timeout=10).raise_for_status()


def drop_csv(root: Path, folder: str, name: str, text: str) -> Path:
    """Drop a file the way writers must: upload as ``.part``, then rename."""
    target = root / folder
    target.mkdir(parents=True, exist_ok=True)
    part = target / f"{name}.part"
    part.write_text(text, encoding="utf-8")
    return part.rename(target / name)
