"""The warehouse layer on SQLite and PostgreSQL: migrations, upserts, UTC timestamps."""

from __future__ import annotations

import datetime as dt

import pendulum
import pytest
import sqlalchemy as sa

from latam_messaging.warehouse import schema
from latam_messaging.warehouse.migrations import MIGRATIONS
from tests.helpers.postgres import create_database


def test_migrations_are_recorded_and_run_once(warehouse):
    assert warehouse.migrate() == []  # the fixture already applied them
    versions = warehouse.rows(schema.schema_migrations)
    assert [v["version"] for v in versions] == [m.version for m in MIGRATIONS]
    names = set(sa.inspect(warehouse.engine).get_table_names())
    for table in (
        "teleprom_templates",
        "teleprom_accounts",
        "drop_files",
        "drop_rejects",
        "outbound_messages",
        "message_status_events",
        "raw_webhook_events",
        "inbound_messages",
        "itd_credit_snapshots",
        "sim_swap_checks",
        "number_lookups",
    ):
        assert table in names


def test_timestamps_are_stored_and_read_as_utc(warehouse):
    santiago = pendulum.datetime(2020, 4, 16, 10, 26, 13, tz="America/Santiago")
    with warehouse.begin() as conn:
        conn.execute(schema.itd_credit_snapshots.insert().values(taken_at=santiago, credits=5))
    [row] = warehouse.rows(schema.itd_credit_snapshots)
    assert row["taken_at"] == santiago and row["taken_at"].utcoffset() == dt.timedelta(0)
    with pytest.raises(sa.exc.StatementError, match="naive datetime"), warehouse.begin() as conn:
        conn.execute(schema.itd_credit_snapshots.insert().values(taken_at=dt.datetime(2020, 1, 1), credits=1))


def test_upsert_inserts_then_updates_and_insert_new_keeps_the_first(warehouse):
    now = pendulum.now("UTC")
    rows = [
        {
            "account_id": i,
            "name": f"a{i}",
            "source_number": "1",
            "active": True,
            "first_seen_at": now,
            "last_seen_at": now,
        }
        for i in range(12_000)  # more than one bulk chunk
    ]
    with warehouse.begin() as conn:
        warehouse.upsert(conn, schema.teleprom_accounts, rows, keys=["account_id"])
        warehouse.upsert(conn, schema.teleprom_accounts, [{**rows[0], "name": "renamed"}], keys=["account_id"])
        warehouse.insert_new(conn, schema.teleprom_accounts, [{**rows[1], "name": "ignored"}], keys=["account_id"])
    assert warehouse.count(schema.teleprom_accounts) == 12_000
    names = {
        r["account_id"]: r["name"]
        for r in warehouse.rows(sa.select(schema.teleprom_accounts).where(schema.teleprom_accounts.c.account_id < 2))
    }
    assert names == {0: "renamed", 1: "a1"}


def test_a_failed_transaction_leaves_nothing(warehouse):
    now = pendulum.now("UTC")
    with pytest.raises(RuntimeError), warehouse.begin() as conn:
        conn.execute(schema.itd_credit_snapshots.insert().values(taken_at=now, credits=1))
        raise RuntimeError("crash half-way")
    assert warehouse.count(schema.itd_credit_snapshots) == 0


def _shape(engine: sa.Engine) -> dict[str, object]:
    """Tables with their column names and types, and views, as the database reports them."""
    inspector = sa.inspect(engine)
    tables = {
        name: sorted((c["name"], str(c["type"]).split("(")[0]) for c in inspector.get_columns(name))
        for name in inspector.get_table_names()
    }
    return {"tables": tables, "views": sorted(inspector.get_view_names())}


