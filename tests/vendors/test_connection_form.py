"""The connection form of the three vendors, and the UI's connection Test through Airflow's real API."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from latam_messaging import get_provider_info


def test_form_fields():
    types = {c["connection-type"]: c for c in get_provider_info()["connection-types"]}
    assert types["teleprom"]["conn-fields"]["batch_size"]["schema"]["default"] == 500
    for conn_type in ("teleprom", "itd_chile", "wavy"):
        # the port goes inside the Base URL; a visible empty port is posted as 0 by the form's Test
        assert "port" in types[conn_type]["ui-field-behaviour"]["hidden-fields"]
        assert types[conn_type]["conn-fields"]["timeout"]["schema"]["default"] == 30


@pytest.fixture
def stored_teleprom(airflow_db, teleprom_server, monkeypatch):
    """``teleprom_default`` stored in the metadata database (as ``make airflow`` does), host with the port."""
    from latam_messaging.teleprom.hook import TelepromHook

    monkeypatch.setenv("AIRFLOW__CORE__TEST_CONNECTION", "Enabled")
    monkeypatch.delenv("AIRFLOW_CONN_TELEPROM_DEFAULT", raising=False)
    TelepromHook.forget_tokens()
    fields = {
        "conn_type": "teleprom",
        "host": teleprom_server.url,
        "login": "demo",
        "password": "demo-pass",
        "extra": {"timeout": 5, "max_retries": 0, "batch_size": 500},
    }
    airflow("connections", "delete", "teleprom_default", check=False)
    airflow("connections", "add", "teleprom_default", "--conn-json", json.dumps(fields))
    yield teleprom_server.url
    airflow("connections", "delete", "teleprom_default")
    TelepromHook.forget_tokens()


def airflow(*args: str, check: bool = True) -> None:
    subprocess.run([str(Path(sys.executable).parent / "airflow"), *args], check=check, capture_output=True)


_API_CHECK = """
import json, sys
from fastapi.testclient import TestClient
from airflow.api_fastapi import app as api_app
from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser

body = json.loads(sys.argv[1])
app = api_app.create_app(apps="core")
token = api_app.get_auth_manager().generate_jwt(SimpleAuthManagerUser(username="admin", role="admin"))
headers = {"Authorization": f"Bearer {token}"}
with TestClient(app) as client:
    ok = client.post("/api/v2/connections/test", json=body, headers=headers)
    refused = client.post("/api/v2/connections/test", json=body | {"port": 0}, headers=headers)
print("RESULT " + json.dumps([ok.status_code, ok.json(), refused.status_code]))
"""


def test_ui_connection_test_with_the_port_in_the_url(stored_teleprom):
    """What the form posts for an unchanged stored connection (masked password, no port field) through
    Airflow's real API app, in a fresh interpreter like the API server's (in this test process other
    tests' imports make ``airflow.models.Connection`` skip the metadata database)."""
    body = {
        "connection_id": "teleprom_default",
        "conn_type": "teleprom",
        "host": stored_teleprom,
        "login": "demo",
        "password": "***",
        "extra": '{"timeout": 5, "max_retries": 0, "batch_size": 500}',
    }
    result = subprocess.run(
        [sys.executable, "-c", _API_CHECK, json.dumps(body)], capture_output=True, text=True, timeout=120
    )
    [line] = [x for x in result.stdout.splitlines() if x.startswith("RESULT ")] or [result.stderr[-2000:]]
    ok_status, ok_body, refused_status = json.loads(line.removeprefix("RESULT "))
    assert ok_status == 200 and ok_body["status"] is True, ok_body
    assert refused_status == 400  # the form before this fix: an empty visible port field posted as 0
