"""``make airflow``: a real local Airflow with the simulators and the webhook receiver.

API server (UI and REST API at http://127.0.0.1:8080), scheduler (LocalExecutor), dag-processor and
triggerer, all on the ``.airflow/`` home of the demo (SQLite metadata). The project's connections are
stored in the metadata database (so they appear, and can be tested, in the UI; existing ones are kept),
the pools of ``deploy/pools.json`` imported, the ``plugins/`` folder loaded (the Messaging page), and the
DAGs created unpaused (``catchup=False``: each schedules only its latest interval, nothing from the past).
The login comes from the simple auth manager's generated passwords file, kept in ``.airflow/``.
Ctrl-C stops every process this script started.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import demo  # noqa: E402  (scripts/demo.py: the same home, simulators and receiver)

ROOT, HOME, BIN = demo.ROOT, demo.HOME, demo.BIN
HOST, PORT = "127.0.0.1", int(os.environ.get("AIRFLOW_PORT", "8080"))
URL = f"http://{HOST}:{PORT}"
PASSWORDS = HOME / "simple_auth_manager_passwords.json.generated"
COMPONENTS = {
    "api-server": ["api-server", "--host", HOST, "--port", str(PORT)],
    "scheduler": ["scheduler"],
    "dag-processor": ["dag-processor"],
    "triggerer": ["triggerer"],
}


def _secret(name: str, make) -> str:
    path = HOME / name
    if not path.exists():
        path.write_text(make())
        path.chmod(0o600)
    return path.read_text().strip()


def environment() -> tuple[dict[str, str], dict[str, str]]:
    """The components' environment, and the connections to store (conn id → JSON), out of it."""
    env = demo.demo_environment()
    connections = {}
    for key in [k for k in env if k.startswith("AIRFLOW_CONN_")]:
        conn_id = key.removeprefix("AIRFLOW_CONN_").lower()
        if conn_id in {"teleprom_default", "itd_default", "wavy_default", "messaging_warehouse", "messaging_alerts"}:
            connections[conn_id] = env.pop(key)
    from cryptography.fernet import Fernet

    env.update(
        AIRFLOW__CORE__EXECUTOR="LocalExecutor",
        AIRFLOW__CORE__PLUGINS_FOLDER=str(ROOT / "plugins"),
        AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION="False",
        AIRFLOW__CORE__TEST_CONNECTION="Enabled",
        AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS="admin:admin",
        AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE=str(PASSWORDS),
        AIRFLOW__CORE__EXECUTION_API_SERVER_URL=f"{URL}/execution/",
        AIRFLOW__CORE__FERNET_KEY=_secret("fernet_key", lambda: Fernet.generate_key().decode()),
        AIRFLOW__API__BASE_URL=URL,
        AIRFLOW__API_AUTH__JWT_SECRET=_secret("jwt_secret", lambda: secrets.token_urlsafe(64)),
        AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL="30",
        AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK="False",
    )
    return env, connections


def airflow(env: dict[str, str], *args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / "airflow"), *args], env=env, check=check, capture_output=True, text=True)


def store_connections(env: dict[str, str], connections: dict[str, str]) -> None:
    """Add the connections that are not in the metadata database yet (edits made in the UI are kept)."""
    for conn_id, fields in connections.items():
        if airflow(env, "connections", "get", conn_id, check=False).returncode == 0:
            print(f"connection {conn_id}: kept as stored")
            continue
        airflow(env, "connections", "add", conn_id, "--conn-json", fields)
        print(f"connection {conn_id}: stored ({json.loads(fields)['conn_type']})")


def answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2):
            return True
    except OSError:
        return False


def login() -> str:
    passwords = json.loads(PASSWORDS.read_text()) if PASSWORDS.exists() else {}
    return ", ".join(f"{user} / {password}" for user, password in passwords.items()) or "(see .airflow/logs/api-server.log)"


def main() -> int:
    HOME.mkdir(exist_ok=True)
    (HOME / "logs").mkdir(exist_ok=True)
    if answers(f"{URL}/api/v2/monitor/health"):
        print(f"something already answers on {URL}: stop it first")
        return 1
    env, connections = environment()
    print("migrating the metadata database (.airflow/airflow.db) ...")
    airflow(env, "db", "migrate")
    airflow(env, "pools", "import", str(ROOT / "deploy" / "pools.json"))
    print("pools imported from deploy/pools.json")
    store_connections(env, connections)
    Path(env["MESSAGING_DROP_DIR"]).mkdir(parents=True, exist_ok=True)

    started: list[subprocess.Popen] = []  # Airflow components: each leads its own process group
    services: list[subprocess.Popen] = []  # simulators and receiver (single processes)

    def stop() -> None:
        print("\nstopping what make airflow started ...")
        for process in reversed(started):
            if process.poll() is None:
                try:
                    os.killpg(process.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        for process in services:
            if process.poll() is None:
                process.terminate()
        deadline = time.monotonic() + 20
        for process in started + services:
            try:
                process.wait(timeout=max(deadline - time.monotonic(), 0.1))
            except subprocess.TimeoutExpired:
                if process in started:
                    os.killpg(process.pid, signal.SIGKILL)
                else:
                    process.kill()
        print("stopped")

    signal.signal(signal.SIGTERM, lambda *a: (_ for _ in ()).throw(KeyboardInterrupt()))
    try:
        # simulators + receiver (unless already running); the receiver reads the warehouse connection from
        # its environment (CONTRACT.md)
        warehouse = {"AIRFLOW_CONN_MESSAGING_WAREHOUSE": connections["messaging_warehouse"]}
        services.extend(demo.start_services(env | warehouse))
        for name, args in COMPONENTS.items():
            log = open(HOME / "logs" / f"{name}.log", "ab")
            started.append(
                subprocess.Popen(
                    [str(BIN / "airflow"), *args],
                    env=env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,  # its own process group: stopped with all its children
                )
            )
            print(f"started airflow {name} (log: .airflow/logs/{name}.log)")
        demo.wait_until(lambda: answers(f"{URL}/api/v2/monitor/health"), "the API server", timeout=180)
        doctor_env = env | {"PYTHONPATH": str(ROOT / "include")}
        result = subprocess.run(
            [str(BIN / "python"), "-m", "latam_messaging", "doctor"], env=doctor_env, capture_output=True, text=True
        )
        print("\n" + result.stdout.strip())
        print(
            f"\nAirflow UI and REST API: {URL}   login: {login()}\n"
            f"  (passwords file: {PASSWORDS.relative_to(ROOT)}; the Messaging page is in the navigation)\n"
            f"  drop CSVs into {env['MESSAGING_DROP_DIR']}/<folder>/ and trigger a send DAG, or wait for its schedule\n"
            "Ctrl-C stops everything started here."
        )
        while True:
            for process in started + services:
                if process.poll() is not None:
                    print(f"a process stopped unexpectedly (exit {process.returncode}): {process.args}")
                    return 1
            time.sleep(2)
    except KeyboardInterrupt:
        return 0
    finally:
        stop()


if __name__ == "__main__":
    sys.exit(main())
