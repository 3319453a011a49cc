"""``message_counts`` (migration 11, ``warehouse.aggregates``): after any sequence of the writers' moves —
bulk loads, promotion, claims, the vendor's answers, status events, cancels, releases, deletes, a
rollback, replies (some before their send's acceptance), opt-outs, deletes and moves of both, in-doubt sends
resolved — ``report_delivery_funnel`` over the counts and ``campaigns`` over the counts and
``campaign_answers`` equal their old definitions over the ledger, on both databases; ``check`` finds nothing;
a count broken by hand is found and repaired; compaction changes no number; two writers at once lose nothing.
"""

from __future__ import annotations

import hashlib
import random
import threading
from collections import Counter
from decimal import Decimal

import pendulum
import pytest
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from latam_messaging.campaigns import answers, pricing
from latam_messaging.campaigns import views as campaign_views
from latam_messaging.lifecycle import OUTBOUND, MessageState, move
from latam_messaging.page import queries
from latam_messaging.sending.ledger import Ledger, SendOutcome
from latam_messaging.status import EventCost, StatusEvent, apply_status_events
from latam_messaging.warehouse import aggregates, delivery_times, failures, schema, views
from tests.helpers.postgres import create_database

T0 = pendulum.datetime(2026, 3, 2, 23, 30, tz="UTC")  # half an hour before a UTC day ends
VENDORS = ("teleprom", "wavy")
TEMPLATES = ("promo", "aviso", None)


def funnel_rows(warehouse, sql: str) -> Counter:
    """The funnel's rows as comparable tuples (SQLite days are text, PostgreSQL's dates)."""
    with warehouse.engine.connect() as conn:
        rows = conn.execute(sa.text(sql)).all()
    return Counter(tuple(str(v) if i == 3 else (int(v) if i > 3 else v) for i, v in enumerate(r)) for r in rows)


def as_text(row) -> tuple[str, ...]:
    """A row as comparable text; SQLite's REAL rounded (0.005 × 6 and six 0.005 added differ in the 17th digit)."""
    return tuple(str(round(v, 6) if isinstance(v, float) else v) for v in row)


def campaign_rows(warehouse, sql: str) -> list[tuple]:
    with warehouse.engine.connect() as conn:
        return sorted(as_text(r) for r in conn.execute(sa.text(sql)).all())


#: ``report_time_to_deliver`` before migration 12 (each send's events joined twice): the reference.
TIME_TO_DELIVER_V5 = """SELECT o.vendor, o.message_key, date(o.accepted_at) AS day, {seconds} AS seconds_to_deliver
FROM outbound_messages o
JOIN message_status_events e ON e.message_key = o.message_key AND e.status IN ('delivered', 'read')
JOIN message_status_events a ON a.message_key = o.message_key AND a.status <> 'unknown'
WHERE o.accepted_at IS NOT NULL
GROUP BY o.vendor, o.message_key, o.accepted_at"""


