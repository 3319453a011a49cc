"""Would monthly partitions of ``message_status_events`` pay on PostgreSQL? Measured, not argued.

One throwaway cluster; the warehouse migrated; then two copies of the events table side by side, filled
with the same synthetic events (``--events``, three a message, spread evenly over ``--months`` months):

* ``ev_plain``: ``LIKE message_status_events INCLUDING ALL`` (today's table: its key, unique key and
  every index, partial ones included);
* ``ev_part``: the same columns ``PARTITION BY RANGE (event_at)``, one partition a month, the same
  indexes declared on the parent (the primary key becomes ``(id, event_at)``: a partitioned table's
  unique keys must hold the partition key; the events' own unique key already does).

No triggers on either: what is compared is the table's own cost. Then, alternating the two tables
``--rounds`` times, what the project does with the events (each a JSON line, seconds per round):

* ``by_message_key``: ``message_key = ANY(500 keys)``, ``--batches`` batches of keys spread over the
  whole history: how the status application, the time to deliver and the cost read events;
* ``by_vendor_id``: ``vendor = … AND vendor_message_id = ANY(500 ids)``: ``webhook_ingest``'s "already
  stored?" lookup;
* ``insert``: ``--inserts`` new events of the last month in batches of 1,000, ``ON CONFLICT DO NOTHING``
  on the unique key: ``webhook_ingest``'s write;
* ``month_count``: the events of one month counted (what a month-filtered reader would gain);
* ``drop_oldest_month`` (once, at the end): ``DELETE`` of the oldest month vs ``DETACH`` and ``DROP`` of
  its partition (what a retention policy on events would gain).

    .venv/bin/python scripts/bench_partitions.py --events 6000000
"""

from __future__ import annotations

import argparse
import json
import random
import re
import statistics
import sys
import time
from pathlib import Path

import pendulum

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "include"))

START = pendulum.datetime(2026, 1, 1, tz="UTC")


def _key(n: str) -> str:
    """SQL for message ``n``'s key, the loader's shape ``m-<16 hex>-<row>``."""
    return f"'m-' || substr(md5(({n})::text), 1, 16) || '-' || ({n})::text"


def _fill(cur, events: int, months: int) -> None:
    span = (START.add(months=months) - START).total_seconds()
    cur.execute(
        f"""
        INSERT INTO ev_plain (vendor, vendor_message_id, message_key, status, raw_status, event_at,
                              recorded_at, source)
        SELECT 'teleprom', 'wamid.' || md5((i / 3)::text), {_key('i / 3')},
               (ARRAY['sent', 'delivered', 'read'])[i %% 3 + 1], 'x',
               %(start)s + make_interval(secs => (i / 3) * %(step)s + (i %% 3) * 60),
               %(start)s + make_interval(secs => (i / 3) * %(step)s + (i %% 3) * 60 + 5), 'webhook'
        FROM generate_series(0, %(events)s - 1) AS i
        """,
        {"start": START, "step": span / (events / 3), "events": events},
    )
    cur.execute("INSERT INTO ev_part SELECT * FROM ev_plain")
    cur.execute("ANALYZE ev_plain")
    cur.execute("ANALYZE ev_part")


def _partitioned_copy(cur, months: int) -> None:
    cur.execute("CREATE TABLE ev_plain (LIKE message_status_events INCLUDING ALL)")
    cur.execute(
        "CREATE TABLE ev_part (LIKE message_status_events INCLUDING DEFAULTS INCLUDING GENERATED) "
        "PARTITION BY RANGE (event_at)"
    )
    cur.execute("ALTER TABLE ev_part ADD PRIMARY KEY (id, event_at)")
    for month in range(-1, months + 2):
        low, high = START.add(months=month), START.add(months=month + 1)
        cur.execute(  # DDL takes no parameters: the bounds are our own timestamps
            f"CREATE TABLE ev_part_{month + 1:02d} PARTITION OF ev_part "
            f"FOR VALUES FROM ('{low.isoformat()}') TO ('{high.isoformat()}')"
        )
    cur.execute("SELECT indexdef FROM pg_indexes WHERE tablename = 'message_status_events'")
    for (definition,) in cur.fetchall():
        if " (id)" in definition:  # the primary key: (id, event_at) above
            continue
        definition = re.sub(r"INDEX (\w+) ON public\.message_status_events", r"INDEX \1_part ON ev_part", definition)
        cur.execute(definition)


