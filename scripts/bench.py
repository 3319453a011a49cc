"""``make bench``: measured throughput and memory, printed readably and as one JSON line per benchmark.

JSON fields (CONTRACT.md): bench, rows, seconds, rows_per_s, peak_rss_mb, baseline_rows_per_s. The HSM
and ``webhook_ingest`` lines add ``cpu``: per timed phase, the CPU seconds of this process, the vendor
simulators and the PostgreSQL server, and ``cores_busy`` (their sum ÷ the phase's wall clock).
Each measured run is a child process, so its peak RSS is its own; the vendor simulator runs in
another process, as the real vendor would.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_simulator(name: str) -> tuple[subprocess.Popen, str]:
    port = free_port()
    code = (
        "import sys, threading; from latam_messaging.simulators.framework import SimulatorServer;"
        "from latam_messaging.vendors import VENDORS;"
        f"SimulatorServer(VENDORS[{name!r}].simulator_class()(step_seconds=3600), port={port}).serve_forever()"
    )
    process = subprocess.Popen([sys.executable, "-c", code])
    url = f"http://127.0.0.1:{port}"
    for _ in range(100):
        try:
            urllib.request.urlopen(f"{url}/_sim/state", timeout=1)
            return process, url
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"{name} simulator did not start")


def configure(url: str, **settings) -> None:
    request = urllib.request.Request(
        f"{url}/_sim/config", data=json.dumps(settings).encode(), headers={"Content-Type": "application/json"}
    )
    urllib.request.urlopen(request, timeout=10).read()


def set_latency(url: str, latency_ms: int) -> None:
    configure(url, latency_ms=latency_ms)


class CpuWindow:
    """Where a timed window's CPU went, by process: this one (every thread), the vendor simulators
    (``BENCH_SIMULATOR_PIDS``) and every PostgreSQL server process on the machine (idle ones add
    nothing). ``cores_busy`` = all of it ÷ the window's wall clock: on this 2-core machine, 2.0 is
    everything, and a figure near 1.0 means the parts ran one after the other."""

    def __init__(self) -> None:
        self.wall = time.perf_counter()
        self.start = self._now()

    @staticmethod
    def _now() -> dict[str, float]:
        from bench_webhooks import postgres_cpu_seconds, tree_cpu_seconds  # scripts/ is this script's path

        pids = [int(p) for p in os.environ.get("BENCH_SIMULATOR_PIDS", "").split(",") if p]
        return {"bench": time.process_time(), "simulators": sum(tree_cpu_seconds(pid) for pid in pids),
                "postgres": postgres_cpu_seconds() or 0.0}

    def stop(self) -> dict[str, float]:
        end, wall = self._now(), time.perf_counter() - self.wall
        cpu = {f"{part}_cpu_s": round(end[part] - self.start[part], 2) for part in end}
        return {**cpu, "cores_busy": round(sum(cpu.values()) / wall, 2) if wall else None}


class Warehouses:
    """Where each measured run keeps its warehouse: a fresh SQLite file, or a fresh database on the
    throwaway PostgreSQL cluster the tests use (started once, as the ``postgres`` user)."""

    def __init__(self) -> None:
        self._postgres = None
        self._history = None
        self._count = 0

    def connection(self, kind: str, workdir: Path) -> dict:
        if kind == "sqlite":
            return {"conn_type": "sqlite", "host": str(workdir / "warehouse.db")}
        if self._postgres is None:
            sys.path.insert(0, str(ROOT))
            from tests.helpers.postgres import ThrowawayPostgres

            # --profile: the server keeps statistics of every statement, triggers' included (profiled())
            settings = (["shared_preload_libraries=pg_stat_statements", "pg_stat_statements.track=all"]
                        if os.environ.get("BENCH_PROFILE") else [])
            self._postgres = ThrowawayPostgres(*settings)
        self._count += 1
        name = f"bench_{os.getpid()}_{self._count}"
        subprocess.run(
            [sys.executable, "-c", f"import sqlalchemy as sa; e = sa.create_engine({self._postgres.url()!r}, "
             f"isolation_level='AUTOCOMMIT'); e.connect().exec_driver_sql('CREATE DATABASE \"{name}\"')"],
            check=True,
        )
        return {"conn_type": "postgres", "host": self._postgres.host, "port": self._postgres.port,
                "login": "postgres", "schema": name}

    def history_cluster(self, cache: Path):
        """The PostgreSQL cluster kept in the history cache (``bench_history.CachedPostgres``), started once."""
        if self._history is None:
            sys.path.insert(0, str(ROOT))
            from scripts.bench_history import CachedPostgres

            self._history = CachedPostgres(cache / "postgres")
        return self._history

    def stop(self) -> None:
        if self._postgres is not None:
            self._postgres.stop()
        if self._history is not None:
            self._history.stop()


def environment(workdir: Path, urls: dict[str, str], warehouse: dict | None = None) -> dict[str, str]:
    workdir.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    env.update(
        AIRFLOW_HOME=str(workdir / "airflow"),
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        AIRFLOW_CONN_TELEPROM_DEFAULT=json.dumps(
            {"conn_type": "teleprom", "host": urls["teleprom"], "login": "demo", "password": "demo-pass"}
        ),
        AIRFLOW_CONN_ITD_DEFAULT=json.dumps({"conn_type": "itd_chile", "host": urls["itd"], "password": "itd-demo-token"}),
        AIRFLOW_CONN_WAVY_DEFAULT=json.dumps(
            {"conn_type": "wavy", "host": urls["wavy"], "login": "demo@wavy.global", "password": "wavy-demo-token"}
        ),
        AIRFLOW_CONN_MESSAGING_WAREHOUSE=json.dumps(
            warehouse or {"conn_type": "sqlite", "host": str(workdir / "warehouse.db")}
        ),
        MESSAGING_DROP_DIR=str(workdir / "drops"),
    )
    return env


def write_drop(path: Path, rows: int) -> None:
    """A realistic HSM campaign: two templates, national and international phone formats."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_suffix(".csv.part"), "w", encoding="utf-8") as out:
        out.write("phone,template,param_1,param_2\n")
        for i in range(rows):
            if i % 2:
                out.write(
                    f"+54 9 351 {500 + i // 10000 % 400:03d}-{i % 10000:04d},payment_reminder,Cliente {i},$ {i % 997}\n"
                )
            else:
                out.write(f"549116{i % 10_000_000:07d},shipping_confirmation,{i % 9 + 1},\n")
    path.with_suffix(".csv.part").rename(path)


