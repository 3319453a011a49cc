"""``delivery_times`` (migration 16, ``warehouse.delivery_times``): kept by the database's triggers on both
databases, ``report_time_to_deliver`` equals its definition over the events after each way an event comes,
goes or changes — out of order, duplicated, of an unknown status, not linked to a send, delivered then read
earlier, the earliest event deleted, its time, status or message corrected, a rollback, two writers of the
same messages at once, a ``TRUNCATE`` — and ``check`` finds nothing; rows broken by hand are found and
mended; the view reads no event, and a recomputation reads only its message's events."""

from __future__ import annotations

import threading

import pendulum
import pytest
import sqlalchemy as sa

from latam_messaging.status import StatusEvent, apply_status_events
from latam_messaging.warehouse import delivery_times, schema, views

T0 = pendulum.datetime(2026, 3, 2, 12, 0, tz="UTC")


def send(warehouse, *keys: str, accepted_at: pendulum.DateTime | None = T0) -> None:
    """Accepted sends, each of vendor id ``v-<key>`` (``accepted_at`` None: still sending, no id yet)."""
    with warehouse.begin() as conn:
        conn.execute(schema.outbound_messages.insert(), [
            {"message_key": key, "vendor": "wavy", "phone": "5511987654321", "state": "accepted" if accepted_at else "sending",
             "vendor_message_id": f"v-{key}" if accepted_at else None, "created_at": T0, "updated_at": T0,
             "accepted_at": accepted_at}
            for key in keys
        ])


def event(key: str, status: str, seconds: int, raw: str | None = None) -> StatusEvent:
    return StatusEvent("wavy", f"v-{key}", status, raw or status.upper(), T0.add(seconds=seconds), "webhook")


def write(warehouse, *events: StatusEvent) -> None:
    with warehouse.begin() as conn:
        apply_status_events(warehouse, conn, list(events))


def latencies(warehouse) -> dict[str, float]:
    """The view's seconds per message; equal to the view's definition over the events, ``check`` clean."""
    def read(sql: str) -> dict[str, float]:
        with warehouse.engine.connect() as conn:
            return {key: round(float(s), 2) for key, s in conn.execute(sa.text(f"SELECT message_key, seconds_to_deliver FROM ({sql}) t"))}

    kept = read("SELECT * FROM report_time_to_deliver")
    assert kept == read(views.time_to_deliver_over_events(warehouse.dialect))
    with warehouse.engine.connect() as conn:
        assert delivery_times.check(conn) == []
    return kept


