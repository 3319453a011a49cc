"""Links of Teleprom campaigns shortened per campaign at ingest, and their clicks imported
(``teleprom/links.py``, ``TelepromAdapter.prepare_rows``, the ``import_clicks`` task), on both databases:
off unless the connection asks; one short link per (campaign, URL) even when two runs race; the short
URL is what reaches the simulator; a shortener outage leaves the long URLs and loses no row; click
counts set from the export, the same on a re-run, links not ours ignored."""

from __future__ import annotations

import threading

import pytest
import requests
import sqlalchemy as sa

from latam_messaging.campaigns.records import campaign_id_of
from latam_messaging.sending.pipeline import dispatch, ingest_drops
from latam_messaging.teleprom import links
from latam_messaging.teleprom.send import TelepromAdapter
from latam_messaging.warehouse import schema
from tests.helpers.connections import set_connection
from tests.helpers.drops import drop_csv
from tests.helpers.sending import load_catalog
from tests.helpers.simulators import configure, sim_state

LINKS, OUT = schema.short_links, schema.outbound_messages
PROMO, INVOICE = "https://shop.example.com/promo?src=wa", "https://pay.example.com/f/123"
#: payment_reminder takes 2 parameters: a name and (here) a link; rows 1 and 3 share one.
CSV = (
    "phone,template,param_1,param_2\n"
    f"5493516000001,payment_reminder,Ana,{PROMO}\n"
    f"5493516000002,payment_reminder,Luis,mirá {INVOICE}.\n"
    f"5493516000003,payment_reminder,Eva,{PROMO}\n"
    "5493516000004,payment_reminder,Sol,sin link\n"
)


@pytest.fixture
def shortening(teleprom_server, teleprom_hook, monkeypatch):
    """``teleprom_default`` with ``shorten_links`` on (no retries inside the hook: faults show at once)."""
    fields = {"host": teleprom_server.url, "login": "demo", "password": "demo-pass"}
    set_connection(monkeypatch, "teleprom_default", conn_type="teleprom", **fields,
                   extra={"shorten_links": True, "max_retries": 0})


def ingest(warehouse, drop_dir, text: str = CSV, name: str = "reminders.csv"):
    drop_csv(drop_dir, "teleprom_hsm", name, text)
    return ingest_drops(TelepromAdapter(), warehouse, drop_dir, region="AR", timezone="America/Argentina/Buenos_Aires")


def sent_params(server) -> dict[str, list]:
    return {m["phone"]: m["params"] for m in sim_state(server)["messages"]}


def link_rows(warehouse) -> list[dict]:
    return warehouse.rows(sa.select(LINKS).order_by(LINKS.c.long_url))


def test_links_are_shortened_once_per_campaign_and_the_short_url_is_sent(
    shortening, warehouse, teleprom_hook, teleprom_server, drop_dir
):
    load_catalog(warehouse, teleprom_hook)
    stats = ingest(warehouse, drop_dir)
    assert stats.rows_valid == 4
    rows = link_rows(warehouse)
    [campaign] = warehouse.rows(schema.campaign_files)
    assert [(r["campaign_id"], r["long_url"], r["vendor"], r["clicks"]) for r in rows] == [
        (campaign["campaign_id"], INVOICE, "teleprom", 0),
        (campaign["campaign_id"], PROMO, "teleprom", 0),
    ]
    short = {r["long_url"]: r["short_url"] for r in rows}
    assert sim_state(teleprom_server)["shorten_calls"] == 2  # two distinct URLs, four rows
    dispatch(TelepromAdapter(), warehouse, hook=teleprom_hook)
    assert sent_params(teleprom_server) == {
        "5493516000001": ["Ana", short[PROMO]],
        "5493516000002": ["Luis", f"mirá {short[INVOICE]}."],  # the sentence's full stop stays outside the link
        "5493516000003": ["Eva", short[PROMO]],
        "5493516000004": ["Sol", "sin link"],
    }
    ledger = {r["phone"]: r["params"] for r in warehouse.rows(OUT)}
    assert ledger == sent_params(teleprom_server)  # the ledger shows what was sent


def test_links_are_kept_when_the_connection_does_not_ask(warehouse, teleprom_hook, teleprom_server, drop_dir):
    load_catalog(warehouse, teleprom_hook)
    ingest(warehouse, drop_dir)
    dispatch(TelepromAdapter(), warehouse, hook=teleprom_hook)
    assert sent_params(teleprom_server)["5493516000001"] == ["Ana", PROMO]
    assert link_rows(warehouse) == [] and sim_state(teleprom_server)["shorten_calls"] == 0


