"""``make airflow``: a real local Airflow with the simulators and the webhook receiver.

API server (UI and REST API at http://127.0.0.1:8080), scheduler (LocalExecutor), dag-processor and
triggerer, all on the ``.airflow/`` home of the demo (SQLite metadata). The project's connections are
stored in the metadata database (so they appear, and can be tested, in the UI; existing ones are kept),
the pools of ``deploy/pools.json`` imported, the ``plugins/`` folder loaded (the Messaging page), and the
DAGs created unpaused (``catchup=False``: each schedules only its latest interval, nothing from the past).
The API server gets what the page's writes need (the drop folder and its ``_uploads`` folder, the demo's
``MESSAGING_PRICES``), and once the DAGs are parsed the send DAGs are unpaused if they were paused (the
page's confirm, release and reply trigger them: a paused DAG's run would wait forever).
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
import urllib.error
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import demo  # noqa: E402  (scripts/demo.py: the same home, simulators and receiver)

ROOT, HOME, BIN = demo.ROOT, demo.HOME, demo.BIN
HOST, PORT = "127.0.0.1", int(os.environ.get("AIRFLOW_PORT", "8080"))
URL = f"http://{HOST}:{PORT}"
PASSWORDS = HOME / "simple_auth_manager_passwords.json.generated"
#: The send DAGs (``dags/<folder>_send.py``: the DAG id is the file's name), which the page triggers.
SEND_DAGS = sorted(path.stem for path in (ROOT / "dags").glob("*_send.py"))
#: Connections ``make airflow`` stores in the metadata database (taken out of the demo's environment).
STORED_CONNECTIONS = {"teleprom_default", "itd_default", "wavy_default", "messaging_warehouse", "messaging_alerts"}


def components(host: str, port: int) -> dict[str, list[str]]:
    """The Airflow processes of a local stack (``airflow <args>``), by name."""
    return {
        "api-server": ["api-server", "--host", host, "--port", str(port)],
        "scheduler": ["scheduler"],
        "dag-processor": ["dag-processor"],
        "triggerer": ["triggerer"],
    }


COMPONENTS = components(HOST, PORT)


def _secret(home: Path, name: str, make) -> str:
    path = home / name
    if not path.exists():
        path.write_text(make())
        path.chmod(0o600)
    return path.read_text().strip()


def airflow_settings(home: Path, url: str, executor: str = "LocalExecutor") -> dict[str, str]:
    """The ``AIRFLOW__*`` settings of a local stack on ``home`` whose API server answers at ``url``
    (secrets generated once into ``home``)."""
    from cryptography.fernet import Fernet

    return dict(
        AIRFLOW_HOME=str(home),
        AIRFLOW__CORE__EXECUTOR=executor,
        AIRFLOW__CORE__DAGS_FOLDER=str(ROOT / "dags"),
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        AIRFLOW__CORE__PLUGINS_FOLDER=str(ROOT / "plugins"),
        AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION="False",
        AIRFLOW__CORE__TEST_CONNECTION="Enabled",
        AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS="admin:admin",
        AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE=str(home / PASSWORDS.name),
        AIRFLOW__CORE__EXECUTION_API_SERVER_URL=f"{url}/execution/",
        AIRFLOW__CORE__FERNET_KEY=_secret(home, "fernet_key", lambda: Fernet.generate_key().decode()),
        AIRFLOW__API__BASE_URL=url,
        AIRFLOW__API_AUTH__JWT_SECRET=_secret(home, "jwt_secret", lambda: secrets.token_urlsafe(64)),
        AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL="30",
        AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK="False",
    )


def environment() -> tuple[dict[str, str], dict[str, str]]:
    """The components' environment, and the connections to store (conn id → JSON), out of it."""
    env = demo.demo_environment()
    connections = {}
    for key in [k for k in env if k.startswith("AIRFLOW_CONN_")]:
        conn_id = key.removeprefix("AIRFLOW_CONN_").lower()
        if conn_id in STORED_CONNECTIONS:
            connections[conn_id] = env.pop(key)
    env.update(airflow_settings(HOME, URL))
    return env, connections


