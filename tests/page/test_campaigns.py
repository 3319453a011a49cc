"""The campaign pages (``page.campaigns``, ``page.campaign_routes``) and the ``campaigns`` view, on both
databases: every number the JSON and the HTML show is recounted here from the base tables (the view's
definitions — replies, opt-outs, cost — recomputed in Python from its docstring), the list's filters and
sort, the CSV export, 404s, and the routes behind Airflow's authentication."""

from __future__ import annotations

import csv
import io
import re
from decimal import Decimal

import pendulum
import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from latam_messaging.campaigns import pricing
from latam_messaging.campaigns.views import REPLY_WINDOW_HOURS
from latam_messaging.common.phones import consent_key
from latam_messaging.page import app as page_app
from latam_messaging.page import campaigns as page_campaigns
from latam_messaging.warehouse import schema

T0 = pendulum.datetime(2026, 3, 3, 14, 0, tz="UTC")  # a Tuesday's campaign
SHA_A, SHA_B, SHA_C = "a1" * 32, "b2" * 32, "c3" * 32
ID_A, ID_B, ID_C = SHA_A[:16], SHA_B[:16], SHA_C[:16]
PHONE_1 = "5493515238015"  # consent key 543515238015: a reply from the 54… form is the same person
PHONE_2, PHONE_3, PHONE_9 = "5493515238022", "5493515238033", "5493515238099"


def _campaign(sha, name, vendor, folder, created_at, **extra):
    return {
        "campaign_id": sha[:16], "file_sha256": sha, "name": name, "vendor": vendor, "folder": folder,
        "source": "upload", "file_name": f"{name}.csv", "created_by": "ana", "created_at": created_at,
        "state": "loaded", "confirmed_by": None, "confirmed_at": None, "dag_run_id": None, **extra,
    }  # fmt: skip


def _message(key, sha, vendor, state, *, phone=PHONE_9, accepted=None, status=None, vid=None, n=1, **extra):
    return {
        "message_key": key, "vendor": vendor, "file_sha256": sha, "row_number": n, "phone": phone, "state": state,
        "vendor_message_id": vid, "created_at": T0, "updated_at": T0, "accepted_at": accepted,
        "delivery_status": status, "template_name": "reminder", "tracking_id": None, "error": None,
        "vendor_answer": None, "claimed_by": None, "request_started_at": None, **extra,
    }  # fmt: skip


def _event(key, vid, status, at, vendor="teleprom", **extra):
    return {
        "vendor": vendor, "vendor_message_id": vid, "message_key": key, "status": status, "raw_status": status.upper(),
        "event_at": at, "recorded_at": at, "source": "webhook", "reason": None, "billable": None,
        "pricing_category": None, **extra,
    }  # fmt: skip


def _inbound(vid, phone, at, vendor="teleprom", in_reply_to=None, text="gracias"):
    return {
        "vendor": vendor, "vendor_message_id": vid, "from_phone": phone, "received_at": at, "recorded_at": at,
        "source": "webhook", "in_reply_to": in_reply_to, "text": text,
    }  # fmt: skip


def _suppression(phone, source, since, evidence):
    return {
        "phone": consent_key(phone), "scope": "all", "source": source, "evidence": evidence, "since": since,
        "created_at": since, "created_by": "test",
    }  # fmt: skip


