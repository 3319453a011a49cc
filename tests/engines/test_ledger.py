"""The ledger (``sending/ledger.py``): claims, leases, state changes — every row sent at most once.

Part of the fast selection that ``make mutants`` runs; on both databases in ``make test``.
"""

from __future__ import annotations

import os
import socket
import time
from collections import Counter

import pendulum
import pytest
import sqlalchemy as sa

from latam_messaging.common.lease import Heartbeat
from latam_messaging.lifecycle import ForbiddenMove
from latam_messaging.sending.ledger import (
    KEY_CHUNK,
    SEND_COLUMNS,
    Ledger,
    MessageState,
    SendLease,
    SendOutcome,
    SendRow,
    new_owner,
)
from latam_messaging.warehouse import schema

T = schema.outbound_messages
L = schema.send_leases
NOW = pendulum.datetime(2026, 3, 2, 12, tz="UTC")


def put(warehouse, *rows: dict) -> None:
    """Ledger rows as the pipeline writes them; each dict names what differs from a plain pending row."""
    base = {"vendor": "wavy", "phone": "5511987654321", "state": "pending", "created_at": NOW, "updated_at": NOW}
    columns = {name for row in rows for name in row}
    with warehouse.begin() as conn:  # one statement: every row names every column it uses (others None)
        conn.execute(T.insert(), [{**dict.fromkeys(columns), **base, **row} for row in rows])


def table(warehouse, *columns: str) -> dict[str, tuple]:
    query = sa.select(T.c.message_key, *(T.c[c] for c in columns)).order_by(T.c.message_key)
    return {r["message_key"]: tuple(r[c] for c in columns) for r in warehouse.rows(query)}


def leases(warehouse) -> dict[str, tuple]:
    return {r["owner"]: (r["vendor"], r["lease_until"]) for r in warehouse.rows(L)}


def put_lease(warehouse, owner: str, vendor: str, until: pendulum.DateTime) -> None:
    with warehouse.begin() as conn:
        conn.execute(L.insert().values(owner=owner, vendor=vendor, started_at=NOW, lease_until=until))


# ---- leases -----------------------------------------------------------------------------------------
def test_an_owner_names_the_vendor_host_and_process_and_is_unique():
    first, second = new_owner("itd"), new_owner("itd")
    vendor, rest = first.split("-", 1)
    host, pid, suffix = rest.rsplit("-", 2)
    assert (vendor, host, pid) == ("itd", socket.gethostname()[:32], str(os.getpid()))
    assert len(suffix) == 12 and first != second


def test_a_lease_is_held_renewed_while_alive_and_released(warehouse):
    before = pendulum.now("UTC")
    with SendLease(warehouse, "wavy", lease_s=0.4) as lease:
        assert lease.owner.startswith("wavy-")
        [(vendor, until)] = leases(warehouse).values()
        assert vendor == "wavy" and before.add(seconds=0.3) < pendulum.instance(until) <= pendulum.now("UTC").add(
            seconds=0.4
        )
        time.sleep(0.8)  # two lease lengths: only the heartbeat keeps it current
        [(_, renewed)] = leases(warehouse).values()
        assert pendulum.instance(renewed) > pendulum.now("UTC")
    assert leases(warehouse) == {}


def test_leased_holds_a_lease_for_the_vendor(warehouse):
    with SendLease(warehouse, "itd", lease_s=30) as lease:
        [(vendor, until)] = leases(warehouse).values()
        assert vendor == "itd" and pendulum.instance(until) > pendulum.now("UTC").add(seconds=25)
        assert lease.lease_s == 30
    assert leases(warehouse) == {}


def test_renew_moves_only_its_own_lease(warehouse):
    put_lease(warehouse, "someone-else", "wavy", NOW)
    lease = SendLease(warehouse, "wavy", lease_s=60)
    put_lease(warehouse, lease.owner, "wavy", NOW)
    lease.renew()
    got = leases(warehouse)
    assert pendulum.instance(got["someone-else"][1]) == NOW
    assert pendulum.instance(got[lease.owner][1]) > pendulum.now("UTC").add(seconds=55)


