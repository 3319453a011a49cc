"""The Messaging page's write API (issue 24), through Airflow's real API app and the simple auth manager, on
both databases: upload → preview (the file's truth) → confirm → the send pipeline → counted at the
simulator; cancel mid-campaign with a slow vendor; release and mark-sent; who may write; cross-site posts;
hostile uploads; one audit line per action."""

from __future__ import annotations

import threading
from pathlib import Path

import pendulum
import pytest
import sqlalchemy as sa
from starlette.requests import Request

from latam_messaging.campaigns import audit
from latam_messaging.consent import suppressions
from latam_messaging.consent.suppressions import Source, Suppression
from latam_messaging.itd.send import ItdAdapter
from latam_messaging.page import actions, security
from latam_messaging.page.trigger import send_dag_id
from latam_messaging.sending.pipeline import dispatch, ingest_drops
from latam_messaging.warehouse import schema
from latam_messaging.wavy.send import WavyAdapter
from tests.helpers.paths import ROOT
from tests.helpers.simulators import configure, sim_state
from tests.helpers.waiting import wait_until

T, C, R = schema.outbound_messages, schema.campaign_files, schema.drop_rejects
API = "/messaging/api"
USER = "someone"


def token(role: str | None) -> str:
    from airflow.api_fastapi.app import get_auth_manager
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser

    return get_auth_manager().generate_jwt(SimpleAuthManagerUser(username=USER, role=role))


def bearer(role: str = "admin") -> dict[str, str]:
    return {"Authorization": f"Bearer {token(role)}"}


def csrf_for(cookie: str) -> str:
    """What the page embeds for a browser holding the session cookie ``cookie``."""
    return security.csrf_token(Request({"type": "http", "headers": [(b"cookie", f"_token={cookie}".encode())]}))


def upload(client, text: str | bytes, folder: str = "wavy_sms", name: str = "list.csv", headers=None, **fields):
    body = text.encode() if isinstance(text, str) else text
    return client.post(
        f"{API}/uploads",
        data={"folder": folder, **fields},
        files={"file": (name, body, "text/csv")},
        headers=bearer() if headers is None else headers,
    )


def audit_rows(warehouse) -> list[dict]:
    with warehouse.engine.connect() as conn:
        return sorted(audit.entries(conn), key=lambda entry: entry["id"])


def ingest(adapter, warehouse, drop_dir):
    return ingest_drops(adapter, warehouse, drop_dir, region="AR", timezone="America/Argentina/Buenos_Aires")


def state_counts(warehouse) -> dict[str, int]:
    rows = warehouse.rows(sa.select(T.c.state, sa.func.count().label("n")).group_by(T.c.state))
    return {r["state"]: r["n"] for r in rows}


def suppress(warehouse, phone: str) -> None:
    now = pendulum.now("UTC")
    with warehouse.begin() as conn:
        suppressions.add(warehouse, conn, [Suppression(phone, "all", Source.MANUAL, "a test", now, "a test")], now)


WAVY_FILE = (
    "phone,message\n"
    "5511987650001,hola 1\n"  # row 1
    "5511987650002,hola 2\n"
    "12,hola 3\n"  # row 3: not a number
    "5511987650004,=HYPERLINK(\"http://x\")\n"  # row 4: a formula
    "5511987650001,hola 1\n"  # row 5: duplicate of row 1
    "5511987650006,-20% hoy\n"
    "5511987650007,hola 7\n"  # row 7: opted out
    "5511987650008,+info en la web\n"
)


