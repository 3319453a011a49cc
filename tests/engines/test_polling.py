"""The consume-once spool (``polling.py``): a page the warehouse did not take stays on disk, and the next
drain commits it before fetching anything new — on both databases."""

from __future__ import annotations

import json

import pytest
import sqlalchemy as sa

from latam_messaging import polling
from latam_messaging.warehouse import schema
from latam_messaging.wavy import poller as wavy_poller

RAW = schema.raw_webhook_events


class QueueHook:
    """A Wavy hook whose status queue hands out the given pages once each (consume-once, like Wavy's)."""

    def __init__(self, pages):
        self.pages = list(pages)
        self.fetched = 0

    def status_queue_page(self):
        self.fetched += 1
        return self.pages.pop(0) if self.pages else {"smsStatuses": []}


def page(n: int) -> dict:
    return {"smsStatuses": [{"id": f"id-{n}-{i}", "correlationId": f"k-{n}-{i}", "sentStatusCode": 2} for i in range(3)]}


def stored_pages(warehouse) -> list[dict]:
    with warehouse.engine.connect() as conn:
        bodies = conn.execute(sa.select(RAW.c.body).where(RAW.c.vendor == "wavy").order_by(RAW.c.id)).scalars()
        return [json.loads(body) for body in bodies]


@pytest.fixture
def spool_root(tmp_path, monkeypatch):
    monkeypatch.setenv("MESSAGING_SPOOL_DIR", str(tmp_path / "spool"))
    return tmp_path / "spool" / "wavy" / "status_list"


def test_a_page_the_warehouse_refused_stays_spooled_and_the_next_drain_commits_it(warehouse, spool_root, monkeypatch):
    real_store = wavy_poller.store_raw_page
    calls = []

    def refusing(*args, **kwargs):  # the warehouse write fails after the page was consumed from Wavy
        calls.append(args)
        if len(calls) == 2:
            raise sa.exc.OperationalError("INSERT INTO raw_webhook_events", {}, Exception("server closed the connection"))
        return real_store(*args, **kwargs)

    monkeypatch.setattr(wavy_poller, "store_raw_page", refusing)
    hook = QueueHook([page(1), page(2), page(3)])
    with pytest.raises(sa.exc.OperationalError):
        wavy_poller.drain_wavy_queue(warehouse, hook, "status_list")
    assert stored_pages(warehouse) == [page(1)]  # the first page committed, the second not
    [left] = list(spool_root.glob("*.json"))  # ... but it is on disk: Wavy will never hand it out again
    assert json.loads(left.read_bytes()) == page(2)

    monkeypatch.setattr(wavy_poller, "store_raw_page", real_store)
    assert wavy_poller.drain_wavy_queue(warehouse, hook, "status_list") == 3  # page 3, fetched after the replay
    assert stored_pages(warehouse) == [page(1), page(2), page(3)]  # the spooled page first, nothing twice
    assert list(spool_root.glob("*.json")) == []


def test_a_replay_that_fails_keeps_the_file_for_the_next_one(warehouse, spool_root, monkeypatch):
    polling.spool(spool_root, page(7))

    def away(*args, **kwargs):
        raise sa.exc.OperationalError("INSERT", {}, Exception("warehouse away"))

    monkeypatch.setattr(polling, "store_raw_page", away)
    with pytest.raises(sa.exc.OperationalError):
        polling.replay_spool(warehouse, "wavy", "status_list")
    assert len(list(spool_root.glob("*.json"))) == 1 and stored_pages(warehouse) == []
    monkeypatch.undo()
    monkeypatch.setenv("MESSAGING_SPOOL_DIR", str(spool_root.parents[2] / "spool"))
    assert polling.replay_spool(warehouse, "wavy", "status_list") == 1
    assert stored_pages(warehouse) == [page(7)] and list(spool_root.glob("*.json")) == []