# ---- a file's rows: staged, then promoted together (or discarded) -------------------------------------
def test_a_files_rows_become_pending_or_scheduled_together(warehouse):
    put(
        warehouse,
        {"message_key": "a-now", "file_sha256": "A", "state": "staged"},
        {"message_key": "a-due", "file_sha256": "A", "state": "staged", "send_at": NOW},
        {"message_key": "a-later", "file_sha256": "A", "state": "staged", "send_at": NOW.add(seconds=1)},
        {"message_key": "b-now", "file_sha256": "B", "state": "staged"},
    )
    ledger = Ledger(warehouse, "wavy")
    with warehouse.begin() as conn:
        assert ledger.promote_file(conn, "A", NOW, window_open=True) == 1
    assert table(warehouse, "state") == {
        "a-due": ("pending",), "a-later": ("scheduled",), "a-now": ("pending",), "b-now": ("staged",),
    }


def test_a_file_promoted_outside_the_window_is_all_scheduled(warehouse):
    put(warehouse, {"message_key": "a-1", "file_sha256": "A", "state": "staged"},
        {"message_key": "a-2", "file_sha256": "A", "state": "staged", "send_at": NOW.subtract(days=1)})
    with warehouse.begin() as conn:
        assert Ledger(warehouse, "wavy").promote_file(conn, "A", NOW, window_open=False) == 2
    assert table(warehouse, "state") == {"a-1": ("scheduled",), "a-2": ("scheduled",)}


def test_staging_the_same_rows_again_changes_nothing(warehouse):
    ledger = Ledger(warehouse, "wavy")
    row = {"message_key": "a-1", "vendor": "wavy", "phone": "1", "state": "staged", "created_at": NOW,
           "updated_at": NOW, "file_sha256": "A"}
    with warehouse.begin() as conn:
        ledger.stage(conn, [row])
    with warehouse.begin() as conn:
        ledger.stage(conn, [dict(row, phone="2")])
    assert table(warehouse, "phone", "state") == {"a-1": ("1", "staged")}


def test_a_failed_files_staged_rows_are_discarded_and_nothing_else(warehouse):
    put(warehouse, {"message_key": "a-1", "file_sha256": "A", "state": "staged"},
        {"message_key": "a-2", "file_sha256": "A", "state": "pending"},
        {"message_key": "b-1", "file_sha256": "B", "state": "staged"})
    with warehouse.begin() as conn:
        assert Ledger(warehouse, "wavy").discard_file(conn, "A") == 1
    assert table(warehouse, "state") == {"a-2": ("pending",), "b-1": ("staged",)}


def test_scheduled_rows_become_pending_when_due(warehouse):
    put(
        warehouse,
        {"message_key": "due", "state": "scheduled", "send_at": NOW},
        {"message_key": "no-time", "state": "scheduled"},  # held by the window only
        {"message_key": "later", "state": "scheduled", "send_at": NOW.add(seconds=1)},
        {"message_key": "itd-due", "vendor": "itd", "state": "scheduled", "send_at": NOW},
        {"message_key": "staged", "state": "staged", "send_at": NOW},
    )
    assert Ledger(warehouse, "wavy").promote_due(NOW) == 2
    assert table(warehouse, "state") == {
        "due": ("pending",), "itd-due": ("scheduled",), "later": ("scheduled",), "no-time": ("pending",),
        "staged": ("staged",),
    }
    assert Ledger(warehouse, "wavy").count_state(MessageState.PENDING) == 2
    assert Ledger(warehouse, "itd").count_state(MessageState.PENDING) == 0