def suppress_phones(warehouse, count: int, hits: int) -> None:
    """``count`` active suppressions generated in SQL (keys ``5422`` + 8 digits: none of the drop's), plus
    ``hits`` of the drop's own phones (its even rows, under their consent key ``54116…``): what a year of
    opt-outs and a registry leave. Then the table is vacuumed and analysed (PostgreSQL) or the WAL
    checkpointed (SQLite), so the measured run does not pay for the setup's writes."""
    now = "'2026-01-01 00:00:00'"
    columns = "phone, scope, source, evidence, since, created_at, created_by"
    if warehouse.dialect == "postgresql":
        numbers = f"SELECT n FROM generate_series(0, {count - 1}) AS n"
        phone = "'5422' || lpad(n::text, 8, '0')"
        hit_numbers = f"SELECT n FROM generate_series(0, {hits - 1}) AS n"
        hit_phone = "'54116' || lpad((n * 2)::text, 7, '0')"
        stamp = f"{now}::timestamptz"
    else:
        numbers = f"WITH RECURSIVE c(n) AS (SELECT 0 UNION ALL SELECT n + 1 FROM c WHERE n < {count - 1}) SELECT n FROM c"
        phone = "'5422' || substr('00000000' || n, -8, 8)"
        hit_numbers = f"WITH RECURSIVE c(n) AS (SELECT 0 UNION ALL SELECT n + 1 FROM c WHERE n < {hits - 1}) SELECT n FROM c"
        hit_phone = "'54116' || substr('0000000' || (n * 2), -7, 7)"
        stamp = now
    with warehouse.begin() as conn:
        for source, text in ((numbers, phone), (hit_numbers, hit_phone)):
            conn.exec_driver_sql(
                f"INSERT INTO suppressions ({columns}) SELECT {text}, 'all', 'registry:bench', 'bench row ' || n, "
                f"{stamp}, {stamp}, 'bench' FROM ({source}) AS g"
            )
    with warehouse.engine.connect() as conn:
        if warehouse.dialect == "postgresql":
            conn = conn.execution_options(isolation_level="AUTOCOMMIT")
            conn.exec_driver_sql("VACUUM ANALYZE suppressions")
        else:
            conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")


