"""Fixtures of the page tests: Airflow's real API app with this project's plugin mounted."""

from __future__ import annotations

import pytest

from tests.helpers.paths import ROOT


@pytest.fixture
def page_api(airflow_db, monkeypatch):
    """Airflow's real API app (core apps, the simple auth manager) with this project's ``plugins/`` folder:
    a fresh plugin (and page app) per test."""
    from airflow import plugins_manager, settings
    from airflow.api_fastapi import app as api_app
    from fastapi.testclient import TestClient

    monkeypatch.setattr(settings, "PLUGINS_FOLDER", str(ROOT / "plugins"))

    def clear():
        for cached in (
            plugins_manager._get_plugins,
            plugins_manager.get_fastapi_plugins,
            plugins_manager._get_ui_plugins,
            plugins_manager.get_flask_plugins,
        ):
            cached.cache_clear()
        api_app.purge_cached_app()

    clear()
    app = api_app.create_app(apps="core")
    with TestClient(app, base_url="http://localhost") as client:
        yield client
    clear()


@pytest.fixture
def triggered(monkeypatch):
    """The send DAG runs the page starts, recorded instead of queued in Airflow: ``[(dag_id, user, note)]``."""
    from latam_messaging.page import trigger as trigger_module

    calls: list[tuple[str, str, str]] = []

    def trigger(dag_id: str, *, user: str, note: str) -> str:
        calls.append((dag_id, user, note))
        return f"manual__test-{len(calls)}"

    monkeypatch.setattr(trigger_module, "airflow_trigger", trigger)
    return calls