def test_a_warehouse_made_at_v1_upgrades_to_the_shape_of_a_fresh_one(warehouse, tmp_path, postgres_server):
    """Applied migrations are frozen: v1 → head ends where a fresh head does, and where schema.py says."""
    from latam_messaging.warehouse.migrations import migrate

    if warehouse.dialect == "sqlite":
        old = sa.create_engine(f"sqlite:///{tmp_path / 'v1.db'}")
    else:
        old = sa.create_engine(create_database(postgres_server, f"v1_{tmp_path.name.lower()[-20:]}"))
    assert migrate(old, upto=1) == [1]
    now = pendulum.now("UTC")
    with old.begin() as conn:  # a v1 warehouse with data in it
        conn.execute(
            sa.text(
                "INSERT INTO outbound_messages (message_key, vendor, phone, state, created_at, updated_at) "
                "VALUES ('m-0000000000000000-1', 'wavy', '5491100000000', 'pending', :t, :t)"
            ),
            {"t": now.naive() if warehouse.dialect == "sqlite" else now},
        )
    assert migrate(old) == [m.version for m in MIGRATIONS][1:]
    upgraded, fresh = _shape(old), _shape(warehouse.engine)
    assert upgraded == fresh
    for table in schema.metadata.sorted_tables:  # schema.py describes what the migrations build
        assert sorted(c.name for c in table.columns) == [c for c, _ in fresh["tables"][table.name]], table.name
    with old.connect() as conn:
        assert conn.execute(sa.text("SELECT state FROM outbound_messages")).scalar_one() == "pending"
    old.dispose()


def test_a_bulk_load_keeps_every_value_and_the_first_row_of_each_key(warehouse):
    """``bulk_insert_new`` (COPY on PostgreSQL, executemany on SQLite): JSON, text with quotes, tabs,
    newlines and backslashes, None, aware timestamps in any zone; keys already stored or repeated in
    the load keep their first row; two loads in one transaction both land."""
    T = schema.outbound_messages
    when = pendulum.datetime(2026, 3, 2, 9, 30, 15, tz="America/Argentina/Buenos_Aires")
    utc = dt.datetime(2026, 3, 2, 12, 30, 15, tzinfo=dt.UTC)
    base = {"vendor": "wavy", "state": "staged", "created_at": when, "updated_at": when}
    with warehouse.begin() as conn:
        conn.execute(T.insert().values(message_key="k-old", phone="1", **base))
    odd = 'tab\tnew\nline "quoted" back\\slash ñ \\N'
    first = [
        {"message_key": "k-old", "phone": "2", "params": None, "content": None, **base},
        {"message_key": "k-1", "phone": "3", "params": ["a", odd, ""], "content": odd, **base},
        {"message_key": "k-1", "phone": "4", "params": ["later"], "content": "later", **base},
        {"message_key": "k-2", "phone": "5", "params": [], "content": "", **base},
    ]
    second = [{"message_key": "k-3", "phone": "6", "params": None, "content": "\\.", **base}]
    with warehouse.begin() as conn:
        warehouse.bulk_insert_new(conn, T, first, keys=["message_key"])
        warehouse.bulk_insert_new(conn, T, second, keys=["message_key"])
    query = sa.select(T.c.message_key, T.c.phone, T.c.params, T.c.content, T.c.created_at).order_by(T.c.message_key)
    rows = [tuple(r.values()) for r in warehouse.rows(query)]
    assert rows == [
        ("k-1", "3", ["a", odd, ""], odd, utc),
        ("k-2", "5", [], "", utc),
        ("k-3", "6", None, "\\.", utc),
        ("k-old", "1", None, None, utc),
    ]


def _update_phone_and_time(row):
    T = schema.outbound_messages
    return (
        sa.update(T)
        .where(T.c.message_key == row["k"], T.c.state == "pending")
        .values(phone=row["p"], content=row["c"], send_at=row["t"])
    )


_UPDATE_TYPES = {"k": sa.String(), "p": sa.String(), "c": sa.Text(), "t": schema.UtcDateTime()}