# ---- child processes: one measured run each ----------------------------------------------------------
def child_pipeline(rows: int) -> dict:
    """Claim, parse, validate, ledger, send and record a drop of ``rows`` rows (with
    ``BENCH_SUPPRESSED`` phones suppressed first, when set)."""
    from latam_messaging.sending.pipeline import dispatch, ingest_drops
    from latam_messaging.teleprom.catalog import sync_catalog
    from latam_messaging.teleprom.hook import TelepromHook
    from latam_messaging.teleprom.send import TelepromAdapter
    from latam_messaging.warehouse.db import open_warehouse

    warehouse = open_warehouse()
    hook = TelepromHook()
    sync_catalog(warehouse, hook.get_templates(), hook.get_accounts())
    suppressed = int(os.environ.get("BENCH_SUPPRESSED") or 0)
    if suppressed:
        suppress_phones(warehouse, suppressed, hits=min(1000, rows // 2))
    write_drop(Path(os.environ["MESSAGING_DROP_DIR"]) / "teleprom_hsm" / "bench.csv", rows)
    started, window = time.perf_counter(), CpuWindow()
    ingest = ingest_drops(
        TelepromAdapter(), warehouse, Path(os.environ["MESSAGING_DROP_DIR"]), region="AR", timezone="UTC"
    )
    ingested, ingest_cpu, window = time.perf_counter(), window.stop(), CpuWindow()
    sent = dispatch(TelepromAdapter(), warehouse)
    seconds, send_cpu = time.perf_counter() - started, window.stop()
    accepted = sent.states.get("accepted", 0)
    return {
        "rows": ingest.rows_valid,
        "accepted": accepted,
        "rows_suppressed": ingest.rows_screened + sent.suppressed,
        "seconds": round(seconds, 3),
        "ingest_seconds": round(ingested - started, 3),
        "send_seconds": round(seconds - (ingested - started), 3),
        "peak_rss_mb": _rss(),
        "cpu": {"ingest": ingest_cpu, "send": send_cpu},
    }


def child_naive(rows: int) -> dict:
    """The naive way: a per-row loop, one destination per request, through a stock HttpHook."""
    from airflow.providers.http.hooks.http import HttpHook

    url = json.loads(os.environ["AIRFLOW_CONN_TELEPROM_DEFAULT"])["host"]
    os.environ["AIRFLOW_CONN_TELEPROM_HTTP"] = json.dumps({"conn_type": "http", "host": url})
    login = HttpHook(method="POST", http_conn_id="teleprom_http").run(
        "Auth", json={"username": "demo", "password": "demo-pass"}
    )
    headers = {"Authorization": f"Bearer {login.json()['token']}"}
    hook = HttpHook(method="POST", http_conn_id="teleprom_http")
    started = time.perf_counter()
    for i in range(rows):
        body = {
            "messages": [
                {
                    "sourceId": 39,
                    "hsmId": 24,
                    "destinations": [
                        {"trackingNumber": f"naive-{i}", "dstNumber": f"549116{i:07d}", "hsmParams": ["1"]}
                    ],
                }
            ]
        }
        hook.run("api/Integration/MessageWpp", json=body, headers=headers)
    seconds = time.perf_counter() - started
    return {
        "rows": rows,
        "seconds": round(seconds, 3),
        "peak_rss_mb": _rss(),
    }


def child_simulator_accept(batches: int) -> dict:
    """Destinations per second the Teleprom simulator accepts in batches of 500, 4 clients."""
    from concurrent.futures import ThreadPoolExecutor

    import requests

    url = json.loads(os.environ["AIRFLOW_CONN_TELEPROM_DEFAULT"])["host"]
    token = requests.post(f"{url}/Auth", json={"username": "demo", "password": "demo-pass"}, timeout=10).json()["token"]
    sessions = [requests.Session() for _ in range(4)]
    for s in sessions:
        s.headers["Authorization"] = f"Bearer {token}"

    def post(i: int) -> int:
        destinations = [
            {"trackingNumber": f"s-{i}-{j}", "dstNumber": f"54911{i % 1000:03d}{j:05d}", "hsmParams": ["1"]}
            for j in range(500)
        ]
        answer = sessions[i % 4].post(
            f"{url}/api/Integration/MessageWpp",
            json={"messages": [{"sourceId": 39, "hsmId": 24, "destinations": destinations}]},
            timeout=60,
        )
        return len(answer.json()["responses"])

    started = time.perf_counter()
    with ThreadPoolExecutor(4) as pool:
        accepted = sum(pool.map(post, range(batches)))
    seconds = time.perf_counter() - started
    return {
        "rows": accepted,
        "seconds": round(seconds, 3),
        "peak_rss_mb": _rss(),
    }


def _rss() -> float:
    """This process's peak resident memory: Linux ``VmHWM`` (of this program alone). ``ru_maxrss`` is
    kept across ``exec``: a child started after the parent built a history in memory would report the
    parent's peak (1.4 GB for every line after a SQLite full fill)."""
    from bench_webhooks import peak_rss_mb  # scripts/ is this script's path

    peak = peak_rss_mb(os.getpid())
    return peak if peak is not None else round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def _drop_lines(path: Path, header: str, lines) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_suffix(".csv.part"), "w", encoding="utf-8") as out:
        out.write(header + "\n")
        out.writelines(lines)
    path.with_suffix(".csv.part").rename(path)


def _send_e2e(adapter, folder: str, header: str, lines, region: str, **dispatch_args) -> dict:
    from latam_messaging.sending.pipeline import dispatch, ingest_drops
    from latam_messaging.warehouse.db import open_warehouse

    warehouse = open_warehouse()
    drops = Path(os.environ["MESSAGING_DROP_DIR"])
    _drop_lines(drops / folder / "bench.csv", header, lines)
    started = time.perf_counter()
    ingest = ingest_drops(adapter, warehouse, drops, region=region, timezone="UTC")
    sent = dispatch(adapter, warehouse, **dispatch_args)
    seconds = time.perf_counter() - started
    return {"rows": sent.states.get("accepted", 0), "valid": ingest.rows_valid, "seconds": round(seconds, 3),
            "peak_rss_mb": _rss()}


def child_itd(rows: int) -> dict:
    """ITD end to end: one message a request, 16 workers, no request-rate ceiling (the simulator's 20 ms)."""
    from latam_messaging.itd.send import ItdAdapter

    lines = (f"+56 9 {6000 + i // 10000 % 4000:04d} {i % 10000:04d},TEXT,hola {i}\n" for i in range(rows))
    return _send_e2e(ItdAdapter(), "itd_whatsapp", "phone,content_type,content", lines, "CL",
                     concurrency=16, requests_per_s=0)


def child_wavy(rows: int) -> dict:
    """Wavy end to end: bulks of 1,000."""
    from latam_messaging.wavy.send import WavyAdapter

    lines = (f"55119{i % 100_000_000:08d},Mensaje {i}\n" for i in range(rows))
    return _send_e2e(WavyAdapter(), "wavy_sms", "phone,message", lines, "BR", requests_per_s=0)


SCALE_DISPATCHER = """
import pathlib, sys, time
from latam_messaging.teleprom.send import TelepromAdapter
from latam_messaging.sending.pipeline import dispatch
from latam_messaging.warehouse.db import Warehouse
warehouse = Warehouse.from_connection()
go = pathlib.Path(sys.argv[1])
(go.parent / f"ready-{sys.argv[2]}").touch()
while not go.exists():  # start together, imports done: the clock measures sending only
    time.sleep(0.002)
dispatch(TelepromAdapter(), warehouse)
"""


def child_scale(rows: int) -> dict:
    """``rows`` pending HSM rows sent by N dispatcher processes at once (``BENCH_INSTANCES``), as N
    mapped ``send_due`` instances on N workers would."""
    from latam_messaging.sending.pipeline import ingest_drops
    from latam_messaging.teleprom.catalog import sync_catalog
    from latam_messaging.teleprom.hook import TelepromHook
    from latam_messaging.teleprom.send import TelepromAdapter
    from latam_messaging.warehouse import schema
    from latam_messaging.warehouse.db import open_warehouse

    warehouse = open_warehouse()
    hook = TelepromHook()
    sync_catalog(warehouse, hook.get_templates(), hook.get_accounts())
    drops = Path(os.environ["MESSAGING_DROP_DIR"])
    write_drop(drops / "teleprom_hsm" / "bench.csv", rows)
    ingest_drops(TelepromAdapter(), warehouse, drops, region="AR", timezone="UTC")
    instances = int(os.environ["BENCH_INSTANCES"])
    go = drops / "go"
    procs = [subprocess.Popen([sys.executable, "-c", SCALE_DISPATCHER, str(go), str(i)]) for i in range(instances)]
    while len(list(drops.glob("ready-*"))) < instances:
        if any(p.poll() is not None for p in procs):
            raise SystemExit("a dispatcher died before starting")
        time.sleep(0.01)
    started = time.perf_counter()
    go.touch()
    if any(p.wait() for p in procs):
        raise SystemExit("a dispatcher failed")
    seconds = time.perf_counter() - started
    table = schema.outbound_messages
    accepted = warehouse.count(table, table.c.state == "accepted")
    return {"rows": accepted, "seconds": round(seconds, 3), "peak_rss_mb": _rss()}


def child_webhook_ingest(bodies: int) -> dict:
    """Raw Teleprom V0 bodies (5 status events each, for accepted sends) → status events, events/s."""
    import pendulum

    from latam_messaging.vendors import callback_parsers
    from latam_messaging.warehouse import schema
    from latam_messaging.warehouse.db import open_warehouse
    from latam_messaging.webhooks.ingest import ingest_pending
    from latam_messaging.webhooks.raw import raw_event_row

    warehouse = open_warehouse()
    now = pendulum.now("UTC")
    per_body = 5
    with warehouse.begin() as conn:
        for start in range(0, bodies * per_body, 10_000):
            conn.execute(schema.outbound_messages.insert(), [
                {"message_key": f"m-{i:016x}-1", "vendor": "teleprom", "phone": f"54911{i:08d}", "state": "accepted",
                 "vendor_message_id": f"v-{i}", "created_at": now, "updated_at": now, "accepted_at": now}
                for i in range(start, min(start + 10_000, bodies * per_body))
            ])
        rows = []
        for b in range(bodies):
            events = [
                {"fechaHora": "2026-11-23T10:00:00.000-03:00", "identificador": f"m-{b * per_body + j:016x}-1",
                 "telefono": f"54911{b * per_body + j:08d}", "resultado": "delivered", "empresa": "MaytenCloud",
                 "origen": "WSP", "sentTime": "1.0"}
                for j in range(per_body)
            ]
            rows.append(raw_event_row("teleprom", None, json.dumps(events).encode(), "application/json", "V0"))
            if len(rows) >= 5000:
                conn.execute(schema.raw_webhook_events.insert(), rows)
                rows = []
        if rows:
            conn.execute(schema.raw_webhook_events.insert(), rows)
    started, window = time.perf_counter(), CpuWindow()
    stats = ingest_pending(warehouse, callback_parsers())
    seconds = time.perf_counter() - started
    return {"rows": stats.statuses, "bodies": stats.events, "seconds": round(seconds, 3), "peak_rss_mb": _rss(),
            "cpu": {"ingest": window.stop()}}


#: The Messaging page's GET routes measured (``messaging_page_<name>``); ``{id}``: the newest campaign.
PAGE_ROUTES = {
    "api_summary": "/api/summary",
    "index": "/",
    "api_campaigns": "/api/campaigns",
    "campaigns": "/campaigns",
    "api_campaign": "/api/campaigns/{id}",
    "campaign": "/campaigns/{id}",
}


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(share * len(ordered) + 0.5) - 1))]


