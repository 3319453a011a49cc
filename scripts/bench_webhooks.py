"""Webhook receiver throughput: requests/s with every acknowledged body stored (stored = acknowledged).

Starts the receiver (uvicorn, one process) on a fresh SQLite warehouse and fires vendor-like
callbacks from concurrent clients. Prints a readable line and a JSON line (CONTRACT.md format).
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


def main() -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "include"))
    import argparse

    from latam_messaging.warehouse.db import Warehouse

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--warehouse", help="label of the warehouse AIRFLOW_CONN_MESSAGING_WAREHOUSE names")
    args = parser.parse_args()
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
        receiver = subprocess.Popen(
            [sys.executable, "-m", "latam_messaging.webhooks.receiver", "--port", str(port)], env=env
        )
        base = f"http://127.0.0.1:{port}"
        try:
            for _ in range(200):
                try:
                    urllib.request.urlopen(f"{base}/health", timeout=1)
                    break
                except OSError:
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
            started = time.perf_counter()
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            seconds = time.perf_counter() - started
            peak_mb = peak_rss_mb(receiver.pid)
        finally:
            receiver.terminate()
            receiver.wait()
        stored = warehouse.count("raw_webhook_events")
        rate = len(acknowledged) / seconds
        print(
            f"webhook_receiver [{args.warehouse or 'sqlite'}]: {len(acknowledged):,} acknowledged, {stored:,} stored in {seconds:.1f}s = {rate:,.0f} requests/s ({CLIENTS} clients), receiver peak RSS {peak_mb} MB"
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
                    **({"warehouse": args.warehouse} if args.warehouse else {}),
                }
            )
        )


if __name__ == "__main__":
    main()
