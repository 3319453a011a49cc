"""Raw bodies archived, then purged (``maintenance/raw_retention.py``), on both warehouses: every purged
body is in its part byte for byte, nothing pending is ever purged, errors wait longer, re-runs and runs
after a kill archive nothing twice, batches are bounded."""

from __future__ import annotations

import json

import pendulum
import pytest
import sqlalchemy as sa

from latam_messaging.maintenance import raw_retention
from latam_messaging.maintenance.archive import ArchiveStore, ArchiveWriteError
from latam_messaging.maintenance.raw_retention import RetentionPolicy, archive_and_purge, check, decode_part
from latam_messaging.warehouse import schema
from latam_messaging.webhooks.raw import ParseState, body_bytes, raw_event_row

RAW = schema.raw_webhook_events
NOW = pendulum.datetime(2026, 6, 1, 12, tz="UTC")
POLICY = RetentionPolicy(days=30, error_days=180)


def add_raw(warehouse, vendor, raw: bytes, *, state: str, parsed_days_ago: float | None, received=None) -> int:
    """A raw body as the receiver stores it, moved to ``state`` ``parsed_days_ago`` days before NOW."""
    row = raw_event_row(vendor, "callback", raw, "application/json")
    row["received_at"] = received or NOW - pendulum.duration(days=(parsed_days_ago or 0) + 0.01)
    row["parse_state"] = state
    row["parsed_at"] = None if parsed_days_ago is None else NOW - pendulum.duration(days=parsed_days_ago)
    with warehouse.begin() as conn:
        return conn.execute(RAW.insert().values(**row).returning(RAW.c.id)).scalar_one()


def raw_rows(warehouse) -> dict[int, dict]:
    return {r["id"]: r for r in warehouse.rows(sa.select(RAW))}


def archived(root) -> dict[int, dict]:
    """Every line of every part under ``root``, by id (a row in two parts fails the test)."""
    found: dict[int, dict] = {}
    for part in sorted(root.rglob("*.jsonl.gz")):
        for record in decode_part(part.read_bytes()):
            assert record["id"] not in found, f"row {record['id']} archived twice"
            found[record["id"]] = record | {"part": str(part.relative_to(root))}
    return found


# bodies that must come back exactly: plain JSON, accents, a NUL (stored base64:), bytes that are not UTF-8
BODIES = [
    b'{"id":"W1","correlationId":"m-1","sentStatusCode":2}',
    '{"text":"¿Baja? ação 😀"}'.encode(),
    b'{"a":"\x00"}',
    b"\xff\xfe not utf-8",
    b"",
]


def test_parsed_bodies_are_archived_byte_identical_then_purged(warehouse, tmp_path):
    store = ArchiveStore(str(tmp_path / "archive"))
    old = [add_raw(warehouse, "wavy", b, state="parsed", parsed_days_ago=31) for b in BODIES]
    young = add_raw(warehouse, "wavy", b"young", state="parsed", parsed_days_ago=29)
    itd = add_raw(warehouse, "itd", b'{"itd":1}', state="parsed", parsed_days_ago=40)
    before = raw_rows(warehouse)

    stats = archive_and_purge(warehouse, store, POLICY, now=NOW)

    assert stats.rows_purged == len(old) + 1
    parts = sorted((tmp_path / "archive").rglob("*.jsonl.gz"))
    assert stats.bytes_archived == sum(p.stat().st_size for p in parts) > 0
    assert stats.parts_written == len(parts) == 2  # one per (vendor, day received)
    assert stats.body_bytes_purged == sum(len(before[i]["body"].encode()) for i in [*old, itd])
    lines = archived(tmp_path / "archive")
    after = raw_rows(warehouse)
    for raw_id, original in zip([*old, itd], [*BODIES, b'{"itd":1}'], strict=True):
        assert body_bytes(lines[raw_id]["body"]) == original  # the vendor's exact bytes
        assert lines[raw_id]["body"] == before[raw_id]["body"]
        assert lines[raw_id]["body_sha256"] == before[raw_id]["body_sha256"]
        row = after[raw_id]
        assert (row["body"], row["purged_at"] is not None, row["archive_path"]) == ("", True, lines[raw_id]["part"])
        assert row["body_sha256"] == before[raw_id]["body_sha256"]  # replays still deduplicated
    assert after[young]["body"] == "young" and after[young]["purged_at"] is None
    assert warehouse.count(RAW) == len(before)  # rows kept: status events point at their ids
    day = (NOW - pendulum.duration(days=31.01)).strftime("%Y-%m-%d")
    assert lines[old[0]]["part"] == f"raw_webhook_events/wavy/{day}/part-{min(old):012d}-{max(old):012d}.jsonl.gz"


