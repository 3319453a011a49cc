"""Triggering a DAG run from the Messaging page, in the API server's own process: the code path of
Airflow's ``POST /api/v2/dags/{dag_id}/dagRuns`` (``airflow.api.common.trigger_dag``), with the page's
user recorded as the run's ``triggering_user_name``. Permission was checked by the route
(``security.require_editor``)."""

from __future__ import annotations

from collections.abc import Callable

#: What a route calls to start a DAG run: (dag_id, user name) → the new run's id.
Trigger = Callable[[str, str], str]


def send_dag_id(folder: str) -> str:
    """The send DAG of a send adapter's drop folder: ``<folder>_send`` (``dags/*_send.py``, checked by
    the page's tests for every vendor of the registry)."""
    return f"{folder}_send"


def trigger_dag_run(dag_id: str, user: str) -> str:
    """Queue a manual run of ``dag_id`` now, triggered by ``user`` from the UI; returns its run id.
    Raises ``airflow.exceptions.DagNotFound`` for a DAG the scheduler has not parsed."""
    from airflow.api.common.trigger_dag import trigger_dag
    from airflow.utils.session import create_session
    from airflow.utils.types import DagRunTriggeredByType

    with create_session() as session:
        run = trigger_dag(dag_id, triggered_by=DagRunTriggeredByType.UI, triggering_user_name=user, session=session)
        if run is None:
            raise RuntimeError(f"Airflow created no run of {dag_id}")
        return str(run.run_id)