def seed(warehouse) -> None:
    """Campaign A (Teleprom, Tuesday 14:00): every state, events over three 10-minute buckets, replies
    in and out of their definition, opt-outs in and out, two links, priced; B (Wavy, a week older) and
    C (ITD, unpriced) to filter and sort."""
    a = "teleprom"
    messages = [
        _message("a1", SHA_A, a, "accepted", phone=PHONE_1, accepted=T0, status="read", vid="v1", n=2),
        _message("a2", SHA_A, a, "accepted", phone=PHONE_2, accepted=T0.add(minutes=3), status="delivered", vid="v2", n=3),
        _message("a3", SHA_A, a, "accepted", phone=PHONE_3, accepted=T0.add(minutes=12), status="failed", vid="v3", n=4),
        _message("a4", SHA_A, a, "rejected", vendor_answer="invalid template", n=5),
        _message("a5", SHA_A, a, "failed", error="HTTP 400: bad request", n=6),
        _message("a6", SHA_A, a, "unknown", claimed_by="run-1", request_started_at=T0.add(minutes=1), error="timeout", n=7),
        _message("a7", SHA_A, a, "unknown", claimed_by="run-1", request_started_at=T0.add(minutes=1), error="timeout", n=8),
        _message("a8", SHA_A, a, "pending", n=9),
        _message("a9", SHA_A, a, "accepted", accepted=T0.add(minutes=25), vid="v9", n=10,
                 template_name="=HYPERLINK(\"http://x\")", tracking_id="@SUM(1)", error="-2+3"),
        _message("a10", SHA_A, a, "cancelled", n=11, error="\tcampaign cancelled"),
        _message("b1", SHA_B, "wavy", "accepted", accepted=T0.subtract(days=7), status="delivered", vid="w1"),
        _message("b2", SHA_B, "wavy", "accepted", accepted=T0.subtract(days=7), vid="w2", n=2),
        _message("c1", SHA_C, "itd", "accepted", accepted=T0.subtract(days=1), vid="v3", phone=PHONE_3),
    ]  # fmt: skip
    events = [
        _event("a1", "v1", "sent", T0.add(seconds=20), pricing_category="MARKETING", billable=True),
        _event("a1", "v1", "delivered", T0.add(seconds=40)),
        _event("a1", "v1", "read", T0.add(minutes=11)),
        _event("a2", "v2", "delivered", T0.add(minutes=4), pricing_category="utility", billable=True),
        _event("a2", "v2", "delivered", T0.add(minutes=5)),  # the same status twice: the first counts
        _event("a3", "v3", "failed", T0.add(minutes=13), reason="131047: Re-engagement message", billable=False),
        _event("a3", "v3", "failed", T0.add(minutes=14), reason="131026: Message undeliverable"),
        _event("b1", "w1", "delivered", T0.subtract(days=7).add(minutes=2), vendor="wavy"),
    ]  # fmt: skip
    inbound = [
        _inbound("i1", "543515238015", T0.add(hours=1)),  # a1's subscriber, the other form of the number
        _inbound("i2", PHONE_1, T0.add(hours=2)),  # a1 again: still one answered message
        _inbound("i3", "5490000000000", T0.add(days=3), in_reply_to="v2"),  # a2 quoted, days later
        _inbound("i4", PHONE_3, T0.add(hours=1), vendor="itd"),  # a3's phone at another vendor: not a reply to a3
        _inbound("i5", "5490000000001", T0.add(hours=1), vendor="itd", in_reply_to="v3"),  # ITD's v3 (c1), not a3
        _inbound("i6", PHONE_9, T0.add(minutes=25 + 60 * REPLY_WINDOW_HOURS + 1)),  # a9's phone, after the window
        _inbound("i7", "+" + PHONE_9, T0.add(minutes=20)),  # before a9 was sent: not a reply
    ]
    suppressions = [
        _suppression(PHONE_1, "keyword", T0.add(hours=3), "inbound:teleprom:i9"),
        _suppression(PHONE_3, "vendor_status", T0.add(hours=2), "event:77"),
        _suppression(PHONE_2, "manual", T0.add(hours=1), "file:x:1"),  # a list, not an opt-out reply
        _suppression(PHONE_9, "keyword", T0.subtract(days=1), "inbound:teleprom:old"),  # before the send
    ]
    with warehouse.begin() as conn:
        conn.execute(
            schema.campaign_files.insert(),
            [
                _campaign(SHA_A, "Tuesday reminder", "teleprom", "teleprom_hsm", T0.subtract(minutes=5),
                          confirmed_by="ana", confirmed_at=T0.subtract(minutes=4), dag_run_id="manual__2026-03-03"),
                _campaign(SHA_B, "Promo 100%_off", "wavy", "wavy_sms", T0.subtract(days=7, minutes=5)),
                _campaign(SHA_C, "Chile <b>news</b>", "itd", "itd_whatsapp", T0.subtract(days=1, minutes=5)),
            ],
        )  # fmt: skip
        conn.execute(
            schema.drop_files.insert(),
            [
                {"file_sha256": sha, "vendor": v, "folder": f, "path": f"/drops/{f}/archive/x.csv", "rows_total": t,
                 "rows_valid": ok, "rows_rejected": t - ok, "state": "done", "claimed_at": T0}
                for sha, v, f, t, ok in [(SHA_A, "teleprom", "teleprom_hsm", 14, 11), (SHA_B, "wavy", "wavy_sms", 2, 2),
                                         (SHA_C, "itd", "itd_whatsapp", 1, 1)]
            ],
        )  # fmt: skip
        conn.execute(
            schema.drop_rejects.insert(),
            [
                {"file_sha256": SHA_A, "row_number": n, "reason": r, "raw_row": "{}", "rejected_at": T0}
                for n, r in [(12, "phone '12' is not a number"), (13, "duplicate of row 2"),
                             (14, "suppressed: keyword (inbound:teleprom:old)")]
            ],
        )  # fmt: skip
        conn.execute(schema.outbound_messages.insert(), messages)
        conn.execute(schema.message_status_events.insert(), events)
        conn.execute(schema.inbound_messages.insert(), inbound)
        conn.execute(schema.suppressions.insert(), suppressions)
        conn.execute(
            schema.short_links.insert(),
            [
                {"campaign_id": ID_A, "url_sha256": str(n) * 64, "vendor": "teleprom", "long_url": f"https://shop.example/{n}",
                 "short_url": f"https://t.example/{n}", "created_at": T0, "clicks": clicks}
                for n, clicks in [(1, 5), (2, 7)]
            ],
        )  # fmt: skip
        conn.execute(
            schema.message_prices.insert(),
            [
                {"vendor": v, "category": c, "unit_price": p, "currency": "USD", "updated_at": T0}
                for v, c, p in [("teleprom", "marketing", Decimal("0.05")), ("teleprom", "default", Decimal("0.01")),
                                ("wavy", "default", Decimal("0.002"))]
            ],
        )  # fmt: skip