# ---- claims -------------------------------------------------------------------------------------------
def test_a_claim_takes_at_most_limit_pending_rows_in_key_order_for_its_owner(warehouse):
    put(
        warehouse,
        *({"message_key": f"k-{i}", "phone": f"55119876543{i}"} for i in (3, 1, 4, 2, 5)),
        {"message_key": "k-0", "state": "scheduled"},
        {"message_key": "k-00", "vendor": "itd"},
    )
    ledger = Ledger(warehouse, "wavy")
    before = pendulum.now("UTC")
    first = ledger.claim("run-a", 2)
    assert [(r.message_key, r.phone) for r in first] == [("k-1", "551198765431"), ("k-2", "551198765432")]
    second = ledger.claim("run-b", 10)
    assert [r.message_key for r in second] == ["k-3", "k-4", "k-5"]
    assert ledger.claim("run-c", 10) == []
    rows = table(warehouse, "state", "claimed_by")
    assert rows == {
        "k-0": ("scheduled", None), "k-00": ("pending", None), "k-1": ("sending", "run-a"), "k-2": ("sending", "run-a"),
        "k-3": ("sending", "run-b"), "k-4": ("sending", "run-b"), "k-5": ("sending", "run-b"),
    }
    started = warehouse.rows(sa.select(T.c.request_started_at).where(T.c.message_key == "k-1"))[0]
    assert before <= pendulum.instance(started["request_started_at"]) <= pendulum.now("UTC")


@pytest.mark.parametrize(("pending", "limit"), [(2, 1), (6, 5), (40, 7)])
def test_a_claim_never_takes_more_than_its_limit(warehouse, pending, limit):
    """At most one request's worth of rows is in flight per claim (and so ``unknown`` after a crash)."""
    put(warehouse, *({"message_key": f"k-{i:03d}"} for i in range(pending)))
    claimed = Ledger(warehouse, "wavy").claim("run", limit)
    assert [r.message_key for r in claimed] == [f"k-{i:03d}" for i in range(limit)]
    assert Ledger(warehouse, "wavy").count_state(MessageState.SENDING) == limit


@pytest.mark.parametrize("warehouse", ["postgres"], indirect=True)
def test_a_claim_skips_rows_another_claim_holds_and_never_waits_for_them(warehouse):
    """PostgreSQL: rows locked by a claim still in progress (another worker's transaction) are skipped,
    not waited for and not taken twice: the next claim takes the next rows at once."""
    import threading

    put(warehouse, *({"message_key": f"k-{i}"} for i in range(1, 6)))
    holder = warehouse.engine.connect()
    held = holder.begin()
    holder.execute(sa.select(T.c.message_key).where(T.c.message_key.in_(["k-1", "k-2"])).with_for_update())
    taken: list[list[str]] = []
    claim = threading.Thread(
        target=lambda: taken.append([r.message_key for r in Ledger(warehouse, "wavy").claim("run-b", 2)]), daemon=True
    )
    claim.start()
    claim.join(timeout=10)
    waited = claim.is_alive()
    held.rollback()
    holder.close()
    claim.join(timeout=10)
    assert not waited, "the claim waited for rows another transaction held"
    assert taken == [["k-3", "k-4"]]
    assert table(warehouse, "state") == {
        "k-1": ("pending",), "k-2": ("pending",), "k-3": ("sending",), "k-4": ("sending",), "k-5": ("pending",),
    }


def test_a_claim_returns_what_a_send_needs(warehouse):
    put(warehouse, {"message_key": "k-1", "vendor": "itd", "account_id": 7, "template_id": 9, "params": ["a", "b"],
                    "content_type": "IMAGE", "content": "https://x/y.jpg", "caption": "c", "description": "d",
                    "url_thumb": "https://x/t.jpg"})
    [row] = Ledger(warehouse, "itd").claim("run", 5)
    assert row == SendRow("k-1", "5511987654321", 7, 9, ["a", "b"], "IMAGE", "https://x/y.jpg", "c", "d",
                          "https://x/t.jpg")
    assert SEND_COLUMNS[0] == "message_key" and len(SEND_COLUMNS) == 10


