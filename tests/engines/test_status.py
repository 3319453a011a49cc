"""The status vocabulary (``status.py``), promise by promise (the send window's are in ``test_window.py``).

Part of the fast selection that ``make mutants`` runs: every expectation is written out here.
"""

from __future__ import annotations

import itertools

import pendulum
import pytest
import sqlalchemy as sa

from latam_messaging.status import RAW_STATUS_CHARS, EventCost, StatusEvent, advances, apply_status_events
from latam_messaging.warehouse import schema
from tests.helpers.ledger import add_ledger_row

T = schema.outbound_messages
E = schema.message_status_events
ORDER = ["accepted", "enqueued", "sent", "delivered", "read"]
T0 = pendulum.datetime(2026, 3, 1, 12, tz="UTC")


# ---- the vocabulary: only forward, `failed` final, `unknown` never moves -----------------------------
@pytest.mark.parametrize(("current", "new"), list(itertools.product([None, *ORDER, "failed"], [*ORDER, "failed"])))
def test_a_status_only_moves_forward_and_failed_is_final(current, new):
    if current is None:
        expected = True  # anything is news for a message without a status
    elif current == "failed":
        expected = False
    elif new == "failed":
        expected = True  # a failure ends any stage short of it
    else:
        expected = ORDER.index(new) > ORDER.index(current)
    assert advances(current, new) is expected


@pytest.mark.parametrize("current", [None, *ORDER, "failed"])
def test_an_unrecognised_status_never_moves_a_message(current):
    assert advances(current, "unknown") is False


def event(vid, status, at, *, raw=None, key=None, ids=(), source="webhook", precision_s=0):
    return StatusEvent(
        "wavy", vid, status, raw or status.upper(), at, source, message_key=key, vendor_ids=list(ids),
        precision_s=precision_s,
    )


def ledger(warehouse):
    query = sa.select(T.c.message_key, T.c.state, T.c.delivery_status, T.c.delivery_status_at, T.c.vendor_message_id)
    return {r["message_key"]: r for r in warehouse.rows(query.order_by(T.c.message_key))}


def events(warehouse):
    query = sa.select(E.c.vendor_message_id, E.c.message_key, E.c.status, E.c.raw_status, E.c.raw_text, E.c.note)
    return warehouse.rows(query.order_by(E.c.vendor_message_id, E.c.status))


def apply(warehouse, evs):
    with warehouse.begin() as conn:
        return apply_status_events(warehouse, conn, evs)


def test_events_out_of_order_leave_the_furthest_status_at_its_time(warehouse):
    add_ledger_row(warehouse, "m-1", "wavy", vendor_id="W-1")
    stored = apply(
        warehouse,
        [event("W-1", "read", T0.add(minutes=3)), event("W-1", "sent", T0.add(minutes=1)),
         event("W-1", "delivered", T0.add(minutes=2))],
    )
    assert stored == 3
    row = ledger(warehouse)["m-1"]
    assert (row["delivery_status"], pendulum.instance(row["delivery_status_at"])) == ("read", T0.add(minutes=3))
    assert apply(warehouse, [event("W-1", "sent", T0.add(minutes=1))]) == 0  # the same event again: stored once
    assert apply(warehouse, [event("W-1", "delivered", T0.add(minutes=9))]) == 0  # same text, later: the same event
    assert apply(warehouse, [event("W-1", "delivered", T0.add(minutes=9), raw="DELIVRD")]) == 1  # another text
    row = ledger(warehouse)["m-1"]
    assert (row["delivery_status"], pendulum.instance(row["delivery_status_at"])) == ("read", T0.add(minutes=3))


def test_the_same_status_in_one_batch_is_stored_once(warehouse):
    add_ledger_row(warehouse, "m-1", "wavy", vendor_id="W-1")
    assert apply(warehouse, [event("W-1", "sent", T0), event("W-1", "sent", T0.add(seconds=30))]) == 1
    assert apply(warehouse, []) == 0


def test_an_unknown_status_is_kept_with_its_text_and_moves_nothing(warehouse):
    add_ledger_row(warehouse, "m-1", "wavy", vendor_id="W-1")
    long_text = "X" * (RAW_STATUS_CHARS + 5)
    assert apply(warehouse, [event("W-1", "unknown", T0, raw=long_text)]) == 1
    [stored] = events(warehouse)
    assert (stored["status"], stored["raw_status"], stored["raw_text"]) == ("unknown", "X" * RAW_STATUS_CHARS, long_text)
    row = ledger(warehouse)["m-1"]
    assert (row["state"], row["delivery_status"], row["delivery_status_at"]) == ("accepted", None, None)


def test_a_short_status_text_has_no_separate_full_text(warehouse):
    add_ledger_row(warehouse, "m-1", "wavy", vendor_id="W-1")
    apply(warehouse, [event("W-1", "sent", T0, raw="X" * RAW_STATUS_CHARS)])
    assert events(warehouse)[0]["raw_text"] is None