def _timed(cur, run) -> float:
    started = time.perf_counter()
    run(cur)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=6_000_000)
    parser.add_argument("--months", type=int, default=5)
    parser.add_argument("--batches", type=int, default=200, help="lookup batches of 500 a round")
    parser.add_argument("--inserts", type=int, default=100_000, help="new events a round")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    import psycopg

    from latam_messaging.warehouse.db import Warehouse
    from tests.helpers.postgres import ThrowawayPostgres, create_database

    server = ThrowawayPostgres("shared_buffers=512MB", "max_wal_size=4GB")
    try:
        url = create_database(server, "partitions")
        Warehouse.from_url(url).migrate()
        with psycopg.connect(f"host=127.0.0.1 port={server.port} user=postgres dbname=partitions",
                             prepare_threshold=None, autocommit=True) as db:
            cur = db.cursor()
            _partitioned_copy(cur, args.months)
            fill = _timed(cur, lambda c: _fill(c, args.events, args.months))
            print(json.dumps({"bench": "partitions_fill", "events": args.events, "months": args.months,
                              "seconds": round(fill, 1)}), flush=True)
            messages = args.events // 3
            rng = random.Random(7)
            month_s = (START.add(months=1) - START).total_seconds()
            results: dict[str, dict[str, list[float]]] = {}
            next_id = [10_000_000_000]

            def lookup_sql(table: str, column: str) -> str:
                if column == "message_key":
                    return f"SELECT id FROM {table} WHERE message_key = ANY(%s)"
                return (
                    f"SELECT vendor_message_id, status, event_at FROM {table} "
                    "WHERE vendor = 'teleprom' AND vendor_message_id = ANY(%s)"
                )

            def values_of(column: str) -> list[list[str]]:
                """This round's batches (made before the clock starts; the same for both tables)."""
                picks = [[rng.randrange(messages) for _ in range(500)] for _ in range(args.batches)]
                if column == "message_key":
                    return [[f"m-{_md5(n)[:16]}-{n}" for n in batch] for batch in picks]
                return [[f"wamid.{_md5(n)}" for n in batch] for batch in picks]

            def lookups(table: str, column: str, batches: list[list[str]]) -> None:
                sql = lookup_sql(table, column)
                for batch in batches:
                    cur.execute(sql, (batch,))
                    cur.fetchall()

            def plan_nodes(table: str, column: str) -> list[str]:
                """The node types of one lookup's plan (no sequential scan expected)."""
                cur.execute("EXPLAIN (FORMAT JSON) " + lookup_sql(table, column), (values_of(column)[0],))
                found: list[str] = []

                def walk(node: dict) -> None:
                    found.append(node["Node Type"])
                    for child in node.get("Plans", []):
                        walk(child)

                walk(cur.fetchone()[0][0]["Plan"])
                return sorted(set(found))

            def insert(table: str) -> None:
                base = START.add(months=args.months - 1)
                for start in range(0, args.inserts, 1000):
                    rows = []
                    for _ in range(start, min(start + 1000, args.inserts)):
                        next_id[0] += 1
                        at = base.add(seconds=rng.uniform(0, month_s))
                        rows.append((f"new.{next_id[0]}", f"m-new-{next_id[0]}", at))
                    cur.execute(
                        f"INSERT INTO {table} (vendor, vendor_message_id, message_key, status, raw_status, event_at, "
                        "recorded_at, source) SELECT 'teleprom', v, k, 'sent', 'x', t, t, 'webhook' "
                        "FROM unnest(%s::text[], %s::text[], %s::timestamptz[]) AS u(v, k, t) "
                        "ON CONFLICT (vendor, vendor_message_id, status, event_at) DO NOTHING",
                        ([r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows]),
                    )

            def month_count(table: str) -> None:
                cur.execute(
                    f"SELECT count(*) FROM {table} WHERE event_at >= %s AND event_at < %s",
                    (START.add(months=1), START.add(months=2)),
                )
                cur.fetchone()

            plans = {
                f"{name}_{table}": plan_nodes(table, column)
                for name, column in (("by_message_key", "message_key"), ("by_vendor_id", "vendor_message_id"))
                for table in ("ev_plain", "ev_part")
            }
            print(json.dumps({"bench": "partitions_plans", **plans}), flush=True)
            for round_no in range(args.rounds):
                keys, ids = values_of("message_key"), values_of("vendor_message_id")
                measures = {
                    "by_message_key": lambda t, v=keys: lookups(t, "message_key", v),
                    "by_vendor_id": lambda t, v=ids: lookups(t, "vendor_message_id", v),
                    "insert": insert,
                    "month_count": month_count,
                }
                for name, measure in measures.items():
                    for table in (("ev_plain", "ev_part") if round_no % 2 == 0 else ("ev_part", "ev_plain")):
                        seconds = _timed(cur, lambda c, m=measure, t=table: m(t))
                        results.setdefault(name, {}).setdefault(table, []).append(seconds)
            for name, by_table in results.items():
                line = {"bench": f"partitions_{name}", "events": args.events, "rounds": args.rounds}
                for table, times in by_table.items():
                    line[table] = {"median_s": round(statistics.median(times), 3), "runs_s": [round(t, 3) for t in times]}
                line["part_vs_plain"] = round(
                    statistics.median(by_table["ev_part"]) / statistics.median(by_table["ev_plain"]), 2
                )
                print(json.dumps(line), flush=True)
            oldest = (START, START.add(months=1))
            delete = _timed(cur, lambda c: c.execute("DELETE FROM ev_plain WHERE event_at >= %s AND event_at < %s", oldest))
            deleted = cur.rowcount
            detach = _timed(cur, lambda c: (c.execute("ALTER TABLE ev_part DETACH PARTITION ev_part_01"),
                                            c.execute("DROP TABLE ev_part_01")))
            print(json.dumps({"bench": "partitions_drop_oldest_month", "rows": deleted,
                              "ev_plain_delete_s": round(delete, 2), "ev_part_detach_drop_s": round(detach, 3)}), flush=True)
    finally:
        server.stop()


def _md5(n: int) -> str:
    import hashlib

    return hashlib.md5(str(n).encode()).hexdigest()


if __name__ == "__main__":
    main()