def _capped_warehouse(deadline: list[float], cap_s: float):
    """The ``messaging_warehouse`` with no query running past ``deadline[0]`` (SQLite: a progress handler
    aborts it; PostgreSQL: ``statement_timeout`` of ``cap_s``), so one slow route cannot stall the bench."""
    import sqlalchemy as sa

    from latam_messaging.warehouse.db import Warehouse

    warehouse = Warehouse.from_connection()

    def cap(dbapi_conn, _record) -> None:
        if warehouse.dialect == "sqlite":
            dbapi_conn.set_progress_handler(lambda: int(time.monotonic() > deadline[0]), 10_000)
        else:
            cursor = dbapi_conn.cursor()
            cursor.execute(f"SET statement_timeout = {int(cap_s * 1000)}")
            cursor.close()
            dbapi_conn.commit()

    sa.event.listen(warehouse.engine, "connect", cap)
    return warehouse


def child_page(requests_per_route: int) -> dict:
    """Each GET route of the Messaging page, in process (FastAPI TestClient, Airflow's authentication
    replaced by a fixed user): the first request of each (cold: a new app, a new engine), then up to
    ``requests_per_route`` more (warm) within ``BENCH_PAGE_BUDGET_S`` seconds a route; milliseconds.
    A request is cut at ``BENCH_PAGE_CAP_S`` seconds (``timed_out``); another non-200 fails the run."""
    from fastapi.testclient import TestClient

    from latam_messaging.page import app as page_app
    from latam_messaging.warehouse.db import open_warehouse

    cap_s = float(os.environ.get("BENCH_PAGE_CAP_S") or 30)
    budget_s = float(os.environ.get("BENCH_PAGE_BUDGET_S") or 60)
    deadline = [float("inf")]
    reports = Path(os.environ["MESSAGING_DROP_DIR"]).parent / "reports"
    reports.mkdir(parents=True, exist_ok=True)
    warehouse = open_warehouse()  # an empty warehouse's migrations run here, not in the first request
    with warehouse.engine.connect() as conn:
        newest = conn.exec_driver_sql("SELECT campaign_id FROM campaign_files ORDER BY created_at DESC LIMIT 1").first()
    warehouse.engine.dispose()
    app = page_app.create_app(warehouse_factory=lambda: _capped_warehouse(deadline, cap_s), report_dir=reports)
    app.dependency_overrides[page_app.require_airflow_user] = lambda: "bench"
    routes: dict[str, dict] = {}
    with TestClient(app, raise_server_exceptions=False) as client:
        for name, path in PAGE_ROUTES.items():
            if "{id}" in path:
                if newest is None:
                    continue
                path = path.replace("{id}", newest[0])
            times: list[float] = []
            timed_out = False
            while len(times) <= requests_per_route and (len(times) < 2 or sum(times) < budget_s * 1000):
                started = time.perf_counter()
                deadline[0] = time.monotonic() + cap_s
                answer = client.get(path)
                deadline[0] = float("inf")
                times.append((time.perf_counter() - started) * 1000)
                if answer.status_code != 200:
                    if times[-1] >= cap_s * 1000 * 0.95:
                        timed_out = True
                        break
                    raise SystemExit(f"GET {path}: {answer.status_code} {answer.text[:300]}")
            warm = times[1:] or times
            routes[name] = {
                "path": PAGE_ROUTES[name], "requests": len(times), "cold_ms": round(times[0], 1),
                "p50_ms": round(_percentile(warm, 0.5), 1), "p95_ms": round(_percentile(warm, 0.95), 1),
                "seconds": round(sum(times) / 1000, 3), "timed_out": timed_out,
            }
    return {"routes": routes, "peak_rss_mb": _rss(), "cap_s": cap_s}