def test_upload_preview_confirm_send(page_api, warehouse, drop_dir, wavy_server, wavy_hook, triggered):
    """The preview is the file's truth (what the ingest then records), nothing is queued before the
    confirm, and the simulator receives exactly the valid rows."""
    suppress(warehouse, "5511987650007")
    answer = upload(page_api, WAVY_FILE, name="Tuesday reminder.csv", campaign="Tuesday reminder")
    assert answer.status_code == 200, answer.text
    body = answer.json()
    campaign_id, preview = body["campaign_id"], body["preview"]
    assert (body["state"], body["name"], body["vendor"], body["repeat"]) == ("uploaded", "Tuesday reminder", "wavy", False)
    assert {k: preview[k] for k in ("rows_total", "rows_valid", "rows_rejected", "rows_suppressed")} == {
        "rows_total": 8,
        "rows_valid": 4,
        "rows_rejected": 4,
        "rows_suppressed": 1,
    }
    assert [r["row"] for r in preview["rejects"]] == [3, 4, 5, 7]
    assert preview["rejects"][1]["reason"] == "looks like a spreadsheet formula (column message)"
    assert preview["rejects"][2]["reason"].startswith("duplicate of row 1")
    assert preview["first_send_at"] is not None and preview["error"] is None
    # nothing queued; the upload kept under the campaign id, nowhere else
    assert warehouse.count("outbound_messages") == 0 and sim_state(wavy_server)["accepted_messages"] == 0
    uploads = drop_dir / "_uploads"
    assert sorted(p.name for p in uploads.iterdir()) == [f"{campaign_id}.csv"]
    assert not (drop_dir / "wavy_sms").exists()

    confirmed = page_api.post(f"{API}/campaigns/{campaign_id}/confirm", headers=bearer())
    assert confirmed.status_code == 200, confirmed.text
    assert confirmed.json()["dag_run_id"] == "manual__test-1"
    assert triggered == [("wavy_sms_send", USER, f"campaign {campaign_id} confirmed by {USER}")]
    assert [p.name for p in (drop_dir / "wavy_sms").iterdir()] == [f"upload-{campaign_id}.csv"]
    assert list(uploads.iterdir()) == []
    [row] = warehouse.rows(sa.select(C))
    assert (row["state"], row["confirmed_by"], row["dag_run_id"], row["created_by"]) == (
        "confirmed", USER, "manual__test-1", USER
    )

    stats = ingest(WavyAdapter(), warehouse, drop_dir)
    assert (stats.files, stats.rows_valid, stats.rows_rejected) == (1, 4, 4)
    recorded = warehouse.rows(sa.select(R.c.row_number, R.c.reason).order_by(R.c.row_number))
    assert [(r["row_number"], r["reason"]) for r in recorded] == [(r["row"], r["reason"]) for r in preview["rejects"]]
    dispatch(WavyAdapter(), warehouse, hook=wavy_hook)
    assert sim_state(wavy_server)["accepted_messages"] == 4 == state_counts(warehouse)["accepted"]
    assert warehouse.rows(sa.select(C.c.state))[0]["state"] == "loaded"

    assert [(a["action"], a["user_name"], a["campaign_id"], a["rows_affected"]) for a in audit_rows(warehouse)] == [
        ("upload", USER, campaign_id, 8),
        ("confirm", USER, campaign_id, 4),
    ]
    # a loaded campaign is not confirmed again
    again = page_api.post(f"{API}/campaigns/{campaign_id}/confirm", headers=bearer())
    assert again.status_code == 409 and "is loaded" in again.json()["detail"]


def test_the_same_bytes_are_one_campaign_and_two_confirms_have_one_winner(page_api, warehouse, drop_dir, triggered):
    first = upload(page_api, WAVY_FILE).json()
    second = upload(page_api, WAVY_FILE, name="copy.csv", campaign="another name").json()
    assert second["campaign_id"] == first["campaign_id"] and second["repeat"] is True
    assert second["name"] == first["name"] == "list" and second["preview"] == first["preview"]
    assert warehouse.count("campaign_files") == 1
    assert [p.name for p in (drop_dir / "_uploads").iterdir()] == [f"{first['campaign_id']}.csv"]

    barrier, answers = threading.Barrier(4), []

    def confirm():
        barrier.wait()
        answers.append(page_api.post(f"{API}/campaigns/{first['campaign_id']}/confirm", headers=bearer()).status_code)

    workers = [threading.Thread(target=confirm) for _ in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=60)
    assert sorted(answers) == [200, 409, 409, 409]
    assert len(triggered) == 1
    assert [p.name for p in (drop_dir / "wavy_sms").iterdir()] == [f"upload-{first['campaign_id']}.csv"]
    # uploaded again after the confirm: its state, no second file anywhere
    third = upload(page_api, WAVY_FILE).json()
    assert (third["state"], third["repeat"]) == ("confirmed", True)
    assert list((drop_dir / "_uploads").iterdir()) == []
    actions_done = [(a["action"], a["rows_affected"]) for a in audit_rows(warehouse)]
    assert actions_done == [("upload", 8), ("upload", 0), ("confirm", 5), ("upload", 0)]  # no opt-out seeded: 5 valid


