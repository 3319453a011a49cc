"""A person's free-text reply to an inbound message (``campaigns/replies.py``) and its route
(``page/reply_routes.py``), on both databases: queued once on a double click (two threads at once),
refused outside the 24-hour window, to a suppressed phone, or by a vendor without free text; sent once by
the Teleprom send run to the simulator; the route answers the key and triggers the vendor's send DAG."""

from __future__ import annotations

import threading

import pendulum
import pytest
import sqlalchemy as sa

from latam_messaging.campaigns import replies
from latam_messaging.consent import suppressions
from latam_messaging.sending.pipeline import dispatch
from latam_messaging.teleprom.send import TelepromAdapter
from latam_messaging.warehouse import schema
from latam_messaging.wavy.send import WavyAdapter
from tests.helpers.ledger import add_ledger_row
from tests.helpers.sending import load_catalog
from tests.helpers.simulators import sim_state

OUT, IN, AUDIT = schema.outbound_messages, schema.inbound_messages, schema.audit_log
PHONE = "5493516000042"
NOW = pendulum.now("UTC")


@pytest.fixture
def catalogue(warehouse, teleprom_hook):
    """Teleprom's accounts in the warehouse: a reply to account 39 is answered from it."""
    load_catalog(warehouse, teleprom_hook)


def inbound(warehouse, mid: str, *, vendor: str = "teleprom", at=None, phone: str = PHONE, in_reply_to=None) -> None:
    at = NOW.subtract(hours=1) if at is None else at
    with warehouse.begin() as conn:
        conn.execute(
            IN.insert().values(
                vendor=vendor,
                vendor_message_id=mid,
                from_phone=phone,
                to_account="39",
                text="¿a qué hora abren?",
                received_at=at,
                recorded_at=at,
                source="webhook",
                in_reply_to=in_reply_to,
            )
        )


def queue(warehouse, mid: str, text: str = "Abrimos a las 9.", adapter=None, user: str = "ana"):
    return replies.queue_reply(warehouse, adapter or TelepromAdapter(), mid, text, user, region="AR", now=NOW)


def reply_rows(warehouse) -> list[dict]:
    return warehouse.rows(sa.select(OUT).where(OUT.c.message_key.like("r-%")))


def audit_rows(warehouse) -> list[dict]:
    return warehouse.rows(sa.select(AUDIT).where(AUDIT.c.action == "reply"))