def child_report(_size: int) -> dict:
    """The messaging_report DAG's work: ``reporting.render_report`` over the whole warehouse."""
    from latam_messaging.reporting import render_report
    from latam_messaging.vendors import page_panels
    from latam_messaging.warehouse.db import open_warehouse

    warehouse = open_warehouse()
    out = Path(os.environ["MESSAGING_DROP_DIR"]).parent / "reports"
    started = time.perf_counter()
    render_report(warehouse, out, panels=page_panels())
    seconds = time.perf_counter() - started
    return {"rows": 1, "seconds": round(seconds, 3), "peak_rss_mb": _rss()}


class _ServerStatements:
    """PostgreSQL's own account of a profiled run: the statements (those the triggers run included) by
    total execution time, from ``pg_stat_statements`` (loaded on the benchmark's cluster under
    ``--profile``; nothing on SQLite or on a server without it)."""

    def __init__(self) -> None:
        from sqlalchemy.exc import DBAPIError

        from latam_messaging.warehouse.db import Warehouse

        warehouse = Warehouse.from_connection()
        self.engine = None
        if warehouse.dialect != "postgresql":
            return
        engine = warehouse.engine.execution_options(isolation_level="AUTOCOMMIT")
        try:
            with engine.connect() as conn:
                conn.exec_driver_sql("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
                conn.exec_driver_sql("SELECT pg_stat_statements_reset()")
            self.engine = engine
        except DBAPIError:  # not preloaded on this server
            engine.dispose()

    def report(self, top: int = 25) -> list[str]:
        if self.engine is None:
            return []
        with self.engine.connect() as conn:
            rows = conn.exec_driver_sql(
                "SELECT total_exec_time, calls, rows, toplevel, left(regexp_replace(query, '\\s+', ' ', 'g'), 160) "
                "FROM pg_stat_statements WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database()) "
                f"ORDER BY total_exec_time DESC LIMIT {top}"
            ).all()
        self.engine.dispose()
        lines = ["", "PostgreSQL's statements by total execution time (pg_stat_statements; 'in trigger': run by a "
                 "trigger or function, its time also inside its caller's)", "",
                 f"{'total s':>8} {'calls':>9} {'rows':>10}  statement"]
        for total_ms, calls, count, toplevel, query in rows:
            lines.append(f"{total_ms / 1000:8.2f} {calls:9d} {count:10d}  {'' if toplevel else '[in trigger] '}{query}")
        return lines


def profiled(kind: str, size: int) -> dict:
    """Run one child; under yappi when ``BENCH_PROFILE`` names a folder (``--profile``)."""
    folder = os.environ.get("BENCH_PROFILE")
    if not folder:
        return CHILDREN[kind](size)
    import yappi

    statements = _ServerStatements()
    clock = os.environ.get("BENCH_PROFILE_CLOCK", "cpu")
    yappi.set_clock_type(clock)
    yappi.start()
    try:
        result = CHILDREN[kind](size)
    finally:
        yappi.stop()
    stats = yappi.get_func_stats()
    total = sum(s.tsub for s in stats) or 1.0
    what = "CPU" if clock == "cpu" else "wall-clock"
    lines = [f"{kind} {size:,} rows: {total:.2f} s {what} in this process (all threads); top functions by own time", ""]
    lines.append(f"{'own s':>8} {'own %':>6} {'total s':>8} {'calls':>10}  function")
    for stat in sorted(stats, key=lambda s: s.tsub, reverse=True)[:40]:
        where = f"{Path(stat.module).name}:{stat.lineno}" if stat.module else ""
        lines.append(f"{stat.tsub:8.2f} {stat.tsub / total:6.1%} {stat.ttot:8.2f} {stat.ncall:10d}  {stat.name} ({where})")
    database = json.loads(os.environ.get("AIRFLOW_CONN_MESSAGING_WAREHOUSE", "{}")).get("conn_type", "sqlite")
    lines += ["", "this project's functions by total time (own + callees)", ""]
    ours = [s for s in stats if "latam_messaging" in (s.module or "") and s.name != "<module>"]
    for stat in sorted(ours, key=lambda s: s.ttot, reverse=True)[:25]:
        lines.append(f"{stat.ttot:8.2f} {stat.ttot / total:6.1%} {stat.ncall:10d}  {stat.name} ({Path(stat.module).name})")
    name = f"{kind}-{database}-{size}.txt"
    lines += statements.report()
    (Path(folder) / name).write_text("\n".join(lines) + "\n")
    stats.save(str(Path(folder) / name.replace(".txt", ".pstat")), type="pstat")  # for pstats / snakeviz
    return result


CHILDREN = {
    "pipeline": child_pipeline,
    "naive": child_naive,
    "simulator_accept": child_simulator_accept,
    "itd": child_itd,
    "wavy": child_wavy,
    "scale": child_scale,
    "webhook_ingest": child_webhook_ingest,
    "page": child_page,
    "report": child_report,
}


def measure(kind: str, size: int, env: dict[str, str]) -> dict:
    """One measured run in a child process (its own peak RSS)."""
    result = subprocess.run(
        [sys.executable, __file__, "--child", kind, "--size", str(size)],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        print(result.stdout[-3000:], result.stderr[-3000:])
        raise SystemExit(f"benchmark {kind} failed")
    return json.loads(result.stdout.strip().splitlines()[-1])


def report(name: str, run: dict, baseline_rows_per_s: float | None, note: str, **fields) -> None:
    rate = run["rows"] / run["seconds"] if run["seconds"] else 0.0
    where = f" [{fields['warehouse']}]" if "warehouse" in fields else ""
    print(
        f"{name}{where}: {run['rows']:,} rows in {run['seconds']:.1f}s = {rate:,.0f} rows/s, peak RSS {run['peak_rss_mb']:.0f} MB. {note}"
    )
    line = {
        "bench": name,
        "rows": run["rows"],
        "seconds": run["seconds"],
        "rows_per_s": round(rate, 1),
        "peak_rss_mb": run["peak_rss_mb"],
        "baseline_rows_per_s": round(baseline_rows_per_s, 1) if baseline_rows_per_s else None,
        **{k: run[k] for k in ("ingest_seconds", "send_seconds", "cpu") if k in run},
        **fields,
    }
    print(json.dumps(line), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--child")
    parser.add_argument("--size", type=int, default=0)
    parser.add_argument("--rows", type=int, default=100_000, help="rows of the main end-to-end runs")
    parser.add_argument("--big-rows", type=int, default=1_000_000, help="rows of the flat-memory run (0: skip)")
    parser.add_argument(
        "--suppressed", type=int, default=1_000_000,
        help="phones suppressed before the HSM run's twin teleprom_hsm_send_e2e_suppressed (0: skip it)",
    )
    parser.add_argument("--naive-rows", type=int, default=1_000, help="rows of the naive baseline slice")
    parser.add_argument("--itd-rows", type=int, default=5_000, help="rows of the ITD run (one request each)")
    parser.add_argument("--webhook-bodies", type=int, default=20_000, help="raw bodies of webhook_ingest (5 events each)")
    parser.add_argument("--instances", default="1,2,4", help="dispatcher processes of the scale-out runs")
    parser.add_argument(
        "--history", choices=["off", "small", "full"], default="small",
        help="measure the page, the report, the HSM send and webhook_ingest again on a warehouse pre-filled "
        "with a synthetic history: full = PostgreSQL 20 M sends / 60 M events / 10 M raw bodies, SQLite "
        "5 M / 15 M / 2 M; small (make bench's default) = a tenth of that. Built once, then cached",
    )
    parser.add_argument("--history-rows", type=int, help="outbound rows of the history (events and raw bodies "
                        "in the full sizes' proportions); overrides --history's size")
    parser.add_argument("--history-cache", default=os.environ.get("BENCH_HISTORY_CACHE", str(ROOT / ".bench-cache")),
                        help="where built histories are kept between runs (a SQLite file, a PostgreSQL cluster)")
    parser.add_argument("--history-only", action="store_true", help="only the history lines (no empty-warehouse twins)")
    parser.add_argument("--history-in-place", action="store_true",
                        help="PostgreSQL: measure on the cached history itself, not on a copy, and drop it after "
                             "(for a disk that cannot hold the history twice: the full size's is 31 GB)")
    parser.add_argument("--page-requests", type=int, default=20, help="warm requests per Messaging page route")
    parser.add_argument("--page-cap-s", type=float, default=30,
                        help="a page request is cut after this many seconds (reported timed_out); each route gets "
                        "at most twice this for its warm requests")
    parser.add_argument("--warehouse", choices=["both", "sqlite", "postgres"], default="both")
    parser.add_argument("--only", help="run only the benchmarks whose name starts with this (e.g. wavy_sms_send)")
    parser.add_argument(
        "--latency-ms", type=int, default=20, help="simulated vendor round trip per request (the real hosts are remote)"
    )
    parser.add_argument(
        "--profile", metavar="DIR",
        help="profile each measured run with yappi (CPU time, every thread; pip install -r requirements-dev.txt) "
        "and write its top functions to DIR/<run>.txt",
    )
    parser.add_argument("--profile-clock", choices=["cpu", "wall"], default="cpu", help="what --profile measures")
    args = parser.parse_args()
    if args.child:
        print(json.dumps(profiled(args.child, args.size)))
        return
    os.environ["BENCH_PAGE_CAP_S"] = str(args.page_cap_s)
    os.environ["BENCH_PAGE_BUDGET_S"] = str(args.page_cap_s * 2)
    if args.profile:
        os.environ["BENCH_PROFILE"] = str(Path(args.profile).resolve())
        os.environ["BENCH_PROFILE_CLOCK"] = args.profile_clock
        Path(args.profile).mkdir(parents=True, exist_ok=True)

    warehouses = ["sqlite", "postgres"] if args.warehouse == "both" else [args.warehouse]
    wanted = (lambda name: name.startswith(args.only)) if args.only else (lambda name: True)
    stores = Warehouses()
    sims = {name: start_simulator(name) for name in ("teleprom", "itd", "wavy")}
    os.environ["BENCH_SIMULATOR_PIDS"] = ",".join(str(process.pid) for process, _ in sims.values())
    urls = {name: url for name, (_, url) in sims.items()}
    configure(urls["itd"], credits=10**9)
    baselines: dict[int, float] = {}
    try:
        with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
            runs = iter(range(1_000_000))

            def env_for(kind: str) -> dict[str, str]:
                workdir = Path(tmp) / f"run-{next(runs)}"
                workdir.mkdir()
                return environment(workdir, urls, stores.connection(kind, workdir))

            def baseline(latency: int) -> float:
                if latency not in baselines:  # the naive loop touches no warehouse: measured once per latency
                    set_latency(urls["teleprom"], latency)
                    naive = measure("naive", args.naive_rows, env_for("sqlite"))
                    baselines[latency] = naive["rows"] / naive["seconds"]
                return baselines[latency]

            empty_rates: dict[tuple[str, str], float] = {}

            def page_lines(run: dict, kind: str, history_rows: int) -> None:
                for name, route in run["routes"].items():
                    line = {"rows": route["requests"], "seconds": route["seconds"], "peak_rss_mb": run["peak_rss_mb"]}
                    report(f"messaging_page_{name}", line, None,
                           f"GET {route['path']}: cold {route['cold_ms']:.0f} ms, warm p50 {route['p50_ms']:.0f} ms, "
                           f"p95 {route['p95_ms']:.0f} ms ({route['requests'] - 1} warm requests; rows = requests)."
                           + (f" CUT at {run['cap_s']:.0f} s: the route takes longer." if route["timed_out"] else ""),
                           warehouse=kind, history_rows=history_rows, route=route["path"], cold_ms=route["cold_ms"],
                           p50_ms=route["p50_ms"], p95_ms=route["p95_ms"], timed_out=route["timed_out"])

            def versus_empty(label: str, kind: str, run: dict) -> dict:
                empty = empty_rates.get((label, kind))
                if not empty or not run["seconds"]:
                    return {}
                return {"empty_rows_per_s": round(empty, 1),
                        "share_of_empty": round(run["rows"] / run["seconds"] / empty, 3)}

            def history_runs(kind: str) -> None:
                """Fill (or reuse) the cached history, copy it, and measure the page, the report, the HSM
                send and webhook_ingest on the copy, in that order (the first two write nothing)."""
                sys.path.insert(0, str(ROOT))
                from scripts import bench_history

                labels = ("messaging_page", "messaging_report", "teleprom_hsm_send_e2e", "webhook_ingest")
                if not any(wanted(label) for label in labels):
                    return
                dialect = "postgresql" if kind == "postgres" else "sqlite"
                size = (bench_history.sized(dialect, args.history_rows) if args.history_rows
                        else bench_history.preset(dialect, 1.0 if args.history == "full" else 0.1))
                cache = Path(args.history_cache).resolve()
                print(f"history [{kind}]: {size.outbound:,} sends, {size.events:,} events, {size.raw:,} raw bodies "
                      f"(cache {cache})", flush=True)
                workdir = Path(tmp) / f"history-{kind}"
                workdir.mkdir()
                if kind == "sqlite":
                    cached, filled = bench_history.cached_sqlite(size, cache)
                    disk = bench_history.disk_used(cached)
                    started = time.perf_counter()
                    bench_history.copy_sqlite(cached, workdir / "warehouse.db")
                    connection = {"conn_type": "sqlite", "host": str(workdir / "warehouse.db")}
                    drop_copy = (workdir / "warehouse.db").unlink
                else:
                    cluster = stores.history_cluster(cache)
                    template, filled = bench_history.cached_postgres(size, cluster.url())
                    disk = bench_history.database_bytes(cluster.url(), template)
                    copy = template if args.history_in_place else f"bench_history_{os.getpid()}"
                    started = time.perf_counter()
                    if args.history_in_place:  # measured once: the history changes, so it leaves the cache after
                        print(f"history [{kind}]: measured in place; {template} is dropped after", flush=True)
                    else:
                        bench_history.copy_postgres(cluster.url(), template, copy)
                    connection = {"conn_type": "postgres", "host": cluster.host, "port": cluster.port,
                                  "login": "postgres", "schema": copy}

                    def drop_copy() -> None:
                        bench_history.drop_database(cluster.url(), copy)
                copied = time.perf_counter() - started
                if filled:
                    total = sum(filled.rows.values())
                    report("history_fill", {"rows": total, "seconds": round(filled.seconds, 3), "peak_rss_mb": _rss()},
                           None, f"Built in {filled.seconds:.0f}s ({filled.index_seconds:.0f}s of it re-creating "
                           f"indexes), {disk / 1e9:.1f} GB; copied for measuring in {copied:.0f}s.",
                           warehouse=kind, history_rows=size.outbound, disk_bytes=disk, tables=filled.rows,
                           index_seconds=round(filled.index_seconds, 1), copy_seconds=round(copied, 1))
                else:
                    print(f"history [{kind}]: reused from the cache ({disk / 1e9:.1f} GB); copied in {copied:.0f}s",
                          flush=True)
                env = environment(workdir, urls, connection)
                try:
                    if wanted("messaging_page"):
                        page_lines(measure("page", args.page_requests, env), kind, size.outbound)
                    if wanted("messaging_report"):
                        run = measure("report", 0, env)
                        report("messaging_report", run, None,
                               f"render_report over {size.outbound:,} sends took {run['seconds']:.1f}s.",
                               warehouse=kind, history_rows=size.outbound)
                    history_rows = size.outbound
                    if wanted("teleprom_hsm_send_e2e") and args.rows:
                        set_latency(urls["teleprom"], args.latency_ms)
                        run = measure("pipeline", args.rows, env)
                        report("teleprom_hsm_send_e2e", run, baseline(args.latency_ms),
                               f"On {history_rows:,} sends of history; vendor round trip {args.latency_ms} ms.",
                               warehouse=kind, latency_ms=args.latency_ms, history_rows=history_rows,
                               **versus_empty("teleprom_hsm_send_e2e", kind, run))
                        history_rows = bench_history.count_outbound(connection)
                    if wanted("webhook_ingest") and args.webhook_bodies:
                        run = measure("webhook_ingest", args.webhook_bodies, env)
                        report("webhook_ingest", run, None,
                               f"On {history_rows:,} sends of history: {run['bodies']:,} raw V0 bodies parsed "
                               "(rows = events).",
                               warehouse=kind, history_rows=history_rows, **versus_empty("webhook_ingest", kind, run))
                finally:
                    drop_copy()

            hsm = [
                ("teleprom_hsm_send_e2e", args.rows, args.latency_ms),
                ("teleprom_hsm_send_e2e_suppressed", args.rows if args.suppressed else 0, args.latency_ms),
                ("teleprom_hsm_send_e2e_no_latency", args.rows, 0),
                ("teleprom_hsm_send_e2e_1m", args.big_rows, args.latency_ms),
            ]
            for kind in warehouses:
                if args.history_only:
                    history_runs(kind)
                    continue
                for label, size, latency in hsm:
                    if not size or not wanted(label):
                        continue
                    base = baseline(latency)
                    set_latency(urls["teleprom"], latency)
                    env = env_for(kind)
                    extra: dict = {}
                    if label.endswith("_suppressed"):
                        env["BENCH_SUPPRESSED"] = str(args.suppressed)
                        extra = {"suppressed_phones": args.suppressed}
                    run = measure("pipeline", size, env)
                    empty_rates[(label, kind)] = run["rows"] / run["seconds"]
                    report(
                        label, run, base,
                        f"Vendor round trip {latency} ms. Naive per-row HttpHook loop on {args.naive_rows:,} rows: "
                        f"{base:,.0f} rows/s; speed-up x{run['rows'] / run['seconds'] / base:.1f}."
                        + (f" {args.suppressed:,} phones suppressed beforehand; {run['rows_suppressed']:,} of the "
                           "drop's rows skipped." if extra else ""),
                        warehouse=kind, latency_ms=latency, **extra,
                    )
                set_latency(urls["teleprom"], args.latency_ms)
                for count in [int(n) for n in args.instances.split(",") if n]:
                    label = f"teleprom_send_scale_{count}"
                    if not wanted(label) or not args.rows:
                        continue
                    env = env_for(kind)
                    env["BENCH_INSTANCES"] = str(count)
                    run = measure("scale", args.rows, env)
                    report(label, run, None, f"{count} dispatcher process(es) sharing one vendor's pending rows, "
                           f"{args.latency_ms} ms round trip (send only; ingest not timed).",
                           warehouse=kind, instances=count, latency_ms=args.latency_ms)
                for label, child, size, url in (
                    ("itd_whatsapp_send_e2e", "itd", args.itd_rows, urls["itd"]),
                    ("wavy_sms_send_e2e", "wavy", args.rows, urls["wavy"]),
                ):
                    if not size or not wanted(label):
                        continue
                    set_latency(url, args.latency_ms)
                    run = measure(child, size, env_for(kind))
                    report(label, run, None, f"Vendor round trip {args.latency_ms} ms.", warehouse=kind,
                           latency_ms=args.latency_ms)
                if args.webhook_bodies and wanted("webhook_ingest"):
                    run = measure("webhook_ingest", args.webhook_bodies, env_for(kind))
                    report("webhook_ingest", run, None,
                           f"{run['bodies']:,} raw V0 bodies parsed into status events (rows = events).",
                           warehouse=kind)
                    empty_rates[("webhook_ingest", kind)] = run["rows"] / run["seconds"]
                if wanted("messaging_page"):
                    page_lines(measure("page", args.page_requests, env_for(kind)), kind, 0)
                if wanted("messaging_report"):
                    run = measure("report", 0, env_for(kind))
                    report("messaging_report", run, None, f"render_report took {run['seconds']:.1f}s (rows: 1 report).",
                           warehouse=kind, history_rows=0)
                if args.history != "off" or args.history_rows:
                    history_runs(kind)
            if wanted("teleprom_simulator_accept") and not args.history_only:
                set_latency(urls["teleprom"], 0)
                sim = measure("simulator_accept", 200, env_for("sqlite"))
                report("teleprom_simulator_accept", sim, None,
                       "Destinations accepted by the simulator (batches of 500, 4 clients).")
            if wanted("webhook_receiver") and not args.history_only:
                for kind in warehouses:  # PostgreSQL: 1 and 2 receiver processes (SQLite allows one writer)
                    for processes in (1, 2) if kind == "postgres" else (1,):
                        env = env_for(kind)
                        subprocess.run([sys.executable, str(ROOT / "scripts" / "bench_webhooks.py"), "--warehouse",
                                        kind, "--processes", str(processes)], check=True, env=env)
    finally:
        for process, _ in sims.values():
            process.terminate()
            process.wait()
        stores.stop()


if __name__ == "__main__":
    main()