def airflow(env: dict[str, str], *args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / "airflow"), *args], env=env, check=check, capture_output=True, text=True)


def store_connections(env: dict[str, str], connections: dict[str, str], say=print) -> None:
    """Add the connections that are not in the metadata database yet (edits made in the UI are kept);
    one ``airflow connections import`` (it skips the conn ids already stored)."""
    home = Path(env["AIRFLOW_HOME"])
    path = home / "connections-to-store.json"
    path.write_text(json.dumps({conn_id: json.loads(fields) for conn_id, fields in connections.items()}))
    path.chmod(0o600)
    try:
        output = airflow(env, "connections", "import", str(path)).stdout
    finally:
        path.unlink()
    for conn_id, fields in connections.items():
        kept = f"connection {conn_id}: connection already exists" in output.replace("Could not import ", "")
        say(f"connection {conn_id}: " + ("kept as stored" if kept else f"stored ({json.loads(fields)['conn_type']})"))


def uploads_dir(env: dict[str, str]) -> Path:
    """Where the page keeps uploads until confirmed (``settings.Settings.uploads``): on the drop volume."""
    return Path(env.get("MESSAGING_UPLOAD_DIR") or Path(env["MESSAGING_DROP_DIR"]) / "_uploads")


def prepare(env: dict[str, str], connections: dict[str, str], say=print) -> None:
    """Metadata database migrated, pools imported, connections stored, drop and uploads folders created."""
    Path(env["AIRFLOW_HOME"], "logs").mkdir(parents=True, exist_ok=True)
    airflow(env, "db", "migrate")
    airflow(env, "pools", "import", str(ROOT / "deploy" / "pools.json"))
    say("pools imported from deploy/pools.json")
    store_connections(env, connections, say)
    Path(env["MESSAGING_DROP_DIR"]).mkdir(parents=True, exist_ok=True)
    uploads_dir(env).mkdir(parents=True, exist_ok=True)


def answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2):
            return True
    except OSError:
        return False


def _call(method: str, url: str, token: str | None = None, body: dict | None = None) -> tuple[int, dict]:
    headers = {"Content-Type": "application/json"} | ({"Authorization": f"Bearer {token}"} if token else {})
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers=headers, method=method)
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            return answer.status, json.loads(answer.read() or b"{}")
    except urllib.error.HTTPError as error:
        return error.code, {}


def unpause_send_dags(url: str, passwords: Path, *, timeout: float = 240, user: str = "admin") -> list[str]:
    """Wait until the dag-processor has parsed every send DAG (:data:`SEND_DAGS`), then unpause those that
    are paused, through the REST API as ``user`` (password from the simple auth manager's ``passwords``
    file). Returns the DAG ids it unpaused; ``TimeoutError`` if they are not all parsed in ``timeout`` s."""
    password = json.loads(passwords.read_text())[user]
    status, body = _call("POST", f"{url}/auth/token", body={"username": user, "password": password})
    if status not in (200, 201):
        raise RuntimeError(f"could not log in as {user} to {url} (HTTP {status})")
    token = body["access_token"]
    deadline = time.monotonic() + timeout
    while True:
        found = {dag_id: _call("GET", f"{url}/api/v2/dags/{dag_id}", token) for dag_id in SEND_DAGS}
        if all(status == 200 for status, _ in found.values()):
            break
        if time.monotonic() >= deadline:
            missing = [dag_id for dag_id, (status, _) in found.items() if status != 200]
            raise TimeoutError(f"the send DAGs {missing} were not parsed within {timeout:g}s")
        time.sleep(2)
    unpaused = []
    for dag_id, (_, dag) in found.items():
        if dag.get("is_paused"):
            status, _ = _call("PATCH", f"{url}/api/v2/dags/{dag_id}", token, {"is_paused": False})
            if status != 200:
                raise RuntimeError(f"could not unpause {dag_id} (HTTP {status})")
            unpaused.append(dag_id)
    return unpaused