# ---- answers ------------------------------------------------------------------------------------------
def test_answers_are_recorded_only_for_the_owners_rows(warehouse):
    put(warehouse, *({"message_key": f"k-{i}"} for i in range(1, 6)))
    ledger = Ledger(warehouse, "wavy")
    assert len(ledger.claim("run-a", 5)) == 5
    put(warehouse, {"message_key": "k-6"}, {"message_key": "k-9", "state": "sending", "claimed_by": "run-b"})
    outcomes = [
        SendOutcome("k-1", MessageState.ACCEPTED, vendor_message_id="V-1", vendor_answer="ok"),
        SendOutcome("k-2", MessageState.REJECTED, error="bad number", vendor_answer="400"),
        SendOutcome("k-3", MessageState.UNKNOWN, error="504"),
        SendOutcome("k-4", MessageState.PENDING),  # never sent after all: back to pending, unclaimed
        SendOutcome("k-6", MessageState.ACCEPTED, vendor_message_id="V-6"),  # not claimed by run-a
        SendOutcome("k-9", MessageState.ACCEPTED, vendor_message_id="V-9"),  # another run's row
    ]
    ledger.record(outcomes, NOW, "run-a")
    assert table(warehouse, "state", "vendor_message_id", "error", "vendor_answer", "claimed_by") == {
        "k-1": ("accepted", "V-1", None, "ok", "run-a"),
        "k-2": ("rejected", None, "bad number", "400", "run-a"),
        "k-3": ("unknown", None, "504", None, "run-a"),
        "k-4": ("pending", None, None, None, None),
        "k-5": ("sending", None, None, None, "run-a"),
        "k-6": ("pending", None, None, None, None),
        "k-9": ("sending", None, None, None, "run-b"),
    }
    times = {r["message_key"]: (r["accepted_at"], r["request_started_at"], r["updated_at"])
             for r in warehouse.rows(sa.select(T.c.message_key, T.c.accepted_at, T.c.request_started_at,
                                               T.c.updated_at))}
    assert pendulum.instance(times["k-1"][0]) == NOW and times["k-2"][0] is None
    assert times["k-4"][1] is None and times["k-5"][1] is not None
    assert pendulum.instance(times["k-2"][2]) == NOW


def test_a_late_answer_for_an_owners_unknown_row_is_recorded(warehouse):
    put(warehouse, {"message_key": "k-1", "state": "unknown", "claimed_by": "run-a"},
        {"message_key": "k-2", "state": "unknown", "claimed_by": "run-a"})
    Ledger(warehouse, "wavy").record(
        [SendOutcome("k-1", MessageState.ACCEPTED, vendor_message_id="V-1"), SendOutcome("k-2", MessageState.PENDING)],
        NOW, "run-a",
    )
    assert table(warehouse, "state", "vendor_message_id") == {"k-1": ("accepted", "V-1"), "k-2": ("unknown", None)}


def test_a_poison_answer_or_a_row_answered_twice_costs_nothing_of_the_rest(warehouse):
    """A vendor's text with a NUL (PostgreSQL refuses it) is kept with U+FFFD in its place; a row answered
    twice in one batch keeps its first answer; the other answers of the batch are recorded."""
    put(warehouse, *({"message_key": f"k-{i}"} for i in range(1, 4)))
    ledger = Ledger(warehouse, "wavy")
    assert len(ledger.claim("run-a", 3)) == 3
    ledger.record(
        [
            SendOutcome("k-1", MessageState.REJECTED, error="bad\x00number", vendor_answer='{"e": "\x00"}'),
            SendOutcome("k-2", MessageState.ACCEPTED, vendor_message_id="V-2"),
            SendOutcome("k-2", MessageState.REJECTED, error="second answer"),
            SendOutcome("k-3", MessageState.ACCEPTED, vendor_message_id="V-3"),
        ],
        NOW, "run-a",
    )
    assert table(warehouse, "state", "vendor_message_id", "error", "vendor_answer") == {
        "k-1": ("rejected", None, "bad\ufffdnumber", '{"e": "\ufffd"}'),
        "k-2": ("accepted", "V-2", None, None),
        "k-3": ("accepted", "V-3", None, None),
    }


