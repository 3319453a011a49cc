"""The Messaging page: its data functions on both databases, and the plugin mounted on Airflow's own API
app (the real ``create_app``, the simple auth manager): 401/403 without Airflow auth, 200 with it."""

from __future__ import annotations

import pendulum
import pytest
import sqlalchemy as sa

from latam_messaging.page import app as page_app
from latam_messaging.page import queries
from latam_messaging.warehouse import schema
from tests.helpers.ledger import add_ledger_row

NOW = pendulum.now("UTC")


def seed(warehouse) -> None:
    """A small, known warehouse: 3 Teleprom sends (2 delivered, 1 unknown), 1 Wavy send failed,
    a file with 3 rejected rows in 2 categories, ITD credits falling 100 a day, 2 inbound messages."""
    add_ledger_row(warehouse, "k-tel-1", "teleprom", vendor_id="t1")
    add_ledger_row(warehouse, "k-tel-2", "teleprom", vendor_id="t2")
    add_ledger_row(warehouse, "k-tel-3", "teleprom", phone="5491122334455", state="unknown")
    add_ledger_row(warehouse, "k-wavy-1", "wavy", vendor_id="w1")
    t = schema.outbound_messages
    with warehouse.begin() as conn:
        # every time on the module's NOW, which the snapshot is asked at: a run crossing midnight stays on one day
        conn.execute(t.update().values(created_at=NOW, updated_at=NOW))
        conn.execute(t.update().where(t.c.state == "accepted").values(accepted_at=NOW))
        conn.execute(t.update().where(t.c.message_key.in_(["k-tel-1", "k-tel-2"])).values(delivery_status="delivered"))
        conn.execute(t.update().where(t.c.message_key == "k-wavy-1").values(delivery_status="failed"))
        conn.execute(
            t.update().where(t.c.message_key == "k-tel-3").values(updated_at=NOW.subtract(hours=5), file_sha256="ab" * 32)
        )
        conn.execute(
            schema.drop_files.insert().values(
                file_sha256="cd" * 32,
                vendor="teleprom",
                folder="teleprom_hsm",
                path="/drops/teleprom_hsm/archive/campaign.csv",
                rows_total=10,
                rows_valid=7,
                rows_rejected=3,
                state="done",
                claimed_at=NOW.subtract(hours=1),
            )
        )
        conn.execute(
            schema.drop_rejects.insert(),
            [
                {"file_sha256": "cd" * 32, "row_number": n, "reason": reason, "raw_row": "{}", "rejected_at": NOW}
                for n, reason in [(2, "phone '12' is not a number"), (3, "phone missing"), (5, "duplicate of row 4")]
            ],
        )
        conn.execute(
            schema.itd_credit_snapshots.insert(),
            [{"taken_at": NOW.subtract(days=d), "credits": 1000 - 100 * (2 - d)} for d in (2, 1, 0)],
        )
        conn.execute(
            schema.inbound_messages.insert(),
            [
                {
                    "vendor": "itd",
                    "vendor_message_id": f"in-{n}",
                    "from_phone": "56912345678",
                    "text": "hola",
                    "received_at": NOW,
                    "recorded_at": NOW,
                    "source": "poll",
                }
                for n in (1, 2)
            ],
        )


def test_dashboard_sections(warehouse, tmp_path):
    seed(warehouse)
    (tmp_path / "2026-01-02").mkdir()
    (tmp_path / "2026-01-02" / "index.html").write_text("<html>report</html>")
    data = page_app.snapshot(warehouse, report_dir=tmp_path, now=NOW)

    by_vendor = {row["vendor"]: row for row in data["funnel"]}
    assert by_vendor["teleprom"] | {"day": None} == {
        "vendor": "teleprom",
        "day": None,
        "messages": 3,
        "accepted": 2,
        "sent": 2,
        "delivered": 2,
        "read": 0,
        "failed": 0,
        "rejected": 0,
        "unknown": 1,
        "waiting": 0,
    }
    assert by_vendor["teleprom"]["day"] == NOW.to_date_string()
    assert by_vendor["wavy"]["failed"] == 1

    [unknown] = data["unknown"]
    assert unknown["message_key"] == "k-tel-3" and unknown["vendor"] == "teleprom"
    assert unknown["phone"] == "5491•••••••55"  # masked
    assert 4.9 <= unknown["age_hours"] <= 5.1

    rejects = {r["reason"]: r["rows"] for r in data["rejects"]}
    assert rejects == {"invalid or missing phone": 2, "duplicate row in the file": 1}
    assert {r["file"] for r in data["rejects"]} == {"campaign.csv"}

    credits = data["itd_credits"]
    assert credits["credits"] == 800 and credits["burn_per_day"] == 100.0 and credits["days_left"] == 8.0

    assert data["inbound"] == [{"vendor": "itd", "day": NOW.to_date_string(), "messages": 2}]
    assert data["report"]["date"] == "2026-01-02"


