"""messaging_report on both warehouses, and the failure alert configured by connection."""

from __future__ import annotations

import pandas as pd
import pendulum
import pytest
import sqlalchemy as sa
from hypothesis import given, settings
from hypothesis import strategies as st

from latam_messaging.warehouse import schema
from tests.helpers.connections import set_connection
from tests.helpers.simulators import configure


def seed(warehouse) -> None:
    now = pendulum.now("UTC")
    outbound = []
    for i, (state, status) in enumerate(
        [
            ("accepted", "read"),
            ("accepted", "delivered"),
            ("accepted", "failed"),
            ("accepted", "sent"),
            ("rejected", None),
            ("unknown", None),
        ]
    ):
        outbound.append(
            {
                "message_key": f"m-{i}",
                "vendor": "teleprom" if i < 5 else "wavy",
                "phone": f"54935167{i:05d}",
                "account_id": 39,
                "template_name": "shipping_confirmation",
                "state": state,
                "delivery_status": status,
                "vendor_answer": "Template not approved" if state == "rejected" else None,
                "created_at": now,
                "updated_at": now,
                "accepted_at": now.subtract(seconds=60) if state == "accepted" else None,
            }
        )
    events = [
        {
            "vendor": "teleprom",
            "vendor_message_id": "v-0",
            "message_key": "m-0",
            "status": "delivered",
            "raw_status": "delivered",
            "event_at": now.subtract(seconds=50),
            "recorded_at": now,
            "source": "webhook",
        },
        {
            "vendor": "teleprom",
            "vendor_message_id": "v-1",
            "message_key": "m-1",
            "status": "delivered",
            "raw_status": "delivered",
            "event_at": now.subtract(seconds=30),
            "recorded_at": now,
            "source": "webhook",
        },
        {
            "vendor": "teleprom",
            "vendor_message_id": "v-2",
            "message_key": "m-2",
            "status": "failed",
            "raw_status": "failed",
            "event_at": now,
            "recorded_at": now,
            "source": "webhook",
        },
    ]
    with warehouse.begin() as conn:
        conn.execute(schema.outbound_messages.insert(), outbound)
        conn.execute(schema.message_status_events.insert(), events)
        conn.execute(
            schema.drop_files.insert().values(
                file_sha256="f" * 64,
                vendor="teleprom",
                folder="teleprom_hsm",
                path="x.csv",
                state="loaded",
                claimed_at=now,
            )
        )
        conn.execute(
            schema.drop_rejects.insert(),
            [
                {
                    "file_sha256": "f" * 64,
                    "row_number": 1,
                    "reason": "phone '1' is not a valid number",
                    "raw_row": "{}",
                    "rejected_at": now,
                },
                {
                    "file_sha256": "f" * 64,
                    "row_number": 2,
                    "reason": "duplicate of row 1 (same phone and content)",
                    "raw_row": "{}",
                    "rejected_at": now,
                },
            ],
        )
        conn.execute(
            schema.itd_credit_snapshots.insert(),
            [{"taken_at": now.subtract(days=d), "credits": 1000 - 100 * (2 - d)} for d in (2, 1, 0)],
        )
        conn.execute(
            schema.inbound_messages.insert().values(
                vendor="itd", vendor_message_id="in-1", text="hola", received_at=now, recorded_at=now, source="webhook"
            )
        )


def test_report_views_and_rendered_report(run_dag, warehouse, tmp_path, monkeypatch):
    seed(warehouse)
    monkeypatch.setenv("MESSAGING_REPORT_DIR", str(tmp_path / "reports"))
    run = run_dag("messaging_report")
    assert run.state == "success"
    day = pendulum.now("UTC").date().isoformat()
    folder = tmp_path / "reports" / day
    assert {p.name for p in folder.iterdir()} == {"index.html", "funnel.png", "rejects.png", "inbound.png"}
    page = (folder / "index.html").read_text()
    assert (
        "Delivery funnel per vendor" in page and "duplicate row in the file" in page and "Template not approved" in page
    )

    funnel = {r["vendor"]: r for r in warehouse.rows(sa.text("SELECT * FROM report_delivery_funnel"))}
    teleprom = funnel["teleprom"]
    assert (
        teleprom["messages"],
        teleprom["accepted"],
        teleprom["delivered"],
        teleprom["read_count"],
        teleprom["failed"],
    ) == (5, 4, 2, 1, 1)
    assert funnel["wavy"]["unknown"] == 1
    seconds = sorted(r["seconds_to_deliver"] for r in warehouse.rows(sa.text("SELECT * FROM report_time_to_deliver")))
    assert [round(s) for s in seconds] == [10, 30]
    from latam_messaging.reporting import render_report
    from latam_messaging.vendors import page_panels

    result = render_report(warehouse, tmp_path / "again", panels=page_panels())
    assert result.summary["itd_credits"] == 800 and result.summary["itd_credit_burn_per_day"] == 100.0
    assert result.summary["itd_days_of_credit_left"] == 8.0 and result.summary["rows_rejected"] == 2


