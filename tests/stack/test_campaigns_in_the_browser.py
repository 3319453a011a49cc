"""Issue 24's "done when", through the real thing: the stack of ``make airflow`` (API server, scheduler,
dag-processor, triggerer, simulators, receiver) and a headless Chromium logged in as ``admin``.

* the send DAGs, paused at creation here (a deployment's default), are unpaused the way ``make airflow``
  does it (``airflow_local.unpause_send_dags``);
* on the Messaging page's campaigns list a CSV for ``wavy_sms`` is uploaded, the preview says what the
  file holds (valid and rejected rows), Confirm starts a real run of ``wavy_sms_send`` through the API
  server's in-process trigger (``page.trigger.airflow_trigger``), it succeeds, and the campaign page
  reaches the simulator's count; every card and funnel step equals its SQL count in the warehouse;
* an ITD campaign against a slow simulator is cancelled from its page mid-flight: the simulator never
  receives the cancelled remainder (what it counts = the rows accepted in the warehouse; cancelled > 0);
* a Wavy campaign whose request got a 5xx (the simulator's ``error_rate``) has ``unknown`` rows; their
  batch is released from the page in one action after ticking "I checked with the vendor", and sent;
* the audit log holds every action with the logged-in user's name.

One stack for the module; every process stops at the end. Screenshots go to ``tests/artifacts/``.
"""

from __future__ import annotations

import urllib.parse

import pytest
import sqlalchemy as sa

from tests.helpers.airflow_stack import DAG_IDS, AirflowStack, airflow_local
from tests.helpers.browser import logged_in, screenshot, wait_for

# the stack starts in about a minute; the module's campaigns take about three more (setup counts)
pytestmark = pytest.mark.timeout(600)

USER = "admin"
WAVY_PHONES = [f"5511987{n:06d}" for n in range(5)]
#: five valid rows, then a phone no country has and an empty message: rows 6 and 7 are rejected
WAVY_CSV = (
    "phone,message\n"
    + "".join(f"+{p},Lembrete da consulta {n}\n" for n, p in enumerate(WAVY_PHONES))
    + "+55 11 12,Lembrete sem telefone\n"
    + "+5511987000099,\n"
)
ITD_ROWS = 240
ITD_CSV = "phone,content_type,content\n" + "".join(f"+5696124{n:04d},TEXT,Recordatorio {n}\n" for n in range(ITD_ROWS))
UNKNOWN_PHONES = [f"5521976{n:06d}" for n in range(4)]
UNKNOWN_CSV = "phone,message\n" + "".join(f"+{p},Aviso {n}\n" for n, p in enumerate(UNKNOWN_PHONES))


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    # paused at creation (a deployment's default; fewer runs on a busy machine): unpaused as make airflow does
    extra = {"AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True"}
    stack = AirflowStack(tmp_path_factory.mktemp("campaign-stack"), extra_env=extra).start()
    try:
        stack.wait_for_dags(DAG_IDS)
        assert sorted(airflow_local.unpause_send_dags(stack.url, stack.passwords_file)) == airflow_local.SEND_DAGS
        assert airflow_local.unpause_send_dags(stack.url, stack.passwords_file) == []  # a second time: nothing
        paused = {d["dag_id"]: d["is_paused"] for d in stack.get("/dags", limit=100)["dags"]}
        assert [d for d, p in paused.items() if not p] == sorted(airflow_local.SEND_DAGS), paused
        assert (stack.drops / "_uploads").is_dir()  # airflow_local.prepare: the uploads on the drop volume
        for dag_id in ("wavy_sms_send", "itd_whatsapp_send"):
            stack.wait_idle(dag_id)  # the run unpausing schedules (catchup=False: the latest interval)
        yield stack
    finally:
        stack.stop()


@pytest.fixture(scope="module")
def browser(stack, tmp_path_factory):
    profile = tmp_path_factory.mktemp("chromium-profile")
    with logged_in(profile, stack.url, stack.password, ("campaigns-01-login", "campaigns-02-home")) as driver:
        yield driver


# ---- the warehouse and the simulators, counted ---------------------------------------------------------
def sql(stack: AirflowStack, query: str, **params) -> list[tuple]:
    engine = sa.create_engine(f"sqlite:///{stack.warehouse['host']}")
    try:
        with engine.connect() as conn:
            return [tuple(row) for row in conn.execute(sa.text(query), params)]
    finally:
        engine.dispose()