def test_a_shortener_outage_leaves_the_long_urls_and_every_row(
    shortening, warehouse, teleprom_hook, teleprom_server, drop_dir
):
    load_catalog(warehouse, teleprom_hook)
    teleprom_hook.get_accounts()  # logged in before the outage: the shortener's answers are the 5xx
    configure(teleprom_server, error_rate=1.0)
    stats = ingest(warehouse, drop_dir)
    configure(teleprom_server, error_rate=0.0)
    assert stats.rows_valid == 4 and sim_state(teleprom_server)["faults_injected"] == 2  # each link tried once
    assert link_rows(warehouse) == []
    dispatch(TelepromAdapter(), warehouse, hook=teleprom_hook)
    assert sent_params(teleprom_server)["5493516000001"] == ["Ana", PROMO]
    assert len(sent_params(teleprom_server)) == 4


class RacingShortener:
    """Two runs that both miss ``short_links`` and both reach the vendor before either stores its link;
    each call answers a different short URL, so the test sees whose link stood."""

    def __init__(self) -> None:
        self.barrier = threading.Barrier(2, timeout=10)
        self.calls = 0
        self.lock = threading.Lock()

    def shorten(self, url: str) -> str:
        with self.lock:
            self.calls += 1
            n = self.calls
        self.barrier.wait()
        return f"https://tpm.li/race{n}"


def test_two_runs_at_once_keep_one_short_link_per_campaign_and_url(warehouse):
    hook = RacingShortener()
    batches = [[{"params": ["Ana", PROMO]}], [{"params": ["Luis", PROMO]}]]
    threads = [threading.Thread(target=links.shorten_rows, args=(warehouse, hook, "c" * 16, rows)) for rows in batches]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    [row] = link_rows(warehouse)
    assert hook.calls == 2 and row["short_url"] in ("https://tpm.li/race1", "https://tpm.li/race2")
    assert [rows[0]["params"][1] for rows in batches] == [row["short_url"]] * 2  # the loser reuses the winner's
    # another campaign gets its own row; the same campaign again asks the vendor nothing
    again = [{"params": [PROMO]}]
    links.shorten_rows(warehouse, hook, "c" * 16, again)
    assert hook.calls == 2 and again[0]["params"] == [row["short_url"]]


class DownShortener:
    def __init__(self) -> None:
        self.calls = 0

    def shorten(self, url: str) -> str:
        self.calls += 1
        raise requests.ConnectionError("shortener down")


def test_a_shortener_down_is_asked_at_most_three_times_per_chunk(warehouse):
    hook = DownShortener()
    rows = [{"params": [f"https://example.com/{n}"]} for n in range(6)]
    stats = links.shorten_rows(warehouse, hook, "d" * 16, rows)
    assert (hook.calls, stats.failed, stats.shortened) == (links.MAX_FAILURES, 6, 0)
    assert [r["params"][0] for r in rows] == [f"https://example.com/{n}" for n in range(6)]


def click(server, short_url: str) -> None:
    requests.post(f"{server.url}/_sim/click", json={"short_url": short_url}, timeout=5).raise_for_status()


def test_clicks_are_imported_by_short_url_idempotently(warehouse, teleprom_hook, teleprom_server):
    rows = [{"params": [PROMO]}, {"params": [INVOICE]}]
    links.shorten_rows(warehouse, teleprom_hook, "a" * 16, rows)
    promo, invoice = rows[0]["params"][0], rows[1]["params"][0]
    teleprom_hook.shorten("https://not-ours.example.com/")  # a link made elsewhere on the account
    for short in (promo, promo, promo, invoice):
        click(teleprom_server, short)
    assert requests.post(f"{teleprom_server.url}/_sim/click", json={"short_url": "https://tpm.li/nope"},
                         timeout=5).status_code == 404

    for _ in range(2):  # a re-run sets the same counts
        stats = links.import_clicks(warehouse, teleprom_hook.click_export())
        assert (stats.updated, stats.ignored) == (2, 1)
        counts = {r["long_url"]: (r["clicks"], r["clicks_updated_at"] is not None) for r in link_rows(warehouse)}
        assert counts == {PROMO: (3, True), INVOICE: (1, True)}


def test_the_catalogue_dag_imports_the_clicks(run_dag, warehouse, teleprom_hook, teleprom_server):
    rows = [{"params": [PROMO]}]
    links.shorten_rows(warehouse, teleprom_hook, campaign_id_of("b" * 64), rows)
    click(teleprom_server, rows[0]["params"][0])
    click(teleprom_server, rows[0]["params"][0])
    run = run_dag("teleprom_catalog_sync")
    assert run.state == "success"
    assert {ti.task_id: ti.state for ti in run.get_task_instances()}["import_clicks"] == "success"
    assert [r["clicks"] for r in link_rows(warehouse)] == [2]