def test_update_each_writes_each_rows_values_in_chunks_and_counts_what_it_updated(warehouse, monkeypatch):
    """``db.update_each`` (one statement per chunk over typed arrays on PostgreSQL, executemany on
    SQLite): each row gets its own values — odd text, NULLs, aware times in any zone, a column NULL in a
    whole chunk —; a row the statement's other conditions exclude, or a key not stored, is left alone
    and not counted; several chunks land in one transaction."""
    from latam_messaging.warehouse import db

    monkeypatch.setattr(db, "BULK_CHUNK", 3)
    T = schema.outbound_messages
    when = pendulum.datetime(2026, 3, 2, 9, 30, 15, tz="America/Argentina/Buenos_Aires")
    base = {"vendor": "wavy", "phone": "0", "created_at": when, "updated_at": when}
    with warehouse.begin() as conn:
        conn.execute(T.insert(), [{"message_key": f"k-{i}", "state": "pending", **base} for i in range(7)])
        conn.execute(T.insert().values(message_key="k-sent", state="accepted", **base))
    odd = 'tab\tnew\nline "quoted" back\\slash ñ \\N'
    rows = [{"k": f"k-{i}", "p": str(i), "c": None, "t": None} for i in range(3)]  # a chunk of NULLs
    rows += [{"k": f"k-{i}", "p": str(i), "c": f"{odd} {i}", "t": when.add(minutes=i)} for i in range(3, 7)]
    rows += [{"k": "k-sent", "p": "x", "c": "x", "t": None}, {"k": "k-absent", "p": "x", "c": "x", "t": None}]
    with warehouse.begin() as conn:
        assert db.update_each(conn, rows, _UPDATE_TYPES, _update_phone_and_time, ("k", T.c.message_key)) == 7
    query = sa.select(T.c.message_key, T.c.phone, T.c.content, T.c.send_at).order_by(T.c.message_key)
    got = {r["message_key"]: (r["phone"], r["content"], r["send_at"]) for r in warehouse.rows(query)}
    utc = when.in_timezone("UTC")
    assert got == {
        **{f"k-{i}": (str(i), None, None) for i in range(3)},
        **{f"k-{i}": (str(i), f"{odd} {i}", utc.add(minutes=i)) for i in range(3, 7)},
        "k-sent": ("0", None, None),
    }
    with warehouse.begin() as conn:
        assert db.update_each(conn, [], _UPDATE_TYPES, _update_phone_and_time, ("k", T.c.message_key)) == 0


def test_update_each_refuses_two_rows_for_one_key(warehouse):
    """Which of two rows for one key wins would depend on the database's plan: refused, nothing written."""
    from latam_messaging.warehouse import db

    T = schema.outbound_messages
    now = pendulum.now("UTC")
    with warehouse.begin() as conn:
        conn.execute(T.insert().values(message_key="k", vendor="wavy", phone="0", state="pending", created_at=now, updated_at=now))
    twice = [{"k": "k", "p": "1", "c": None, "t": None}, {"k": "k", "p": "2", "c": None, "t": None}]
    with pytest.raises(ValueError, match="message_key"), warehouse.begin() as conn:
        db.update_each(conn, twice, _UPDATE_TYPES, _update_phone_and_time, ("k", T.c.message_key))
    assert warehouse.rows(sa.select(T.c.phone)) == [{"phone": "0"}]


def test_update_each_refuses_values_named_like_columns(warehouse):
    """SQLAlchemy's executemany sets a column from a parameter of its name, whatever the statement says."""
    from latam_messaging.warehouse import db

    T = schema.outbound_messages
    with pytest.raises(ValueError, match="phone"), warehouse.begin() as conn:
        db.update_each(
            conn, [{"k": "k", "phone": "1"}], {"k": sa.String(), "phone": sa.String()},
            lambda row: sa.update(T).where(T.c.message_key == row["k"]).values(content=row["phone"]),
            ("k", T.c.message_key),
        )


def test_read_only_refuses_writes_and_hands_the_connection_back_writable(warehouse):
    """``Warehouse.read_only()``: the database itself refuses a write in it, and the pooled connection
    it used is writable for its next user (a one-connection pool: the next user gets that very one)."""
    from latam_messaging.warehouse.db import Warehouse

    one = Warehouse(sa.create_engine(warehouse.engine.url, poolclass=sa.pool.QueuePool, pool_size=1, max_overflow=0))
    t = schema.itd_credit_snapshots
    try:
        with pytest.raises(sa.exc.DBAPIError, match=r"(?i)read-?only"):
            with one.read_only() as conn:
                used = conn.connection.dbapi_connection
                assert conn.execute(sa.select(sa.func.count()).select_from(t)).scalar_one() == 0  # reads work
                conn.execute(t.insert().values(taken_at=pendulum.now("UTC"), credits=1))
        with one.begin() as conn:
            assert conn.connection.dbapi_connection is used
            conn.execute(t.insert().values(taken_at=pendulum.now("UTC"), credits=2))
        with one.read_only() as conn:  # a read-only block that ends normally hands it back writable too
            assert conn.execute(sa.select(t.c.credits)).scalars().all() == [2]
        with one.begin() as conn:
            assert conn.connection.dbapi_connection is used
            conn.execute(t.insert().values(taken_at=pendulum.now("UTC"), credits=3))
        assert one.count(t) == 2
        if warehouse.dialect == "postgresql":  # interactive (the page): no JIT in it, the default after it
            with one.engine.connect() as conn:
                default = conn.exec_driver_sql("SHOW jit").scalar_one()
            with one.read_only(interactive=True) as conn:
                assert conn.exec_driver_sql("SHOW jit").scalar_one() == "off"
            with one.engine.connect() as conn:
                assert conn.connection.dbapi_connection is used
                assert conn.exec_driver_sql("SHOW jit").scalar_one() == default
    finally:
        one.engine.dispose()