def states(stack: AirflowStack, campaign_id: str) -> dict[str, int]:
    """The campaign's rows by state (``outbound_messages`` of the campaign's file)."""
    rows = sql(
        stack,
        "SELECT o.state, COUNT(*) FROM outbound_messages o JOIN campaign_files c ON c.file_sha256 = o.file_sha256 "
        "WHERE c.campaign_id = :id GROUP BY o.state",
        id=campaign_id,
    )
    return {state: int(n) for state, n in rows}


def received(stack: AirflowStack, vendor: str, phones) -> int:
    """Messages the vendor's simulator accepted for ``phones`` (digits compared)."""
    wanted = {"".join(c for c in p if c.isdigit()) for p in phones}
    messages = stack.sim_state(vendor)["messages"]
    return sum(1 for m in messages if "".join(c for c in str(m["phone"]) if c.isdigit()) in wanted)


# ---- the page --------------------------------------------------------------------------------------------
def by_id(browser, element_id: str):
    from selenium.webdriver.common.by import By

    return browser.find_element(By.ID, element_id)


def upload(stack, browser, tmp_path, folder: str, name: str, text: str) -> dict[str, str]:
    """Upload ``text`` for ``folder`` on the campaigns list and wait for the preview; its cards."""
    from selenium.webdriver.support.ui import Select

    browser.get(f"{stack.url}/messaging/campaigns")
    path = tmp_path / f"{name}.csv"
    path.write_text(text, encoding="utf-8")
    Select(by_id(browser, "upload-folder")).select_by_value(folder)
    by_id(browser, "upload-campaign").send_keys(name)
    by_id(browser, "upload-file").send_keys(str(path))
    by_id(browser, "upload-submit").click()
    wait_for(lambda: by_id(browser, "preview").is_displayed(), f"the preview of {name}")
    ids = ["rows-total", "rows-valid", "rows-rejected", "rows-suppressed", "first-send", "cost"]
    cards = {i: by_id(browser, f"preview-{i}").text for i in ids}
    cards["campaign_id"] = by_id(browser, "preview").get_attribute("data-campaign-id")
    return cards


def confirm(stack, browser, dag_id: str) -> str:
    """Click Confirm; the run id the page links (the run the confirm started)."""
    by_id(browser, "confirm").click()
    link = wait_for(lambda: by_id(browser, "confirm-links").is_displayed() and by_id(browser, "dag-run-link"), "the run link")
    href = link.get_attribute("href")
    assert f"/dags/{dag_id}/runs/" in href, (href, by_id(browser, "confirm-status").text)
    return urllib.parse.unquote(href.rsplit("/runs/", 1)[1])


def open_campaign(stack, browser, campaign_id: str) -> None:
    browser.get(f"{stack.url}/messaging/campaigns/{campaign_id}")
    wait_for(lambda: by_id(browser, "campaign-name").get_attribute("data-campaign-id") == campaign_id, "the campaign page")


def shown(browser) -> dict[str, int]:
    """The campaign page's cards and funnel steps (``data-count``), by name."""
    from selenium.webdriver.common.by import By

    cards = {e.get_attribute("id"): e.get_attribute("data-count") for e in browser.find_elements(By.CSS_SELECTOR, ".card b")}
    steps = {
        "step-" + e.get_attribute("data-step"): e.get_attribute("data-count")
        for e in browser.find_elements(By.CSS_SELECTOR, "#campaign-funnel tr[data-step]")
    }
    return {k: int(v) for k, v in (cards | steps).items() if v and v.isdigit()}  # the cost card is a price


def counted(stack, campaign_id: str) -> dict[str, int]:
    """What the page must show, counted in the warehouse with SQL of its own."""
    s = states(stack, campaign_id)
    [(rejected,)] = sql(
        stack,
        "SELECT COUNT(*) FROM drop_rejects r JOIN campaign_files c ON c.file_sha256 = r.file_sha256 WHERE c.campaign_id = :id",
        id=campaign_id,
    )
    return {
        "card-messages": sum(s.values()),
        "card-accepted": s.get("accepted", 0),
        "card-unknown": s.get("unknown", 0),
        "card-rejected": rejected,
        "step-messages": sum(s.values()),
        "step-accepted": s.get("accepted", 0),
        "step-unknown": s.get("unknown", 0),
        "step-cancelled": s.get("cancelled", 0),
        "step-failed": s.get("failed", 0),
        "step-rejected_by_vendor": s.get("rejected", 0),
    }