def test_a_confirm_killed_after_its_link_never_sends_twice(page_api, warehouse, drop_dir, wavy_server, wavy_hook, triggered):
    """A kill between the link into the drop folder and the commit: the file is in its folder, the campaign
    still ``uploaded``. The send DAG loads it; a second copy of the bytes (a confirm retried after the claim)
    is a duplicate by fingerprint: the simulator counts each valid row once."""
    campaign_id = upload(page_api, WAVY_FILE).json()["campaign_id"]
    kept = drop_dir / "_uploads" / f"{campaign_id}.csv"
    folder = drop_dir / "wavy_sms"
    actions.enter_drop_folder(kept, folder, campaign_id)  # the killed confirm's only step that landed
    assert actions.enter_drop_folder(kept, folder, campaign_id).name == f"upload-{campaign_id}.csv"  # a retry keeps it

    ingest(WavyAdapter(), warehouse, drop_dir)
    assert warehouse.rows(sa.select(C.c.state))[0]["state"] == "loaded"
    actions.enter_drop_folder(kept, folder, campaign_id)  # the same bytes again, after the claim
    again = ingest(WavyAdapter(), warehouse, drop_dir)
    assert (again.duplicates, again.files) == (1, 0)
    dispatch(WavyAdapter(), warehouse, hook=wavy_hook)
    state = sim_state(wavy_server)
    assert state["accepted_messages"] == 5 == warehouse.count("outbound_messages")  # no opt-out seeded here
    assert page_api.post(f"{API}/campaigns/{campaign_id}/confirm", headers=bearer()).status_code == 409
    assert triggered == []


def test_cancel_mid_campaign_with_a_slow_vendor(page_api, warehouse, drop_dir, itd_server, itd_hook, triggered):
    """While dispatch runs against a slow vendor, the campaign is cancelled: none of its cancelled rows
    reaches the simulator, the rows already sent stay, and the counts add up at the vendor."""
    text = "phone,content_type,content\n" + "".join(f"+5696123{i:04d},TEXT,hola {i}\n" for i in range(60))
    campaign_id = upload(page_api, text, folder="itd_whatsapp").json()["campaign_id"]
    assert page_api.post(f"{API}/campaigns/{campaign_id}/confirm", headers=bearer()).status_code == 200
    ingest(ItdAdapter(), warehouse, drop_dir)
    configure(itd_server, latency_ms=60)

    done = threading.Event()
    worker = threading.Thread(target=lambda: (dispatch(ItdAdapter(), warehouse, hook=itd_hook, concurrency=2), done.set()))
    worker.start()
    wait_until(lambda: sim_state(itd_server)["accepted_messages"] >= 3, timeout=30, what="the first sends")
    answer = page_api.post(f"{API}/campaigns/{campaign_id}/cancel", headers=bearer("op"))
    worker.join(timeout=120)
    assert done.is_set() and answer.status_code == 200, answer.text
    cancelled = answer.json()["cancelled"]
    assert cancelled >= 10

    counts = state_counts(warehouse)
    assert counts["cancelled"] == cancelled and counts["accepted"] == 60 - cancelled
    assert sim_state(itd_server)["accepted_messages"] == 60 - cancelled
    sent = {m["tracking"] for m in sim_state(itd_server)["messages"] if m.get("tracking")}
    cancelled_keys = {r["message_key"] for r in warehouse.rows(sa.select(T.c.message_key).where(T.c.state == "cancelled"))}
    assert sent.isdisjoint(cancelled_keys) or not sent
    [entry] = [a for a in audit_rows(warehouse) if a["action"] == "cancel"]
    assert (entry["user_name"], entry["rows_affected"]) == (USER, cancelled)
    assert warehouse.rows(sa.select(C.c.state, C.c.cancelled_by))[0] == {"state": "cancelled", "cancelled_by": USER}
    # a later run sends none of them
    dispatch(ItdAdapter(), warehouse, hook=itd_hook)
    assert sim_state(itd_server)["accepted_messages"] == 60 - cancelled
    assert page_api.post(f"{API}/campaigns/{'0' * 16}/cancel", headers=bearer()).status_code == 404