def test_a_failure_alert_goes_to_the_connection(run_dag, warehouse, itd_hook, itd_server, webhook_sink, monkeypatch):
    sink = webhook_sink()
    set_connection(monkeypatch, "messaging_alerts", conn_type="http", host=f"{sink.url}/chat-webhook")
    configure(itd_server, credits=0)
    assert run_dag("itd_poll").state == "failed"
    [(path, body)] = sink.wait_for(lambda posts: len(posts) >= 1)
    assert path == "/chat-webhook" and "itd_poll.check_credit_threshold failed" in body["text"]


def test_itd_minute_times_webhook_and_poll_make_one_event_and_no_negative_latency(warehouse, tmp_path):
    """ITD's webhook says 16:07 (to the minute) for a delivery at 16:07:45; the send was accepted at
    16:07:30 and the poll later reports the same status with seconds."""
    from latam_messaging.reporting import render_report
    from latam_messaging.status import StatusEvent, apply_status_events
    from latam_messaging.vendors import page_panels

    accepted = pendulum.datetime(2026, 3, 2, 19, 7, 30, tz="UTC")
    with warehouse.begin() as conn:
        conn.execute(
            schema.outbound_messages.insert().values(
                message_key="m-itd",
                vendor="itd",
                phone="56961234567",
                state="accepted",
                vendor_message_id="uuid-1",
                content_type="TEXT",
                created_at=accepted,
                updated_at=accepted,
                accepted_at=accepted,
            )
        )
    minute = pendulum.datetime(2026, 3, 2, 19, 7, tz="UTC")
    webhook = [StatusEvent("itd", "uuid-1", "delivered", "DELIVERED", minute, "webhook", precision_s=60)]
    poll = [StatusEvent("itd", "uuid-1", "delivered", "DELIVERED", minute.add(seconds=45), "poll", precision_s=1)]
    with warehouse.begin() as conn:
        assert apply_status_events(warehouse, conn, webhook) == 1
    with warehouse.begin() as conn:
        assert apply_status_events(warehouse, conn, poll) == 0  # the same status, seen twice: one event
    [event] = warehouse.rows(schema.message_status_events)
    assert event["event_at"] == accepted and "precise to 60 s" in event["note"]
    [latency] = warehouse.rows(sa.text("SELECT * FROM report_time_to_deliver"))
    assert latency["seconds_to_deliver"] == 0

    # a reject reason matplotlib would read as math, and missing values
    now = pendulum.now("UTC")
    with warehouse.begin() as conn:
        conn.execute(
            schema.drop_files.insert().values(
                file_sha256="f" * 64, vendor="wavy", folder="wavy_sms", path="x.csv", state="loaded", claimed_at=now
            )
        )
        conn.execute(
            schema.drop_rejects.insert().values(
                file_sha256="f" * 64, row_number=1, reason="$x^{$ is not a phone", raw_row="{}", rejected_at=now
            )
        )
    result = render_report(warehouse, tmp_path / "report", panels=page_panels())
    page = result.html.read_text()
    assert "$x^{$ is not a phone" in page
    assert "None" not in page and "n/a" in page  # credits unknown: n/a
    assert "<th></th>" not in page and "<th>vendor</th>" in page  # no unnamed pandas index column


# ITD credit snapshots as (days ago, hours after that day's noon UTC, balance) and the numbers every
# reader must show: (balance, burn per day, days left).
CREDIT_CASES = {
    "falling 100 a day": ([(2, 0, 1000), (1, 0, 900), (0, 0, 800)], (800, 100.0, 8.0)),
    # the report used to show the newest day's minimum (800) and 8.0 days: the balance is the newest snapshot
    "top-up on the newest day": ([(2, 0, 1000), (1, 0, 900), (0, 0, 800), (0, 1, 5800)], (5800, 100.0, 58.0)),
    # the report used to show an unrounded burn (66.666…)
    "uneven burn": ([(3, 0, 1000), (2, 0, 900), (1, 0, 850), (0, 0, 800)], (800, 66.7, 12.0)),
    "the last 8 days of 10": ([(d, 0, 1500 - 50 * (9 - d)) for d in range(9, -1, -1)], (1050, 50.0, 21.0)),
    "only top-ups": ([(1, 0, 100), (0, 0, 500)], (500, 0.0, None)),
    "one day": ([(0, 0, 800), (0, 1, 700)], (700, None, None)),
    "no snapshot": ([], (None, None, None)),
}


