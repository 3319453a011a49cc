"""``report_time_to_deliver``: measured from acceptance, which is the earlier of our recorded answer
and the vendor's first event for the message (a vendor event proves acceptance) — on both databases."""

from __future__ import annotations

import pendulum
import sqlalchemy as sa

from latam_messaging.status import StatusEvent, apply_status_events
from latam_messaging.warehouse import schema
from tests.helpers.consent import FILE_ITD, FILE_WAVY, seed_consent

T0 = pendulum.datetime(2026, 3, 2, 12, 0, 0, tz="UTC")


def add_accepted(warehouse, key: str, vendor_id: str, accepted_at: pendulum.DateTime) -> None:
    with warehouse.begin() as conn:
        conn.execute(
            schema.outbound_messages.insert().values(
                message_key=key,
                vendor="wavy",
                phone="5511987654321",
                state="accepted",
                vendor_message_id=vendor_id,
                created_at=T0,
                updated_at=accepted_at,
                accepted_at=accepted_at,
            )
        )


def latencies(warehouse) -> dict[str, float]:
    rows = warehouse.rows(sa.text("SELECT message_key, seconds_to_deliver FROM report_time_to_deliver"))
    return {r["message_key"]: round(float(r["seconds_to_deliver"]), 2) for r in rows}  # SQLite: julianday arithmetic


def test_acceptance_recorded_after_the_first_vendor_event_counts_from_that_event(warehouse):
    # the answer was recorded 10 s after the request (a slow batch), but Wavy says it sent at +2 s, delivered at +5 s
    add_accepted(warehouse, "late-record", "w-1", T0.add(seconds=10))
    # an ordinary one: recorded at +1 s, delivered at +4 s
    add_accepted(warehouse, "on-time", "w-2", T0.add(seconds=1))
    events = [
        StatusEvent("wavy", "w-1", "sent", "SENT_SUCCESS", T0.add(seconds=2), "webhook"),
        StatusEvent("wavy", "w-1", "delivered", "DELIVERED_SUCCESS", T0.add(seconds=5), "webhook"),
        StatusEvent("wavy", "w-2", "delivered", "DELIVERED_SUCCESS", T0.add(seconds=4), "webhook"),
    ]
    with warehouse.begin() as conn:
        assert apply_status_events(warehouse, conn, events) == 3
    assert latencies(warehouse) == {"late-record": 3.0, "on-time": 3.0}


def test_an_unrecognised_event_does_not_count_as_acceptance(warehouse):
    add_accepted(warehouse, "m", "w-3", T0.add(seconds=10))
    events = [
        StatusEvent("wavy", "w-3", "unknown", "SOMETHING_NEW", T0.add(seconds=1), "webhook"),
        StatusEvent("wavy", "w-3", "delivered", "DELIVERED_SUCCESS", T0.add(seconds=12), "webhook"),
    ]
    with warehouse.begin() as conn:
        apply_status_events(warehouse, conn, events)
    assert latencies(warehouse) == {"m": 2.0}


# ---- consent views (migration 8) --------------------------------------------------------------------------
DAY1 = pendulum.datetime(2026, 3, 2, 12, 0, tz="UTC")


def view(warehouse, name: str) -> list[dict]:
    return warehouse.rows(sa.text(f"SELECT * FROM {name}"))


def test_opt_outs_per_day_and_source(warehouse):
    seed_consent(warehouse, DAY1)
    rows = {
        (str(r["day"]), r["source"], r["scope"]): (int(r["started"]), int(r["ended"]))
        for r in view(warehouse, "report_optouts_daily")
    }
    assert rows == {
        ("2026-03-02", "keyword", "all"): (2, 0),
        ("2026-03-02", "vendor_status", "wavy"): (1, 0),
        ("2026-03-02", "manual", "sms"): (1, 0),
        ("2026-03-03", "keyword", "all"): (1, 1),  # "¡baja!" and the "ALTA" that ended it
        ("2026-03-03", "registry:no_llame", "all"): (3, 0),
        ("2026-03-03", "manual", "sms"): (0, 1),
    }
    active = {(r["source"], r["scope"]): int(r["active"]) for r in view(warehouse, "report_active_suppressions")}
    assert active == {("keyword", "all"): 2, ("vendor_status", "wavy"): 1, ("registry:no_llame", "all"): 3}