def test_recording_nothing_touches_nothing(warehouse):
    put(warehouse, {"message_key": "k-1", "state": "sending", "claimed_by": "run-a"})
    Ledger(warehouse, "wavy").record([], NOW, "run-a")
    assert table(warehouse, "state") == {"k-1": ("sending",)}


# ---- runs that died: their rows in flight become unknown ----------------------------------------------
def test_rows_in_flight_of_a_lapsed_run_become_unknown_and_a_live_runs_stay(warehouse):
    put_lease(warehouse, "dead", "wavy", NOW.subtract(seconds=1))
    put_lease(warehouse, "just-lapsed", "wavy", NOW)
    put_lease(warehouse, "alive", "wavy", NOW.add(seconds=1))
    put_lease(warehouse, "itd-dead", "itd", NOW.subtract(seconds=1))
    put(
        warehouse,
        {"message_key": "k-dead", "state": "sending", "claimed_by": "dead"},
        {"message_key": "k-lapsed", "state": "sending", "claimed_by": "just-lapsed"},
        {"message_key": "k-gone", "state": "sending", "claimed_by": "never-leased"},
        {"message_key": "k-old", "state": "sending"},  # claimed before owners were recorded
        {"message_key": "k-alive", "state": "sending", "claimed_by": "alive"},
        {"message_key": "k-pending", "claimed_by": "dead"},
        {"message_key": "k-itd", "vendor": "itd", "state": "sending", "claimed_by": "itd-dead"},
    )
    assert Ledger(warehouse, "wavy").mark_in_flight_unknown(NOW) == 4
    assert table(warehouse, "state", "error") == {
        "k-alive": ("sending", None),
        "k-dead": ("unknown", "in flight when a run stopped: not re-sent automatically"),
        "k-gone": ("unknown", "in flight when a run stopped: not re-sent automatically"),
        "k-itd": ("sending", None),
        "k-lapsed": ("unknown", "in flight when a run stopped: not re-sent automatically"),
        "k-old": ("unknown", "in flight when a run stopped: not re-sent automatically"),
        "k-pending": ("pending", None),
    }
    assert sorted(leases(warehouse)) == ["alive", "itd-dead"]  # lapsed leases of this vendor are forgotten


# ---- unknown rows: listed, resolved, released ---------------------------------------------------------
def test_unknown_keys_come_page_by_page_in_key_order(warehouse):
    put(warehouse, *({"message_key": f"k-{i}", "state": "unknown"} for i in (5, 1, 3, 2, 4)),
        {"message_key": "k-0", "state": "sending"}, {"message_key": "k-6", "vendor": "itd", "state": "unknown"})
    assert list(Ledger(warehouse, "wavy").unknown_keys(page=2)) == [["k-1", "k-2"], ["k-3", "k-4"], ["k-5"]]
    assert list(Ledger(warehouse, "wavy").unknown_keys()) == [["k-1", "k-2", "k-3", "k-4", "k-5"]]
    assert list(Ledger(warehouse, "teleprom").unknown_keys()) == []


def test_unknown_rows_the_vendor_has_become_accepted(warehouse):
    put(warehouse, {"message_key": "k-1", "state": "unknown", "error": "504"},
        {"message_key": "k-2", "state": "accepted", "vendor_message_id": "V-2"},
        {"message_key": "k-3", "state": "unknown", "error": "504"})
    found = {"k-1": "V-1", "k-2": "V-other", "k-missing": "V-x"}
    assert Ledger(warehouse, "wavy").resolve_unknown(found, NOW) == 1
    assert table(warehouse, "state", "vendor_message_id", "error") == {
        "k-1": ("accepted", "V-1", None), "k-2": ("accepted", "V-2", None), "k-3": ("unknown", None, "504"),
    }
    assert pendulum.instance(warehouse.rows(sa.select(T.c.accepted_at).where(T.c.message_key == "k-1"))[0][
        "accepted_at"]) == NOW
    assert Ledger(warehouse, "wavy").resolve_unknown({}, NOW) == 0