# ---- what each number stands for, counted from the base tables -------------------------------------------
def _scalar(conn, sql: str, **params):
    return conn.execute(sa.text(sql), params).scalar_one()


def expected_numbers(warehouse, sha: str) -> dict:
    """The campaign's numbers recounted from ``outbound_messages``, events, inbound, suppressions,
    ``short_links`` and ``message_prices``, the view's definitions applied in Python."""
    count = "SELECT COUNT(*) FROM outbound_messages WHERE file_sha256 = :sha AND "
    with warehouse.engine.connect() as conn:
        out = {
            state: _scalar(conn, count + "state = :s", sha=sha, s=state)
            for state in ("scheduled", "pending", "sending", "accepted", "failed", "unknown", "suppressed", "cancelled")
        }
        out["rejected_by_vendor"] = _scalar(conn, count + "state = 'rejected'", sha=sha)
        out["messages"] = _scalar(conn, count + "1 = 1", sha=sha)
        out["sent"] = _scalar(conn, count + "delivery_status IN ('sent', 'delivered', 'read')", sha=sha)
        out["delivered"] = _scalar(conn, count + "delivery_status IN ('delivered', 'read')", sha=sha)
        out["read_count"] = _scalar(conn, count + "delivery_status = 'read'", sha=sha)
        out["delivery_failed"] = _scalar(conn, count + "delivery_status = 'failed'", sha=sha)
        for column in ("rows_total", "rows_valid", "rows_rejected"):
            out[column] = _scalar(
                conn, f"SELECT COALESCE(SUM({column}), 0) FROM drop_files WHERE file_sha256 = :sha", sha=sha
            )
        out["rows_suppressed_at_ingest"] = _scalar(
            conn, "SELECT COUNT(*) FROM drop_rejects WHERE file_sha256 = :sha AND reason LIKE 'suppressed:%'", sha=sha
        )
        out["clicks"] = _scalar(
            conn, "SELECT COALESCE(SUM(clicks), 0) FROM short_links WHERE campaign_id = :c", c=sha[:16]
        )
        o, i, s, e = (
            schema.outbound_messages,
            schema.inbound_messages,
            schema.suppressions,
            schema.message_status_events,
        )
        sent = [r for r in conn.execute(sa.select(o).where(o.c.file_sha256 == sha)).mappings() if r["accepted_at"]]
        inbound = list(conn.execute(sa.select(i)).mappings())
        opt_outs = [r for r in conn.execute(sa.select(s)).mappings() if r["source"] in ("keyword", "vendor_status")]
        events = list(conn.execute(sa.select(e)).mappings())
        prices = {}
        for r in conn.execute(sa.select(schema.message_prices)).mappings():
            prices.setdefault(r["vendor"], {})[r["category"]] = Decimal(r["unit_price"])
        currency = {r["vendor"]: r["currency"] for r in conn.execute(sa.select(schema.message_prices)).mappings()}
    window = pendulum.duration(hours=REPLY_WINDOW_HOURS)

    def answers(m) -> bool:
        return any(
            r["vendor"] == m["vendor"]
            and (
                (r["in_reply_to"] is not None and r["in_reply_to"] == m["vendor_message_id"])
                or (
                    consent_key(r["from_phone"].lstrip("+")) == consent_key(m["phone"])
                    and m["accepted_at"] <= r["received_at"] < m["accepted_at"] + window
                )
            )
            for r in inbound
        )

    def opted_out(m) -> bool:
        return any(
            s["phone"] == consent_key(m["phone"]) and m["accepted_at"] <= s["since"] < m["accepted_at"] + window
            for s in opt_outs
        )

    out["replies"] = sum(answers(m) for m in sent)
    out["opt_outs"] = sum(opted_out(m) for m in sent)
    cost, unpriced = Decimal(0), False
    for m in (m for m in sent if m["state"] == "accepted"):
        mine = [ev for ev in events if ev["message_key"] == m["message_key"]]
        billable = [ev["billable"] for ev in mine if ev["billable"] is not None]
        if billable and not any(billable):
            continue
        categories = sorted(ev["pricing_category"].lower() for ev in mine if ev["pricing_category"])
        price = pricing.unit_price(prices, m["vendor"], categories[-1] if categories else None)
        unpriced |= price is None
        cost += price or 0
    out["cost"] = None if unpriced else float(cost)
    out["currency"] = currency.get(sent[0]["vendor"]) if sent and not unpriced else None
    return out


