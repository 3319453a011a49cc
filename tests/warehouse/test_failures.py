"""``failed_messages`` and ``failure_counts`` (migration 14, ``warehouse.failures``): kept by the database's
triggers on both databases, ``report_failure_reasons`` equals its definition over the events and the ledger
after each way a failure comes, goes or changes — the same message failed twice (webhook and poll), for two
reasons, a reason given later, a failed event deleted while another of its message and reason stays, a status
corrected, a send refused with an answer, an error, neither, or an answer of 645 characters, an answer
corrected, a refused row deleted or found accepted, a rollback, two writers failing the same messages at once, a
``TRUNCATE`` — and ``check`` finds nothing;
rows broken by hand are found and mended; the view and the triggers' lookups read no event table scan."""

from __future__ import annotations

import threading
from collections import Counter

import pendulum
import pytest
import sqlalchemy as sa

from latam_messaging.lifecycle import OUTBOUND, MessageState
from latam_messaging.sending.ledger import Ledger, SendOutcome
from latam_messaging.status import StatusEvent, apply_status_events
from latam_messaging.warehouse import failures, views
from tests.warehouse.test_aggregates import load_file

T0 = pendulum.datetime(2026, 3, 2, 12, 0, tz="UTC")
META = "131047: Re-engagement message"
UNDELIVERABLE = "131026: Message undeliverable"


def over_ledger(warehouse) -> Counter:
    """``report_failure_reasons`` as migrations 7 to 13 defined it, over the events and the ledger: the reference."""
    sql = views.FAILURE_REASONS_OVER_LEDGER
    with warehouse.engine.connect() as conn:
        return Counter(tuple(r[:3]) + (int(r[3]),) for r in conn.execute(sa.text(sql)))


def reasons(warehouse) -> dict[tuple[str, str], int]:
    """The view's delivery stage, (vendor, reason) → messages; equal to the reference, ``check`` clean."""
    with warehouse.engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT vendor, stage, reason, messages FROM report_failure_reasons")).all()
    assert Counter(tuple(r[:3]) + (int(r[3]),) for r in rows) == over_ledger(warehouse)
    with warehouse.begin() as conn:
        assert failures.check(conn) == []
    return {(r[0], r[2]): int(r[3]) for r in rows if r[1] == "delivery"}


def event(vid: str, status: str, at: pendulum.DateTime, reason: str | None = None, vendor: str = "teleprom",
          raw: str | None = None, source: str = "webhook") -> StatusEvent:
    return StatusEvent(vendor, vid, status, raw or status.upper(), at, source, reason=reason)


def write(warehouse, *events: StatusEvent) -> None:
    with warehouse.begin() as conn:
        apply_status_events(warehouse, conn, list(events))


def test_each_way_a_failed_message_comes_and_goes(warehouse):
    write(warehouse, event("m1", "sent", T0), event("m1", "failed", T0.add(seconds=5)))
    assert reasons(warehouse) == {("teleprom", "FAILED"): 1}
    # Meta's error on two later events of m1 (its V1 and V3 spellings): m1 failed for both reasons, once for
    # Meta's; a second message; another vendor's m1 is another message
    write(
        warehouse,
        event("m1", "failed", T0.add(minutes=1), reason=META, raw="failed"),
        event("m1", "failed", T0.add(minutes=2), reason=META, raw="Fallido", source="poll"),
        event("m2", "failed", T0),
        event("m1", "failed", T0, vendor="wavy"),
    )
    assert reasons(warehouse) == {("teleprom", "FAILED"): 2, ("teleprom", META): 1, ("wavy", "FAILED"): 1}
    of_m1 = "vendor = 'teleprom' AND vendor_message_id = 'm1' AND status = 'failed' AND reason IS NOT NULL"
    with warehouse.begin() as conn:  # one of m1's two events of Meta's error deleted: m1 still failed for it
        conn.execute(sa.text(f"DELETE FROM message_status_events WHERE id = (SELECT MIN(id) FROM message_status_events WHERE {of_m1})"))
    assert reasons(warehouse)[("teleprom", META)] == 1
    with warehouse.begin() as conn:  # the other deleted too: m1 no longer counts for it
        conn.execute(sa.text(f"DELETE FROM message_status_events WHERE {of_m1}"))
    assert reasons(warehouse) == {("teleprom", "FAILED"): 2, ("wavy", "FAILED"): 1}
    with warehouse.begin() as conn:  # the reason given later (a correction), then a status corrected
        conn.execute(sa.text("UPDATE message_status_events SET reason = :r WHERE vendor_message_id = 'm2'"), {"r": META})
        conn.execute(sa.text("UPDATE message_status_events SET status = 'delivered' WHERE vendor = 'wavy'"))
    assert reasons(warehouse) == {("teleprom", "FAILED"): 1, ("teleprom", META): 1}
    with warehouse.begin() as conn:  # and back: a delivered event found failed; the id of a message corrected
        conn.execute(sa.text("UPDATE message_status_events SET status = 'failed' WHERE vendor = 'wavy'"))
        conn.execute(sa.text("UPDATE message_status_events SET vendor_message_id = 'm3' WHERE vendor_message_id = 'm2'"))
    assert reasons(warehouse) == {("teleprom", "FAILED"): 1, ("teleprom", META): 1, ("wavy", "FAILED"): 1}
    with pytest.raises(RuntimeError), warehouse.begin() as conn:  # a writer killed half-way: nothing of it
        apply_status_events(warehouse, conn, [event("m9", "failed", T0), event("m1", "failed", T0, reason="x", raw="x")])
        conn.execute(sa.text("DELETE FROM message_status_events"))
        raise RuntimeError("killed")
    assert reasons(warehouse) == {("teleprom", "FAILED"): 1, ("teleprom", META): 1, ("wavy", "FAILED"): 1}
    with warehouse.begin() as conn:  # an analyst empties the events (PostgreSQL: TRUNCATE fires no row trigger)
        conn.execute(sa.text("TRUNCATE message_status_events" if warehouse.dialect == "postgresql"
                             else "DELETE FROM message_status_events"))
    assert reasons(warehouse) == {}
    write(warehouse, event("m4", "failed", T0))
    assert reasons(warehouse) == {("teleprom", "FAILED"): 1}