def test_each_way_an_event_comes_goes_or_changes(warehouse):
    send(warehouse, "a", "b", "c")
    send(warehouse, "late", accepted_at=T0.add(seconds=30))  # recorded after its first event
    send(warehouse, "waiting", accepted_at=None)  # its answer not yet recorded: the event names our key
    # out of order; an unknown status never counts as acceptance; an event of no send of ours stores unlinked
    write(warehouse, event("a", "delivered", 40), event("a", "sent", 5), event("b", "unknown", 1, "ODD"),
          event("b", "sent", 10), event("late", "sent", 12), event("late", "delivered", 50),
          event("nobody", "delivered", 3),
          StatusEvent("wavy", None, "delivered", "DELIVERED", T0.add(seconds=8), "webhook", message_key="waiting"))
    assert latencies(warehouse) == {"a": 40.0, "late": 38.0}  # no acceptance, no time to deliver
    # b delivered; a read earlier than its delivery (the vendor's clock): a's end is the read; a duplicate
    # webhook of a's delivery with another time is the same event (not stored)
    write(warehouse, event("b", "delivered", 70), event("a", "read", 30), event("a", "delivered", 20))
    assert latencies(warehouse) == {"a": 30.0, "b": 70.0, "late": 38.0}
    with warehouse.begin() as conn:  # an analyst deletes a's read: its delivery is its end again
        conn.execute(sa.text("DELETE FROM message_status_events WHERE vendor_message_id = 'v-a' AND status = 'read'"))
    assert latencies(warehouse)["a"] == 40.0
    with warehouse.begin() as conn:  # late's first event deleted: it counts from its recorded acceptance
        conn.execute(sa.text("DELETE FROM message_status_events WHERE vendor_message_id = 'v-late' AND status = 'sent'"))
    assert latencies(warehouse)["late"] == 20.0
    moved = sa.text("UPDATE message_status_events SET event_at = :at WHERE vendor_message_id = 'v-b' AND status = 'delivered'")
    with warehouse.begin() as conn:  # a time corrected, a status corrected, an event moved to another send
        conn.execute(moved.bindparams(sa.bindparam("at", T0.add(seconds=15), type_=schema.UtcDateTime())))
        conn.execute(sa.text("UPDATE message_status_events SET status = 'failed' WHERE vendor_message_id = 'v-a' AND status = 'delivered'"))
        conn.execute(sa.text("UPDATE message_status_events SET message_key = 'c' WHERE vendor_message_id = 'v-late'"))
    assert latencies(warehouse) == {"b": 15.0, "c": 50.0}
    with warehouse.begin() as conn:  # the answer recorded: the delivery counts from the first event
        answered = sa.text("UPDATE outbound_messages SET accepted_at = :at WHERE message_key = 'waiting'")
        conn.execute(answered.bindparams(sa.bindparam("at", T0.add(seconds=9), type_=schema.UtcDateTime())))
    assert latencies(warehouse) == {"b": 15.0, "c": 50.0, "waiting": 0.0}
    for change, expected in (  # events unlinked and linked again; a status found unrecognised and back
        ("message_key = NULL WHERE vendor_message_id = 'v-b'", {"c": 50.0, "waiting": 0.0}),
        ("message_key = 'b' WHERE vendor_message_id = 'v-b'", {"b": 15.0, "c": 50.0, "waiting": 0.0}),
        ("status = 'unknown' WHERE message_key = 'c'", {"b": 15.0, "waiting": 0.0}),
        ("status = 'delivered' WHERE message_key = 'c'", {"b": 15.0, "c": 50.0, "waiting": 0.0}),
    ):
        with warehouse.begin() as conn:
            conn.execute(sa.text(f"UPDATE message_status_events SET {change}"))
        assert latencies(warehouse) == expected, change
    with pytest.raises(RuntimeError), warehouse.begin() as conn:  # a writer killed half-way: nothing of it
        apply_status_events(warehouse, conn, [event("a", "delivered", 1), event("b", "sent", 0)])
        conn.execute(sa.text("DELETE FROM message_status_events WHERE vendor_message_id = 'v-b'"))
        raise RuntimeError("killed")
    assert latencies(warehouse) == {"b": 15.0, "c": 50.0, "waiting": 0.0}
    with warehouse.begin() as conn:  # an analyst empties the events (PostgreSQL: TRUNCATE fires no row trigger)
        conn.execute(sa.text("TRUNCATE message_status_events" if warehouse.dialect == "postgresql"
                             else "DELETE FROM message_status_events"))
    assert latencies(warehouse) == {}
    with warehouse.engine.connect() as conn:
        assert conn.execute(sa.text("SELECT COUNT(*) FROM delivery_times")).scalar() == 0
    write(warehouse, event("a", "delivered", 9))
    assert latencies(warehouse) == {"a": 9.0}