@pytest.fixture
def client(warehouse, tmp_path):
    app = page_app.create_app(warehouse_factory=lambda: warehouse, report_dir=tmp_path, panels=[])
    app.dependency_overrides[page_app.require_airflow_user] = lambda: "tester"
    with TestClient(app) as test_client:
        yield test_client


def test_campaign_json_numbers_are_the_sql_counts(warehouse, client):
    seed(warehouse)
    expected = expected_numbers(warehouse, SHA_A)
    assert expected | {"cost": round(expected["cost"], 6)} == {
        "rows_total": 14, "rows_valid": 11, "rows_rejected": 3, "rows_suppressed_at_ingest": 1, "messages": 10,
        "scheduled": 0, "pending": 1, "sending": 0, "accepted": 4, "rejected_by_vendor": 1, "failed": 1,
        "unknown": 2, "suppressed": 0, "cancelled": 1, "sent": 2, "delivered": 2, "read_count": 1,
        "delivery_failed": 1,
        "replies": 2,  # a1 (twice, the other number form), a2 (quoted); not a3 (another vendor's), not a9
        "opt_outs": 2,  # a1 (keyword), a3 (vendor status); not a2 (a list), not a9 (before the send)
        "clicks": 12,
        "cost": 0.07,  # a1 marketing 0.05 + a2 utility→default 0.01 + a9 default 0.01; a3 not billable
        "currency": "USD",
    }  # fmt: skip

    data = client.get(f"/api/campaigns/{ID_A}").json()
    assert {**data["funnel"], "replies": data["replies"], "opt_outs": data["opt_outs"], "clicks": data["clicks"],
            "cost": data["cost"], "currency": data["currency"]} == {**expected, "cost": pytest.approx(expected["cost"])}  # fmt: skip
    assert data["unknown"] == expected["unknown"]
    header = data["campaign"]
    assert (header["name"], header["vendor"], header["state"], header["dag_run_id"], header["confirmed_by"]) == (
        "Tuesday reminder",
        "teleprom",
        "loaded",
        "manual__2026-03-03",
        "ana",
    )

    # failures: send stage by the vendor's answer or the error, delivery stage by the first failed event's reason
    assert data["failures"]["send"] == [
        {"stage": "send", "state": "failed", "reason": "HTTP 400: bad request", "messages": 1},
        {"stage": "send", "state": "rejected", "reason": "invalid template", "messages": 1},
    ]
    assert data["failures"]["send_total"] == expected["rejected_by_vendor"] + expected["failed"]
    assert data["failures"]["delivery"] == [
        {"stage": "delivery", "reason": "131047: Re-engagement message", "messages": 1}
    ]
    with warehouse.engine.connect() as conn:
        failed_events = _scalar(
            conn,
            "SELECT COUNT(DISTINCT e.message_key) FROM message_status_events e JOIN outbound_messages o "
            "ON o.message_key = e.message_key WHERE o.file_sha256 = :sha AND e.status = 'failed'",
            sha=SHA_A,
        )
    assert data["failures"]["delivery_total"] == failed_events == 1

    # the lists under the counts: as many rows as the count, the right ones, phones masked
    assert [r["message_key"] for r in data["reply_rows"]] == ["a1", "a2"]
    assert data["reply_rows"][0]["answers"] == 2 and data["reply_rows"][0]["text"] == "gracias"
    assert data["reply_rows"][0]["phone"] == "5493•••••••15"
    assert [(r["message_key"], r["source"]) for r in data["opt_out_rows"]] == [
        ("a3", "vendor_status"),
        ("a1", "keyword"),
    ]
    assert [r["clicks"] for r in data["click_rows"]] == [7, 5]

    # the timeline: 10-minute buckets, every series sums to what it counts
    timeline = data["timeline"]
    assert timeline["bucket_minutes"] == 10
    assert [b["at"] for b in timeline["buckets"]] == [T0.add(minutes=10 * n).isoformat() for n in range(3)]
    assert [(b["accepted"], b["delivered"], b["read"]) for b in timeline["buckets"]] == [
        (2, 2, 0),
        (1, 0, 1),
        (1, 0, 0),
    ]
    assert timeline["totals"] == {
        "accepted": expected["accepted"],
        "delivered": expected["delivered"],
        "read": expected["read_count"],
    }

    # time to deliver: a1 40 s, a2 1 min (nearest rank)
    assert data["time_to_deliver"] == {"messages": 2, "p50": 40.0, "p90": 60.0, "p99": 60.0}

    # rejects with row numbers, by reason category
    assert data["rejects"]["total"] == expected["rows_rejected"]
    assert [r["row"] for r in data["rejects"]["rows"]] == [12, 13, 14]
    assert {r["reason"]: r["rows"] for r in data["rejects"]["by_reason"]} == {
        "invalid or missing phone": 1, "duplicate row in the file": 1, "suppressed: keyword": 1,
    }  # fmt: skip

    # the unknown rows' request batch
    [batch] = data["unknown_batches"]
    assert batch["rows"] == expected["unknown"] and batch["batch"].startswith("run-1@")