def test_two_writers_failing_the_same_messages_at_once_count_each_once(warehouse):
    """Two ingests (a webhook and a poll, their status texts differing) write failed events of the same
    300 messages, for the same reasons, at once in small transactions: on PostgreSQL the second insert of a (message, reason) waits on the first's key, then
    adds nothing; every count still equals the events."""
    errors: list[BaseException] = []
    start = threading.Barrier(2)

    def ingest(source: str, offset: int) -> None:
        try:
            start.wait()
            for first in range(0, 300, 10):
                write(warehouse, *(
                    event(f"m{n}", "failed", T0.add(seconds=offset), reason=META if n % 3 else UNDELIVERABLE,
                          raw=source.upper(), source=source)
                    for n in range(first, first + 10)
                ))
        except BaseException as error:  # noqa: BLE001 - reported by the test below
            errors.append(error)

    threads = [threading.Thread(target=ingest, args=(source, i)) for i, source in enumerate(("webhook", "poll"))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors
    assert reasons(warehouse) == {("teleprom", META): 200, ("teleprom", UNDELIVERABLE): 100}


def test_rows_broken_by_hand_are_found_and_mended(warehouse):
    write(warehouse, *(event(f"m{n}", "failed", T0, reason=META if n % 2 else None) for n in range(6)))
    with warehouse.begin() as conn:
        conn.execute(sa.text("DELETE FROM failed_messages WHERE vendor_message_id = 'm1'"))  # counts follow
        conn.execute(sa.text("INSERT INTO failed_messages VALUES ('wavy', 'ghost', 'FAILED')"))
        conn.execute(sa.text(  # one of the reason's rows (PostgreSQL inserts a row per change until folded)
            "UPDATE failure_counts SET messages = messages + 7 WHERE id = "
            "(SELECT MIN(id) FROM failure_counts WHERE reason = 'FAILED' AND vendor = 'teleprom')"
        ))
        drifts = failures.check(conn)
    assert {(d.table, d.missing) for d in drifts} == {
        ("failed_messages", 1), ("failed_messages", -1), ("failure_counts", -7)
    }
    result = failures.maintain(warehouse)
    assert (result["messages_drifted"], result["counts_drifted"]) == (2, 1)
    assert reasons(warehouse) == {("teleprom", META): 3, ("teleprom", "FAILED"): 3}
    again = failures.maintain(warehouse)
    assert again == {"messages_drifted": 0, "counts_drifted": 0, "rows_repaired": 0, "rows_compacted": 0}


def test_the_view_and_the_triggers_lookups_read_no_event_scan(warehouse):
    """EXPLAIN on both databases: ``report_failure_reasons`` reads neither the events nor the ledger; the
    delete trigger's search for another failed event of the message and reason goes by ``uq_status_event``
    (vendor, id, status), not through ``ix_status_events_failed`` (every failed event of the vendor), once
    the table has statistics."""
    write(warehouse, *(event(f"m{n}", status, T0, reason=META if n % 2 else None)
                       for n in range(3000) for status in ("sent", "failed")))
    with warehouse.begin() as conn:
        conn.execute(sa.text("ANALYZE"))
    other = failures._remove("OLD").split("NOT EXISTS (", 1)[1].removesuffix(");")
    other = other.replace("OLD.vendor_message_id", "'m1'").replace("OLD.vendor", "'teleprom'")
    other = other.replace("OLD.reason", "NULL").replace("OLD.raw_status", "'FAILED'")
    explain = "EXPLAIN QUERY PLAN " if warehouse.dialect == "sqlite" else "EXPLAIN "
    with warehouse.engine.connect() as conn:
        if warehouse.dialect == "postgresql":
            conn.execute(sa.text("SET enable_seqscan = off"))

        def plan(sql: str) -> str:
            return " ".join(str(part) for row in conn.execute(sa.text(explain + sql)) for part in row)

        view = plan("SELECT * FROM report_failure_reasons")
        lookup = plan(other)
    assert "message_status_events" not in view and "outbound_messages" not in view and "failure_counts" in view, view
    # (SQLite names the unique constraint's index sqlite_autoindex_…: its search terms show it is that one)
    assert "uq_status_event" in lookup or "(vendor=? AND vendor_message_id=? AND status=?)" in lookup, lookup


def test_each_way_a_send_refused_comes_and_goes(warehouse):
    """The send stage: rows the vendor rejected or we failed to send, by the vendor's answer (in full,
    however long), else our error, else none; an answer corrected, a row deleted, a row found accepted
    after all, a rollback."""
    load_file(warehouse, "wavy", "d" * 64, 6)
    ledger = Ledger(warehouse, "wavy")
    keys = sorted(r.message_key for r in ledger.claim("run-1", 6))
    long_answer = "400: " + "número inválido " * 40  # 645 characters: kept whole
    ledger.record(
        [
            SendOutcome(keys[0], MessageState.REJECTED, vendor_answer="400: invalid destination"),
            SendOutcome(keys[1], MessageState.REJECTED, vendor_answer="400: invalid destination"),
            SendOutcome(keys[2], MessageState.FAILED, error="connection reset"),
            SendOutcome(keys[3], MessageState.FAILED),
            SendOutcome(keys[4], MessageState.REJECTED, vendor_answer=long_answer, error="ignored: the answer wins"),
            SendOutcome(keys[5], MessageState.ACCEPTED, vendor_message_id="w-5"),
        ],
        T0,
        "run-1",
    )
    sent = {("wavy", "400: invalid destination"): 2, ("wavy", "connection reset"): 1, ("wavy", None): 1, ("wavy", long_answer): 1}
    assert send_reasons(warehouse) == sent
    with warehouse.begin() as conn:
        conn.execute(sa.text("UPDATE outbound_messages SET vendor_answer = '404: gone' WHERE message_key = :k"), {"k": keys[0]})
        conn.execute(sa.text("DELETE FROM outbound_messages WHERE message_key = :k"), {"k": keys[4]})
        # a failure found accepted at the vendor after all (an analyst's correction)
        conn.execute(sa.text("UPDATE outbound_messages SET state = 'accepted' WHERE message_key = :k"), {"k": keys[2]})
    assert send_reasons(warehouse) == {("wavy", "400: invalid destination"): 1, ("wavy", "404: gone"): 1, ("wavy", None): 1}
    with pytest.raises(RuntimeError), warehouse.begin() as conn:
        conn.execute(sa.update(OUTBOUND).values(state=MessageState.REJECTED.value, error="everything"))
        raise RuntimeError("killed")
    assert send_reasons(warehouse) == {("wavy", "400: invalid destination"): 1, ("wavy", "404: gone"): 1, ("wavy", None): 1}
    with warehouse.begin() as conn:
        conn.execute(sa.text("TRUNCATE outbound_messages" if warehouse.dialect == "postgresql" else "DELETE FROM outbound_messages"))
    assert send_reasons(warehouse) == {}


def send_reasons(warehouse) -> dict[tuple[str, str | None], int]:
    reasons(warehouse)  # the whole view equal to its form over the ledger, check clean
    with warehouse.engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT vendor, reason, messages FROM report_failure_reasons WHERE stage = 'send'"))
        return {(v, r): int(n) for v, r, n in rows}