def test_a_double_click_queues_one_row_and_one_audit_line(catalogue, warehouse):
    inbound(warehouse, "wamid.1")
    answers: list = []
    barrier = threading.Barrier(2)

    def click() -> None:
        barrier.wait()
        answers.append(queue(warehouse, "wamid.1"))

    threads = [threading.Thread(target=click) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len({a.message_key for a in answers}) == 1 and sorted(a.queued for a in answers) == [False, True]
    [row] = reply_rows(warehouse)
    assert (row["phone"], row["content"], row["state"], row["account_id"]) == (PHONE, "Abrimos a las 9.", "pending", 39)
    assert row["consent_exempt"] is None  # the claim screens it again
    assert pendulum.instance(row["expires_at"]) == NOW.subtract(hours=1).add(hours=24)
    [line] = audit_rows(warehouse)
    assert (line["user_name"], line["rows_affected"], line["detail"]["message_key"]) == ("ana", 1, row["message_key"])
    # another text to the same message is another reply
    assert queue(warehouse, "wamid.1", "Y cerramos a las 18.").queued
    assert len(reply_rows(warehouse)) == 2


def test_refused_outside_the_window_to_a_suppressed_phone_and_by_a_vendor_without_free_text(catalogue, warehouse):
    inbound(warehouse, "late", at=NOW.subtract(hours=24, seconds=1))
    with pytest.raises(replies.ReplyRefused, match="24-hour window closed"):
        queue(warehouse, "late")
    inbound(warehouse, "untimed", at=NOW)
    with warehouse.begin() as conn:
        conn.execute(IN.update().where(IN.c.vendor_message_id == "untimed").values(received_at=None))
    with pytest.raises(replies.ReplyRefused, match="no time"):
        queue(warehouse, "untimed")

    inbound(warehouse, "opted-out", phone="5493516000077")
    stop = suppressions.Suppression("5493516000077", "all", "keyword", "BAJA", NOW.subtract(minutes=5), "test")
    with warehouse.begin() as conn:
        suppressions.add(warehouse, conn, [stop], NOW)
    with pytest.raises(replies.ReplyRefused, match="opted out"):
        queue(warehouse, "opted-out")

    inbound(warehouse, "sms", vendor="wavy", phone="5511987600001")
    with pytest.raises(replies.ReplyRefused, match="sends no free-text reply"):
        queue(warehouse, "sms", adapter=WavyAdapter())
    with pytest.raises(replies.InboundNotFound):
        queue(warehouse, "never-received")
    inbound(warehouse, "ok")
    for bad in ("   ", "x" * (replies.MAX_TEXT + 1), "hola\x00"):
        with pytest.raises(replies.ReplyRefused):
            queue(warehouse, "ok", bad)
    assert reply_rows(warehouse) == [] and audit_rows(warehouse) == []


def test_the_send_run_sends_the_reply_once_to_the_simulator(catalogue, warehouse, teleprom_hook, teleprom_server):
    inbound(warehouse, "wamid.2", in_reply_to="our-send")
    add_ledger_row(warehouse, "m-0123456789abcdef-1", "teleprom", vendor_id="our-send")
    with warehouse.begin() as conn:
        conn.execute(OUT.update().values(file_sha256="ab" * 32, account_id=41))
    first = queue(warehouse, "wamid.2")
    assert first.campaign_id == "ab" * 8  # the audit line names the campaign whose message was answered
    assert queue(warehouse, "wamid.2") == replies.QueuedReply(first.message_key, first.expires_at, False, "ab" * 8)
    for _ in range(2):
        dispatch(TelepromAdapter(), warehouse, hook=teleprom_hook)
    sent = [m for m in sim_state(teleprom_server)["messages"] if m["tracking"] == first.message_key]
    assert [(m["phone"], m["kind"], m["account_id"], m["params"]) for m in sent] == [
        (PHONE, "free", 41, ["Abrimos a las 9."])  # from the account of the message it answers
    ]
    [row] = reply_rows(warehouse)
    assert row["state"] == "accepted"


# ---- the route ---------------------------------------------------------------------------------------
def editor():
    """What ``security.require_editor`` returns for an editor (its checks are tested in ``tests/page``)."""
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser

    return SimpleAuthManagerUser(username="ana", role="op")


@pytest.fixture
def reply_client(warehouse):
    """The reply router on a bare app, the editor check replaced by a fixed user; triggers recorded."""
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    from latam_messaging.page import reply_routes, security

    triggered: list[tuple[str, str]] = []

    def trigger(dag_id: str, *, user: str, note: str) -> str:
        triggered.append((dag_id, user))
        return f"manual__{len(triggered)}"

    adapters = {"teleprom": TelepromAdapter, "wavy": WavyAdapter}
    app = FastAPI()
    app.include_router(
        reply_routes.router(lambda: warehouse, lambda v: adapters[v]() if v in adapters else None, trigger=trigger)
    )
    app.dependency_overrides[security.require_editor] = editor
    with TestClient(app) as client:
        yield client, triggered


def test_the_route_queues_once_and_triggers_the_send_dag(catalogue, reply_client, warehouse):
    client, triggered = reply_client
    inbound(warehouse, "wamid.3")
    url = "/api/inbound/teleprom/wamid.3/reply"
    first = client.post(url, json={"text": "Sí, hoy."})
    assert first.status_code == 200, first.text
    body = first.json()
    assert body["message_key"].startswith("r-") and body["queued"] is True and body["dag_run_id"] == "manual__1"
    assert pendulum.parse(body["expires_at"]) == NOW.subtract(hours=1).add(hours=24)
    again = client.post(url, json={"text": "Sí, hoy."}).json()
    assert (again["message_key"], again["queued"], again["dag_run_id"]) == (body["message_key"], False, None)
    assert triggered == [("teleprom_hsm_send", "ana")]
    assert len(reply_rows(warehouse)) == 1 and audit_rows(warehouse)[0]["user_name"] == "ana"

    inbound(warehouse, "old", at=NOW.subtract(days=2))
    assert client.post("/api/inbound/teleprom/old/reply", json={"text": "hola"}).status_code == 409
    assert client.post("/api/inbound/teleprom/nope/reply", json={"text": "hola"}).status_code == 404
    assert client.post("/api/inbound/fax/wamid.3/reply", json={"text": "hola"}).status_code == 404
    assert client.post(url, json={}).status_code == 422


def test_a_failed_trigger_leaves_the_reply_queued(catalogue, warehouse):
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    from latam_messaging.page import reply_routes, security

    def broken(dag_id: str, *, user: str, note: str) -> str:
        raise RuntimeError("scheduler database unreachable")

    app = FastAPI()
    app.include_router(reply_routes.router(lambda: warehouse, lambda v: TelepromAdapter(), trigger=broken))
    app.dependency_overrides[security.require_editor] = editor
    inbound(warehouse, "wamid.4")
    with TestClient(app) as client:
        answer = client.post("/api/inbound/teleprom/wamid.4/reply", json={"text": "ok"})
    assert answer.status_code == 200 and answer.json()["dag_run_id"] is None
    assert "RuntimeError" in answer.json()["trigger_error"]
    assert [r["state"] for r in reply_rows(warehouse)] == ["pending"]


def test_every_vendor_names_an_existing_send_dag():
    from airflow.dag_processing.dagbag import DagBag

    from latam_messaging.page.trigger import send_dag_id
    from latam_messaging.vendors import VENDORS
    from tests.helpers.paths import ROOT

    ids = set(DagBag(dag_folder=str(ROOT / "dags")).dag_ids)
    assert {send_dag_id(v.adapter_class().folder) for v in VENDORS.values()} <= ids