def test_campaign_page_shows_the_same_numbers(warehouse, client):
    seed(warehouse)
    expected = expected_numbers(warehouse, SHA_A)
    data = client.get(f"/api/campaigns/{ID_A}").json()
    page = client.get(f"/campaigns/{ID_A}")
    assert page.status_code == 200
    html = page.text

    def card(element_id: str) -> str:
        return re.search(rf'id="{element_id}" data-count="([^"]*)"', html).group(1)

    cards = {
        "card-messages": expected["messages"], "card-accepted": expected["accepted"],
        "card-delivered": expected["delivered"], "card-read": expected["read_count"],
        "card-send-failed": expected["rejected_by_vendor"] + expected["failed"],
        "card-delivery-failed": expected["delivery_failed"], "card-unknown": expected["unknown"],
        "card-replies": expected["replies"], "card-opt-outs": expected["opt_outs"], "card-clicks": expected["clicks"],
        "card-rejected": expected["rows_rejected"],
    }  # fmt: skip
    assert {k: int(card(k)) for k in cards} == cards
    assert card("card-cost") == "0.07"
    # the funnel table and chart under the cards
    funnel = dict(re.findall(r'<tr data-step="(\w+)" data-count="(\d+)"', html))
    for step in ("messages", "accepted", "sent", "delivered", "read_count", "unknown", "cancelled", "rows_total"):
        assert int(funnel[step]) == expected[step], step
    bars = dict(re.findall(r'<g class="bar" data-label="([^"]+)" data-count="(\d+)"', html))
    assert int(bars["messages"]) == expected["messages"] and int(bars["read"]) == expected["read_count"]
    assert int(bars["send · invalid template"]) == 1 and int(bars["delivery · 131047: Re-engagement message"]) == 1
    # the timeline chart's series add up to the funnel's numbers
    totals = dict(re.findall(r'data-series="(\w+)" data-total="(\d+)"', html))
    assert totals == {
        "accepted": str(expected["accepted"]),
        "delivered": str(expected["delivered"]),
        "read": str(expected["read_count"]),
    }
    # the tables agree with their cards
    assert re.search(r'id="failures-send-total">(\d+)<', html).group(1) == str(cards["card-send-failed"])
    assert re.search(r'id="unknown-total">(\d+)<', html).group(1) == str(expected["unknown"])
    assert re.search(r'id="clicks-total">(\d+)<', html).group(1) == str(expected["clicks"])
    for table, total in (("replies", expected["replies"]), ("opt-outs", expected["opt_outs"]), ("rejects", 3)):
        shown, listed = re.search(rf'id="{table}-count" data-shown="(\d+)" data-total="(\d+)"', html).groups()
        assert int(shown) == int(listed) == total, table
    # the actions: the anti-CSRF token, the release form per batch, the DAG run link
    assert '<meta name="csrf-token"' in html and 'id="release-unknown"' in html and 'id="cancel"' in html
    assert f'data-batch="{data["unknown_batches"][0]["batch"]}"' in html
    assert 'href="/dags/teleprom_hsm_send/runs/manual__2026-03-03"' in html
    assert "5493515238015" not in html  # phones are masked on the page
    assert "<svg" in html and "http://" not in html.replace('xmlns="http://www.w3.org/2000/svg"', "")  # nothing fetched


