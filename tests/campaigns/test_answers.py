"""``campaign_answers`` (migration 13, ``campaigns.answers``): each way a pair appears or goes, kept by the
database's triggers on both databases — a reply quoting a send, a reply from the subscriber's phone in
another spelling, a reply recorded before its send's acceptance (a send resolved from in doubt later), an
opt-out and what is not one, deletes, moves in time, a rollback — with ``check`` finding nothing each
time; a pair removed or added by hand is found and mended by ``maintain``."""

from __future__ import annotations

import pendulum
import pytest
import sqlalchemy as sa

from latam_messaging.campaigns import answers
from latam_messaging.lifecycle import OUTBOUND, MessageState, move
from latam_messaging.sending.ledger import Ledger, SendOutcome
from latam_messaging.warehouse import schema
from tests.warehouse.test_aggregates import T0, load_file

SHA = "c" * 64


def pairs(warehouse) -> set[tuple[str, str, str]]:
    """The pairs held, each (kind, answer — the inbound id or 'opt-out <evidence>', send)."""
    with warehouse.begin() as conn:
        assert answers.check(conn) == []  # the table is what the rows make, after every step
        rows = conn.execute(sa.text(
            "SELECT a.kind, COALESCE(s.evidence, a.answer), a.message_key FROM campaign_answers a "
            "LEFT JOIN suppressions s ON a.kind = 'opt_out' AND CAST(s.id AS VARCHAR(20)) = a.answer"
        )).all()
    return {tuple(r) for r in rows}


def inbound(conn, vid: str, phone: str, at: pendulum.DateTime, quoting: str | None = None) -> None:
    conn.execute(schema.inbound_messages.insert().values(
        vendor="teleprom", vendor_message_id=vid, from_phone=phone, text="hola", received_at=at, recorded_at=at,
        source="webhook", in_reply_to=quoting,
    ))


def opt_out(conn, phone: str, at: pendulum.DateTime, evidence: str, source: str = "keyword") -> None:
    conn.execute(schema.suppressions.insert().values(
        phone=phone, scope="all", source=source, evidence=evidence, since=at, created_at=at, created_by="test",
    ))


def counts(warehouse) -> tuple[int, int]:
    with warehouse.engine.connect() as conn:
        return tuple(conn.execute(sa.text("SELECT replies, opt_outs FROM campaigns")).one())


@pytest.fixture
def sent(warehouse):
    """A campaign of three sends to 54 9 351 …: the first two accepted at T0, the third left in doubt."""
    load_file(warehouse, "teleprom", SHA, 3)
    with warehouse.begin() as conn:
        conn.execute(schema.campaign_files.insert().values(
            campaign_id=SHA[:16], file_sha256=SHA, name="c", vendor="teleprom", folder="f", source="drop",
            created_by="test", created_at=T0, state="loaded",
        ))
    ledger = Ledger(warehouse, "teleprom")
    claimed = ledger.claim("run-1", 3)
    keys = sorted(r.message_key for r in claimed)
    ledger.record([SendOutcome(k, MessageState.ACCEPTED, vendor_message_id=f"v-{k}") for k in keys[:2]], T0, "run-1")
    with warehouse.begin() as conn:
        conn.execute(move(MessageState.SENDING, MessageState.UNKNOWN, updated_at=T0))
        phones = dict(conn.execute(sa.select(OUTBOUND.c.message_key, OUTBOUND.c.phone)).all())
    return keys, phones