def test_dashboard_empty_warehouse(warehouse, tmp_path):
    data = page_app.snapshot(warehouse, report_dir=tmp_path)
    assert data["funnel"] == data["unknown"] == data["rejects"] == data["inbound"] == []
    assert data["itd_credits"]["credits"] is None and data["report"] is None


def test_read_only_refuses_writes(warehouse):
    with pytest.raises(sa.exc.DBAPIError):
        with warehouse.read_only() as conn:
            conn.execute(schema.itd_credit_snapshots.insert().values(taken_at=NOW, credits=1))
    # and the pooled connection is writable again for everybody else
    with warehouse.begin() as conn:
        conn.execute(schema.itd_credit_snapshots.insert().values(taken_at=NOW, credits=1))
    assert warehouse.count("itd_credit_snapshots") == 1


def test_mask_phone():
    assert queries.mask_phone("5493515238015") == "5493•••••••15"
    assert queries.mask_phone("12345") == "•••••"
    assert queries.mask_phone(None) == ""


def test_header_cards_are_the_sql_counts_beyond_the_unknown_list(warehouse, tmp_path):
    """More unknown sends than the page lists (UNKNOWN_LIMIT): each header card, on the page and in
    ``/api/summary``, is the SQL count it stands for, not the length of a capped list."""
    from fastapi.testclient import TestClient

    now = pendulum.now("UTC")
    states = [("unknown", None)] * (queries.UNKNOWN_LIMIT + 50)
    states += [("accepted", "delivered")] * 3 + [("accepted", "read")] + [("accepted", "failed")] * 2
    states += [("accepted", None), ("rejected", None)]
    rows = [
        {
            "message_key": f"k-{n}",
            "vendor": ("teleprom", "wavy")[n % 2],
            "phone": "5493515238015",
            "state": state,
            "delivery_status": status,
            "created_at": now,
            "updated_at": now,
        }
        for n, (state, status) in enumerate(states)
    ]
    with warehouse.begin() as conn:
        conn.execute(schema.outbound_messages.insert(), rows)

    def count(where: str) -> int:
        with warehouse.begin() as conn:
            return conn.execute(sa.text(f"SELECT COUNT(*) FROM outbound_messages WHERE {where}")).scalar_one()

    expected = {
        "total-messages": count("1 = 1"),
        "total-delivered": count("delivery_status IN ('delivered', 'read')"),  # the funnel view's 'delivered'
        "total-failed": count("delivery_status = 'failed'"),
        "total-unknown": count("state = 'unknown'"),
    }
    assert expected == {"total-messages": 258, "total-delivered": 4, "total-failed": 2, "total-unknown": 250}

    app = page_app.create_app(warehouse_factory=lambda: warehouse, report_dir=tmp_path)
    app.dependency_overrides[page_app.require_airflow_user] = lambda: "tester"
    with TestClient(app) as client:
        summary = client.get("/api/summary").json()
        page = client.get("/").text

    assert len(summary["unknown"]) == queries.UNKNOWN_LIMIT  # the list stays capped
    assert summary["unknown_total"] == expected["total-unknown"]
    funnel = {k: sum(row[k] for row in summary["funnel"]) for k in ("messages", "delivered", "failed")}
    assert funnel == {k: expected[f"total-{k}"] for k in funnel}
    assert {card["id"]: card["value"] for card in summary["cards"] if card["id"] in expected} == expected
    for element_id, value in expected.items():
        assert f'id="{element_id}">{value}<' in page