def test_a_reply_form_only_while_the_24_hour_window_is_open(warehouse, client):
    """Each reply listed gets a Reply form for its latest inbound message while that message's 24-hour
    window is open (the server decides, at the moment the page is drawn); a closed one says so."""
    seed(warehouse)
    received = pendulum.now("UTC").subtract(hours=1)
    with warehouse.begin() as conn:  # a2 quoted again an hour ago: its window is open
        conn.execute(schema.inbound_messages.insert(), [_inbound("i8", "5490000000002", received, in_reply_to="v2")])
    data = client.get(f"/api/campaigns/{ID_A}").json()
    rows = {r["message_key"]: r for r in data["reply_rows"]}
    assert data["replies"] == len(rows) == 2
    assert rows["a2"]["reply_open"] is True
    assert rows["a2"]["reply_to"] == {"vendor": "teleprom", "vendor_message_id": "i8"}  # the latest, not i3
    assert rows["a1"]["reply_open"] is False and rows["a1"]["reply_to"]["vendor_message_id"] == "i2"
    assert rows["a1"]["reply_until"] == T0.add(hours=2 + 24).isoformat()

    html = client.get(f"/campaigns/{ID_A}").text
    forms = re.findall(r'<form class="reply-form inline" data-vendor="([^"]+)" data-message-id="([^"]+)">', html)
    assert forms == [("teleprom", "i8")]
    assert re.search(r'data-message-key="a2" data-reply-open="true">.*?<button type="submit">Reply</button>', html, re.S)
    a1 = re.search(r'data-message-key="a1" data-reply-open="false">(.*?)</tr>', html, re.S).group(1)
    assert "window closed" in a1 and "reply-form" not in a1
    # the form posts to the reply route with the page's anti-CSRF token (post() sends it as X-CSRF-Token)
    assert '"/api/inbound/" + encodeURIComponent(form.dataset.vendor)' in html and '"X-CSRF-Token": CSRF' in html

    # the window's edge: open one second before received + 24 h, closed at it
    with warehouse.read_only() as conn:
        before = page_campaigns.campaign(conn, ID_A, now=received.add(hours=24).subtract(seconds=1))
        at = page_campaigns.campaign(conn, ID_A, now=received.add(hours=24))
    assert [r["reply_open"] for r in before["reply_rows"]] == [False, True]
    assert [r["reply_open"] for r in at["reply_rows"]] == [False, False]


def test_campaign_view_of_a_campaign_without_prices_or_rows(warehouse, client):
    """C's ITD message has no price: its cost is unknown (None), never zero; a campaign with no row yet
    has zero everything and a cost of zero."""
    seed(warehouse)
    with warehouse.begin() as conn:
        conn.execute(
            schema.campaign_files.insert(), [_campaign("d4" * 32, "empty", "wavy", "wavy_sms", T0, state="uploaded")]
        )
    c = client.get(f"/api/campaigns/{ID_C}").json()
    assert c["cost"] is None and c["funnel"]["accepted"] == 1
    assert expected_numbers(warehouse, SHA_C)["cost"] is None
    empty = client.get(f"/api/campaigns/{'d4' * 8}").json()
    assert set(empty["funnel"].values()) == {0} and empty["cost"] == 0 and empty["timeline"]["buckets"] == []
    page = client.get(f"/campaigns/{'d4' * 8}").text
    assert 'id="timeline-chart-empty"' in page and 'id="replies-empty"' in page