def test_an_event_for_an_unknown_send_proves_the_vendor_has_it(warehouse):
    add_ledger_row(warehouse, "m-u", "wavy", state="unknown")  # no vendor id yet
    apply(warehouse, [event("W-9", "sent", T0, key="m-u")])
    row = ledger(warehouse)["m-u"]
    assert (row["state"], row["delivery_status"], row["vendor_message_id"]) == ("accepted", "sent", "W-9")
    [stored] = events(warehouse)
    assert (stored["vendor_message_id"], stored["message_key"]) == ("W-9", "m-u")


def test_an_unrecognised_event_for_an_unknown_send_still_resolves_it(warehouse):
    add_ledger_row(warehouse, "m-u", "wavy", state="unknown")
    apply(warehouse, [event(None, "unknown", T0, raw="WEIRD", key="m-u")])
    row = ledger(warehouse)["m-u"]
    assert (row["state"], row["delivery_status"]) == ("unknown", None)  # an unknown text is no proof


def test_an_event_by_key_without_a_vendor_id_is_filed_under_the_ledgers_id(warehouse):
    add_ledger_row(warehouse, "m-1", "wavy", vendor_id="W-1")
    add_ledger_row(warehouse, "m-u", "wavy", state="unknown")
    apply(warehouse, [event(None, "sent", T0, key="m-1"), event(None, "failed", T0, key="m-u")])
    assert {(e["vendor_message_id"], e["message_key"]) for e in events(warehouse)} == {("W-1", "m-1"), ("m-u", "m-u")}
    rows = ledger(warehouse)
    assert (rows["m-1"]["delivery_status"], rows["m-u"]["state"], rows["m-u"]["delivery_status"]) == (
        "sent", "accepted", "failed",
    )


def test_an_event_naming_a_key_that_is_not_ours_is_kept_unlinked(warehouse):
    apply(warehouse, [event(None, "sent", T0, key="not-ours"), event("W-5", "sent", T0, key="not-ours-either")])
    assert {(e["vendor_message_id"], e["message_key"]) for e in events(warehouse)} == {
        ("not-ours", None), ("W-5", None),
    }


def test_events_link_by_any_of_the_ids_they_carry(warehouse):
    add_ledger_row(warehouse, "m-1", "wavy", vendor_id="GS-1")
    add_ledger_row(warehouse, "m-2", "itd", vendor_id="WA-2")  # another vendor's id never links
    apply(warehouse, [event("WA-1", "delivered", T0, ids=["WA-1", "GS-1"]), event("WA-2", "read", T0, ids=["WA-2"])])
    assert {(e["vendor_message_id"], e["message_key"]) for e in events(warehouse)} == {("GS-1", "m-1"), ("WA-2", None)}
    rows = ledger(warehouse)
    assert (rows["m-1"]["delivery_status"], rows["m-2"]["delivery_status"]) == ("delivered", None)


def test_an_event_without_any_id_is_not_stored(warehouse):
    assert apply(warehouse, [event(None, "sent", T0)]) == 0
    assert events(warehouse) == []


def test_a_minute_precise_time_never_precedes_the_acceptance_it_follows(warehouse):
    add_ledger_row(warehouse, "m-1", "wavy", vendor_id="W-1")
    accepted = pendulum.instance(warehouse.rows(sa.select(T.c.accepted_at))[0]["accepted_at"])
    minute = accepted.replace(second=0, microsecond=0)
    apply(warehouse, [event("W-1", "sent", minute, key="m-1", precision_s=60)])
    [stored] = warehouse.rows(sa.select(E.c.event_at, E.c.note))
    if accepted > minute:
        assert pendulum.instance(stored["event_at"]) == accepted
        assert stored["note"] == "vendor time precise to 60 s: placed at the acceptance it follows"
    else:  # accepted exactly on the minute: nothing to move
        assert pendulum.instance(stored["event_at"]) == minute and stored["note"] is None


def test_a_coarse_time_a_whole_step_before_the_acceptance_is_left_alone(warehouse):
    add_ledger_row(warehouse, "m-1", "wavy", vendor_id="W-1")
    accepted = pendulum.instance(warehouse.rows(sa.select(T.c.accepted_at))[0]["accepted_at"])
    early = accepted.subtract(seconds=61)
    exact = accepted.subtract(seconds=1)
    apply(warehouse, [event("W-1", "sent", early, key="m-1", precision_s=60),
                      event("W-1", "delivered", exact, key="m-1")])  # exact times are never moved
    got = {r["status"]: (pendulum.instance(r["event_at"]), r["note"])
           for r in warehouse.rows(sa.select(E.c.status, E.c.event_at, E.c.note))}
    assert got == {"sent": (early, None), "delivered": (exact, None)}