def page_agrees(stack, browser, campaign_id: str, **expected: int) -> dict[str, int]:
    """Reload the campaign page until its numbers equal the warehouse's and ``expected``; those numbers."""

    def agrees() -> dict[str, int] | None:
        open_campaign(stack, browser, campaign_id)
        page, warehouse = shown(browser), counted(stack, campaign_id)
        mine = {k: page.get(k) for k in warehouse}
        return warehouse if mine == warehouse and all(warehouse[k] == v for k, v in expected.items()) else None

    return wait_for(agrees, f"campaign {campaign_id}'s page at {expected} and equal to the warehouse", timeout=90)


def run_succeeded(stack, dag_id: str, run_id: str) -> None:
    run = stack.wait_run(dag_id, run_id, timeout=180)
    assert run["state"] == "success", (stack.task_states(dag_id, run_id), stack.log_tails(["scheduler"]))
    assert run["triggering_user_name"] == USER and run["run_type"] == "manual", run


# ---- the tests --------------------------------------------------------------------------------------------
def test_upload_preview_confirm_and_watch_the_campaign_reach_the_simulator(stack, browser, tmp_path):
    preview = upload(stack, browser, tmp_path, "wavy_sms", "Lembrete de terça", WAVY_CSV)
    screenshot(browser, "campaigns-03-preview")
    assert (preview["rows-total"], preview["rows-valid"], preview["rows-rejected"]) == ("7", "5", "2"), preview
    assert preview["cost"] not in ("", "n/a"), preview  # the demo's prices reach the API server
    from selenium.webdriver.common.by import By

    rejected_rows = [r.text.split()[0] for r in browser.find_elements(By.CSS_SELECTOR, "#preview-rejects tbody tr")]
    assert rejected_rows == ["6", "7"]
    campaign_id = preview["campaign_id"]
    assert states(stack, campaign_id) == {}  # nothing queued before the confirm

    run_id = confirm(stack, browser, "wavy_sms_send")
    screenshot(browser, "campaigns-04-confirmed")
    assert sql(stack, "SELECT dag_run_id, state FROM campaign_files WHERE campaign_id = :id", id=campaign_id)[0][0] == run_id
    run_succeeded(stack, "wavy_sms_send", run_id)

    by_id(browser, "campaign-link").click()
    numbers = page_agrees(stack, browser, campaign_id, **{"card-accepted": 5, "card-rejected": 2})
    assert received(stack, "wavy", WAVY_PHONES) == numbers["card-accepted"] == 5
    assert by_id(browser, "campaign-state").text == "loaded"
    assert by_id(browser, "card-cost").get_attribute("data-count") == "0.0625"  # 5 × the demo's 0.0125 USD
    screenshot(browser, "campaigns-05-campaign-page")


def test_a_campaign_cancelled_mid_flight_never_reaches_the_vendor(stack, browser, tmp_path):
    stack.sim_config("itd", latency_ms=400)  # 8 workers × 1 row per request: about 20 rows a second
    try:
        preview = upload(stack, browser, tmp_path, "itd_whatsapp", "Recordatorio lento", ITD_CSV)
        assert preview["rows-valid"] == str(ITD_ROWS), preview
        campaign_id = preview["campaign_id"]
        run_id = confirm(stack, browser, "itd_whatsapp_send")
        open_campaign(stack, browser, campaign_id)
        wait_for(lambda: stack.sim_state("itd")["accepted_messages"] >= 5, "the first ITD sends", timeout=120)
        by_id(browser, "cancel").click()
        browser.switch_to.alert.accept()  # "Cancel this campaign? ..."
        result = wait_for(lambda: by_id(browser, "action-result").text.startswith("cancelled: ") and by_id(browser, "action-result").text, "the cancel's answer")
        screenshot(browser, "campaigns-06-cancelled")
        run_succeeded(stack, "itd_whatsapp_send", run_id)
    finally:
        stack.sim_config("itd", latency_ms=0)

    cancelled = int(result.split()[1])
    final = states(stack, campaign_id)
    assert cancelled > 0 and final.get("cancelled") == cancelled, (result, final)
    assert final == {"accepted": ITD_ROWS - cancelled, "cancelled": cancelled}, final
    itd_phones = [f"+5696124{n:04d}" for n in range(ITD_ROWS)]
    assert received(stack, "itd", itd_phones) == final["accepted"]  # not one row of the cancelled remainder
    page_agrees(stack, browser, campaign_id, **{"step-cancelled": cancelled, "card-accepted": ITD_ROWS - cancelled})
    assert by_id(browser, "campaign-state").text == "cancelled"
    assert by_id(browser, "cancel").get_attribute("disabled") is not None