def test_two_writers_of_the_same_messages_at_once_keep_the_earliest(warehouse):
    """A webhook and a poll (their status texts differ, so both events are stored) write the same 300
    messages' events at once in small transactions, each earlier than the other for half of them: on
    PostgreSQL the second upsert of a message waits on the first's row, then lowers it; every row is the
    earliest of both."""
    keys = [f"m{n:03d}" for n in range(300)]
    send(warehouse, *keys)
    errors: list[BaseException] = []
    start = threading.Barrier(2)

    def ingest(raw: str, parity: int) -> None:
        try:
            start.wait()
            for first in range(0, 300, 10):
                write(warehouse, *(event(k, status, (7 if n % 2 == parity else 0) + (5 if status == "sent" else 60), f"{raw}-{status}")
                                   for n, k in enumerate(keys[first : first + 10], start=first)
                                   for status in ("sent", "delivered")))
        except BaseException as error:  # noqa: BLE001 - reported by the test below
            errors.append(error)

    threads = [threading.Thread(target=ingest, args=args) for args in (("HOOK", 0), ("POLL", 1))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors
    assert latencies(warehouse) == {k: 60.0 for k in keys}  # acceptance T0 ≤ the first event at +5 s


def test_two_remakes_of_one_message_at_once_read_each_others_deletions(warehouse):
    """Two transactions delete a message's two earliest events at once, the second while the first still
    holds its remake (PostgreSQL: the second waits on the message's advisory lock, then reads the events
    the first left). Without the lock the second deleted the row as its snapshot saw it and kept the
    earlier of its remake and the first's: the time of an event deleted."""
    send(warehouse, "a")
    write(warehouse, event("a", "sent", 5), event("a", "delivered", 20), event("a", "read", 40))
    delete = "DELETE FROM message_status_events WHERE vendor_message_id = 'v-a' AND status = '{}'"
    first = warehouse.engine.connect()
    first.begin()
    first.execute(sa.text(delete.format("sent")))
    errors: list[BaseException] = []

    def second() -> None:
        try:
            with warehouse.begin() as conn:
                conn.execute(sa.text(delete.format("delivered")))
        except BaseException as error:  # noqa: BLE001 - reported by the test below
            errors.append(error)

    thread = threading.Thread(target=second)
    thread.start()
    thread.join(timeout=1.0)  # it waits for the first (SQLite: for the database's write lock)
    assert thread.is_alive()
    first.commit()
    first.close()
    thread.join(timeout=30)
    assert not errors
    assert latencies(warehouse) == {"a": 40.0}


def test_rows_broken_by_hand_are_found_and_mended(warehouse):
    send(warehouse, "a", "b", "c")
    write(warehouse, event("a", "sent", 5), event("a", "delivered", 40), event("b", "delivered", 70), event("c", "sent", 3))
    with warehouse.begin() as conn:
        conn.execute(sa.text("DELETE FROM delivery_times WHERE message_key = 'a'"))
        conn.execute(sa.text("UPDATE delivery_times SET delivered_at = NULL WHERE message_key = 'b'"))
        conn.execute(sa.text("INSERT INTO delivery_times SELECT 'ghost', first_event_at, delivered_at FROM delivery_times WHERE message_key = 'c'"))
        drifts = delivery_times.check(conn)
    assert sorted((d.message_key, d.missing) for d in drifts) == [("a", 1), ("b", -1), ("b", 1), ("ghost", -1)]
    assert delivery_times.maintain(warehouse) == {"messages_drifted": 3, "messages_repaired": 3}
    assert latencies(warehouse) == {"a": 40.0, "b": 70.0}
    assert delivery_times.maintain(warehouse) == {"messages_drifted": 0, "messages_repaired": 0}


def test_the_view_reads_no_event_and_a_recomputation_reads_its_message(warehouse):
    """EXPLAIN on both databases, once the tables have statistics: ``report_time_to_deliver`` (whole, and
    the campaign page's one file) reads no event; a deleted event's recomputation reads its message's
    events by ``ix_status_events_message_key``."""
    keys = [f"m{n:04d}" for n in range(2000)]
    send(warehouse, *keys)
    write(warehouse, *(event(k, status, s) for k in keys for status, s in (("sent", 5), ("delivered", 30))))
    with warehouse.begin() as conn:
        conn.execute(sa.text("ANALYZE"))
    explain = "EXPLAIN QUERY PLAN " if warehouse.dialect == "sqlite" else "EXPLAIN "
    recompute = delivery_times._grouped(delivery_times.EVENTS, " AND e.message_key = 'm0001'")
    with warehouse.engine.connect() as conn:
        def plan(sql: str) -> str:
            return " ".join(str(part) for row in conn.execute(sa.text(explain + sql)) for part in row)

        assert "message_status_events" not in plan("SELECT * FROM report_time_to_deliver")
        assert "message_status_events" not in plan(views.time_to_deliver(warehouse.dialect, "o.file_sha256 = 'x'"))
        assert "ix_status_events_message_key" in plan(recompute)
    assert len(latencies(warehouse)) == 2000