def test_list_filters_sort_and_totals(warehouse, client):
    seed(warehouse)
    listed = client.get("/api/campaigns").json()
    assert [c["campaign_id"] for c in listed["campaigns"]] == [ID_A, ID_C, ID_B]  # newest first
    assert listed["total"] == 3 and listed["vendors"] == ["itd", "teleprom", "wavy"]
    by_id = {c["campaign_id"]: c for c in listed["campaigns"]}
    for sha in (SHA_A, SHA_B, SHA_C):
        expected = expected_numbers(warehouse, sha)
        row = by_id[sha[:16]]
        assert {k: row[k] for k in expected if k != "cost"} == {k: v for k, v in expected.items() if k != "cost"}
        assert row["cost"] == pytest.approx(expected["cost"]) if expected["cost"] is not None else row["cost"] is None

    def ids(**params) -> list[str]:
        answer = client.get("/api/campaigns", params=params)
        assert answer.status_code == 200, answer.text
        return [c["campaign_id"] for c in answer.json()["campaigns"]]

    assert ids(vendor="wavy") == [ID_B]
    assert ids(since=T0.subtract(days=2).to_date_string()) == [ID_A, ID_C]
    assert ids(since=T0.subtract(minutes=6).isoformat()) == [ID_A]
    assert ids(q="TUESDAY") == [ID_A]
    assert ids(q="100%_") == [ID_B] and ids(q="%") == [ID_B] and ids(q="_") == [ID_B]  # wildcards are text
    assert ids(sort="name", dir="asc") == [ID_C, ID_B, ID_A]
    assert ids(sort="accepted", dir="desc") == [ID_A, ID_B, ID_C]
    assert ids(sort="cost", dir="desc")[-1] == ID_C and ids(sort="cost", dir="asc")[-1] == ID_C  # unknown cost last
    assert ids(limit=1) == [ID_A] and client.get("/api/campaigns", params={"limit": 1}).json()["total"] == 3
    assert client.get("/api/campaigns", params={"sort": "phone; DROP TABLE x"}).status_code == 422
    assert client.get("/api/campaigns", params={"since": "yesterday"}).status_code == 422

    html = client.get("/campaigns", params={"vendor": "teleprom"}).text
    assert 'id="campaign-count" data-shown="1" data-total="1"' in html
    assert f'data-campaign-id="{ID_A}"' in html and f'data-campaign-id="{ID_B}"' not in html
    html = client.get("/campaigns").text
    assert "Chile &lt;b&gt;news&lt;/b&gt;" in html and "<b>news</b>" not in html  # a name is text
    row_a = re.search(rf'<tr data-campaign-id="{ID_A}">(.*?)</tr>', html, re.S).group(1)
    cells = dict(re.findall(r'data-col="(\w+)">([^<]*)<', row_a))
    expected = expected_numbers(warehouse, SHA_A)
    assert int(cells["accepted"]) == expected["accepted"] and int(cells["replies"]) == expected["replies"]
    assert int(cells["failed"]) == expected["failed"] + expected["rejected_by_vendor"]
    costs = {
        i: re.search(rf'<tr data-campaign-id="{i}">.*?data-col="cost">([^<]*)<', html, re.S).group(1)
        for i in (ID_A, ID_B, ID_C)
    }
    assert costs == {ID_A: "0.07 USD", ID_B: "0.004 USD", ID_C: "n/a"}  # fractions of a cent shown, unknown is not 0
    # the upload form: the send folders of the registry, the token, the confirm button
    assert re.findall(r'<option value="(\w+)">\1</option>', html.split('id="upload-folder"')[1].split("</select>")[0]) == [
        "teleprom_hsm", "itd_whatsapp", "wavy_sms",
    ]  # fmt: skip
    for element in ('id="upload-form"', 'id="preview"', 'id="confirm"', 'id="filter-form"'):
        assert element in html


def test_list_counts_every_match_beyond_its_limit(warehouse, client):
    with warehouse.begin() as conn:
        conn.execute(
            schema.campaign_files.insert(),
            [_campaign(f"{n:016x}" * 4, f"bulk {n}", "wavy", "wavy_sms", T0.add(seconds=n)) for n in range(1, 206)],
        )
    data = client.get("/api/campaigns").json()
    assert len(data["campaigns"]) == page_campaigns.LIST_LIMIT and data["total"] == 205
    assert data["campaigns"][0]["name"] == "bulk 205"
    assert 'data-shown="200" data-total="205"' in client.get("/campaigns").text


def test_messages_csv_one_line_per_message_formulas_escaped(warehouse, client, monkeypatch):
    seed(warehouse)
    monkeypatch.setattr(page_campaigns, "EXPORT_PAGE", 3)  # several keyset pages
    answer = client.get(f"/api/campaigns/{ID_A}/messages.csv")
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/csv")
    assert f"campaign-{ID_A}-messages.csv" in answer.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(answer.content.decode("utf-8-sig"))))
    with warehouse.engine.connect() as conn:
        keys = sorted(
            conn.execute(
                sa.text("SELECT message_key FROM outbound_messages WHERE file_sha256 = :s"), {"s": SHA_A}
            ).scalars()
        )
    assert [r["message_key"] for r in rows] == keys and len(rows) == 10
    a9 = next(r for r in rows if r["message_key"] == "a9")
    assert (
        a9["template_name"] == '\'=HYPERLINK("http://x")' and a9["tracking_id"] == "'@SUM(1)" and a9["error"] == "'-2+3"
    )
    assert next(r for r in rows if r["message_key"] == "a10")["error"] == "'\tcampaign cancelled"
    assert next(r for r in rows if r["message_key"] == "a1")["phone"] == PHONE_1  # as stored
    assert page_campaigns.csv_cell("+5491") == "'+5491" and page_campaigns.csv_cell("\rx") == "'\rx"
    assert page_campaigns.csv_cell("ok=1") == "ok=1" and page_campaigns.csv_cell(None) == ""