def test_pending_and_unparsed_bodies_are_never_purged(warehouse, tmp_path):
    store = ArchiveStore(str(tmp_path / "archive"))
    received = NOW - pendulum.duration(days=400)
    pending = add_raw(warehouse, "wavy", b"pending", state="pending", parsed_days_ago=None, received=received)
    odd = add_raw(warehouse, "wavy", b"odd", state="parsed", parsed_days_ago=None, received=received)
    unknown = add_raw(warehouse, "wavy", b"unknown-state", state="reparsing", parsed_days_ago=400)

    stats = archive_and_purge(warehouse, store, RetentionPolicy(days=0, error_days=0), now=NOW)

    assert stats.rows_purged == 0 and stats.bytes_archived == 0
    rows = raw_rows(warehouse)
    assert [rows[i]["body"] for i in (pending, odd, unknown)] == ["pending", "odd", "unknown-state"]
    assert not (tmp_path / "archive").exists()
    assert check(warehouse, POLICY, now=NOW)["pending_never_purged"] == 1


def test_bodies_that_parsed_with_errors_wait_for_their_longer_retention(warehouse, tmp_path):
    store = ArchiveStore(str(tmp_path / "archive"))
    error = add_raw(warehouse, "itd", b"not json", state=ParseState.ERROR, parsed_days_ago=100)
    partial = add_raw(warehouse, "itd", b"[1, 2]", state=ParseState.PARTIAL, parsed_days_ago=100)
    assert archive_and_purge(warehouse, store, POLICY, now=NOW).rows_purged == 0
    assert check(warehouse, POLICY, now=NOW + pendulum.duration(days=80))["due_now"] == 0
    later = NOW + pendulum.duration(days=81)
    assert check(warehouse, POLICY, now=later)["due_by_vendor_state"] == [
        {"vendor": "itd", "parse_state": "error", "rows": 1},
        {"vendor": "itd", "parse_state": "partial", "rows": 1},
    ]
    assert archive_and_purge(warehouse, store, POLICY, now=later).rows_purged == 2
    assert set(archived(tmp_path / "archive")) == {error, partial}


def test_a_rerun_archives_nothing_twice(warehouse, tmp_path):
    store = ArchiveStore(str(tmp_path / "archive"))
    for n in range(7):
        add_raw(warehouse, "wavy", f"body-{n}".encode(), state="parsed", parsed_days_ago=31)
    first = archive_and_purge(warehouse, store, POLICY, now=NOW)
    files = {p: p.read_bytes() for p in (tmp_path / "archive").rglob("*") if p.is_file()}
    again = archive_and_purge(warehouse, store, POLICY, now=NOW + pendulum.duration(days=1))
    assert first.rows_purged == 7
    assert (again.rows_purged, again.bytes_archived, again.parts_written) == (0, 0, 0)
    assert {p: p.read_bytes() for p in (tmp_path / "archive").rglob("*") if p.is_file()} == files
    assert len(archived(tmp_path / "archive")) == 7
    assert check(warehouse, POLICY, now=NOW)["due_now"] == 0


def test_a_kill_between_the_archive_and_the_purge_is_finished_by_the_next_run(warehouse, tmp_path, monkeypatch):
    """The part was written, the purge never ran: the next run writes the same part again (same name,
    same bytes) and purges; a body that parses due meanwhile goes in a new part, never in two."""
    store = ArchiveStore(str(tmp_path / "archive"))
    ids = [add_raw(warehouse, "wavy", f"body-{n}".encode(), state="parsed", parsed_days_ago=31) for n in range(5)]
    real_write = ArchiveStore.write

    def write_then_die(self, name, data):
        real_write(self, name, data)
        raise KeyboardInterrupt("killed after the archive, before the purge")

    monkeypatch.setattr(ArchiveStore, "write", write_then_die)
    with pytest.raises(KeyboardInterrupt):
        archive_and_purge(warehouse, store, POLICY, now=NOW)
    monkeypatch.setattr(ArchiveStore, "write", real_write)
    [written] = list((tmp_path / "archive").rglob("*.jsonl.gz"))
    first_bytes = written.read_bytes()
    assert {r["body"] for r in raw_rows(warehouse).values()} == {f"body-{n}" for n in range(5)}  # nothing purged
    assert check(warehouse, POLICY, now=NOW)["parts_in_progress"] == 1
    late = add_raw(warehouse, "wavy", b"late", state="parsed", parsed_days_ago=31)  # due since

    stats = archive_and_purge(warehouse, store, POLICY, now=NOW)

    assert (stats.parts_resumed, stats.rows_purged) == (1, 6)
    assert written.read_bytes() == first_bytes  # the same part, the same bytes
    lines = archived(tmp_path / "archive")  # fails on a row found in two parts
    assert set(lines) == {*ids, late}
    assert all(r["purged_at"] is not None for r in raw_rows(warehouse).values())
    assert not [p for p in (tmp_path / "archive").rglob("*") if p.name.endswith(".tmp")]


