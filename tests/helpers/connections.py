"""Airflow connections the way deployments give them, and hooks on them for a test."""

from __future__ import annotations

import contextlib
import json

import pytest


def set_connection(monkeypatch: pytest.MonkeyPatch, conn_id: str, **fields) -> None:
    """Define an Airflow connection the way deployments do: an ``AIRFLOW_CONN_*`` JSON variable."""
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(fields))


@contextlib.contextmanager
def hook_on(monkeypatch, make_hook, conn_id: str, **fields):
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
