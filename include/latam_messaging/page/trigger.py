"""Triggering a send DAG run from the Messaging page, in the API server's own process: the code path of
Airflow's ``POST /api/v2/dags/{dag_id}/dagRuns`` (``airflow.api.common.trigger_dag``), with the page's
user recorded as the run's ``triggering_user_name`` and a note saying why. Permission was checked by the
route (``security.require_editor``)."""

from __future__ import annotations

from typing import Protocol

import pendulum


class TriggerDag(Protocol):
    def __call__(self, dag_id: str, *, user: str, note: str) -> str:
        """Start a run of ``dag_id`` on behalf of ``user``; its ``dag_run_id``."""


def send_dag_id(folder: str) -> str:
    """The send DAG of a send adapter's drop folder: ``<folder>_send`` (``dags/*_send.py``, checked by
    the page's tests for every vendor of the registry)."""
    return f"{folder}_send"


def airflow_trigger(dag_id: str, *, user: str, note: str) -> str:
    """A run of ``dag_id`` queued the way the API server's own ``POST /dags/{id}/dagRuns`` does, with the
    triggering user's name (in the run's details in the UI) and a note saying why. Raises
    ``airflow.exceptions.DagNotFound`` for a DAG the dag-processor has not parsed."""
    from airflow.api.common.trigger_dag import trigger_dag
    from airflow.utils.types import DagRunTriggeredByType

    run_id = f"campaign__{pendulum.now('UTC').format('YYYYMMDDTHHmmss.SSSSSS')}"
    run = trigger_dag(
        dag_id,
        triggered_by=DagRunTriggeredByType.UI,
        triggering_user_name=user,
        run_id=run_id,
        conf={},
        note=note[:1000],
    )
    if run is None:
        raise RuntimeError(f"Airflow created no run of {dag_id}")
    return str(run.run_id)