# ---- edges of the vocabulary and of large batches --------------------------------------------------------
@pytest.mark.parametrize("new", ["accepted", "enqueued", "sent", "delivered", "read"])
def test_any_known_status_advances_a_message_without_one(new):
    assert advances(None, new) is True


def test_a_status_outside_the_vocabulary_never_advances_a_known_one_and_never_blocks():
    assert advances("sent", "bogus") is False
    assert advances("accepted", "bogus") is False
    assert advances("bogus", "other") is False
    assert advances("bogus", "accepted") is True
    assert advances("bogus", "sent") is True


def test_a_batch_larger_than_a_chunk_reaches_every_message(warehouse):
    count = 1100  # more than two chunks of keys
    now = pendulum.now("UTC")
    with warehouse.begin() as conn:
        conn.execute(T.insert(), [
            {"message_key": f"m-{i:04d}", "vendor": "wavy", "phone": "5493515238015", "state": "accepted",
             "vendor_message_id": f"W-{i:04d}", "created_at": now, "updated_at": now, "accepted_at": now}
            for i in range(count)
        ])
    by_id = [event(f"W-{i:04d}", "sent", T0) for i in range(count)]
    assert apply(warehouse, by_id) == count
    assert {row["delivery_status"] for row in ledger(warehouse).values()} == {"sent"}  # every one linked by id
    assert apply(warehouse, [event(f"W-{i:04d}", "sent", T0) for i in range(count)]) == 0  # all stored already
    by_key = [event(f"W-{i:04d}", "delivered", T0.add(minutes=1), key=f"m-{i:04d}") for i in range(count)]
    assert apply(warehouse, by_key) == count
    rows = ledger(warehouse)
    assert len(rows) == count and {row["delivery_status"] for row in rows.values()} == {"delivered"}


def test_an_event_keeps_every_id_it_carried_and_its_raw_body(warehouse):
    add_ledger_row(warehouse, "m-1", "wavy", vendor_id="W-1")
    stored = StatusEvent("wavy", "W-1", "sent", "SENT", T0, "webhook", vendor_ids=["G-9", "W-1"], raw_event_id=42)
    bare = StatusEvent("wavy", "W-1", "delivered", "DELIVERED", T0, "webhook")
    assert apply(warehouse, [stored, bare]) == 2
    query = sa.select(E.c.status, E.c.vendor_ids, E.c.raw_event_id).order_by(E.c.status)
    assert [tuple(r.values()) for r in warehouse.rows(query)] == [("delivered", None, None), ("sent", ["G-9", "W-1"], 42)]


def put_rows(warehouse, *rows):
    """Ledger rows with the acceptance time each names (None: not accepted)."""
    base = {"vendor": "wavy", "phone": "5493515238015", "state": "accepted", "created_at": T0, "updated_at": T0}
    with warehouse.begin() as conn:
        conn.execute(T.insert(), [{**base, "accepted_at": None, "vendor_message_id": None, **row} for row in rows])


def test_a_coarse_time_moves_only_when_the_acceptance_falls_inside_its_step(warehouse):
    put_rows(
        warehouse,
        {"message_key": "m-0", "vendor_message_id": "W-0", "accepted_at": T0},
        {"message_key": "m-1", "vendor_message_id": "W-1", "accepted_at": T0.add(seconds=30)},
        {"message_key": "m-2", "vendor_message_id": "W-2", "accepted_at": T0.add(seconds=60)},
        {"message_key": "m-3", "vendor_message_id": "W-3", "state": "sending"},  # not accepted yet
    )
    apply(warehouse, [
        event("W-0", "sent", T0, key="m-0"),  # exact: never moved, and the others are still looked at
        event("W-3", "sent", T0, key="m-3", precision_s=60),  # nothing to follow
        event("W-1", "sent", T0.add(seconds=30), key="m-1", precision_s=60),  # already at the acceptance
        event("W-2", "sent", T0, key="m-2", precision_s=60),  # the acceptance is the step's last instant
    ])
    got = {r["vendor_message_id"]: (pendulum.instance(r["event_at"]), r["note"])
           for r in warehouse.rows(sa.select(E.c.vendor_message_id, E.c.event_at, E.c.note))}
    moved = "vendor time precise to 60 s: placed at the acceptance it follows"
    assert got == {"W-0": (T0, None), "W-1": (T0.add(seconds=30), None), "W-2": (T0.add(seconds=60), moved),
                   "W-3": (T0, None)}


def test_a_repeated_event_in_a_batch_does_not_hide_the_events_after_it(warehouse):
    add_ledger_row(warehouse, "m-1", "wavy", vendor_id="W-1")
    batch = [event("W-1", "sent", T0), event("W-1", "sent", T0), event("W-1", "delivered", T0.add(minutes=1))]
    assert apply(warehouse, batch) == 2
    assert ledger(warehouse)["m-1"]["delivery_status"] == "delivered"


