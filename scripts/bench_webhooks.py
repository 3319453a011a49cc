"""Webhook receiver throughput: requests/s with every acknowledged body stored (stored = acknowledged).

Starts the receiver (``python -m latam_messaging.webhooks.receiver``, ``--processes N`` → its
``--workers N``) on a fresh warehouse and fires vendor-like callbacks from concurrent clients. Prints
a readable line and a JSON line (CONTRACT.md format) with ``"processes"`` and where the CPU went:
the receiver's processes, these client threads, and (PostgreSQL) the server — all on the same cores.
With ``BENCH_PROFILE`` (``bench.py --profile DIR``) a one-process receiver runs under yappi and writes
``DIR/webhook_receiver-<warehouse>.txt``.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import psutil
import requests

TOTAL = int(os.environ.get("WEBHOOK_BENCH_REQUESTS", "6000"))
CLIENTS = 32


def peak_rss_mb(pid: int) -> float | None:
    """The receiver process's peak resident memory (Linux ``VmHWM``)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return None


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process and its waited-for children (``/proc/<pid>/stat``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return sum(int(v) for v in fields[11:15]) / os.sysconf("SC_CLK_TCK")


def tree_cpu_seconds(pid: int) -> float:
    """CPU seconds of a process and its live children (uvicorn's workers)."""
    import psutil

    total = 0.0
    for proc in [psutil.Process(pid), *psutil.Process(pid).children(recursive=True)]:
        try:
            times = proc.cpu_times()
            total += times.user + times.system
        except psutil.Error:
            pass
    return total


def postgres_cpu_seconds() -> float | None:
    """CPU seconds of every PostgreSQL server process on this machine (the bench's server)."""
    import psutil

    total, seen = 0.0, False
    for proc in psutil.process_iter(["name"]):
        if proc.info["name"] in ("postgres", "postmaster"):
            try:
                times = proc.cpu_times()
                total += times.user + times.system
                seen = True
            except psutil.Error:
                pass
    return round(total, 2) if seen else None


def serve_profiled(port: int, folder: str, label: str) -> None:
    """One receiver process under yappi (CPU clock, every thread); its profile written on SIGTERM."""
    import uvicorn
    import yappi

    from latam_messaging.warehouse.db import open_warehouse
    from latam_messaging.webhooks.receiver import create_app, process_warehouse

    open_warehouse().engine.dispose()
    yappi.set_clock_type("cpu")
    yappi.start()
    uvicorn.run(create_app(process_warehouse()), host="127.0.0.1", port=port, log_level="warning", access_log=False)
    yappi.stop()
    stats = yappi.get_func_stats()
    total = sum(s.tsub for s in stats) or 1.0
    lines = [f"webhook_receiver [{label}], 1 process: {total:.2f} s CPU (all threads); top functions by own time", ""]
    lines.append(f"{'own s':>8} {'own %':>6} {'total s':>8} {'calls':>10}  function")
    for stat in sorted(stats, key=lambda s: s.tsub, reverse=True)[:45]:
        where = f"{Path(stat.module).name}:{stat.lineno}" if stat.module else ""
        lines.append(f"{stat.tsub:8.2f} {stat.tsub / total:6.1%} {stat.ttot:8.2f} {stat.ncall:10d}  {stat.name} ({where})")
    lines += ["", "by total time (own + callees), this project's and the request path's", ""]
    for stat in sorted(stats, key=lambda s: s.ttot, reverse=True)[:40]:
        lines.append(f"{stat.ttot:8.2f} {stat.ttot / total:6.1%} {stat.ncall:10d}  {stat.name} ({Path(stat.module or '?').name})")
    (Path(folder) / f"webhook_receiver-{label}.txt").write_text("\n".join(lines) + "\n")


def main() -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "include"))
    import argparse

    from latam_messaging.warehouse.db import Warehouse

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--warehouse", help="label of the warehouse AIRFLOW_CONN_MESSAGING_WAREHOUSE names")
    parser.add_argument("--processes", type=int, default=1, help="receiver processes (its --workers)")
    parser.add_argument("--serve-profiled", type=int, metavar="PORT", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_profiled:
        serve_profiled(args.serve_profiled, os.environ["BENCH_PROFILE"], args.warehouse or "sqlite")
        return
    profile = os.environ.get("BENCH_PROFILE") if args.processes == 1 else None
    with tempfile.TemporaryDirectory(prefix="bench-webhooks-") as tmp:
        db = Path(tmp) / "warehouse.db"
        if args.warehouse:  # the warehouse ``make bench`` prepared (SQLite file or PostgreSQL database)
            os.environ["AIRFLOW_HOME"] = str(Path(tmp) / "airflow")
            warehouse = Warehouse.from_connection()
            conn_json = os.environ["AIRFLOW_CONN_MESSAGING_WAREHOUSE"]
        else:
            warehouse = Warehouse.from_url(f"sqlite:///{db}")
            conn_json = json.dumps({"conn_type": "sqlite", "host": str(db)})
        warehouse.migrate()
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        env = dict(os.environ)
        env.update(
            AIRFLOW_HOME=str(Path(tmp) / "airflow"),
            AIRFLOW_CONN_MESSAGING_WAREHOUSE=conn_json,
            MESSAGING_WEBHOOK_SECRET="bench-secret",
        )
        if profile:
            command = [__file__, "--serve-profiled", str(port), "--warehouse", args.warehouse or "sqlite"]
        else:
            command = ["-m", "latam_messaging.webhooks.receiver", "--port", str(port), "--workers", str(args.processes)]
        receiver = subprocess.Popen([sys.executable, *command], env=env)
        base = f"http://127.0.0.1:{port}"
        try:
            for _ in range(1200):
                try:
                    urllib.request.urlopen(f"{base}/health", timeout=5)
                    if args.processes == 1 or len(psutil.Process(receiver.pid).children()) > args.processes:
                        break  # every worker up (its children: the workers and multiprocessing's tracker)
                except OSError:
                    pass
                time.sleep(0.1)
            acknowledged = []
            lock = threading.Lock()

            def client(start: int) -> None:
                session = requests.Session()
                for i in range(start, TOTAL, CLIENTS):
                    body = [
                        {
                            "fechaHora": "2026-11-23T10:00:00.000-03:00",
                            "identificador": f"b-{i}",
                            "telefono": "5493516723999",
                            "resultado": "delivered",
                            "empresa": "MaytenCloud",
                            "origen": "WSP",
                            "sentTime": "1.0",
                        }
                    ]
                    if session.post(f"{base}/webhooks/teleprom/bench-secret", json=body, timeout=30).status_code == 200:
                        with lock:
                            acknowledged.append(i)

            threads = [threading.Thread(target=client, args=(n,)) for n in range(CLIENTS)]
            cpu_before = (tree_cpu_seconds(receiver.pid), time.process_time(), postgres_cpu_seconds())
            started = time.perf_counter()
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            seconds = time.perf_counter() - started
            cpu = {
                "receiver_cpu_s": round(tree_cpu_seconds(receiver.pid) - cpu_before[0], 2),
                "client_cpu_s": round(time.process_time() - cpu_before[1], 2),
            }
            if cpu_before[2] is not None and args.warehouse == "postgres":
                cpu["postgres_cpu_s"] = round(postgres_cpu_seconds() - cpu_before[2], 2)
            peak_mb = peak_rss_mb(receiver.pid) if args.processes == 1 else max(
                filter(None, (peak_rss_mb(p.pid) for p in psutil.Process(receiver.pid).children())), default=None
            )
        finally:
            receiver.terminate()
            receiver.wait()
        stored = warehouse.count("raw_webhook_events")
        rate = len(acknowledged) / seconds
        print(
            f"webhook_receiver [{args.warehouse or 'sqlite'}, {args.processes} process(es)]: {len(acknowledged):,} "
            f"acknowledged, {stored:,} stored in {seconds:.1f}s = {rate:,.0f} requests/s ({CLIENTS} clients), "
            f"peak RSS {peak_mb} MB a process; CPU s: " + ", ".join(f"{k[:-6]} {v}" for k, v in cpu.items())
        )
        if stored != len(acknowledged):
            raise SystemExit(f"LOST: {len(acknowledged) - stored} acknowledged webhooks are not stored")
        print(
            json.dumps(
                {
                    "bench": "webhook_receiver",
                    "rows": stored,
                    "seconds": round(seconds, 3),
                    "rows_per_s": round(rate, 1),
                    "peak_rss_mb": peak_mb,
                    "baseline_rows_per_s": None,
                    "processes": args.processes,
                    "clients": CLIENTS,
                    **cpu,
                    **({"warehouse": args.warehouse} if args.warehouse else {}),
                }
            )
        )


if __name__ == "__main__":
    main()
