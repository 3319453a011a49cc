"""``report_time_to_deliver``: measured from acceptance, which is the earlier of our recorded answer
and the vendor's first event for the message (a vendor event proves acceptance) — on both databases."""

from __future__ import annotations

import pendulum
import sqlalchemy as sa

from latam_messaging.status import StatusEvent, apply_status_events
from latam_messaging.warehouse import schema

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