@pytest.mark.parametrize("case", list(CREDIT_CASES))
def test_page_and_report_show_the_same_itd_credits(warehouse, tmp_path, case):
    """One arithmetic (``latam_messaging.itd.credits``): the page's JSON summary, its card and the
    report's summary and burn line agree on the balance, the burn per day and the days left."""
    from fastapi.testclient import TestClient

    from latam_messaging.page.app import create_app, require_airflow_user
    from latam_messaging.reporting import render_report
    from latam_messaging.vendors import page_panels

    snapshots, (balance, burn, days_left) = CREDIT_CASES[case]
    noon = pendulum.now("UTC").start_of("day").add(hours=12)
    if snapshots:
        with warehouse.begin() as conn:
            conn.execute(
                schema.itd_credit_snapshots.insert(),
                [{"taken_at": noon.subtract(days=d).add(hours=h), "credits": c} for d, h, c in snapshots],
            )

    app = create_app(warehouse_factory=lambda: warehouse, report_dir=tmp_path / "none")
    app.dependency_overrides[require_airflow_user] = lambda: "tester"
    with TestClient(app) as client:
        page = client.get("/api/summary").json()["itd_credits"]
        html = client.get("/").text
    report = render_report(warehouse, tmp_path / "report", panels=page_panels())

    shown = "n/a"
    assert (page["credits"], page["burn_per_day"], page["days_left"]) == (balance, burn, days_left)
    assert (
        report.summary["itd_credits"],
        report.summary["itd_credit_burn_per_day"],
        report.summary["itd_days_of_credit_left"],
    ) == (balance, burn, days_left)
    assert f'id="credits">{shown if balance is None else balance}<' in html
    assert f'id="credits-days-left">{shown if days_left is None else days_left}<' in html
    burn_line = (
        f"Burn: {shown if burn is None else burn} credits/day; "
        f"days of credit left: {shown if days_left is None else days_left}."
    )
    assert burn_line in report.html.read_text()


def test_report_has_the_consent_section_of_the_page(warehouse, tmp_path):
    """The report's Consent section and summary are the page's numbers (one set of queries)."""
    from fastapi.testclient import TestClient

    from latam_messaging.page.app import create_app, require_airflow_user
    from latam_messaging.reporting import render_report
    from tests.helpers.consent import seed_consent

    seed_consent(warehouse, pendulum.now("UTC").subtract(days=1))
    app = create_app(warehouse_factory=lambda: warehouse, report_dir=tmp_path / "none", panels=[])
    app.dependency_overrides[require_airflow_user] = lambda: "tester"
    with TestClient(app) as client:
        cards = {card["id"]: card["value"] for card in client.get("/api/summary").json()["consent"]["cards"]}
    assert cards == {"consent-active": 6, "consent-optouts": 8, "consent-skipped": 5, "consent-exempt": 2}

    report = render_report(warehouse, tmp_path / "report")
    assert {k: v for k, v in report.summary.items() if "consent" in k or "suppress" in k or "opt_outs" in k} == {
        "suppressions_active": 6,
        "opt_outs_last_7_days": 8,
        "rows_skipped_for_consent_last_14_days": 5,
        "rows_consent_exempt_last_14_days": 2,
    }
    html = report.html.read_text()
    section = html[html.index("<h2>Consent</h2>") :]
    for text in (
        "<td>registry:no_llame</td>",
        "<td>baja</td>",
        "campaña (1) 'x' &lt;b&gt;.csv",
        "run manual__1 by ops: OTP codes are transactional",
        "<td>rows skipped for consent: at send</td>\n      <td>3</td>",
    ):
        assert text in section, text
    assert "<b>.csv" not in html and "5511922222222" not in html  # file names are text; no phone in the report


@settings(max_examples=60, deadline=None)
@given(st.dictionaries(st.sampled_from(["itd", "teleprom", "wavy"]),
                       st.lists(st.floats(0, 10**6, allow_nan=False), min_size=1, max_size=300), max_size=3))