# ---- the plugin on Airflow's API app -----------------------------------------------------------------
@pytest.fixture
def api_client(page_api):
    """Airflow's real API app with this project's plugin (``conftest.page_api``)."""
    return page_api


def _token(role: str | None) -> str:
    from airflow.api_fastapi.app import get_auth_manager
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser

    return get_auth_manager().generate_jwt(SimpleAuthManagerUser(username="someone", role=role))


def test_plugin_is_registered_with_a_nav_entry(api_client):
    from airflow import plugins_manager

    plugins, errors = plugins_manager._get_plugins()
    assert not errors
    [plugin] = [p for p in plugins if p.name == "latam_messaging"]
    assert plugin.fastapi_apps[0]["url_prefix"] == "/messaging"
    assert plugin.external_views[0]["href"] == "/messaging/" and plugin.external_views[0]["name"] == "Messaging"


@pytest.mark.parametrize("path", ["/messaging/", "/messaging/api/summary", "/messaging/report/"])
def test_plugin_refuses_requests_without_airflow_auth(api_client, path):
    assert api_client.get(path).status_code == 401
    assert api_client.get(path, headers={"Authorization": "Bearer not-a-jwt"}).status_code == 403
    assert api_client.get(path, cookies={"_token": "forged"}).status_code == 403


def every_route() -> list[tuple[str, str]]:
    """(method, path under the mount prefix) of every route the page's app has, path parameters
    filled with a harmless value."""
    import re

    from fastapi.routing import APIRoute

    app = page_app.create_app()
    others = [route for route in app.routes if not isinstance(route, APIRoute)]
    assert others == [], "a route outside FastAPI's dependencies would skip Airflow's authentication"
    return sorted(
        (method, page_app.URL_PREFIX + re.sub(r"\{[^}]+\}", "harmless.html", route.path))
        for route in app.routes
        for method in route.methods
    )


def test_every_route_of_the_page_refuses_requests_without_airflow_auth(api_client):
    """Each route of ``create_app().routes`` (not a hand-written list), every method, on Airflow's API app."""
    routes = every_route()
    assert {path for _, path in routes} >= {
        "/messaging/",
        "/messaging/api/summary",
        "/messaging/report/",
        "/messaging/report/harmless.html",
    }
    answers = {
        (method, path): (
            api_client.request(method, path).status_code,
            api_client.request(method, path, headers={"Authorization": "Bearer not-a-jwt"}).status_code,
        )
        for method, path in routes
    }
    assert answers == {route: (401, 403) for route in routes}


def test_plugin_refuses_users_without_a_role(api_client):
    response = api_client.get("/messaging/api/summary", headers={"Authorization": f"Bearer {_token(None)}"})
    assert response.status_code == 403


def test_plugin_serves_logged_in_users(api_client, warehouse, tmp_path, monkeypatch):
    seed(warehouse)
    monkeypatch.setenv("MESSAGING_REPORT_DIR", str(tmp_path))
    (tmp_path / "2026-01-02").mkdir()
    (tmp_path / "2026-01-02" / "index.html").write_text("<html>the report</html>")
    headers = {"Authorization": f"Bearer {_token('viewer')}"}

    summary = api_client.get("/messaging/api/summary", headers=headers)
    assert summary.status_code == 200, summary.text
    assert summary.json()["warehouse"] == warehouse.dialect
    assert [u["message_key"] for u in summary.json()["unknown"]] == ["k-tel-3"]

    api_client.cookies.set("_token", _token("admin"))  # as the UI's iframe does: the session cookie
    page = api_client.get("/messaging/")
    assert page.status_code == 200
    assert 'id="total-messages">4<' in page.text and 'id="credits">800<' in page.text
    assert "5491•••••••55" in page.text and "5491122334455" not in page.text
    assert api_client.get("/messaging/report/").text == "<html>the report</html>"
    assert api_client.get("/messaging/report/..%2Fsecret.html").status_code == 404


