"""``make bench``: measured throughput and memory, printed readably and as one JSON line per benchmark.

JSON fields (CONTRACT.md): bench, rows, seconds, rows_per_s, peak_rss_mb, baseline_rows_per_s.
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
        "from latam_messaging.simulators.registry import SIMULATORS;"
        f"SimulatorServer(SIMULATORS[{name!r}][0](step_seconds=3600), port={port}).serve_forever()"
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


def set_latency(url: str, latency_ms: int) -> None:
    request = urllib.request.Request(
        f"{url}/_sim/config",
        data=json.dumps({"latency_ms": latency_ms}).encode(),
        headers={"Content-Type": "application/json"},
    )
    urllib.request.urlopen(request, timeout=10).read()


def environment(workdir: Path, teleprom_url: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        AIRFLOW_HOME=str(workdir / "airflow"),
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        AIRFLOW_CONN_TELEPROM_DEFAULT=json.dumps(
            {"conn_type": "teleprom", "host": teleprom_url, "login": "demo", "password": "demo-pass"}
        ),
        AIRFLOW_CONN_MESSAGING_WAREHOUSE=json.dumps({"conn_type": "sqlite", "host": str(workdir / "warehouse.db")}),
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


# ---- child processes: one measured run each ----------------------------------------------------------
def child_pipeline(rows: int) -> dict:
    """Claim, parse, validate, ledger, send and record a drop of ``rows`` rows."""
    from latam_messaging.sending.adapters import TelepromAdapter
    from latam_messaging.sending.pipeline import dispatch, ingest_drops
    from latam_messaging.teleprom.catalog import sync_catalog
    from latam_messaging.teleprom.hook import TelepromHook
    from latam_messaging.warehouse.db import open_warehouse

    warehouse = open_warehouse()
    hook = TelepromHook()
    sync_catalog(warehouse, hook.get_templates(), hook.get_accounts())
    write_drop(Path(os.environ["MESSAGING_DROP_DIR"]) / "teleprom_hsm" / "bench.csv", rows)
    started = time.perf_counter()
    ingest = ingest_drops(
        TelepromAdapter(), warehouse, Path(os.environ["MESSAGING_DROP_DIR"]), region="AR", timezone="UTC"
    )
    sent = dispatch(TelepromAdapter(), warehouse)
    seconds = time.perf_counter() - started
    accepted = sent.states.get("accepted", 0)
    return {
        "rows": ingest.rows_valid,
        "accepted": accepted,
        "seconds": round(seconds, 3),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
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
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
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
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


CHILDREN = {"pipeline": child_pipeline, "naive": child_naive, "simulator_accept": child_simulator_accept}


def measure(kind: str, size: int, env: dict[str, str]) -> dict:
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


def report(name: str, run: dict, baseline_rows_per_s: float | None, note: str) -> None:
    rate = run["rows"] / run["seconds"] if run["seconds"] else 0.0
    print(
        f"{name}: {run['rows']:,} rows in {run['seconds']:.1f}s = {rate:,.0f} rows/s, peak RSS {run['peak_rss_mb']:.0f} MB. {note}"
    )
    line = {
        "bench": name,
        "rows": run["rows"],
        "seconds": run["seconds"],
        "rows_per_s": round(rate, 1),
        "peak_rss_mb": run["peak_rss_mb"],
        "baseline_rows_per_s": round(baseline_rows_per_s, 1) if baseline_rows_per_s else None,
    }
    print(json.dumps(line), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--child")
    parser.add_argument("--size", type=int, default=0)
    parser.add_argument("--rows", type=int, default=100_000, help="rows of the main end-to-end run")
    parser.add_argument("--big-rows", type=int, default=1_000_000, help="rows of the flat-memory run (0: skip)")
    parser.add_argument("--naive-rows", type=int, default=1_000, help="rows of the naive baseline slice")
    parser.add_argument(
        "--latency-ms", type=int, default=20, help="simulated vendor round trip per request (the real hosts are remote)"
    )
    args = parser.parse_args()
    if args.child:
        print(json.dumps(CHILDREN[args.child](args.size)))
        return

    with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        simulator, url = start_simulator("teleprom")
        try:
            plans = [
                ("teleprom_hsm_send_e2e", args.rows, args.latency_ms),
                ("teleprom_hsm_send_e2e_no_latency", args.rows, 0),
                ("teleprom_hsm_send_e2e_1m", args.big_rows, args.latency_ms),
            ]
            for label, size, latency in plans:
                if not size:
                    continue
                set_latency(url, latency)
                workdir = Path(tmp) / label
                workdir.mkdir()
                env = environment(workdir, url)
                naive = measure("naive", args.naive_rows, env)
                baseline = naive["rows"] / naive["seconds"]
                run = measure("pipeline", size, env)
                speedup = run["rows"] / run["seconds"] / baseline
                report(
                    label,
                    run,
                    baseline,
                    f"Vendor round trip {latency} ms. Naive per-row HttpHook loop on {naive['rows']:,} rows: "
                    f"{baseline:,.0f} rows/s; speed-up x{speedup:.1f}.",
                )
            set_latency(url, 0)
            sim = measure("simulator_accept", 200, environment(Path(tmp), url))
            report(
                "teleprom_simulator_accept",
                sim,
                None,
                "Destinations accepted by the simulator (batches of 500, 4 clients).",
            )
        finally:
            simulator.terminate()
            simulator.wait()
        extra = ROOT / "scripts" / "bench_webhooks.py"
        if extra.exists():
            subprocess.run([sys.executable, str(extra)], check=True)


if __name__ == "__main__":
    main()