def test_released_rows_are_pending_unclaimed_with_the_operators_note(warehouse):
    put(warehouse, {"message_key": "k-1", "state": "unknown", "claimed_by": "dead", "error": "504"})
    assert Ledger(warehouse, "wavy").release_unknown(["k-1"], NOW) == ["k-1"]
    assert table(warehouse, "state", "claimed_by", "error") == {"k-1": ("pending", None, "released by an operator")}


@pytest.mark.parametrize("extra", [0, 1])
def test_release_unknown_handles_more_keys_than_one_statement_takes(warehouse, extra):
    count = KEY_CHUNK + extra + 1
    put(warehouse, *({"message_key": f"k-{i:05d}", "state": "unknown"} for i in range(count)))
    keys = [f"k-{i:05d}" for i in range(count)]
    released = Ledger(warehouse, "wavy").release_unknown(keys, NOW)
    assert sorted(released) == keys
    assert table(warehouse, "state") == {k: ("pending",) for k in keys}


# ---- every change is stamped, scoped and ordered -------------------------------------------------------
LATER = NOW.add(hours=1)


def test_every_state_change_stamps_updated_at_with_its_time(warehouse):
    put(
        warehouse,
        {"message_key": "back", "state": "sending", "claimed_by": "run"},
        {"message_key": "due", "state": "scheduled", "send_at": NOW},
        {"message_key": "file-now", "state": "staged", "file_sha256": "A"},
        {"message_key": "file-later", "state": "staged", "file_sha256": "A", "send_at": NOW.add(days=1)},
        {"message_key": "in-flight", "state": "sending", "claimed_by": "gone"},
        {"message_key": "release", "state": "unknown"},
        {"message_key": "resolve", "state": "unknown"},
    )
    ledger = Ledger(warehouse, "wavy")
    ledger.record([SendOutcome("back", MessageState.PENDING)], LATER, "run")
    ledger.promote_due(LATER)
    with warehouse.begin() as conn:
        ledger.promote_file(conn, "A", LATER, window_open=True)
    assert ledger.mark_in_flight_unknown(LATER) == 1
    ledger.release_unknown(["release"], LATER)
    ledger.resolve_unknown({"resolve": "V-1"}, LATER)
    stamped = {key: (state, pendulum.instance(at)) for key, (state, at) in table(warehouse, "state", "updated_at").items()}
    assert stamped == {
        "back": ("pending", LATER), "due": ("pending", LATER), "file-later": ("scheduled", LATER),
        "file-now": ("pending", LATER), "in-flight": ("unknown", LATER), "release": ("pending", LATER),
        "resolve": ("accepted", LATER),
    }


def test_only_the_named_unknown_rows_are_released(warehouse):
    put(warehouse, {"message_key": "k-1", "state": "unknown"}, {"message_key": "k-2", "state": "unknown"})
    assert Ledger(warehouse, "wavy").release_unknown(["k-1"], NOW) == ["k-1"]
    assert table(warehouse, "state") == {"k-1": ("pending",), "k-2": ("unknown",)}


def test_a_claim_takes_the_lowest_keys_whatever_the_order_they_were_written(warehouse):
    put(warehouse, *({"message_key": key} for key in ("k-3", "k-9", "k-1", "k-7", "k-2")))
    claimed = Ledger(warehouse, "wavy").claim("run", 2)
    assert [row.message_key for row in claimed] == ["k-1", "k-2"]


def test_unknown_keys_include_keys_of_any_spelling(warehouse):
    put(warehouse, *({"message_key": key, "state": "unknown"} for key in ("A-1", "Z-1", "a-1", "0-1")))
    assert list(Ledger(warehouse, "wavy").unknown_keys()) == [["0-1", "A-1", "Z-1", "a-1"]]


def test_an_owner_keeps_32_characters_of_a_long_host_name(monkeypatch):
    monkeypatch.setattr(socket, "gethostname", lambda: "h" * 50)
    assert new_owner("wavy").split("-")[1] == "h" * 32