def assert_counts_match(warehouse) -> None:
    kept = funnel_rows(warehouse, "SELECT * FROM report_delivery_funnel")
    assert kept == funnel_rows(warehouse, views.delivery_funnel_over_ledger(warehouse.dialect))
    dialect = warehouse.dialect
    seconds = views.seconds_between(views.least("o.accepted_at", "MIN(a.event_at)", dialect), "MIN(e.event_at)", dialect)
    delivered = campaign_rows(warehouse, TIME_TO_DELIVER_V5.format(seconds=seconds))
    assert campaign_rows(warehouse, "SELECT * FROM report_time_to_deliver") == delivered
    with warehouse.engine.connect() as conn:
        assert delivery_times.check(conn) == []
    with warehouse.engine.connect() as conn:  # the campaign page's query of one file's sends: the same rows
        page = sa.text(views.time_to_deliver(dialect, "o.file_sha256 = :sha"))
        shas = conn.execute(sa.text("SELECT DISTINCT file_sha256 FROM outbound_messages WHERE file_sha256 IS NOT NULL"))
        by_file = sorted(as_text(r) for (sha,) in shas.all() for r in conn.execute(page, {"sha": sha}))
        files = sa.text("SELECT message_key FROM outbound_messages WHERE file_sha256 IS NOT NULL")
        in_files = {key for (key,) in conn.execute(files)}
    assert by_file == [row for row in delivered if row[1] in in_files]
    with warehouse.begin() as conn:  # every file a campaign, so the campaigns view shows each one
        for sha, vendor in conn.execute(
            sa.text(
                "SELECT DISTINCT o.file_sha256, o.vendor FROM outbound_messages o WHERE o.file_sha256 IS NOT NULL "
                "AND NOT EXISTS (SELECT 1 FROM campaign_files c WHERE c.file_sha256 = o.file_sha256)"
            )
        ).all():
            conn.execute(
                schema.campaign_files.insert().values(
                    campaign_id=sha[:16], file_sha256=sha, name=sha[:8], vendor=vendor, folder="f", source="drop",
                    created_by="test", created_at=T0, state="loaded",
                )
            )
    [old] = campaign_views.view_statements_v9(warehouse.dialect)
    # today's counts leave staged rows out (a file still being read is not yet messages; views.py)
    unstaged = "(SELECT * FROM outbound_messages WHERE state <> 'staged') o"
    over_ledger = old.removeprefix("CREATE VIEW campaigns AS").replace("outbound_messages o", unstaged)
    assert campaign_rows(warehouse, "SELECT * FROM campaigns") == campaign_rows(warehouse, over_ledger)
    # the page reads the view's query for its campaigns alone: the same rows
    with warehouse.engine.connect() as conn:
        files = [r.file_sha256 for r in conn.execute(sa.select(schema.campaign_files.c.file_sha256))]
        some = sa.text(campaign_views.campaigns_query(warehouse.dialect, some_files=True))
        some = some.bindparams(sa.bindparam("files", expanding=True))
        alone = sorted(as_text(r) for f in files for r in conn.execute(some, {"files": [f]}))
        assert alone == campaign_rows(warehouse, "SELECT * FROM campaigns")
    failed = views.FAILURE_REASONS_OVER_LEDGER
    assert campaign_rows(warehouse, "SELECT * FROM report_failure_reasons") == campaign_rows(warehouse, failed)
    skipped = views.suppressed_rows_over_ledger(dialect)
    assert campaign_rows(warehouse, "SELECT * FROM report_suppressed_rows") == campaign_rows(warehouse, skipped)
    with warehouse.begin() as conn:
        assert aggregates.check(conn) == []
        assert answers.check(conn) == []
        assert failures.check(conn) == []
        assert views.skipped_counts(dialect).check(conn) == []
        in_doubt = conn.execute(sa.text("SELECT COUNT(*) FROM outbound_messages WHERE state = 'unknown'")).scalar_one()
        assert queries.count_unknown(conn) == in_doubt


def ledger_row(key: str, vendor: str, sha: str, created_at: pendulum.DateTime, rnd: random.Random) -> dict:
    template = rnd.choice(TEMPLATES)
    return {
        "message_key": key,
        "vendor": vendor,
        "file_sha256": sha,
        "phone": f"54935152{rnd.randrange(10**5):05d}",
        "account_id": rnd.choice((1, 2, None)),
        "template_name": template,
        "content_type": None if template else rnd.choice(("text", "image")),
        "state": MessageState.STAGED.value,
        "created_at": created_at,
        "updated_at": created_at,
        "send_at": None,
    }


