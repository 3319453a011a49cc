"""``python -m latam_messaging doctor``: all green on a ready setup, loud and non-zero on each problem."""

from __future__ import annotations

import subprocess
import sys

import pytest

from latam_messaging import doctor
from tests.helpers.connections import set_connection
from tests.helpers.paths import ROOT


@pytest.fixture
def vendor_connections(monkeypatch):
    monkeypatch.setenv("_AIRFLOW_PROCESS_CONTEXT", "server")  # what doctor sets; undone after the test
    set_connection(monkeypatch, "teleprom_default", conn_type="teleprom", host="http://127.0.0.1:1", login="u")
    set_connection(monkeypatch, "itd_default", conn_type="itd_chile", host="http://127.0.0.1:1", password="t")
    set_connection(monkeypatch, "wavy_default", conn_type="wavy", host="http://127.0.0.1:1", login="u")


def run(*args: str) -> tuple[int, str]:
    lines: list[str] = []
    code = doctor.run(list(args), out=lines.append)
    return code, "\n".join(lines)


def test_all_green(airflow_db, vendor_connections, receiver):
    code, text = run("--receiver-url", receiver.url)
    assert code == 0, text
    assert "[FAIL]" not in text and "all checks passed" in text
    assert "[ok  ] pool teleprom_api: 4 slots" in text
    assert "warehouse migrations" in text and "at head" in text


def test_problems_are_named_with_the_fix(airflow_db, vendor_connections, monkeypatch, tmp_path):
    monkeypatch.delenv("AIRFLOW_CONN_ITD_DEFAULT")
    set_connection(monkeypatch, "wavy_default", conn_type="http", host="http://127.0.0.1:1")
    set_connection(monkeypatch, "messaging_warehouse", conn_type="sqlite", host=str(tmp_path / "new.db"))
    code, text = run("--receiver-url", "http://127.0.0.1:9")
    assert code == 1
    assert "[FAIL] connection itd_default: not found" in text and "AIRFLOW_CONN_ITD_DEFAULT" in text
    assert "[FAIL] connection wavy_default: has type 'http'; expected 'wavy'" in text
    assert "[FAIL] warehouse migrations" in text and "python -m latam_messaging migrate" in text
    assert "[FAIL] webhook receiver" in text

    # ... and `migrate` fixes the warehouse
    assert doctor.migrate([], out=lambda _: None) == 0
    assert all(c.ok for c in doctor.check_warehouse())


def test_missing_pool(airflow_db):
    checks = {c.name: c for c in doctor.check_pools(["teleprom_api", "no_such_pool"])}
    assert checks["pool teleprom_api"].ok
    assert not checks["pool no_such_pool"].ok
    assert "airflow pools import deploy/pools.json" in checks["pool no_such_pool"].message


def test_module_entry_point(monkeypatch, tmp_path):
    """Exit status of the real command: non-zero on a problem, usage without a command."""
    env = {"PATH": "/usr/bin:/bin", "AIRFLOW_HOME": str(tmp_path), "PYTHONPATH": str(ROOT / "include")}
    usage = subprocess.run([sys.executable, "-m", "latam_messaging"], capture_output=True, text=True, env=env)
    assert usage.returncode == 2 and "doctor" in usage.stdout
    result = subprocess.run(
        [sys.executable, "-m", "latam_messaging", "doctor", "--skip-receiver"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert result.returncode == 1
    assert "[FAIL] connection teleprom_default: not found" in result.stdout
