"""A DAG with its real retries (``run_dag(retries=None)``: only the delay between tries is zeroed):
a task that fails once on a vendor outage succeeds on the DAG's own retry, and the tables are whole."""

from __future__ import annotations

import threading

from latam_messaging.warehouse import schema
from tests.helpers.connections import set_connection
from tests.helpers.waiting import wait_until


def heal_after_first_fault(simulator, healed: threading.Event, timeout: float = 120.0) -> None:
    """The vendor answers 5xx until it has refused one request, then recovers (the simulator's own count)."""
    wait_until(lambda: simulator.faults_injected >= 1, timeout=timeout, what="the vendor's first refusal", interval=0.01)
    simulator.configure({"error_rate": 0.0})
    healed.set()


def test_a_task_failing_once_succeeds_on_the_dags_own_retry(run_dag, warehouse, teleprom_hook, teleprom_server,
                                                            monkeypatch):
    set_connection(  # no retries inside the hook: the first vendor error fails the task try
        monkeypatch, "teleprom_default", conn_type="teleprom", host=teleprom_server.url, login="demo",
        password="demo-pass", extra={"max_retries": 0},
    )
    simulator = teleprom_server.simulator
    simulator.configure({"error_rate": 1.0})
    healed = threading.Event()
    threading.Thread(target=heal_after_first_fault, args=(simulator, healed), daemon=True).start()

    run = run_dag("teleprom_catalog_sync", retries=None)

    assert healed.is_set() and simulator.faults_injected == 1
    assert run.state == "success"
    tis = run.get_task_instances()  # sync_catalog and import_clicks: the one that met the 5xx retried
    assert sorted((ti.task_id, ti.state) for ti in tis) == [("import_clicks", "success"), ("sync_catalog", "success")]
    assert sorted(ti.try_number for ti in tis) == [1, 2]
    assert {ti.max_tries for ti in tis} == {3}  # the DAG's own retries, not the tests' zero
    try:  # the simulator's catalogue (in the vendor package since the vendor-folder layout)
        from latam_messaging.teleprom.simulator import ACCOUNTS, TEMPLATES
    except ImportError:
        from latam_messaging.simulators.teleprom import ACCOUNTS, TEMPLATES

    templates = {r["template_id"] for r in warehouse.rows(schema.teleprom_templates)}
    accounts = {r["account_id"] for r in warehouse.rows(schema.teleprom_accounts)}
    assert templates == {t["id"] for t in TEMPLATES}
    assert accounts == {a["id"] for a in ACCOUNTS}