def test_a_batch_of_unknown_rows_is_released_in_one_action(stack, browser, tmp_path):
    from selenium.webdriver.common.by import By

    preview = upload(stack, browser, tmp_path, "wavy_sms", "Aviso sem resposta", UNKNOWN_CSV)
    campaign_id = preview["campaign_id"]
    faults = stack.sim_state("wavy")["faults_injected"]
    stack.sim_config("wavy", error_rate=1.0)  # the send request gets a 5xx: the rows are in doubt
    try:
        run_id = confirm(stack, browser, "wavy_sms_send")
        wait_for(lambda: stack.sim_state("wavy")["faults_injected"] > faults, "the 5xx to the send", timeout=120)
    finally:
        stack.sim_config("wavy", error_rate=0.0)
    run_succeeded(stack, "wavy_sms_send", run_id)  # reconcile_unknown found none of them at the vendor
    assert states(stack, campaign_id) == {"unknown": 4}
    assert received(stack, "wavy", UNKNOWN_PHONES) == 0
    page_agrees(stack, browser, campaign_id, **{"card-unknown": 4})
    [batch] = browser.find_elements(By.CSS_SELECTOR, "#unknown-batches tr[data-batch]")
    assert batch.get_attribute("data-count") == "4" and batch.get_attribute("data-batch")
    screenshot(browser, "campaigns-07-unknown")

    runs_before = {r["dag_run_id"] for r in stack.runs("wavy_sms_send")}
    form = batch.find_element(By.CSS_SELECTOR, "form.release-form")
    checked = form.find_element(By.CSS_SELECTOR, "input[name=checked]")
    form.find_element(By.CSS_SELECTOR, "button[value=not_sent]").click()  # not ticked: the browser refuses it
    assert checked.get_property("validity")["valueMissing"] and by_id(browser, "action-result").text == ""
    assert states(stack, campaign_id) == {"unknown": 4}
    checked.click()
    form.find_element(By.CSS_SELECTOR, "button[value=not_sent]").click()
    wait_for(lambda: by_id(browser, "action-result").text == "released: 4", "the release's answer")
    [release_run] = wait_for(
        lambda: [r["dag_run_id"] for r in stack.runs("wavy_sms_send") if r["dag_run_id"] not in runs_before],
        "the run the release triggered",
    )
    run_succeeded(stack, "wavy_sms_send", release_run)
    numbers = page_agrees(stack, browser, campaign_id, **{"card-accepted": 4, "card-unknown": 0})
    assert received(stack, "wavy", UNKNOWN_PHONES) == numbers["card-accepted"] == 4
    screenshot(browser, "campaigns-08-released")


def test_every_action_is_in_the_audit_log_with_the_users_name(stack, browser):
    rows = sql(
        stack,
        "SELECT a.user_name, a.action, a.rows_affected, c.name FROM audit_log a "
        "JOIN campaign_files c ON c.campaign_id = a.campaign_id ORDER BY a.id",
    )
    by_campaign: dict[str, list[tuple[str, int]]] = {}
    for user, action, affected, name in rows:
        assert user == USER, rows
        by_campaign.setdefault(name, []).append((action, affected))
    cancelled = states(stack, sql(stack, "SELECT campaign_id FROM campaign_files WHERE name = 'Recordatorio lento'")[0][0])["cancelled"]
    assert by_campaign == {
        "Lembrete de terça": [("upload", 7), ("confirm", 5)],
        "Recordatorio lento": [("upload", ITD_ROWS), ("confirm", ITD_ROWS), ("cancel", cancelled)],
        "Aviso sem resposta": [("upload", 4), ("confirm", 4), ("release_unknown", 4)],
    }, by_campaign