# ---- the Consent section -------------------------------------------------------------------------------
def seed_old_consent(warehouse, now) -> None:
    """Outside the page's windows: an opt-out 20 days ago, a file claimed 30 days ago with a row skipped
    at ingest, one suppressed at claim and one under an exemption."""
    from latam_messaging.consent import suppressions
    from latam_messaging.consent.suppressions import Source, Suppression

    old, sha = now.subtract(days=20), "ee" * 32
    with warehouse.begin() as conn:
        suppressions.add(
            warehouse, conn, [Suppression("5491100000099", "all", Source.MANUAL, "old row", old, "test")], old
        )
        conn.execute(
            schema.drop_files.insert().values(
                file_sha256=sha,
                vendor="wavy",
                folder="wavy_sms",
                path="old.csv",
                rows_total=3,
                state="done",
                claimed_at=now.subtract(days=30),
            )
        )
        conn.execute(
            schema.drop_rejects.insert().values(
                file_sha256=sha, row_number=1, reason="suppressed: manual (old row)", raw_row="{}", rejected_at=old
            )
        )
        base = {"vendor": "wavy", "phone": "5491100000098", "file_sha256": sha, "created_at": old, "updated_at": old}
        skipped = {"message_key": "k-old-1", "state": "suppressed", "error": "suppressed: manual (old row)"}
        exempt = {"message_key": "k-old-2", "state": "accepted", "consent_exempt": "old exemption"}
        conn.execute(
            schema.outbound_messages.insert(),
            [{**base, "consent_exempt": None, **skipped}, {**base, "error": None, **exempt}],
        )


def consent_counts(warehouse, now) -> dict[str, int]:
    """What each consent card stands for, counted from the tables (not the views)."""
    optout_since = now.subtract(days=queries.OPTOUT_DAYS - 1).start_of("day")
    files_since = now.subtract(days=queries.DEFAULT_DAYS)
    recent = "(f.claimed_at >= :files OR f.claimed_at IS NULL)"
    counts = {
        "consent-active": "SELECT COUNT(*) FROM suppressions WHERE ended_at IS NULL",
        "consent-phones": "SELECT COUNT(DISTINCT phone) FROM suppressions WHERE ended_at IS NULL",
        "consent-optouts": "SELECT COUNT(*) FROM suppressions WHERE since >= :optouts",
        "consent-optins": "SELECT COUNT(*) FROM suppressions WHERE ended_at >= :optouts",
        "consent-skipped-ingest": "SELECT COUNT(*) FROM drop_rejects r JOIN drop_files f ON f.file_sha256 = r.file_sha256 "
        "WHERE r.reason LIKE 'suppressed: %' AND f.claimed_at >= :files",
        "consent-skipped-claim": "SELECT COUNT(*) FROM outbound_messages o LEFT JOIN drop_files f ON f.file_sha256 = "
        f"o.file_sha256 WHERE o.state = 'suppressed' AND {recent}",
        "consent-exempt": "SELECT COUNT(*) FROM outbound_messages o LEFT JOIN drop_files f ON f.file_sha256 = "
        f"o.file_sha256 WHERE o.consent_exempt IS NOT NULL AND {recent}",
        "consent-exempt-sent": "SELECT COUNT(*) FROM outbound_messages o LEFT JOIN drop_files f ON f.file_sha256 = "
        f"o.file_sha256 WHERE o.consent_exempt IS NOT NULL AND o.state = 'accepted' AND {recent}",
    }
    times = {
        "optouts": sa.bindparam("optouts", optout_since, type_=schema.UtcDateTime()),
        "files": sa.bindparam("files", files_since, type_=schema.UtcDateTime()),
    }
    found = {}
    with warehouse.engine.connect() as conn:
        for card, sql in counts.items():
            query = sa.text(sql).bindparams(*(p for name, p in times.items() if f":{name}" in sql))
            found[card] = int(conn.execute(query).scalar_one())
    found["consent-skipped"] = found["consent-skipped-ingest"] + found["consent-skipped-claim"]
    return found