def test_each_way_a_pair_comes_and_goes(warehouse, sent):
    keys, phones = sent
    first, second, doubtful = keys
    with warehouse.begin() as conn:
        inbound(conn, "in-quote", "5490000000000", T0.add(hours=30), quoting=f"v-{first}")  # quoted: any time
        inbound(conn, "in-plus", "+" + phones[second], T0.add(minutes=5))  # the same phone with a +
        inbound(conn, "in-late", phones[second], T0.add(hours=25))  # after the window: no reply
        inbound(conn, "in-before", phones[second], T0.subtract(minutes=1))  # before the send: no reply
        inbound(conn, "in-early", phones[doubtful].replace("549", "54", 1), T0.add(minutes=20))  # in doubt yet
    assert pairs(warehouse) == {("reply", "in-quote", first), ("reply", "in-plus", second)}
    assert counts(warehouse) == (2, 0)

    # the send in doubt is found accepted at the vendor, when it was sent: the reply recorded before counts
    with warehouse.begin() as conn:
        conn.execute(
            sa.update(OUTBOUND).where(OUTBOUND.c.message_key == doubtful)
            .values(state=MessageState.ACCEPTED.value, accepted_at=T0.add(minutes=10), vendor_message_id=f"v-{doubtful}")
        )
    assert ("reply", "in-early", doubtful) in pairs(warehouse)

    with warehouse.begin() as conn:
        key = phones[first].replace("549", "54", 1)  # suppressions hold the consent key
        opt_out(conn, key, T0.add(hours=2), "baja")
        opt_out(conn, key, T0.add(hours=3), "no llame", source="registry:no_llame")  # a registry: not an opt-out
        opt_out(conn, phones[second].replace("549", "54", 1), T0.add(hours=26), "too late", source="vendor_status")
    assert ("opt_out", "baja", first) in pairs(warehouse)
    assert counts(warehouse) == (3, 1)

    with pytest.raises(RuntimeError), warehouse.begin() as conn:  # a writer killed: its pairs go with it
        inbound(conn, "in-killed", phones[first], T0.add(minutes=1))
        raise RuntimeError("killed")
    with warehouse.begin() as conn:
        conn.execute(sa.text("DELETE FROM inbound_messages WHERE vendor_message_id = 'in-plus'"))
        conn.execute(sa.update(schema.suppressions).where(schema.suppressions.c.evidence == "too late")
                     .values(since=T0.add(hours=1)))  # moved into the window: now an opt-out
        conn.execute(sa.update(schema.inbound_messages).where(schema.inbound_messages.c.vendor_message_id == "in-late")
                     .values(received_at=T0.add(hours=1)))
    assert pairs(warehouse) == {
        ("reply", "in-quote", first), ("reply", "in-late", second), ("reply", "in-early", doubtful),
        ("opt_out", "baja", first), ("opt_out", "too late", second),
    }
    assert counts(warehouse) == (3, 2)

    with warehouse.begin() as conn:  # a send deleted: its pairs go; its file moved: its pairs follow
        conn.execute(sa.delete(OUTBOUND).where(OUTBOUND.c.message_key == first))
        conn.execute(sa.update(OUTBOUND).where(OUTBOUND.c.message_key == second).values(file_sha256="d" * 64))
    assert pairs(warehouse) == {("reply", "in-late", second), ("reply", "in-early", doubtful), ("opt_out", "too late", second)}
    with warehouse.engine.connect() as conn:
        files = conn.execute(sa.text("SELECT file_sha256, COUNT(*) FROM campaign_answers GROUP BY file_sha256")).all()
    assert sorted(files) == [("c" * 64, 1), ("d" * 64, 2)]


def test_a_pair_written_by_hand_is_found_and_mended(warehouse, sent):
    keys, phones = sent
    with warehouse.begin() as conn:
        inbound(conn, "in-1", phones[keys[0]], T0.add(minutes=5))
        inbound(conn, "in-2", phones[keys[1]], T0.add(minutes=5))
    before = pairs(warehouse)
    with warehouse.begin() as conn:
        conn.execute(sa.text("DELETE FROM campaign_answers WHERE answer = 'in-1'"))
        conn.execute(sa.text("UPDATE campaign_answers SET file_sha256 = :other WHERE answer = 'in-2'"), {"other": "e" * 64})
        conn.execute(sa.text("INSERT INTO campaign_answers (kind, vendor, answer, message_key, file_sha256) "
                             "VALUES ('opt_out', 'teleprom', '999', :key, :sha)"), {"key": keys[2], "sha": SHA})
    with warehouse.begin() as conn:
        drifts = answers.check(conn)
    assert sorted((d.pair[2], d.missing) for d in drifts) == [("999", -1), ("in-1", 1), ("in-2", -1), ("in-2", 1)]
    assert answers.maintain(warehouse) == {"pairs_missing": 2, "pairs_extra": 2}
    assert pairs(warehouse) == before
    assert answers.maintain(warehouse) == {"pairs_missing": 0, "pairs_extra": 0}


def test_the_triggers_find_their_rows_by_index(warehouse):
    """EXPLAIN on both databases of what each trigger runs for one row (its ``NEW`` values bound): an inbound
    row finds its sends, an opt-out its sends, a send its replies and opt-outs — never by reading a whole
    table (PostgreSQL told not to prefer a scan of these empty tables)."""
    import re

    dialect = warehouse.dialect
    values = {
        "vendor": "teleprom", "vendor_message_id": "v-1", "in_reply_to": "v-0", "from_phone": "+5493515550000",
        "received_at": T0, "id": 1, "phone": "5493515550000", "source": "keyword", "since": T0, "accepted_at": T0,
        "file_sha256": SHA, "message_key": "k-1",
    }
    selects = {
        "inbound": answers.replies_of_inbound(dialect, "NEW"),
        "opt-out": answers.opt_outs_of_suppression(dialect, "NEW"),
        "send": answers.answers_of_send(dialect, "NEW"),
    }
    scan = r"\bSCAN [ois]\b" if dialect == "sqlite" else r"Seq Scan"
    with warehouse.engine.connect() as conn:
        explain = "EXPLAIN QUERY PLAN " if dialect == "sqlite" else "EXPLAIN "
        if dialect == "postgresql":
            conn.execute(sa.text("SET enable_seqscan = off"))
        for name, select in selects.items():
            bound = sa.text(explain + re.sub(r"NEW\.(\w+)", r":\1", select))
            used = {p for p in bound.compile().params}
            bound = bound.bindparams(*(sa.bindparam(p, type_=schema.UtcDateTime()) for p in used if p.endswith("_at") or p == "since"))
            plan = " ".join(str(part) for row in conn.execute(bound, {p: values[p] for p in used}) for part in row)
            assert not re.search(scan, plan), (name, plan)