class Processes:
    """Processes started for a stack, each the leader of its own process group (stopped with all its
    children); :meth:`stop` ends them all (SIGTERM, then SIGKILL after ``grace`` seconds)."""

    def __init__(self, logs: Path):
        self.logs, self.started = logs, {}

    def start(self, name: str, command: list[str], env: dict[str, str]) -> subprocess.Popen:
        self.logs.mkdir(parents=True, exist_ok=True)
        with open(self.logs / f"{name}.log", "ab") as log:
            process = subprocess.Popen(
                command, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
            )
        self.started[name] = process
        return process

    def start_airflow(self, name: str, args: list[str], env: dict[str, str]) -> subprocess.Popen:
        return self.start(name, [str(BIN / "airflow"), *args], env)

    def dead(self) -> dict[str, int]:
        """Processes that stopped, with their exit codes."""
        return {name: p.returncode for name, p in self.started.items() if p.poll() is not None}

    def stop(self, grace: float = 20) -> None:
        for process in reversed(list(self.started.values())):
            _signal_group(process, signal.SIGTERM)
        deadline = time.monotonic() + grace
        for process in self.started.values():
            try:
                process.wait(timeout=max(deadline - time.monotonic(), 0.1))
            except subprocess.TimeoutExpired:
                pass
            _signal_group(process, signal.SIGKILL)  # leftovers of the group (task processes, workers)
            process.wait()


def _signal_group(process: subprocess.Popen, sig: int) -> None:
    try:
        os.killpg(process.pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def login(passwords: Path = PASSWORDS) -> str:
    data = json.loads(passwords.read_text()) if passwords.exists() else {}
    return ", ".join(f"{user} / {password}" for user, password in data.items()) or "(see .airflow/logs/api-server.log)"


def main() -> int:
    HOME.mkdir(exist_ok=True)
    (HOME / "logs").mkdir(exist_ok=True)
    if answers(f"{URL}/api/v2/monitor/health"):
        print(f"something already answers on {URL}: stop it first")
        return 1
    env, connections = environment()
    print("migrating the metadata database (.airflow/airflow.db) ...")
    prepare(env, connections)

    processes = Processes(HOME / "logs")  # Airflow components
    services: list[subprocess.Popen] = []  # simulators and receiver (single processes)

    def stop() -> None:
        print("\nstopping what make airflow started ...")
        for process in services:
            if process.poll() is None:
                process.terminate()
        processes.stop()
        for process in services:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
        print("stopped")

    signal.signal(signal.SIGTERM, lambda *a: (_ for _ in ()).throw(KeyboardInterrupt()))
    try:
        # simulators + receiver (unless already running); the receiver reads the warehouse connection from
        # its environment (CONTRACT.md)
        warehouse = {"AIRFLOW_CONN_MESSAGING_WAREHOUSE": connections["messaging_warehouse"]}
        services.extend(demo.start_services(env | warehouse))
        for name, args in COMPONENTS.items():
            processes.start_airflow(name, args, env)
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
            f"  upload a campaign on the Messaging page's Campaigns ({URL}/messaging/campaigns), or\n"
            f"  drop CSVs into {env['MESSAGING_DROP_DIR']}/<folder>/ and trigger a send DAG, or wait for its schedule\n"
            "Ctrl-C stops everything started here."
        )
        try:
            unpaused = unpause_send_dags(URL, PASSWORDS)
            print(f"send DAGs unpaused: {', '.join(unpaused)}" if unpaused else f"send DAGs active: {', '.join(SEND_DAGS)}")
        except (OSError, RuntimeError, TimeoutError) as error:
            print(f"could not check the send DAGs' pause state ({error}): unpause them in the DAG list")
        while True:
            dead = processes.dead()
            dead.update({" ".join(p.args): p.returncode for p in services if p.poll() is not None})
            if dead:
                print(f"a process stopped unexpectedly: {dead}")
                return 1
            time.sleep(2)
    except KeyboardInterrupt:
        return 0
    finally:
        stop()


if __name__ == "__main__":
    sys.exit(main())