def test_a_message_that_does_not_move_does_not_stop_the_others(warehouse):
    add_ledger_row(warehouse, "m-1", "wavy", vendor_id="W-1")
    add_ledger_row(warehouse, "m-2", "wavy", vendor_id="W-2")
    apply(warehouse, [event("W-1", "read", T0)])
    apply(warehouse, [event("W-1", "sent", T0.add(minutes=1)), event("W-2", "delivered", T0.add(minutes=1))])
    rows = ledger(warehouse)
    assert (rows["m-1"]["delivery_status"], rows["m-2"]["delivery_status"]) == ("read", "delivered")


def test_an_event_by_key_never_replaces_the_ledgers_vendor_id(warehouse):
    add_ledger_row(warehouse, "m-1", "wavy", vendor_id="W-1")
    apply(warehouse, [event("OTHER-ID", "delivered", T0, key="m-1")])
    row = ledger(warehouse)["m-1"]
    assert (row["vendor_message_id"], row["delivery_status"]) == ("W-1", "delivered")


def test_a_delivery_status_never_changes_the_send_state(warehouse):
    add_ledger_row(warehouse, "m-1", "wavy", vendor_id="W-1", state="sending")  # answer not recorded yet
    apply(warehouse, [event("W-1", "delivered", T0)])
    row = ledger(warehouse)["m-1"]
    assert (row["state"], row["delivery_status"]) == ("sending", "delivered")


def test_events_at_the_same_instant_leave_the_furthest_status(warehouse):
    add_ledger_row(warehouse, "m-1", "wavy", vendor_id="W-1")
    add_ledger_row(warehouse, "m-2", "wavy", vendor_id="W-2")
    apply(warehouse, [event("W-1", "read", T0), event("W-1", "delivered", T0),
                      event("W-2", "failed", T0), event("W-2", "sent", T0)])
    rows = ledger(warehouse)
    assert (rows["m-1"]["delivery_status"], rows["m-2"]["delivery_status"]) == ("read", "failed")


def test_only_a_message_that_moves_is_stamped_updated(warehouse):
    put_rows(warehouse, {"message_key": "m-1", "vendor_message_id": "W-1", "accepted_at": T0},
             {"message_key": "m-2", "vendor_message_id": "W-2", "accepted_at": T0})
    apply(warehouse, [event("W-1", "read", T0.add(minutes=1))])
    first = {k: pendulum.instance(r["updated_at"]) for k, r in
             ((r["message_key"], r) for r in warehouse.rows(sa.select(T.c.message_key, T.c.updated_at)))}
    assert first["m-1"] > T0 and first["m-2"] == T0
    apply(warehouse, [event("W-1", "sent", T0.add(minutes=2)), event("W-2", "sent", T0.add(minutes=2))])
    second = {k: pendulum.instance(r["updated_at"]) for k, r in
              ((r["message_key"], r) for r in warehouse.rows(sa.select(T.c.message_key, T.c.updated_at)))}
    assert second["m-1"] == first["m-1"] and second["m-2"] > T0


def test_a_late_event_for_a_send_in_doubt_gives_it_the_vendor_id_it_carries(warehouse):
    # its status arrived while it was sending, then its answer was ambiguous: in doubt, without a vendor id
    put_rows(warehouse, {"message_key": "m-u", "state": "unknown", "delivery_status": "delivered"})
    apply(warehouse, [event("W-9", "sent", T0, key="m-u")])  # behind the status it has: moves no status
    row = ledger(warehouse)["m-u"]
    assert (row["state"], row["delivery_status"], row["vendor_message_id"]) == ("accepted", "delivered", "W-9")


def test_an_events_cost_is_stored_with_it(warehouse):
    expires = T0.add(hours=24)
    cost = EventCost(True, "utility", "CBP", "conv-1", "business_initiated", expires)
    priced = StatusEvent("teleprom", "wamid.A", "sent", "sent", T0, "webhook", cost=cost)
    free = StatusEvent("teleprom", "wamid.A", "delivered", "delivered", T0, "webhook")
    assert apply(warehouse, [priced, free]) == 2
    columns = (E.c.billable, E.c.pricing_category, E.c.pricing_model, E.c.conversation_id, E.c.conversation_origin)
    query = sa.select(E.c.status, *columns, E.c.conversation_expires_at).order_by(E.c.status)
    got = [(*list(r.values())[:-1], r["conversation_expires_at"] and pendulum.instance(r["conversation_expires_at"]))
           for r in warehouse.rows(query)]
    assert got == [("delivered", None, None, None, None, None, None),
                   ("sent", True, "utility", "CBP", "conv-1", "business_initiated", expires)]