def test_unknown_campaign_is_404(warehouse, client):
    seed(warehouse)
    for path in ("/api/campaigns/0000000000000000", "/campaigns/0000000000000000",
                 "/api/campaigns/0000000000000000/messages.csv", "/api/campaigns/'%20OR%201=1--"):  # fmt: skip
        assert client.get(path).status_code == 404, path


def test_timeline_widens_its_buckets_for_a_long_campaign(warehouse):
    rows = [
        _message(f"k{n}", SHA_A, "wavy", "accepted", accepted=T0.add(hours=6 * n), vid=f"w{n}", n=n) for n in range(20)
    ]
    with warehouse.begin() as conn:
        conn.execute(schema.outbound_messages.insert(), rows)
    with warehouse.read_only() as conn:
        timeline = page_campaigns.timeline(conn, SHA_A)
    assert len(timeline["buckets"]) <= page_campaigns.MAX_BUCKETS
    assert timeline["bucket_minutes"] > 10 and timeline["bucket_minutes"] % 10 == 0
    assert sum(b["accepted"] for b in timeline["buckets"]) == 20 == timeline["totals"]["accepted"]


def test_timeline_places_each_message_at_its_first_delivery_and_first_read(warehouse):
    """Delivered: a message's first ``delivered`` or ``read`` event (a read counts it delivered), not its
    first event; read: its first ``read`` event; a message only sent, or of another file, is in neither."""
    rows = [_message(f"t{n}", SHA_A if n < 4 else SHA_B, "wavy", "accepted", accepted=T0, vid=f"w{n}", n=n) for n in range(5)]
    events = [
        _event("t0", "w0", "sent", T0.add(minutes=1), vendor="wavy"),
        _event("t0", "w0", "delivered", T0.add(minutes=12), vendor="wavy"),
        _event("t0", "w0", "read", T0.add(minutes=25), vendor="wavy"),
        _event("t1", "w1", "read", T0.add(minutes=14), vendor="wavy"),  # read, its delivery never reported
        _event("t2", "w2", "delivered", T0.add(minutes=22), vendor="wavy"),
        _event("t2", "w2", "read", T0.add(minutes=3), vendor="wavy"),  # the vendor's clock: read "before"
        _event("t3", "w3", "sent", T0.add(minutes=2), vendor="wavy"),
        _event("t4", "w4", "delivered", T0.add(minutes=5), vendor="wavy"),  # another file's
    ]
    with warehouse.begin() as conn:
        conn.execute(schema.outbound_messages.insert(), rows)
        conn.execute(schema.message_status_events.insert(), events)
    with warehouse.read_only() as conn:
        timeline = page_campaigns.timeline(conn, SHA_A)
    assert [(b["accepted"], b["delivered"], b["read"]) for b in timeline["buckets"]] == [(4, 1, 1), (0, 2, 1), (0, 0, 1)]
    assert timeline["totals"] == {"accepted": 4, "delivered": 3, "read": 3}


def test_percentile_is_the_nearest_rank():
    values = [float(v) for v in range(1, 101)]
    assert [page_campaigns.percentile(values, p) for p in (50, 90, 99)] == [50.0, 90.0, 99.0]
    assert page_campaigns.percentile([7.0], 99) == 7.0 and page_campaigns.percentile([], 50) is None


def test_delivery_failures_count_each_message_by_its_first_failed_event(warehouse):
    """A message failed twice counts once, under its first failure's reason (else its raw status); messages
    without a failed event and failed messages of another file are not counted."""
    rows = [
        _message(f"f{n}", SHA_A if n < 4 else SHA_B, "teleprom", "accepted", accepted=T0, vid=f"v{n}", n=n)
        for n in range(5)
    ]
    events = [
        _event("f0", "v0", "failed", T0.add(minutes=5), reason="131047: Re-engagement message"),
        _event("f0", "v0", "failed", T0.add(minutes=9), reason="131026: Message undeliverable"),
        _event("f1", "v1", "failed", T0.add(minutes=7), reason="131026: Message undeliverable"),
        _event("f1", "v1", "failed", T0.add(minutes=2)),  # the first: no reason, its raw status then
        _event("f2", "v2", "delivered", T0.add(minutes=3)),
        _event("f4", "v4", "failed", T0.add(minutes=1), reason="131047: Re-engagement message"),
    ]
    with warehouse.begin() as conn:
        conn.execute(schema.outbound_messages.insert(), rows)
        conn.execute(schema.message_status_events.insert(), events)
    with warehouse.read_only() as conn:
        failures = page_campaigns.failures(conn, SHA_A)
    assert failures["delivery"] == [
        {"stage": "delivery", "reason": "131047: Re-engagement message", "messages": 1},
        {"stage": "delivery", "reason": "FAILED", "messages": 1},
    ]
    assert failures["delivery_total"] == 2
