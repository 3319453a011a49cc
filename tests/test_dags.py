"""Every DAG file imports cleanly, with the ids of CONTRACT.md and the metadata users expect."""

from __future__ import annotations

import json

from tests.conftest import ROOT

POOLS = json.loads((ROOT / "deploy" / "pools.json").read_text())


def test_dagbag_imports_without_errors():
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(ROOT / "dags"))
    assert not bag.import_errors
    assert set(bag.dag_ids) == {
        "teleprom_catalog_sync",
        "teleprom_hsm_send",
        "itd_whatsapp_send",
        "wavy_sms_send",
        "itd_poll",
        "wavy_poll",
        "number_checks",
        "webhook_ingest",
        "messaging_report",
    }
    for dag in bag.dags.values():
        assert dag.doc_md and dag.tags, dag.dag_id
        assert dag.start_date.tzinfo is not None, dag.dag_id
        assert not dag.catchup, dag.dag_id
        for task in dag.tasks:
            if task.pool != "default_pool":
                assert task.pool in POOLS, (dag.dag_id, task.task_id, task.pool)
            assert task.retries >= 1 or task.task_id == "check_credit_threshold", (dag.dag_id, task.task_id)