def random_history(warehouse, seed: int, steps: int = 25) -> None:
    """``steps`` random writer moves, each through the code the pipeline, the ingest and the page use."""
    rnd = random.Random(seed)
    files = 0
    prices = {"marketing": Decimal("0.0625"), "utility": Decimal("0.01")}
    if rnd.random() < 0.7:  # else a category without a price and no default: the cost is NULL
        prices["default"] = Decimal("0.02")
    pricing.sync_prices(warehouse, {"teleprom": prices, "wavy": {"default": Decimal("0.005")}}, "USD")
    for _ in range(steps):
        vendor = rnd.choice(VENDORS)
        ledger = Ledger(warehouse, vendor)
        now = T0.add(minutes=rnd.randrange(90))
        op = rnd.choice((
            "load", "load", "claim", "claim", "claim", "events", "cancel", "unknown", "release", "delete", "rollback",
            "reply", "reply", "reply",
            "opt_out", "opt_out", "forget", "resolve", "reject",
        ))
        if op == "load":
            files += 1
            sha = hashlib.sha256(f"{seed}-{files}".encode()).hexdigest()
            rows = [ledger_row(f"{sha[:8]}-{files}-{i}", vendor, sha, now, rnd) for i in range(rnd.randrange(1, 40))]
            with warehouse.begin() as conn:
                ledger.stage(conn, rows)
            if rnd.random() < 0.15:
                continue  # killed mid-file: its staged rows committed, counted nowhere until promoted
            with warehouse.begin() as conn:
                if rnd.random() < 0.2:
                    ledger.discard_file(conn, sha)  # a failed file: staged rows deleted
                else:
                    ledger.promote_file(conn, sha, now, window_open=rnd.random() < 0.8)
        elif op == "claim":  # a send run of a vendor with work waiting
            waiting = warehouse.rows(sa.select(OUTBOUND.c.vendor).distinct().where(OUTBOUND.c.state == MessageState.PENDING.value))
            if waiting:
                ledger = Ledger(warehouse, rnd.choice(sorted(r["vendor"] for r in waiting)))
            owner = f"run-{rnd.randrange(1000)}"
            claimed = ledger.claim(owner, rnd.randrange(1, 30))
            states = (MessageState.ACCEPTED,) * 3 + (MessageState.REJECTED, MessageState.FAILED, MessageState.PENDING)
            outcomes = [SendOutcome(r.message_key, rnd.choice(states), vendor_message_id=f"v-{r.message_key}") for r in claimed]
            ledger.record(outcomes[: rnd.randrange(len(outcomes) + 1)], now, owner)  # the rest: left in flight
        elif op == "events":
            with warehouse.engine.connect() as conn:
                accepted = conn.execute(
                    sa.select(OUTBOUND.c.vendor, OUTBOUND.c.vendor_message_id).where(
                        OUTBOUND.c.state == MessageState.ACCEPTED, OUTBOUND.c.vendor_message_id.is_not(None)
                    )
                ).all()
            chosen = rnd.sample(accepted, min(len(accepted), rnd.randrange(1, 20))) if accepted else []
            def cost() -> EventCost | None:  # Meta's pricing with some events: priced, unpriced, not billable
                if rnd.random() < 0.5:
                    return None
                category = rnd.choice(("Marketing", "utility", "authentication", None))
                return EventCost(billable=rnd.choice((True, True, False, None)), pricing_category=category)

            def reason(status: str) -> str | None:  # a failure with the vendor's error, or only its status text
                return rnd.choice((None, "131047: Re-engagement message", "131026: Undeliverable")) if status == "failed" else None

            events = [
                StatusEvent(v, vid, status, rnd.choice((status.upper(), status)), now.add(seconds=rnd.randrange(-60, 600)),
                            "webhook", cost=cost(), reason=reason(status))
                for v, vid in chosen
                for status in rnd.sample(("sent", "delivered", "read", "failed"), rnd.randrange(1, 3))
            ]
            with warehouse.begin() as conn:
                apply_status_events(warehouse, conn, events)
        elif op == "cancel":  # what campaigns.records.cancel does to a file's waiting rows
            with warehouse.begin() as conn:
                shas = conn.execute(sa.select(OUTBOUND.c.file_sha256).distinct().where(OUTBOUND.c.vendor == vendor)).scalars().all()
                if shas:
                    one_file = OUTBOUND.c.file_sha256 == rnd.choice(sorted(shas))
                    conn.execute(move((MessageState.PENDING, MessageState.SCHEDULED), MessageState.CANCELLED, one_file, updated_at=now))
        elif op == "unknown":  # a run died mid-request: its rows in doubt
            with warehouse.begin() as conn:
                conn.execute(move(MessageState.SENDING, MessageState.UNKNOWN, updated_at=now))
        elif op == "release":
            keys = [k for page in ledger.unknown_keys() for k in page]
            ledger.release_unknown(rnd.sample(keys, len(keys) // 2), now)
        elif op == "delete":  # an analyst's clean-up
            with warehouse.begin() as conn:
                conn.execute(sa.text("DELETE FROM outbound_messages WHERE message_key LIKE :p"), {"p": f"%-{rnd.randrange(10)}"})
        elif op == "reply":  # a subscriber writes (replies of the campaigns view): to a message sent, or to
            # one not yet accepted (its acceptance later must find the reply), from a phone of 54 9… or +54…
            with warehouse.begin() as conn:
                sent = conn.execute(
                    sa.select(OUTBOUND.c.vendor, OUTBOUND.c.vendor_message_id, OUTBOUND.c.phone)
                    .where(OUTBOUND.c.accepted_at.is_not(None) if rnd.random() < 0.7 else sa.true())
                ).all()
                for v, vid, phone in rnd.sample(sent, min(len(sent), 4)):
                    conn.execute(
                        schema.inbound_messages.insert().values(
                            vendor=v, vendor_message_id=f"in-{rnd.randrange(10**9)}", text="hola",
                            from_phone=rnd.choice((phone, f"+{phone}", phone.replace("549", "54", 1))),
                            received_at=now.add(minutes=rnd.randrange(-30, 60)), recorded_at=now, source="webhook",
                            in_reply_to=(vid or f"v-{rnd.randrange(10)}") if rnd.random() < 0.5 else None,
                        )
                    )
        elif op == "opt_out":  # a subscriber opts out (keyword, vendor status) or is listed (not an opt-out)
            with warehouse.begin() as conn:
                phones = conn.execute(
                    sa.select(OUTBOUND.c.phone).distinct().where(OUTBOUND.c.accepted_at.is_not(None) if rnd.random() < 0.7 else sa.true())
                ).scalars().all()
                for phone in rnd.sample(phones, min(len(phones), 3)):
                    conn.execute(
                        schema.suppressions.insert().values(
                            phone=phone.replace("549", "54", 1), scope="all", evidence=f"e-{rnd.randrange(10**9)}",
                            source=rnd.choice(("keyword", "vendor_status", "registry:no_llame")),
                            since=now.add(minutes=rnd.randrange(-10, 90)), created_at=now, created_by="test",
                        )
                    )
        elif op == "forget":  # an analyst deletes inbound rows, suppressions or status events, or moves one in time
            with warehouse.begin() as conn:
                table, key, at = rnd.choice((("inbound_messages", "vendor_message_id", "received_at"),
                                             ("suppressions", "evidence", "since"),
                                             ("message_status_events", "vendor_message_id", "event_at")))
                if rnd.random() < 0.5:
                    conn.execute(sa.text(f"DELETE FROM {table} WHERE {key} LIKE :p"), {"p": f"%{rnd.randrange(10)}"})
                else:
                    moved = sa.text(f"UPDATE {table} SET {at} = :at WHERE {at} = (SELECT MIN({at}) FROM {table})")
                    moved = moved.bindparams(sa.bindparam("at", type_=schema.UtcDateTime()))
                    conn.execute(moved, {"at": now.add(hours=rnd.choice((-30, 1, 30)))})
        elif op == "reject":  # ingest rejects rows of a file: some for consent (report_suppressed_rows), some not
            insert = postgresql.insert if warehouse.dialect == "postgresql" else sqlite.insert
            with warehouse.begin() as conn:
                shas = conn.execute(sa.select(OUTBOUND.c.file_sha256).distinct().where(OUTBOUND.c.file_sha256.is_not(None)))
                sha = rnd.choice(sorted(shas.scalars().all()) or ["f" * 64])
                if rnd.random() < 0.8:  # else a file not recorded (its rejects count nowhere, its sends under no file)
                    conn.execute(insert(schema.drop_files).on_conflict_do_nothing(), {
                        "file_sha256": sha, "vendor": vendor, "folder": "f", "path": f"archive/f/{sha[:8]}.csv",
                        "size_bytes": 1, "rows_total": 1, "rows_valid": 1, "rows_rejected": 0, "state": "done",
                        "claimed_at": now.subtract(days=rnd.choice((0, 30))),
                    })
                reasons = ("suppressed: keyword (replied 'baja' (es))", "suppressed: registry:no_llame",
                           "phone missing", "duplicate row in the file")
                conn.execute(insert(schema.drop_rejects).on_conflict_do_nothing(), [
                    {"file_sha256": sha, "row_number": rnd.randrange(100), "reason": rnd.choice(reasons),
                     "raw_row": "{}", "rejected_at": now}
                    for _ in range(rnd.randrange(1, 5))
                ])
        elif op == "resolve":  # a send in doubt found accepted at the vendor: accepted when it was sent
            with warehouse.begin() as conn:
                conn.execute(
                    sa.update(OUTBOUND)
                    .where(OUTBOUND.c.state == MessageState.UNKNOWN.value)
                    .values(state=MessageState.ACCEPTED.value, accepted_at=OUTBOUND.c.updated_at,
                            vendor_message_id=sa.func.coalesce(OUTBOUND.c.vendor_message_id, "v-" + OUTBOUND.c.message_key))
                )
        else:  # a writer that fails half-way writes no row and no count
            with pytest.raises(RuntimeError), warehouse.begin() as conn:
                conn.execute(sa.update(OUTBOUND).values(state=MessageState.FAILED.value))
                raise RuntimeError("killed")


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_the_funnel_over_counts_equals_the_funnel_over_the_ledger(warehouse, seed):
    random_history(warehouse, seed)
    assert_counts_match(warehouse)
    with warehouse.begin() as conn:
        aggregates.compact(conn)
        failures.COUNTS.fold(conn)
    assert_counts_match(warehouse)
    random_history(warehouse, seed + 100, steps=10)  # counts keep after a compaction
    assert_counts_match(warehouse)


def load_file(warehouse, vendor: str, sha: str, rows: int, seed: int = 0) -> None:
    rnd = random.Random(seed)
    with warehouse.begin() as conn:
        ledger = Ledger(warehouse, vendor)
        ledger.stage(conn, [ledger_row(f"{sha[:6]}-{i}", vendor, sha, T0, rnd) for i in range(rows)])
        ledger.promote_file(conn, sha, T0, window_open=True)


def test_a_count_broken_by_hand_is_found_and_repaired(warehouse):
    load_file(warehouse, "wavy", "a" * 64, 30)
    random_history(warehouse, 7, steps=10)
    with warehouse.begin() as conn:
        conn.execute(sa.text("UPDATE message_counts SET messages = messages + 5 WHERE id = (SELECT MIN(id) FROM message_counts)"))
        conn.execute(sa.text("DELETE FROM message_counts WHERE id = (SELECT MAX(id) FROM message_counts)"))
    with warehouse.begin() as conn:
        drifts = aggregates.check(conn)
    assert 1 <= len(drifts) <= 2 and any(d.missing == -5 for d in drifts)
    assert funnel_rows(warehouse, "SELECT * FROM report_delivery_funnel") != funnel_rows(
        warehouse, views.delivery_funnel_over_ledger(warehouse.dialect)
    )
    assert aggregates.maintain(warehouse)["keys_repaired"] == len(drifts)
    assert_counts_match(warehouse)
    assert aggregates.maintain(warehouse) == {"keys_drifted": 0, "keys_repaired": 0, "rows_compacted": 0}


def test_migrations_11_to_16_count_the_rows_already_there(warehouse, tmp_path, request):
    from latam_messaging.warehouse.db import Warehouse
    from latam_messaging.warehouse.migrations import migrate

    if warehouse.dialect == "sqlite":
        old = Warehouse.from_url(f"sqlite:///{tmp_path / 'v10.db'}")
    else:
        server = request.getfixturevalue("postgres_server")
        old = Warehouse.from_url(create_database(server, f"v10_{tmp_path.name.lower()[-20:]}"))
    assert migrate(old.engine, upto=10)[-1] == 10
    load_file(old, "wavy", "b" * 64, 50)
    random_history(old, 11, steps=12)
    assert migrate(old.engine, upto=11) == [11]
    with old.begin() as conn:
        assert aggregates.check(conn) == []
    random_history(old, 12, steps=8)  # replies and opt-outs written before any trigger kept their pairs
    # 12: indexes only, the same numbers; 13: the answered sends found from the rows already there;
    # 14: the failed messages per reason, from the events already there; 15: the rows skipped for consent;
    # 16: each send's first event and delivery, from the events already there
    assert migrate(old.engine, upto=16) == [12, 13, 14, 15, 16]
    assert_counts_match(old)
    assert migrate(old.engine)[0] == 17  # later migrations leave the counts as they are
    assert_counts_match(old)
    random_history(old, 13, steps=8)
    assert_counts_match(old)
    old.engine.dispose()


def test_two_writers_at_once_lose_no_count(warehouse):
    """Two send runs of the same vendor claim, answer and load files at once (PostgreSQL: concurrent
    inserts of counts; SQLite: writers queue on its lock): every count still equals the ledger."""
    for n in range(4):
        load_file(warehouse, "teleprom", f"{n:064d}", 200, seed=n)
    errors: list[BaseException] = []

    def run(name: str, seed: int) -> None:
        try:
            rnd = random.Random(seed)
            ledger = Ledger(warehouse, "teleprom")
            for step in range(12):
                claimed = ledger.claim(name, 40)
                answers = (MessageState.ACCEPTED, MessageState.REJECTED, MessageState.PENDING)
                ledger.record([SendOutcome(r.message_key, rnd.choice(answers)) for r in claimed], T0, name)
                load_file(warehouse, "teleprom", hashlib.sha256(f"{seed}-{step}".encode()).hexdigest(), 20, seed=seed + step)
        except BaseException as error:  # noqa: BLE001 - reported by the test below
            errors.append(error)

    threads = [threading.Thread(target=run, args=(f"run-{i}", 1000 * (i + 1))) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors
    assert_counts_match(warehouse)


def test_the_pages_time_filters_use_their_indexes(warehouse):
    """EXPLAIN on both databases: the funnel's days come from ``ix_message_counts_key``, the files of the
    last days from ``ix_drop_files_claimed_at`` (PostgreSQL told not to prefer a scan of these tiny tables)."""
    since = T0.subtract(days=14)
    funnel = "SELECT vendor, day, SUM(messages) FROM message_counts WHERE day >= :day GROUP BY vendor, day"
    files = "SELECT file_sha256 FROM drop_files WHERE claimed_at >= :since"
    day = since.date().isoformat() if warehouse.dialect == "sqlite" else since.date()
    bound = {"day": day, "since": since.naive() if warehouse.dialect == "sqlite" else since}
    with warehouse.engine.connect() as conn:
        explain = "EXPLAIN QUERY PLAN " if warehouse.dialect == "sqlite" else "EXPLAIN "
        if warehouse.dialect == "postgresql":
            conn.execute(sa.text("SET enable_seqscan = off"))
        plans = [
            " ".join(str(part) for row in conn.execute(sa.text(explain + sql), bound) for part in row)
            for sql in (funnel, files)
        ]
    assert "message_counts_key" in plans[0] and "ix_drop_files_claimed_at" in plans[1], plans


def test_the_pages_few_rows_use_their_indexes(warehouse):
    """EXPLAIN on both databases (migration 12): the sends waiting for a decision, refused at send and skipped
    at send are read from their partial indexes, a campaign's first and last acceptance from
    ``ix_outbound_file`` — none of them scans the ledger."""
    first = (
        "SELECT (SELECT MIN(a.accepted_at) FROM outbound_messages a WHERE a.file_sha256 = c.file_sha256 "
        "AND a.accepted_at IS NOT NULL) FROM campaign_files c"
    )
    expected = {
        "SELECT message_key FROM outbound_messages WHERE state = :s ORDER BY updated_at, message_key LIMIT 50":
            "ix_outbound_unknown",
        # failure_counts' check of the sends refused (report_failure_reasons reads the counts: test_failures.py)
        "SELECT vendor, COALESCE(vendor_answer, error) FROM outbound_messages o WHERE o.state IN ('rejected', 'failed')":
            "ix_outbound_refused",
        # skipped_counts' check of the rows suppressed at claim (the view reads the counts: test_skipped_counts.py)
        "SELECT r.file_sha256, r.vendor, r.error FROM outbound_messages r WHERE r.state = 'suppressed'": "ix_outbound_suppressed",
        first: "ix_outbound_file",
        "SELECT * FROM report_unrecognised_statuses": "ix_status_events_unknown",  # migration 14
    }
    with warehouse.engine.connect() as conn:
        explain = "EXPLAIN QUERY PLAN " if warehouse.dialect == "sqlite" else "EXPLAIN "
        if warehouse.dialect == "postgresql":
            conn.execute(sa.text("SET enable_seqscan = off"))
        for sql, index in expected.items():
            plan = " ".join(str(part) for row in conn.execute(sa.text(explain + sql), {"s": "unknown"}) for part in row)
            assert any(name in plan for name in index.split("|")), (sql, plan)
        # the page's count of sends in doubt, as it runs: from the counts, not the ledger
        ran: list[tuple] = []

        def record(conn, cursor, statement, parameters, *rest) -> None:
            ran.append((statement, parameters))

        sa.event.listen(conn, "before_cursor_execute", record)
        queries.count_unknown(conn)
        sa.event.remove(conn, "before_cursor_execute", record)
        statement, parameters = ran[-1]
        plan = " ".join(str(part) for row in conn.exec_driver_sql(explain + statement, parameters) for part in row)
        assert "outbound_messages" not in plan and "message_counts" in plan, plan