def test_the_lease_heartbeat_is_named_for_its_vendor_and_stops_with_the_lease(warehouse):
    with SendLease(warehouse, "wavy", lease_s=30) as lease:
        assert lease._thread.name == "lease-wavy" and lease._thread.is_alive()
        assert lease._thread.daemon  # a worker that dies holding a lease is never kept alive by it
    assert not lease._thread.is_alive()


def test_a_lease_that_cannot_be_renewed_says_so(warehouse, caplog):
    lease = SendLease(warehouse, "wavy", lease_s=0.2)

    def warehouse_away():
        raise sa.exc.OperationalError("UPDATE send_leases", {}, Exception("connection refused"))

    lease.renew = warehouse_away
    with caplog.at_level("WARNING", logger="latam_messaging.sending.ledger"), lease:
        time.sleep(0.15)
    assert caplog.messages and set(caplog.messages) == {
        f"could not renew the send lease {lease.owner}: OperationalError"}
    assert {record.name for record in caplog.records} == {"latam_messaging.sending.ledger"}  # the ledger's logger


def test_a_lease_released_while_the_warehouse_is_away_is_left_to_run_out(warehouse):
    class Away:
        def begin(self):
            raise sa.exc.OperationalError("DELETE FROM send_leases", {}, Exception("connection refused"))

    with SendLease(warehouse, "wavy", lease_s=30) as lease:
        lease.warehouse = Away()  # the release below cannot reach the warehouse: the run still ends normally
    assert not lease._thread.is_alive()
    assert list(leases(warehouse)) == [lease.owner]  # another run takes over when it runs out


def test_a_heartbeat_beats_every_quarter_of_its_lease_and_has_no_thread_before_it_starts():
    beat = Heartbeat(lambda: None, 2.0, name="beat")
    assert (beat.interval, beat.thread) == (0.5, None)


def test_a_heartbeat_with_the_defaults_logs_a_failed_renewal_as_the_lease(caplog):
    def disk_away():
        raise OSError("disk away")

    with caplog.at_level("WARNING", logger="latam_messaging.common.lease"), Heartbeat(disk_away, 0.2, name="beat"):
        time.sleep(0.12)
    assert caplog.messages and set(caplog.messages) == {"could not renew the lease: OSError"}


def test_an_answer_never_rewrites_a_row_that_left_sending_or_unknown(warehouse):
    put(warehouse, {"message_key": "k-1", "state": "accepted", "claimed_by": "run", "vendor_message_id": "V-1"})
    Ledger(warehouse, "wavy").record([SendOutcome("k-1", MessageState.FAILED, error="late")], LATER, "run")
    assert table(warehouse, "state", "vendor_message_id", "error") == {"k-1": ("accepted", "V-1", None)}


def test_a_row_is_returned_to_pending_only_by_its_owner(warehouse):
    put(warehouse, {"message_key": "k-1", "state": "sending", "claimed_by": "other"})
    Ledger(warehouse, "wavy").record([SendOutcome("k-1", MessageState.PENDING)], LATER, "run")
    assert table(warehouse, "state", "claimed_by") == {"k-1": ("sending", "other")}


def test_an_outcome_that_is_not_an_answer_is_refused_before_anything_is_written(warehouse):
    put(warehouse, {"message_key": "k-1", "state": "sending", "claimed_by": "run"},
        {"message_key": "k-2", "state": "sending", "claimed_by": "run"})
    outcomes = [SendOutcome("k-1", MessageState.ACCEPTED, vendor_message_id="V-1"),
                SendOutcome("k-2", MessageState.SCHEDULED)]
    with pytest.raises(ForbiddenMove, match="^a message cannot move from sending to scheduled$"):
        Ledger(warehouse, "wavy").record(outcomes, LATER, "run")
    assert table(warehouse, "state", "vendor_message_id") == {"k-1": ("sending", None), "k-2": ("sending", None)}


def _written_in_reverse_key_order(warehouse, state: str, count: int = 3000) -> list[str]:
    """``count`` rows of one state written highest key first, and the planner told about them, so a
    query without its ORDER BY would read them in the order they were written (PostgreSQL's sequential
    scan), not in key order."""
    keys = [f"k-{i:05d}" for i in range(count)]
    put(warehouse, *({"message_key": key, "state": state} for key in reversed(keys)))
    if warehouse.dialect == "postgresql":
        with warehouse.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(sa.text("ANALYZE outbound_messages"))
    return keys