def test_the_keywords_customers_replied_most_first(warehouse):
    seed_consent(warehouse, DAY1)
    rows = [
        (r["keyword"], r["language"], int(r["opt_outs"]), int(r["phones"]))
        for r in view(warehouse, "report_optout_keywords")
    ]
    # "Baja." and "¡baja! " are one keyword; the ended opt-out still counts; "BAJA" from a suppressed phone adds none
    assert rows == [("baja", "es", 2, 2), ("sair", "pt", 1, 1)]


def test_rows_skipped_per_file_and_source_at_ingest_and_at_claim(warehouse):
    seed_consent(warehouse, DAY1)
    rows = {
        (r["file_sha256"], r["vendor"], r["folder"], r["source"]): (
            int(r["rejected_at_ingest"]),
            int(r["suppressed_at_claim"]),
            int(r["rows_suppressed"]),
        )
        for r in view(warehouse, "report_suppressed_rows")
    }
    assert rows == {
        (FILE_ITD, "itd", "itd_whatsapp", "keyword"): (1, 0, 1),
        (FILE_ITD, "itd", "itd_whatsapp", "registry:no_llame"): (1, 1, 2),
        (FILE_WAVY, "wavy", "wavy_sms", "vendor_status"): (0, 1, 1),
        (FILE_WAVY, "wavy", "wavy_sms", "keyword"): (0, 1, 1),
    }
    paths = {r["path"] for r in view(warehouse, "report_suppressed_rows")}
    assert paths == {"/drops/itd_whatsapp/archive/campaña (1) 'x' <b>.csv", "/drops/wavy_sms/archive/otp.csv"}
    # the same counts as the tables they stand for
    with warehouse.engine.connect() as conn:
        at_ingest = conn.execute(
            sa.text("SELECT COUNT(*) FROM drop_rejects WHERE reason LIKE 'suppressed: %'")
        ).scalar_one()
        at_claim = conn.execute(
            sa.text("SELECT COUNT(*) FROM outbound_messages WHERE state = 'suppressed'")
        ).scalar_one()
    assert (at_ingest, at_claim) == (2, 3)
    by_reason = {
        (r["folder"], r["reason"]): int(r["rows_rejected"]) for r in view(warehouse, "report_rejects_by_reason")
    }
    assert by_reason == {
        ("itd_whatsapp", "suppressed: keyword"): 1,
        ("itd_whatsapp", "suppressed: registry:no_llame"): 1,
        ("itd_whatsapp", "invalid or missing phone"): 1,
    }


def test_rows_sent_under_a_consent_exemption_per_file(warehouse):
    seed_consent(warehouse, DAY1)
    rows = {
        (r["file_sha256"], r["vendor"], r["folder"], r["consent_exempt"]): (int(r["rows_exempt"]), int(r["rows_sent"]))
        for r in view(warehouse, "report_consent_exempt")
    }
    assert rows == {
        (FILE_WAVY, "wavy", "wavy_sms", "run manual__1 by ops: OTP codes are transactional"): (1, 1),
        (None, "wavy", None, "opt-out confirmation"): (1, 0),
    }


def test_a_reason_in_another_shape_is_kept_whole(warehouse):
    """A suppression whose reason is not "replied '<keyword>' (<lang>)" and a skipped row whose reason has no
    evidence: the keyword is the whole reason, the source everything after the prefix."""
    from latam_messaging.consent import suppressions
    from latam_messaging.consent.suppressions import Source, Suppression

    with warehouse.begin() as conn:
        suppressions.add(
            warehouse,
            conn,
            [Suppression("5491100000009", "all", Source.KEYWORD, "e-1", DAY1, "test", "typed by hand")],
            DAY1,
        )
        conn.execute(
            schema.drop_files.insert().values(
                file_sha256=FILE_ITD,
                vendor="itd",
                folder="itd_whatsapp",
                path="x.csv",
                rows_total=1,
                state="done",
                claimed_at=DAY1,
            )
        )
        conn.execute(
            schema.drop_rejects.insert().values(
                file_sha256=FILE_ITD, row_number=1, reason="suppressed: manual", raw_row="{}", rejected_at=DAY1
            )
        )
    assert [(r["keyword"], r["language"]) for r in view(warehouse, "report_optout_keywords")] == [
        ("typed by hand", None)
    ]
    assert [r["source"] for r in view(warehouse, "report_suppressed_rows")] == ["manual"]
