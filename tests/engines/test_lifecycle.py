"""``lifecycle``: the send states, the delivery statuses and the one function that moves a message."""

from __future__ import annotations

import pendulum
import pytest
import sqlalchemy as sa

from latam_messaging.lifecycle import (
    MOVES,
    DeliveryStatus,
    ForbiddenMove,
    MessageState,
    check_move,
    move,
    resolve_in_doubt,
)
from latam_messaging.sending.ledger import Ledger
from latam_messaging.status import StatusEvent, apply_status_events
from latam_messaging.warehouse import schema

T = schema.outbound_messages
NOW = pendulum.datetime(2026, 3, 2, 12, tz="UTC")


def put(warehouse, key: str, state: str, **values) -> None:
    row = {"message_key": key, "vendor": "wavy", "phone": "5511987654321", "state": state, "created_at": NOW,
           "updated_at": NOW, **values}
    with warehouse.begin() as conn:
        conn.execute(T.insert().values(**row))


def row(warehouse, key: str) -> dict:
    [found] = warehouse.rows(sa.select(T).where(T.c.message_key == key))
    return found


def test_in_doubt_and_unrecognised_are_two_names_for_two_things():
    assert MessageState.UNKNOWN == "unknown" and DeliveryStatus.UNRECOGNISED == "unknown"  # stored words kept
    assert "UNKNOWN" not in DeliveryStatus.__members__ and "UNRECOGNISED" not in MessageState.__members__


def test_final_states_never_move_and_a_claim_only_comes_from_pending():
    for final in (MessageState.ACCEPTED, MessageState.REJECTED, MessageState.FAILED):
        assert MOVES[final] == frozenset()
        with pytest.raises(ForbiddenMove, match=f"from {final} to pending"):
            move(final, MessageState.PENDING)
    assert [s for s, targets in MOVES.items() if MessageState.SENDING in targets] == [MessageState.PENDING]
    with pytest.raises(ForbiddenMove):
        check_move([MessageState.STAGED], MessageState.SENDING)  # a file still being read is never sent


def test_a_move_touches_only_rows_still_in_the_state_it_moves_from(warehouse):
    put(warehouse, "a", "pending")
    put(warehouse, "b", "sending")
    with warehouse.begin() as conn:
        moved = conn.execute(move(MessageState.PENDING, MessageState.SENDING, T.c.vendor == "wavy", updated_at=NOW))
        assert moved.rowcount == 1
    assert (row(warehouse, "a")["state"], row(warehouse, "b")["state"]) == ("sending", "sending")


def test_resolving_a_send_in_doubt_accepts_it_once_and_clears_the_doubt(warehouse):
    put(warehouse, "doubt", "unknown", error="in flight when a run stopped: not re-sent automatically")
    put(warehouse, "done", "failed", error="bad number")
    with warehouse.begin() as conn:
        assert resolve_in_doubt(conn, {"doubt": "V-1", "done": "V-2"}, NOW) == 1
    doubt, done = row(warehouse, "doubt"), row(warehouse, "done")
    assert (doubt["state"], doubt["vendor_message_id"], doubt["error"]) == ("accepted", "V-1", None)
    assert pendulum.instance(doubt["accepted_at"]) == NOW
    assert (done["state"], done["vendor_message_id"], done["error"]) == ("failed", None, "bad number")


def test_an_event_and_a_status_search_resolve_a_send_in_doubt_the_same_way(warehouse):
    """Status application and the ledger's resolve_unknown make one move, with the same result."""
    put(warehouse, "by-event", "unknown", error="504")
    put(warehouse, "by-search", "unknown", error="504")
    event = StatusEvent("wavy", "V-e", "delivered", "DELIVERED_SUCCESS", NOW.add(seconds=5), "webhook",
                        message_key="by-event")
    with warehouse.begin() as conn:
        apply_status_events(warehouse, conn, [event])
    Ledger(warehouse, "wavy").resolve_unknown({"by-search": "V-s"}, NOW.add(seconds=5))
    by_event, by_search = row(warehouse, "by-event"), row(warehouse, "by-search")
    for resolved, vendor_id in ((by_event, "V-e"), (by_search, "V-s")):
        assert (resolved["state"], resolved["vendor_message_id"], resolved["error"]) == ("accepted", vendor_id, None)
        assert resolved["accepted_at"] is not None
    assert by_event["delivery_status"] == "delivered"


def test_resolving_nothing_moves_nothing_and_a_search_without_an_id_keeps_what_the_row_had(warehouse):
    earlier = NOW.subtract(minutes=5)
    put(warehouse, "doubt", "unknown", vendor_message_id="V-1", accepted_at=earlier)
    with warehouse.begin() as conn:
        assert resolve_in_doubt(conn, {}, NOW) == 0
        assert resolve_in_doubt(conn, {"doubt": None}, NOW) == 1
    doubt = row(warehouse, "doubt")
    assert (doubt["state"], doubt["vendor_message_id"]) == ("accepted", "V-1")
    assert pendulum.instance(doubt["accepted_at"]) == earlier  # an acceptance time is never moved later


def test_an_acceptance_time_given_in_another_zone_is_stored_as_its_instant_for_queries_by_time(warehouse):
    put(warehouse, "doubt", "unknown")
    with warehouse.begin() as conn:
        resolve_in_doubt(conn, {"doubt": "V-1"}, NOW.in_tz("America/Santiago"))
    assert pendulum.instance(row(warehouse, "doubt")["accepted_at"]) == NOW
    since = sa.select(T.c.message_key).where(T.c.accepted_at >= NOW.subtract(hours=1))  # as the ITD poller asks
    assert [r["message_key"] for r in warehouse.rows(since)] == ["doubt"]