def test_a_part_that_does_not_land_purges_nothing(warehouse, tmp_path, monkeypatch):
    store = ArchiveStore(str(tmp_path / "archive"))
    add_raw(warehouse, "wavy", b"keep me", state="parsed", parsed_days_ago=31)

    def refuse(self, name, data):
        raise ArchiveWriteError("disk full")

    monkeypatch.setattr(ArchiveStore, "_write_local", refuse)
    with pytest.raises(ArchiveWriteError):
        archive_and_purge(warehouse, store, POLICY, now=NOW)
    [row] = raw_rows(warehouse).values()
    assert (row["body"], row["purged_at"]) == ("keep me", None)


def test_batches_are_bounded_and_resumable(warehouse, tmp_path, monkeypatch):
    store = ArchiveStore(str(tmp_path / "archive"))
    for n in range(12):
        add_raw(warehouse, "wavy", f"b{n}".encode(), state="parsed", parsed_days_ago=31 + n / 100)
    purges = []
    real_finish = raw_retention._finish_part

    def counting(warehouse_, store_, name, stats):
        before = stats.rows_purged
        real_finish(warehouse_, store_, name, stats)
        purges.append(stats.rows_purged - before)

    monkeypatch.setattr(raw_retention, "_finish_part", counting)
    first = archive_and_purge(warehouse, store, POLICY, now=NOW, batch=5, max_batches=2)
    assert (first.batches, first.rows_purged) == (2, 10)
    rest = archive_and_purge(warehouse, store, POLICY, now=NOW, batch=5)
    assert (rest.batches, rest.rows_purged) == (1, 2)
    assert purges == [5, 5, 2] and max(purges) <= 5
    assert len(archived(tmp_path / "archive")) == 12


def test_an_archived_body_is_not_parsed_again(warehouse, tmp_path):
    """``reparse_errors`` after a parser fix reads the errors still held, never an emptied body."""
    from latam_messaging.vendors import callback_parsers
    from latam_messaging.webhooks.ingest import ingest_pending

    store = ArchiveStore(str(tmp_path / "archive"))
    purged = add_raw(warehouse, "wavy", b"not json", state=ParseState.ERROR, parsed_days_ago=200)
    held = add_raw(warehouse, "wavy", b"also not json", state=ParseState.ERROR, parsed_days_ago=10)
    archive_and_purge(warehouse, store, POLICY, now=NOW)
    stats = ingest_pending(warehouse, callback_parsers(), reparse_errors=True)
    assert stats.events == 1
    rows = raw_rows(warehouse)
    assert rows[purged]["body"] == "" and rows[held]["body"] == "also not json"


def test_status_events_keep_their_raw_row_and_the_ledger_is_untouched(warehouse, tmp_path):
    """A body parsed through webhook_ingest into a status event: purged, the event still points at its
    row, the message's status is the same, and the same body replayed is still a duplicate."""
    from latam_messaging.vendors import callback_parsers
    from latam_messaging.warehouse.db import Warehouse
    from latam_messaging.webhooks.ingest import ingest_pending
    from tests.helpers.ledger import add_ledger_row

    add_ledger_row(warehouse, "m-1", "wavy", vendor_id="W1")
    raw = json.dumps({"id": "W1", "correlationId": "m-1", "sentStatusCode": 2, "sentStatus": "SENT_SUCCESS",
                      "sentAt": 1772463600000}).encode()
    with warehouse.begin() as conn:
        Warehouse.insert_new(warehouse, conn, RAW, [raw_event_row("wavy", "callback", raw, "application/json")])
    assert ingest_pending(warehouse, callback_parsers()).statuses == 1
    ledger = warehouse.rows(schema.outbound_messages)
    [event] = warehouse.rows(schema.message_status_events)

    stats = archive_and_purge(warehouse, ArchiveStore(str(tmp_path / "a")), POLICY, now=pendulum.now("UTC").add(days=31))

    assert stats.rows_purged == 1
    assert warehouse.rows(schema.outbound_messages) == ledger
    assert warehouse.rows(schema.message_status_events) == [event]
    [row] = warehouse.rows(sa.select(RAW).where(RAW.c.id == event["raw_event_id"]))
    assert row["body"] == "" and row["archive_path"]
    with warehouse.begin() as conn:  # a vendor's retry of the same body: still recognised
        assert warehouse.insert_new(
            conn, RAW, [raw_event_row("wavy", "callback", raw, "application/json")], count=True
        ) == 0
    [line] = decode_part((tmp_path / "a" / row["archive_path"]).read_bytes())
    assert body_bytes(line["body"]) == raw