def test_time_to_deliver_percentiles_are_pandas_quantiles(seconds):
    """The report's p50/p90/p99, from the streamed seconds, are what ``groupby().quantile()`` of the view's
    frame gave (the report held that frame: 1.8 GB on 3.7 M delivered messages)."""
    from latam_messaging.reporting import QUANTILES, percentiles_of

    frame = pd.DataFrame([(vendor, s) for vendor, values in seconds.items() for s in values], columns=["vendor", "s"])
    expected = frame.groupby("vendor")["s"].quantile(list(QUANTILES)).unstack().round(1) if seconds else pd.DataFrame()
    got = percentiles_of(seconds)
    pd.testing.assert_frame_equal(got, expected, check_names=False, check_column_type=False, check_index_type=False)


def test_the_report_streams_the_view_time_to_deliver(warehouse):
    seed(warehouse)
    from latam_messaging.reporting import delivery_percentiles, percentiles_of

    rows = warehouse.rows(sa.text("SELECT vendor, seconds_to_deliver FROM report_time_to_deliver"))
    by_vendor: dict[str, list[float]] = {}
    for row in rows:
        by_vendor.setdefault(row["vendor"], []).append(float(row["seconds_to_deliver"]))
    assert rows and delivery_percentiles(warehouse, chunk=1).equals(percentiles_of(by_vendor))


def test_the_time_to_deliver_stream_holds_one_chunk_of_rows(warehouse):
    """100,000 delivered messages read 1,000 at a time: what the read holds at its peak (Python's allocations,
    the driver's rows included) stays near one chunk and the seconds' arrays — not the whole view (on
    psycopg2, ``yield_per`` given as an execution option piled every row up: 575 MB for 1.5 M)."""
    import tracemalloc

    from latam_messaging.reporting import delivery_percentiles, percentiles_of

    start = pendulum.datetime(2026, 3, 2, 12, tz="UTC")
    count = 100_000
    with warehouse.begin() as conn:
        conn.execute(schema.outbound_messages.insert(), [
            {"message_key": f"k{n:06d}", "vendor": "wavy", "phone": "5511987654321", "state": "accepted",
             "vendor_message_id": f"v{n}", "created_at": start, "updated_at": start, "accepted_at": start}
            for n in range(count)
        ])
        conn.execute(schema.message_status_events.insert(), [
            {"vendor": "wavy", "vendor_message_id": f"v{n}", "message_key": f"k{n:06d}", "status": "delivered",
             "raw_status": "DELIVERED", "event_at": start.add(seconds=n % 600), "recorded_at": start, "source": "webhook"}
            for n in range(count)
        ])
    tracemalloc.start()
    try:
        frame = delivery_percentiles(warehouse, chunk=1000)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert frame.equals(percentiles_of({"wavy": [float(n % 600) for n in range(count)]}))
    assert peak < 8_000_000, f"{peak / 1e6:.1f} MB held at once"


def test_the_databases_percentiles_are_numpys(warehouse):
    """PostgreSQL's ``percentile_cont`` (no row leaves the database) gives the quantiles numpy gives the
    view's rows (SQLite's path), on times to the microsecond, two vendors, one with a single message."""
    import random

    from latam_messaging.reporting import delivery_percentiles, percentiles_of

    rnd = random.Random(25)
    start = pendulum.datetime(2026, 3, 2, 12, tz="UTC")
    sends, events = [], []
    for n in range(501):
        vendor = "itd" if n == 500 else rnd.choice(("wavy", "teleprom"))
        sends.append({"message_key": f"k{n}", "vendor": vendor, "phone": "5511987654321", "state": "accepted",
                      "vendor_message_id": f"v{n}", "created_at": start, "updated_at": start, "accepted_at": start})
        events.append({"vendor": vendor, "vendor_message_id": f"v{n}", "message_key": f"k{n}", "status": "delivered",
                       "raw_status": "DELIVERED", "event_at": start.add(microseconds=rnd.randrange(10**9)),
                       "recorded_at": start, "source": "webhook"})
    with warehouse.begin() as conn:
        conn.execute(schema.outbound_messages.insert(), sends)
        conn.execute(schema.message_status_events.insert(), events)
    rows = warehouse.rows(sa.text("SELECT vendor, seconds_to_deliver FROM report_time_to_deliver"))
    by_vendor: dict[str, list[float]] = {}
    for row in rows:
        by_vendor.setdefault(row["vendor"], []).append(float(row["seconds_to_deliver"]))
    assert len(rows) == 501
    pd.testing.assert_frame_equal(delivery_percentiles(warehouse), percentiles_of(by_vendor))
