"""The distributed engine: the stack of ``make airflow`` with the CeleryExecutor, Redis (Debian's
``redis-server``, started here on a free port) and two Celery workers, PostgreSQL for the metadata and
the warehouse. The three send DAGs and ``webhook_ingest`` run to success through the REST API, and no
message goes out twice: counted at the simulators (``/_sim/state``) against the ledger's accepted rows.
"""

from __future__ import annotations

import os
import shutil
import time

import pytest
import sqlalchemy as sa

from tests.helpers.airflow_stack import DAG_IDS, ROOT, AirflowStack, free_port
from tests.helpers.postgres import create_database

# a stack starts in about a minute on 2 idle cores; under load give it room (setup counts in the timeout)
pytestmark = pytest.mark.timeout(600)

SENDS = {"teleprom_hsm_send": "teleprom", "itd_whatsapp_send": "itd", "wavy_sms_send": "wavy"}
FOLDERS = {"teleprom_hsm_send": "teleprom_hsm", "itd_whatsapp_send": "itd_whatsapp", "wavy_sms_send": "wavy_sms"}


def _database(server, name: str) -> str:
    create_database(server, name)
    return name


@pytest.fixture(scope="module")
def celery_stack(postgres_server, tmp_path_factory):
    suffix = f"{os.getpid()}_{int(time.time())}"
    metadata = _database(postgres_server, f"airflow_celery_{suffix}")
    warehouse = _database(postgres_server, f"warehouse_celery_{suffix}")
    fields = {"conn_type": "postgres", "host": postgres_server.host, "port": postgres_server.port}
    fields |= {"login": postgres_server.login, "schema": warehouse}
    if postgres_server.password:
        fields["password"] = postgres_server.password
    stack = AirflowStack(
        tmp_path_factory.mktemp("celery-stack"),
        executor="CeleryExecutor",
        metadata_url=postgres_server.url(metadata),
        warehouse=fields,
        workers=2,
        broker_port=free_port(),
    )
    stack.warehouse_url = postgres_server.url(warehouse)
    stack.start()
    try:
        stack.wait_for_dags(DAG_IDS)
        yield stack
    finally:
        stack.stop()


def test_sends_and_ingest_on_two_celery_workers_never_twice(celery_stack):
    stack = celery_stack
    # unpausing at creation scheduled one run per DAG (catch-up note of the README): let those end first;
    # the catalogue sync among them fills teleprom_templates for the Teleprom drops
    for dag_id in ["teleprom_catalog_sync", *SENDS, "webhook_ingest"]:
        stack.wait_idle(dag_id)
    catalog = stack.runs("teleprom_catalog_sync")
    assert catalog and catalog[-1]["state"] == "success", stack.log_tails(["worker-1", "worker-2", "scheduler"])

    for folder in FOLDERS.values():
        for sample in sorted((ROOT / "data" / "samples" / folder).glob("*.csv")):
            (stack.drops / folder).mkdir(parents=True, exist_ok=True)
            part = stack.drops / folder / f"{sample.name}.part"
            shutil.copyfile(sample, part)
            part.rename(stack.drops / folder / sample.name)
    runs = {}
    for dag_id in SENDS:
        answer = stack.trigger(dag_id)
        assert answer.status_code == 200, answer.text
        runs[dag_id] = answer.json()["dag_run_id"]
    for dag_id, run_id in runs.items():
        run = stack.wait_run(dag_id, run_id, timeout=240)
        assert run["state"] == "success", (dag_id, stack.task_states(dag_id, run_id), stack.log_tails())

    engine = sa.create_engine(stack.warehouse_url)
    try:
        with engine.connect() as conn:
            accepted = dict(
                conn.execute(
                    sa.text("SELECT vendor, COUNT(*) FROM outbound_messages WHERE state = 'accepted' GROUP BY vendor")
                ).all()
            )
        for vendor in SENDS.values():
            state = stack.sim_state(vendor)
            assert accepted.get(vendor, 0) > 0, (vendor, accepted)
            assert state["accepted_messages"] == accepted[vendor], (vendor, state["accepted_messages"], accepted)
            if "duplicate_trackings" in state:
                assert state["duplicate_trackings"] == [], vendor
            else:  # ITD echoes no tracking id: the sample's phones are distinct, so a repeat is a duplicate
                phones = [m["phone"] for m in state["messages"]]
                assert len(phones) == len(set(phones)), vendor

        # the simulators post statuses to the receiver; webhook_ingest turns them into events
        def stored_webhooks() -> int:
            with engine.connect() as conn:
                return conn.execute(sa.text("SELECT COUNT(*) FROM raw_webhook_events")).scalar()

        stack.wait_until(lambda: stored_webhooks() > 0, "webhooks stored by the receiver", 60)
        answer = stack.trigger("webhook_ingest")
        assert answer.status_code == 200, answer.text
        run_id = answer.json()["dag_run_id"]
        run = stack.wait_run("webhook_ingest", run_id, timeout=240)
        assert run["state"] == "success", (stack.task_states("webhook_ingest", run_id), stack.log_tails())
        with engine.connect() as conn:
            events = conn.execute(sa.text("SELECT COUNT(*) FROM message_status_events")).scalar()
        assert events > 0
    finally:
        engine.dispose()

    # both workers took tasks (Celery spread the runs), and the executor was Celery, not a local fallback
    for worker in ("worker-1", "worker-2"):
        log = (stack.home / "logs" / f"{worker}.log").read_text(errors="replace")
        assert "received" in log, (worker, log[-3000:])