def test_release_a_batch_and_mark_the_rest_sent(page_api, warehouse, drop_dir, wavy_server, wavy_hook, triggered):
    text = "phone,message\n" + "".join(f"55119876{i:05d},hola {i}\n" for i in range(6))
    campaign_id = upload(page_api, text).json()["campaign_id"]
    page_api.post(f"{API}/campaigns/{campaign_id}/confirm", headers=bearer())
    ingest(WavyAdapter(), warehouse, drop_dir)
    # two requests whose answers never came (a 5xx, a killed run): their rows are unknown
    started = [pendulum.datetime(2026, 3, 1, 12, 0, tz="UTC"), pendulum.datetime(2026, 3, 1, 12, 5, tz="UTC")]
    keys = [r["message_key"] for r in warehouse.rows(sa.select(T.c.message_key).order_by(T.c.row_number))]
    with warehouse.begin() as conn:
        for n, owner in enumerate(("run-a", "run-b")):
            conn.execute(
                T.update()
                .where(T.c.message_key.in_(keys[3 * n : 3 * n + 3]))
                .values(state="unknown", claimed_by=owner, request_started_at=started[n], error="HTTP 503")
            )
    batch_a = f"run-a@{started[0].isoformat()}"
    url = f"{API}/campaigns/{campaign_id}/release-unknown"

    for body in ({"outcome": "not_sent"}, {"checked_with_vendor": False, "outcome": "not_sent"},
                 {"checked_with_vendor": "yes", "outcome": "not_sent"}, {"checked_with_vendor": True, "outcome": "maybe"}):
        assert page_api.post(url, json=body, headers=bearer()).status_code == 422, body
    assert state_counts(warehouse) == {"unknown": 6}
    before = len(triggered)

    released = page_api.post(url, json={"checked_with_vendor": True, "outcome": "not_sent", "batch": batch_a}, headers=bearer())
    assert released.status_code == 200, released.text
    assert released.json()["released"] == 3 and released.json()["dag_run_id"] == f"manual__test-{before + 1}"
    assert triggered[-1][0] == "wavy_sms_send"
    marked = page_api.post(url, json={"checked_with_vendor": True, "outcome": "sent"}, headers=bearer())
    assert marked.json()["marked_sent"] == 3 and "dag_run_id" not in marked.json()
    assert state_counts(warehouse) == {"pending": 3, "accepted": 3}
    nothing = page_api.post(url, json={"checked_with_vendor": True, "outcome": "not_sent"}, headers=bearer())
    assert nothing.json()["released"] == 0 and len(triggered) == before + 1  # nothing to send: no run

    dispatch(WavyAdapter(), warehouse, hook=wavy_hook)
    assert sim_state(wavy_server)["accepted_messages"] == 3  # the released batch, and only it
    entries = [(a["action"], a["rows_affected"], a["detail"].get("batch")) for a in audit_rows(warehouse)][2:]
    assert entries == [("release_unknown", 3, batch_a), ("mark_sent", 3, None), ("release_unknown", 0, None)]
    bad_batch = page_api.post(url, json={"checked_with_vendor": True, "outcome": "sent", "batch": "nonsense"}, headers=bearer())
    assert bad_batch.status_code == 409 and "not a batch id" in bad_batch.json()["detail"]


def write_routes(campaign_id: str) -> list[tuple[str, dict]]:
    return [
        (f"{API}/uploads", {"data": {"folder": "wavy_sms"}, "files": {"file": ("a.csv", WAVY_FILE.encode())}}),
        (f"{API}/campaigns/{campaign_id}/confirm", {}),
        (f"{API}/campaigns/{campaign_id}/cancel", {}),
        (f"{API}/campaigns/{campaign_id}/release-unknown", {"json": {"checked_with_vendor": True, "outcome": "sent"}}),
    ]


def nothing_written(warehouse, drop_dir, campaigns: int) -> None:
    assert warehouse.count("audit_log") == 0 and warehouse.count("campaign_files") == campaigns
    uploads = drop_dir / "_uploads"
    assert not uploads.exists() or [p.name for p in uploads.iterdir()] == [] or campaigns
    assert not (drop_dir / "wavy_sms").exists()


def seed_campaign(warehouse) -> str:
    from latam_messaging.campaigns import records

    sha = "ab" * 32
    with warehouse.begin() as conn:
        records.register(
            conn, warehouse, sha256=sha, name="seeded", vendor="wavy", folder="wavy_sms", source=records.Source.DROP,
            file_name="x.csv", created_by="t", now=pendulum.now("UTC"), state=records.CampaignState.LOADED,
        )
    return records.campaign_id_of(sha)


