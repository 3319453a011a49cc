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


def test_ui_connection_test_with_the_port_in_the_url(stored_teleprom):
    """What the form posts for an unchanged stored connection: masked password, no port field."""
    from airflow.api_fastapi import app as api_app
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser
    from fastapi.testclient import TestClient

    api_app.purge_cached_app()
    app = api_app.create_app(apps="core")
    token = api_app.get_auth_manager().generate_jwt(SimpleAuthManagerUser(username="admin", role="admin"))
    body = {
        "connection_id": "teleprom_default",
        "conn_type": "teleprom",
        "host": stored_teleprom,
        "login": "demo",
        "password": "***",
        "extra": '{"timeout": 5, "max_retries": 0, "batch_size": 500}',
    }
    with TestClient(app) as client:
        response = client.post(
            "/api/v2/connections/test", json=body, headers={"Authorization": f"Bearer {token}"}
        )
        assert response.status_code == 200, response.text
        assert response.json()["status"] is True, response.json()
        # the form before this fix: an empty visible port field posted as 0 → refused
        refused = client.post(
            "/api/v2/connections/test", json=body | {"port": 0}, headers={"Authorization": f"Bearer {token}"}
        )
        assert refused.status_code == 400
    api_app.purge_cached_app()
