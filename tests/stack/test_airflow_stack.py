"""Through the real thing: the stack of ``make airflow`` (API server, scheduler with the LocalExecutor,
dag-processor, triggerer, simulators, receiver) on a temporary home and free ports.

* a CSV dropped into ``wavy_sms/`` and ``wavy_sms_send`` triggered through the REST API runs to success,
  the warehouse holds the rows and the simulator counted them;
* a run asked with a malformed ``release_unknown`` key is refused by the API with the param's message;
* a headless Chromium (Debian's, driven by Selenium with explicit paths: no browser download) logs in
  through the UI's form, sees the eleven DAGs without import errors, the vendors' connection forms and the
  Messaging page with the warehouse's numbers. Screenshots go to ``tests/artifacts/``.

One stack for the module (it takes about a minute to start); every process stops at the end.
"""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from tests.helpers.airflow_stack import DAG_IDS, AirflowStack, drop_csv
from tests.helpers.browser import ARTIFACTS, body_text, logged_in, wait_for

# a stack starts in about a minute on 2 idle cores; under load give it room (setup counts in the timeout)
pytestmark = pytest.mark.timeout(600)

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


# ---- the UI in a headless browser (Debian's chromium + chromium-driver, installed by `make test-deps`) ----
@pytest.fixture(scope="module")
def browser(stack, tmp_path_factory):
    """Chromium logged in through the UI's login form (the simple auth manager's generated password)."""
    profile = tmp_path_factory.mktemp("chromium-profile")
    with logged_in(profile, stack.url, stack.password, ("01-login", "02-home")) as driver:
        yield driver


def test_the_dag_list_shows_the_ten_dags_without_import_errors(stack, browser):
    browser.get(f"{stack.url}/dags")
    wait_for(lambda: all(d in body_text(browser) for d in DAG_IDS), "all eleven DAGs in the list")
    browser.save_screenshot(str(ARTIFACTS / "03-dag-list.png"))
    assert "Import Error" not in body_text(browser)
    browser.get(f"{stack.url}/")
    wait_for(lambda: "Dag Runs" in body_text(browser), "the home page")
    assert "Import Error" not in body_text(browser)  # the home page names import errors when there are any
    assert stack.get("/importErrors")["total_entries"] == 0


@pytest.mark.parametrize(
    ("conn_type", "label", "fields"),
    [
        ("teleprom", "Teleprom (WhatsApp)", {"host", "login", "password", "element_batch_size"}),
        ("itd_chile", "ITD Chile (WhatsApp)", {"host", "password", "element_auth_scheme"}),
        ("wavy", "Wavy (SMS)", {"host", "login", "password"}),
    ],
)
def test_the_add_connection_form_shows_the_vendor_fields(stack, browser, conn_type, label, fields):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    browser.get(f"{stack.url}/connections")
    browser.find_element(By.XPATH, "//button[normalize-space()='Add Connection']").click()
    dialog = browser.find_element(By.CSS_SELECTOR, "[role=dialog]")
    choose = dialog.find_element(By.CSS_SELECTOR, "input[role=combobox]")
    choose.send_keys(conn_type)
    wait_for(lambda: [o.text for o in browser.find_elements(By.CSS_SELECTOR, "[role=option]")] == [label], label)
    choose.send_keys(Keys.ENTER)
    wait_for(lambda: "Standard Fields" in dialog.text, "the form of the chosen type")
    dialog.find_element(By.XPATH, ".//button[contains(., 'Extra Fields') and not(contains(., 'JSON'))]").click()
    names = {e.get_attribute("name") for e in dialog.find_elements(By.CSS_SELECTOR, "input, textarea")}
    assert fields <= names, names
    if conn_type == "teleprom":
        wait_for(lambda: "Batch size" in dialog.text, "Teleprom's Batch size field")
    browser.save_screenshot(str(ARTIFACTS / f"04-connection-form-{conn_type}.png"))


def test_the_messaging_page_shows_the_warehouse_numbers(stack, browser):
    from selenium.webdriver.common.by import By

    browser.get(f"{stack.url}/")
    browser.find_element(
        By.XPATH, "//a[normalize-space()='Messaging'] | //button[normalize-space()='Messaging']"
    ).click()
    frame = wait_for(lambda: browser.find_elements(By.CSS_SELECTOR, "iframe"), "the Messaging page in the UI")[0]
    assert frame.get_attribute("src").rstrip("/").endswith("/messaging")
    browser.switch_to.frame(frame)
    try:
        wait_for(lambda: browser.find_elements(By.ID, "total-messages"), "the page's numbers")

        def shown() -> dict[str, str]:
            ids = ["total-messages", "total-delivered", "total-failed", "total-unknown", "credits"]
            return {i: browser.find_element(By.ID, i).text for i in ids}

        def counted() -> dict[str, str]:
            status = "SELECT COUNT(*) FROM outbound_messages WHERE delivery_status = '{}'"
            credits = "SELECT credits FROM itd_credit_snapshots ORDER BY taken_at DESC LIMIT 1"
            snapshots = warehouse_count(stack, "SELECT COUNT(*) FROM itd_credit_snapshots")
            return {
                "total-messages": str(warehouse_count(stack, "SELECT COUNT(*) FROM outbound_messages")),
                "total-delivered": str(warehouse_count(stack, status.format("delivered"))),
                "total-failed": str(warehouse_count(stack, status.format("failed"))),
                "total-unknown": str(
                    warehouse_count(stack, "SELECT COUNT(*) FROM outbound_messages WHERE state = 'unknown'")
                ),
                "credits": str(warehouse_count(stack, credits)) if snapshots else "n/a",
            }

        for _ in range(3):  # a scheduled poll may land statuses between the page and the count: look again
            page, sql = shown(), counted()
            if page == sql:
                break
            browser.refresh()
            wait_for(lambda: browser.find_elements(By.ID, "total-messages"), "the page's numbers")
        assert page == sql
        assert int(page["total-messages"]) >= 3  # the send of the scheduler test is on the page
    finally:
        browser.switch_to.default_content()
    browser.save_screenshot(str(ARTIFACTS / "05-messaging-page.png"))