def test_writes_need_an_editor_who_may_start_runs(page_api, warehouse, drop_dir, triggered):
    """Anonymous → 401, a viewer (or a user without a role) → 403, on every write route, and nothing is
    written; the roles that may start DAG runs (user, op, admin) may write."""
    campaign_id = seed_campaign(warehouse)
    for url, kwargs in write_routes(campaign_id):
        assert page_api.post(url, **kwargs).status_code == 401, url
        for role in ("viewer", None):
            answer = page_api.post(url, headers=bearer(role) if role else {"Authorization": f"Bearer {token(None)}"}, **kwargs)
            assert answer.status_code == 403, (url, role, answer.text)
    nothing_written(warehouse, drop_dir, 1)
    for role in ("user", "op", "admin"):
        answer = page_api.post(f"{API}/campaigns/{campaign_id}/cancel", headers=bearer(role))
        assert answer.status_code == 200, (role, answer.text)
    assert [(a["action"], a["user_name"]) for a in audit_rows(warehouse)] == [("cancel", USER)] * 3


def test_a_cross_site_post_is_refused_and_writes_nothing(page_api, warehouse, drop_dir, triggered):
    """The browser's session cookie alone does not write: without the page's token, with a wrong one, or
    from another origin the answer is 403 and nothing is stored; the page's own token (header or form
    field) writes."""
    campaign_id = seed_campaign(warehouse)
    cookie = token("admin")
    page_api.cookies.set("_token", cookie)
    good = csrf_for(cookie)
    for url, kwargs in write_routes(campaign_id):
        assert page_api.post(url, **kwargs).status_code == 403, url
        assert page_api.post(url, headers={security.CSRF_HEADER: "0" * 64}, **kwargs).status_code == 403
        foreign = {security.CSRF_HEADER: good, "Origin": "https://evil.example"}
        assert page_api.post(url, headers=foreign, **kwargs).status_code == 403
    # a plain HTML form another site posts: multipart, the field but not the right value
    forged = page_api.post(
        f"{API}/uploads",
        data={"folder": "wavy_sms", "csrf_token": "forged"},
        files={"file": ("a.csv", WAVY_FILE.encode())},
        headers={"Origin": "https://evil.example"},
    )
    assert forged.status_code == 403
    nothing_written(warehouse, drop_dir, 1)
    assert triggered == [] and warehouse.rows(sa.select(C.c.state))[0]["state"] == "loaded"

    by_header = upload(page_api, WAVY_FILE, headers={security.CSRF_HEADER: good, "Origin": "http://localhost"})
    assert by_header.status_code == 200, by_header.text
    # the token only counts as a header: a form field is never read before the request is known to be ours
    by_field = upload(page_api, WAVY_FILE + "5511987650009,otra\n", headers={}, csrf_token=good)
    assert by_field.status_code == 403, by_field.text
    assert warehouse.count("campaign_files") == 2 and warehouse.count("audit_log") == 1


def test_hostile_uploads_are_refused_or_rejected_with_a_reason(page_api, warehouse, drop_dir, tmp_path, monkeypatch, triggered):
    monkeypatch.setenv("MESSAGING_UPLOAD_MAX_MB", "1")
    uploads = drop_dir / "_uploads"
    for folder in ("nowhere", "../wavy_sms", "_uploads", "wavy_sms/failed", ""):
        answer = upload(page_api, WAVY_FILE, folder=folder)
        assert answer.status_code == 422 and "not a send folder" in answer.json()["detail"], folder
    big = b"phone,message\n" + b"5511987650001,hola\n" * 60_000  # > 1 MB
    assert upload(page_api, big).status_code == 413
    assert upload(page_api, b"phone,message\n5511987650001,ho\x00la\n").status_code == 415
    invalid = upload(page_api, b"phone,message\n5511987650001,\xff\x81\x8d\n")
    assert invalid.status_code == 415 and "text" in invalid.json()["detail"]
    assert upload(page_api, b"").status_code == 422
    assert warehouse.count("campaign_files") == 0 and warehouse.count("audit_log") == 0
    assert not uploads.exists() or list(uploads.iterdir()) == []  # no temporary file left behind

    traversal = upload(page_api, WAVY_FILE, name="../../etc/x.csv")
    assert traversal.status_code == 200
    campaign = traversal.json()
    assert campaign["name"] == "x" and sorted(p.name for p in uploads.iterdir()) == [f"{campaign['campaign_id']}.csv"]
    assert warehouse.rows(sa.select(C.c.file_name))[0]["file_name"] == "x.csv"
    assert not list(tmp_path.rglob("x.csv")) and not (tmp_path / "etc").exists()

    formulas = upload(page_api, "phone,message\n5511987650001,=cmd|' /C calc'!A0\n5511987650002,@SUM(A1)\n+5511987650003,+cmd|x\n")
    preview = formulas.json()["preview"]
    assert (preview["rows_valid"], preview["rows_rejected"]) == (0, 3)
    assert {r["reason"] for r in preview["rejects"]} == {"looks like a spreadsheet formula (column message)"}
    refused = page_api.post(f"{API}/campaigns/{formulas.json()['campaign_id']}/confirm", headers=bearer())
    assert refused.status_code == 409 and "no valid row" in refused.json()["detail"]

    not_csv = upload(page_api, "just a note, no phones here\n", name="note.txt")
    assert not_csv.status_code == 200 and not_csv.json()["preview"]["error"]
    refused = page_api.post(f"{API}/campaigns/{not_csv.json()['campaign_id']}/confirm", headers=bearer())
    assert refused.status_code == 409 and "cannot be sent" in refused.json()["detail"]
    assert not (drop_dir / "wavy_sms").exists() and triggered == []
    assert [a["action"] for a in audit_rows(warehouse)] == ["upload"] * 3  # refused confirms change nothing