def test_claims_take_the_lowest_keys_of_a_large_backlog_written_in_reverse(warehouse):
    keys = _written_in_reverse_key_order(warehouse, "pending")
    assert [r.message_key for r in Ledger(warehouse, "wavy").claim("run", 3)] == keys[:3]


def test_unknown_keys_of_a_large_backlog_written_in_reverse_come_in_key_order(warehouse):
    keys = _written_in_reverse_key_order(warehouse, "unknown")
    pages = list(Ledger(warehouse, "wavy").unknown_keys(page=1000))
    assert pages == [keys[:1000], keys[1000:2000], keys[2000:]]


@pytest.mark.parametrize("warehouse", ["postgres"], indirect=True)
def test_answers_are_found_by_their_key_however_the_table_was_analysed(warehouse):
    """PostgreSQL: once statistics say ``claimed_by`` is nearly always NULL, an index on it looked like the
    best way to find one run's rows, and every answer read all of that run's rows (a 100,000-row send took
    over a minute). The answers are one statement over arrays (``db.update_each``): a few of them go by the
    primary key, never a scan of the ledger; 2,000 at once are never joined row by row to every answer
    (a nested loop's join filter: quadratic, 17 s for 5,000 answers once seen); the rows handed back go by
    the primary key."""
    put(warehouse, *({"message_key": f"h-{i:05d}", "state": "accepted"} for i in range(30_000)))
    put(warehouse, *({"message_key": f"k-{i:05d}"} for i in range(3000)))
    with warehouse.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(sa.text("ANALYZE outbound_messages"))  # before the run, as in production: no row claimed
    ledger = Ledger(warehouse, "wavy")
    assert len(ledger.claim("run", 3000)) == 3000
    seen: list[tuple[str, dict]] = []

    def capture(conn, cursor, statement, parameters, context, executemany):
        if statement.lstrip().upper().startswith("UPDATE"):
            seen.append((statement, parameters[0] if executemany else parameters))

    def plan(statement: str, parameters: dict) -> str:
        with warehouse.engine.connect() as conn:
            return "\n".join(conn.exec_driver_sql(f"EXPLAIN {statement}", parameters).scalars())

    states = [MessageState.ACCEPTED, MessageState.REJECTED, MessageState.PENDING]
    outcomes = [SendOutcome(f"k-{i:05d}", states[i % 3], f"v-{i}") for i in range(3000)]
    sa.event.listen(warehouse.engine, "before_cursor_execute", capture)
    try:
        ledger.record(outcomes[:6], NOW, "run")
        few = list(seen)
        seen.clear()
        ledger.record(outcomes[6:], NOW, "run")
    finally:
        sa.event.remove(warehouse.engine, "before_cursor_execute", capture)
    assert len(few) == 2 and "unnest" in few[0][0]  # the 4 answers, the 2 handed back: one statement each
    for statement, parameters in few:
        assert "outbound_messages_pkey" in plan(statement, parameters), plan(statement, parameters)
        assert "Seq Scan on outbound_messages" not in plan(statement, parameters)
    assert len(seen) == 3  # the 1,996 answers in one statement, the 998 handed back in two (KEY_CHUNK 900)
    assert "Join Filter" not in plan(*seen[0]), plan(*seen[0])
    for statement, parameters in seen[1:]:
        assert "outbound_messages_pkey" in plan(statement, parameters), plan(statement, parameters)
    states_now = table(warehouse, "state", "vendor_message_id")
    assert [states_now[f"k-{i:05d}"] for i in range(3)] == [("accepted", "v-0"), ("rejected", "v-1"), ("pending", None)]
    assert Counter(state for key, (state, _) in states_now.items() if key.startswith("k-")) == {
        "accepted": 1000, "rejected": 1000, "pending": 1000,
    }