def test_consent_section_numbers_are_the_sql_counts(warehouse, tmp_path):
    """Each consent card, in ``/api/summary`` and on the page, is the SQL count it stands for; the tables
    under it add up to the cards; what is older than the windows is left out."""
    from fastapi.testclient import TestClient

    from tests.helpers.consent import FILE_ITD, OPTED_OUT_BR, seed_consent

    now = pendulum.now("UTC")
    seed_consent(warehouse, now.subtract(days=1))
    seed_old_consent(warehouse, now)
    expected = consent_counts(warehouse, now)
    assert expected == {
        "consent-active": 7,  # 2 replies, Wavy's status, 3 registry phones, the old manual one
        "consent-phones": 7,
        "consent-optouts": 8,  # the 9 made but the one of 20 days ago
        "consent-optins": 2,  # "ALTA" and the manual entry removed
        "consent-skipped-ingest": 2,
        "consent-skipped-claim": 3,
        "consent-skipped": 5,
        "consent-exempt": 2,  # one of the wavy file, the confirmation without a file
        "consent-exempt-sent": 1,
    }

    app = page_app.create_app(warehouse_factory=lambda: warehouse, report_dir=tmp_path, panels=[])
    app.dependency_overrides[page_app.require_airflow_user] = lambda: "tester"
    with TestClient(app) as client:
        consent = client.get("/api/summary").json()["consent"]
        page = client.get("/").text

    cards = {card["id"]: card["value"] for card in consent["cards"]}
    cards |= {d["id"]: d["value"] for card in consent["cards"] for d in card["details"]}
    assert cards == expected
    for element_id, value in expected.items():
        assert f'id="{element_id}">{value}<' in page
    # the tables add up to the cards
    assert sum(r["active"] for r in consent["active"]) == expected["consent-active"]
    assert sum(r["started"] for r in consent["optouts"]) == expected["consent-optouts"]
    assert sum(r["rows"] for r in consent["suppressed"]) == expected["consent-skipped"]
    assert sum(r["rows"] for r in consent["exempt"]) == expected["consent-exempt"]
    assert {(r["source"], r["scope"]): r["active"] for r in consent["active"]} == {
        ("registry:no_llame", "all"): 3,
        ("keyword", "all"): 2,
        ("vendor_status", "wavy"): 1,
        ("manual", "all"): 1,
    }
    assert consent["keywords"] == [
        {"keyword": "baja", "language": "es", "opt_outs": 2, "phones": 2},
        {"keyword": "sair", "language": "pt", "opt_outs": 1, "phones": 1},
    ]
    itd_file = [r for r in consent["suppressed"] if r["file_sha256"] == FILE_ITD[:12]]
    assert {(r["file"], r["source"], r["at_ingest"], r["at_claim"]) for r in itd_file} == {
        ("campaña (1) 'x' <b>.csv", "keyword", 1, 0),
        ("campaña (1) 'x' <b>.csv", "registry:no_llame", 1, 1),
    }
    assert "campaña (1) &#39;x&#39; &lt;b&gt;.csv" in page and "<b>.csv" not in page  # a file name is text
    assert [(r["file"], r["exemption"], r["rows"], r["sent"]) for r in consent["exempt"]] == [
        ("otp.csv", "run manual__1 by ops: OTP codes are transactional", 1, 1),
        ("(no file)", "opt-out confirmation", 1, 0),
    ]
    assert OPTED_OUT_BR not in page  # the section names no phone


def test_consent_section_of_an_empty_warehouse(warehouse, tmp_path):
    data = page_app.snapshot(warehouse, report_dir=tmp_path)
    consent = data["consent"]
    assert consent["active"] == consent["optouts"] == consent["keywords"] == consent["suppressed"] == []
    assert consent["exempt"] == [] and {c["id"]: c["value"] for c in consent["cards"]} == {
        "consent-active": 0,
        "consent-optouts": 0,
        "consent-skipped": 0,
        "consent-exempt": 0,
    }
    page = page_app.render_page(data, None, base="/messaging")
    assert 'id="consent-active-table-empty"' in page and 'id="consent-exempt">0<' in page