@pytest.mark.parametrize("warehouse", ["sqlite"], indirect=True)
def test_a_confirm_queues_a_run_of_the_send_dag_in_airflow(page_api, warehouse, drop_dir):
    """The default trigger: a manual run of the folder's send DAG in Airflow's metadata, with the user."""
    from airflow.dag_processing.bundles.manager import DagBundlesManager
    from airflow.dag_processing.dagbag import DagBag, sync_bag_to_db
    from airflow.models import DagRun
    from airflow.utils.session import create_session

    DagBundlesManager().sync_bundles_to_db()
    sync_bag_to_db(DagBag(dag_folder=str(ROOT / "dags" / "wavy_sms_send.py")), "dags-folder", None)
    campaign_id = upload(page_api, WAVY_FILE).json()["campaign_id"]
    answer = page_api.post(f"{API}/campaigns/{campaign_id}/confirm", headers=bearer())
    assert answer.status_code == 200, answer.text
    run_id = answer.json()["dag_run_id"]
    assert run_id and "warning" not in answer.json()
    with create_session() as session:
        run = session.query(DagRun).filter(DagRun.dag_id == "wavy_sms_send", DagRun.run_id == run_id).one()
        assert (run.run_type, run.triggering_user_name, run.state) == ("manual", USER, "queued")
    assert warehouse.rows(sa.select(C.c.dag_run_id))[0]["dag_run_id"] == run_id


def test_every_send_folder_has_its_send_dag():
    for folder, vendor in actions.send_folders().items():
        dag_file = ROOT / "dags" / f"{send_dag_id(folder)}.py"
        assert f'dag_id="{send_dag_id(folder)}"' in dag_file.read_text(), vendor
        assert f'send_pipeline("{vendor}")' in dag_file.read_text()


def test_the_uploads_default_to_the_drop_volume(drop_dir):
    from latam_messaging import settings

    assert settings.current().uploads() == Path(drop_dir) / "_uploads"


def test_a_renewed_session_cookie_gets_a_fresh_token_from_the_page(page_api, warehouse, drop_dir, triggered):
    """Airflow renews the ``_token`` cookie while a page stays open: the old page's token is refused as
    *stale* (so the page asks ``GET /api/csrf-token`` with the new cookie and tries once more); a request
    with no token at all is not told to retry."""
    campaign_id = seed_campaign(warehouse)
    old_cookie = token("admin")
    page_api.cookies.set("_token", old_cookie)
    stale_token = csrf_for(old_cookie)
    page_api.cookies.set("_token", token("admin"))  # the renewed cookie (another JWT of the same user)
    renewed = page_api.cookies.get("_token")
    answer = page_api.post(f"{API}/campaigns/{campaign_id}/cancel", headers={security.CSRF_HEADER: stale_token})
    assert answer.status_code == 403 and answer.headers.get("X-CSRF-Stale") == "1"
    assert page_api.post(f"{API}/campaigns/{campaign_id}/cancel").headers.get("X-CSRF-Stale") is None
    nothing_written(warehouse, drop_dir, 1)

    fresh = page_api.get("/messaging/api/csrf-token")
    assert fresh.status_code == 200 and fresh.json()["token"] == csrf_for(renewed) != stale_token
    assert page_api.post(f"{API}/campaigns/{campaign_id}/cancel", headers={security.CSRF_HEADER: fresh.json()["token"]}).status_code == 200
    page_api.cookies.clear()
    assert page_api.get("/messaging/api/csrf-token").status_code == 401  # only the session itself reads it
