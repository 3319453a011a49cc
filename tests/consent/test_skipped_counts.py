"""``skipped_counts`` (migration 15, ``views.skipped_counts`` over ``warehouse.counted``): kept by the
database's triggers on both databases, ``report_suppressed_rows`` equals its definition over the ledger after
each way a row skipped for consent comes, goes or changes — rows rejected at ingest for consent (and rejects
for other reasons, not counted), rows suppressed when claimed for sending (the ledger's own claim), a reason
corrected, a reject deleted, a file's record deleted, a rollback, a ``TRUNCATE`` — and ``check`` finds
nothing; counts broken by hand are found and repaired; the view reads neither ``drop_rejects`` nor the ledger."""

from __future__ import annotations

from collections import Counter

import pytest
import sqlalchemy as sa

from latam_messaging.lifecycle import OUTBOUND
from latam_messaging.sending.ledger import Ledger
from latam_messaging.warehouse import schema, views
from tests.warehouse.test_aggregates import T0, load_file

SHA = "e" * 64
KEYWORD = "suppressed: keyword (replied 'baja' (es))"
REGISTRY = "suppressed: registry:no_llame"


def as_counter(warehouse, sql: str) -> Counter:
    with warehouse.engine.connect() as conn:
        return Counter(tuple(str(v) if i == 4 else (int(v) if i > 5 else v) for i, v in enumerate(r))
                       for r in conn.execute(sa.text(sql)))


def skipped(warehouse) -> dict[tuple[str | None, str | None, str], tuple[int, int]]:
    """(file, folder, source) → (at ingest, at claim); the view equal to its form over the ledger, check clean."""
    rows = as_counter(warehouse, "SELECT * FROM report_suppressed_rows")
    assert rows == as_counter(warehouse, views.suppressed_rows_over_ledger(warehouse.dialect))
    with warehouse.begin() as conn:
        assert views.skipped_counts(warehouse.dialect).check(conn) == []
    return {(r[0] and r[0][:1], r[2], r[5]): (r[6], r[7]) for r in rows}


def reject(conn, row_number: int, reason: str, sha: str = SHA) -> None:
    conn.execute(schema.drop_rejects.insert().values(
        file_sha256=sha, row_number=row_number, reason=reason, raw_row="{}", rejected_at=T0,
    ))


@pytest.fixture
def loaded(warehouse):
    """A teleprom file of 6 rows, recorded as claimed at T0."""
    load_file(warehouse, "teleprom", SHA, 6)
    with warehouse.begin() as conn:
        conn.execute(schema.drop_files.insert().values(
            file_sha256=SHA, vendor="teleprom", folder="teleprom_hsm", path="archive/teleprom_hsm/c.csv",
            size_bytes=1, rows_total=10, rows_valid=6, rows_rejected=4, state="done", claimed_at=T0,
        ))
        phones = conn.execute(sa.select(OUTBOUND.c.phone).order_by(OUTBOUND.c.message_key)).scalars().all()
    return phones


def test_each_way_a_skipped_row_comes_and_goes(warehouse, loaded):
    phones = loaded
    with warehouse.begin() as conn:
        reject(conn, 101, KEYWORD)
        reject(conn, 102, KEYWORD)
        reject(conn, 103, REGISTRY)
        reject(conn, 104, "phone missing")  # not for consent: not counted
    assert skipped(warehouse) == {("e", "teleprom_hsm", "keyword"): (2, 0), ("e", "teleprom_hsm", "registry:no_llame"): (1, 0)}
    with warehouse.begin() as conn:  # two subscribers opt out; the claim skips their rows at the last moment
        for phone in phones[:2]:
            conn.execute(schema.suppressions.insert().values(
                phone=phone.replace("549", "54", 1), scope="all", source="keyword", evidence=f"e-{phone}",
                since=T0, created_at=T0, created_by="test",
            ))
    assert len(Ledger(warehouse, "teleprom").claim("run-1", 6)) == 4
    assert skipped(warehouse)[("e", "teleprom_hsm", "keyword")] == (2, 2)
    with warehouse.begin() as conn:  # a reason corrected, a reject deleted
        conn.execute(sa.text("UPDATE drop_rejects SET reason = :r WHERE row_number = 101"), {"r": REGISTRY})
        conn.execute(sa.text("DELETE FROM drop_rejects WHERE row_number = 102"))
    assert skipped(warehouse) == {("e", "teleprom_hsm", "keyword"): (0, 2), ("e", "teleprom_hsm", "registry:no_llame"): (2, 0)}
    with pytest.raises(RuntimeError), warehouse.begin() as conn:  # a writer killed half-way: nothing of it
        reject(conn, 105, KEYWORD)
        conn.execute(sa.text("UPDATE outbound_messages SET state = 'suppressed', error = :e"), {"e": REGISTRY})
        raise RuntimeError("killed")
    with warehouse.begin() as conn:  # the file's record deleted: its rejects count nowhere, its claims under no folder
        conn.execute(sa.text("DELETE FROM drop_files"))
    assert skipped(warehouse) == {("e", None, "keyword"): (0, 2)}
    with warehouse.begin() as conn:  # an analyst empties the tables (PostgreSQL: TRUNCATE fires no row trigger)
        for table in ("drop_rejects", "outbound_messages"):
            conn.execute(sa.text(f"TRUNCATE {table}" if warehouse.dialect == "postgresql" else f"DELETE FROM {table}"))
    assert skipped(warehouse) == {}
    with warehouse.begin() as conn:
        reject(conn, 1, KEYWORD, sha="f" * 64)  # a file never recorded: counted, shown by no row
    assert skipped(warehouse) == {}
    with warehouse.begin() as conn:
        assert conn.execute(sa.text("SELECT SUM(messages) FROM skipped_counts")).scalar_one() == 1


def test_counts_broken_by_hand_are_found_and_repaired(warehouse, loaded):
    with warehouse.begin() as conn:
        reject(conn, 101, KEYWORD)
        reject(conn, 102, REGISTRY)
        conn.execute(sa.text("UPDATE skipped_counts SET messages = messages + 3 WHERE id = (SELECT MIN(id) FROM skipped_counts)"))
        conn.execute(sa.text("DELETE FROM skipped_counts WHERE id = (SELECT MAX(id) FROM skipped_counts)"))
    counts = views.skipped_counts(warehouse.dialect)
    with warehouse.begin() as conn:
        assert sorted(d[-1] for d in counts.check(conn)) == [-3, 1]
    assert counts.maintain(warehouse)["keys_repaired"] == 2
    skipped(warehouse)
    assert counts.maintain(warehouse) == {"keys_drifted": 0, "keys_repaired": 0, "rows_compacted": 0}


def test_the_view_reads_neither_the_rejects_nor_the_ledger(warehouse, loaded):
    explain = "EXPLAIN QUERY PLAN " if warehouse.dialect == "sqlite" else "EXPLAIN "
    with warehouse.engine.connect() as conn:
        plan = " ".join(str(part) for row in conn.execute(sa.text(explain + "SELECT * FROM report_suppressed_rows")) for part in row)
    assert "drop_rejects" not in plan and "outbound_messages" not in plan and "skipped_counts" in plan, plan