@pytest.mark.parametrize("warehouse", ["postgres"], indirect=True)  # SQLite keeps no plan across statements
def test_a_statement_run_many_times_is_planned_for_its_values_each_time(warehouse):
    """psycopg 3 prepares a statement run five times on a connection; PostgreSQL may then keep one
    generic plan for it, chosen from the statistics of that moment. The status application's lookup of
    stored events, first run on an empty table, kept scanning it as it grew (0.15 → 0.4 s a lookup in
    one webhook_ingest run of 100,000 events): no statement reuses a generic plan."""
    assert warehouse.dialect == "postgresql"
    from latam_messaging.status import StatusEvent, _already_stored

    events = schema.message_status_events
    at = pendulum.datetime(2026, 11, 1, tz="UTC")
    found = 0
    with warehouse.engine.connect() as conn:
        for round_ in range(12):  # each lookup's statement the same; the table grows between them
            batch = [StatusEvent("teleprom", f"v-{round_}-{i}", "delivered", "delivered", at, "webhook")
                     for i in range(50)]
            found += len(_already_stored(conn, [*batch, StatusEvent("teleprom", "v-0-0", "delivered",
                                                                    "delivered", at, "webhook")]))
            conn.execute(events.insert(), [
                {"vendor": "teleprom", "vendor_message_id": e.vendor_message_id, "status": "delivered",
                 "raw_status": "delivered", "event_at": at, "source": "webhook", "recorded_at": at}
                for e in batch
            ])
        prepared, generic = conn.exec_driver_sql(
            "SELECT count(*), coalesce(sum(generic_plans), 0) FROM pg_prepared_statements"
        ).one()
        conn.rollback()
    assert found == 11  # the first event, found by every lookup after the first
    assert (prepared, generic) == (0, 0), f"{prepared} statement(s) prepared, {generic} execution(s) of a generic plan"


def test_in_values_finds_what_in_finds_and_postgresql_reads_it_by_index_as_one_array(warehouse):
    from latam_messaging.warehouse.db import in_values

    table = schema.suppressions
    at = pendulum.datetime(2026, 11, 1, tz="UTC")
    phones = [*(f"54911{i:08d}" for i in range(0, 200_000, 2)), "5491'1\"x"]
    with warehouse.begin() as conn:
        for start in range(0, len(phones), 20_000):
            conn.execute(table.insert(), [
                {"phone": p, "scope": "all", "source": "test", "evidence": "test", "since": at, "created_at": at,
                 "created_by": "test"} for p in phones[start : start + 20_000]
            ])
    wanted = [f"54911{i:08d}" for i in range(1000, 1500)] + ["5491'1\"x", "nothing"]

    def screen(conn, where):  # the consent screen's own shape
        return sa.select(table.c.phone).where(where, table.c.ended_at.is_(None), table.c.scope.in_(["all", "wavy"]))

    with warehouse.engine.connect() as conn:
        found = {r[0] for r in conn.execute(screen(conn, in_values(conn, table.c.phone, wanted)))}
        assert found == {f"54911{i:08d}" for i in range(1000, 1500, 2)} | {"5491'1\"x"}
        assert conn.execute(screen(conn, in_values(conn, table.c.phone, []))).all() == []
        if warehouse.dialect == "postgresql":
            query = screen(conn, in_values(conn, table.c.phone, wanted))
            expanded = query.compile(dialect=conn.dialect, compile_kwargs={"render_postcompile": True})
            assert len(expanded.params) == 3  # one array and the two scopes, not 502 phones

            def plan(q) -> str:
                text = str(q.compile(dialect=conn.dialect, compile_kwargs={"literal_binds": True}))
                return "\n".join(r[0] for r in conn.exec_driver_sql("EXPLAIN " + text.replace("%", "%%")))

            conn.exec_driver_sql("ANALYZE suppressions")
            as_array, as_list = plan(query), plan(screen(conn, table.c.phone.in_(wanted)))
            assert "Seq Scan" not in as_array and "Index" in as_array, as_array
            assert as_array.split("  (")[0] == as_list.split("  (")[0]  # the same access path as the IN list
