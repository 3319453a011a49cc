"""Every DAG file imports cleanly, with the ids of CONTRACT.md and the metadata users expect."""

from __future__ import annotations

import json

from tests.helpers.paths import ROOT

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
        "suppression_lists",
        "webhook_ingest",
        "messaging_report",
        "messaging_maintenance",
    }
    for dag in bag.dags.values():
        assert dag.doc_md and dag.tags, dag.dag_id
        assert dag.start_date.tzinfo is not None, dag.dag_id
        assert not dag.catchup, dag.dag_id
        for task in dag.tasks:
            if task.pool != "default_pool":
                assert task.pool in POOLS, (dag.dag_id, task.task_id, task.pool)
            assert task.retries >= 1 or task.task_id in ("check_credit_threshold", "run_failed"), (dag.dag_id, task.task_id)


def _serialized(bag_dags) -> dict:
    from airflow.serialization.serialized_objects import DagSerialization

    return {dag_id: DagSerialization.to_dict(dag) for dag_id, dag in bag_dags.items()}


def test_dag_files_read_no_environment_at_parse_time(monkeypatch):
    """The same DAGs whatever the dag-processor's environment: schedules and params do not move."""
    from airflow.dag_processing.dagbag import DagBag

    before = _serialized(DagBag(dag_folder=str(ROOT / "dags")).dags)
    monkeypatch.setenv("MESSAGING_TIMEZONE", "Asia/Tokyo")
    monkeypatch.setenv("MESSAGING_ITD_LOW_CREDITS", "12345")
    monkeypatch.setenv("MESSAGING_DROP_DIR", "/elsewhere")
    after = _serialized(DagBag(dag_folder=str(ROOT / "dags")).dags)
    assert before == after


def test_schedules_are_in_the_schedule_time_zone_and_array_params_not_required():
    from airflow.dag_processing.dagbag import DagBag

    from latam_messaging.settings import SCHEDULE_TIMEZONE

    for dag in DagBag(dag_folder=str(ROOT / "dags")).dags.values():
        assert dag.timezone.name == SCHEDULE_TIMEZONE, dag.dag_id
        timetable = getattr(dag.timetable, "timetable", dag.timetable)  # AssetOrTimeSchedule wraps one
        assert str(timetable.timezone) == SCHEDULE_TIMEZONE, dag.dag_id
        for name, param in dag.params.items():
            types = param.schema.get("type")
            # the UI marks a field required unless its type allows null: an array with a default (often
            # empty) must not look like a field the user has to fill
            if "array" in (types if isinstance(types, list) else [types]):
                assert "null" in types, (dag.dag_id, name, types)


def test_asset_events_only_when_rows_changed(warehouse, receiver, run_dag):
    """webhook_ingest emits inbound_messages only for a run that stored a new message: a run with
    nothing to parse wakes no messaging_report."""
    import requests
    from airflow.models.asset import AssetEvent
    from airflow.utils.session import create_session

    body = json.loads((ROOT / "tests" / "fixtures" / "vendor_docs" / "itd" / "webhook_inbound.json").read_text())
    assert requests.post(receiver.hook_url("itd"), json=body, timeout=10).status_code == 200

    def events(run) -> dict[str, dict]:
        with create_session() as session:
            rows = session.query(AssetEvent).filter(AssetEvent.source_run_id == run.run_id).all()
            return {row.asset.name: row.extra for row in rows}

    first = run_dag("webhook_ingest")
    assert first.state == "success"
    assert events(first) == {"messaging_warehouse.inbound_messages": {"rows": 1}}
    second = run_dag("webhook_ingest")
    assert second.state == "success"
    assert events(second) == {}
