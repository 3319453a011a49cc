"""``make demo`` and ``make run DAG=<id>``: the DAGs, once, against the bundled simulators.

Sets up a local Airflow home under ``.airflow/`` (SQLite metadata, SQLite warehouse), starts the
simulators (and the webhook receiver, once it exists) unless they already run, drops the sample
CSVs, runs each DAG with ``airflow dags test``, prints the warehouse tables, and stops what it
started. Safe to run again: the same drops are recognised and nothing is sent twice.

Consent: before ``webhook_ingest`` a customer of the first ITD campaign replies "Baja."; after it, the
next campaign (``data/consent_demo/``) lists that phone again and ``itd_whatsapp_send`` must skip it
(a reject ``suppressed: keyword (…)``, nothing more at the simulator), or the demo fails.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import secrets
import shutil
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HOME = ROOT / ".airflow"
BIN = Path(sys.executable).parent
SIMULATOR_URLS = {"teleprom": "http://127.0.0.1:8081", "itd": "http://127.0.0.1:8082", "wavy": "http://127.0.0.1:8083"}
RECEIVER_URL = "http://127.0.0.1:8090"
SAMPLES = ROOT / "data" / "samples"
#: The consent demo (issue 23): after the first campaign, the customer of this phone (the first row of
#: data/samples/itd_whatsapp/) replies "Baja." through ITD's webhook; the next campaign to them,
#: data/consent_demo/itd_whatsapp/, is sent by itd_whatsapp_send to everybody else.
CONSENT_SAMPLES = ROOT / "data" / "consent_demo"
OPT_OUT_PHONE = "56960002104"
OPT_OUT_TEXT = "Baja."
CONSENT_DAGS = ("itd_whatsapp_send", "webhook_ingest")

#: The order in which the demo runs the DAGs (those whose file exists).
DEMO_ORDER = [
    "teleprom_catalog_sync",
    "number_checks",
    "suppression_lists",
    "teleprom_hsm_send",
    "itd_whatsapp_send",
    "wavy_sms_send",
    "itd_poll",
    "wavy_poll",
    "webhook_ingest",
    "messaging_report",
    "messaging_maintenance",
]


def webhook_secret() -> str:
    if os.environ.get("MESSAGING_WEBHOOK_SECRET"):
        return os.environ["MESSAGING_WEBHOOK_SECRET"]
    path = HOME / "webhook_secret"
    if not path.exists():
        path.write_text(secrets.token_urlsafe(24))
    return path.read_text().strip()


#: Illustrative unit prices for the demo only (set MESSAGING_PRICES to your contract's).
DEMO_PRICES = json.dumps(
    {
        "teleprom": {"marketing": 0.0618, "utility": 0.0113, "authentication": 0.0280, "default": 0.0618},
        "itd": {"default": 0.0450},
        "wavy": {"default": 0.0125},
    }
)


def demo_environment() -> dict[str, str]:
    """Airflow settings and ``AIRFLOW_CONN_*`` connections for the local demo."""
    env = dict(os.environ)
    env.update(
        AIRFLOW_HOME=str(HOME),
        AIRFLOW__CORE__DAGS_FOLDER=str(ROOT / "dags"),
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        AIRFLOW__LOGGING__LOGGING_LEVEL=env.get("AIRFLOW__LOGGING__LOGGING_LEVEL", "INFO"),
        MESSAGING_DROP_DIR=env.get("MESSAGING_DROP_DIR", str(ROOT / "data" / "drops")),
        MESSAGING_WEBHOOK_SECRET=webhook_secret(),
        MESSAGING_HOLD_RISKY_FOLDERS=env.get("MESSAGING_HOLD_RISKY_FOLDERS", "teleprom_hsm"),
        MESSAGING_REPORT_DIR=env.get("MESSAGING_REPORT_DIR", str(ROOT / "reports")),
        # retention (messaging_maintenance): nothing in a fresh demo is 30 days old, so it archives nothing
        MESSAGING_ARCHIVE_URL=env.get("MESSAGING_ARCHIVE_URL", str(ROOT / "data" / "archive")),
        # demo prices (not any vendor's): campaign costs on the page, the report and the campaigns view
        MESSAGING_PRICES=env.get("MESSAGING_PRICES", DEMO_PRICES),
        MESSAGING_CURRENCY=env.get("MESSAGING_CURRENCY", "USD"),
        PYTHONUNBUFFERED="1",
    )
    connections = {
        "teleprom_default": {
            "conn_type": "teleprom",
            "host": SIMULATOR_URLS["teleprom"],
            "login": "demo",
            "password": "demo-pass",
            "extra": {"shorten_links": True},  # promo_links.csv: its links go out shortened per campaign
        },
        "itd_default": {"conn_type": "itd_chile", "host": SIMULATOR_URLS["itd"], "password": "itd-demo-token"},
        "wavy_default": {
            "conn_type": "wavy",
            "host": SIMULATOR_URLS["wavy"],
            "login": "demo@wavy.global",
            "password": "wavy-demo-token",
        },
        "messaging_warehouse": {"conn_type": "sqlite", "host": str(HOME / "warehouse.db")},
    }
    for conn_id, fields in connections.items():
        env.setdefault(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(fields))
    return env


def answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1):
            return True
    except OSError:
        return False


def wait_until(predicate, what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise SystemExit(f"{what} did not start within {timeout:.0f}s")
        time.sleep(0.2)


def start_services(env: dict[str, str]) -> list[subprocess.Popen]:
    """Start the simulators (and the receiver) unless they already answer."""
    started = []
    logs = HOME / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    if not all(answers(f"{url}/_sim/state") for url in SIMULATOR_URLS.values()):
        webhook_base = f"{RECEIVER_URL}/webhooks/{{vendor}}/{env['MESSAGING_WEBHOOK_SECRET']}"
        command = [
            str(BIN / "python"),
            "-m",
            "latam_messaging.simulators",
            "--step-seconds",
            "0.5",
            "--webhook-base",
            webhook_base,
        ]
        started.append(
            subprocess.Popen(command, env=env, stdout=open(logs / "simulators.log", "ab"), stderr=subprocess.STDOUT)
        )
        wait_until(lambda: all(answers(f"{url}/_sim/state") for url in SIMULATOR_URLS.values()), "the simulators")
        print("started the vendor simulators (log: .airflow/logs/simulators.log)")
    receiver = ROOT / "include" / "latam_messaging" / "webhooks" / "receiver.py"
    if receiver.exists() and not answers(f"{RECEIVER_URL}/health"):
        command = [str(BIN / "python"), "-m", "latam_messaging.webhooks.receiver"]
        started.append(
            subprocess.Popen(command, env=env, stdout=open(logs / "receiver.log", "ab"), stderr=subprocess.STDOUT)
        )
        try:
            wait_until(lambda: answers(f"{RECEIVER_URL}/health"), "the webhook receiver")
        except SystemExit:
            for process in started:  # do not leave the simulators running behind a failed start
                process.terminate()
                process.wait(timeout=10)
            print("see .airflow/logs/receiver.log")
            raise
        print("started the webhook receiver (log: .airflow/logs/receiver.log)")
    return started


#: Webhook formats the demo's simulators post: Teleprom account 39 statuses in V1 (Meta's, with errors,
#: pricing and conversations) and replies in V3 (Meta's message types), account 41 in V0; ITD posts its documented bodies (inbound with ``direction: 1``, statuses with the
#: printed trailing comma) by itself.
SIMULATOR_CONFIG = {
    "teleprom": {"webhook_versions": {"39": {"status": "V1", "incoming": "V3"}, "41": "V0"}, "inbound_reply_rate": 0.5},
    "itd": {"reply_rate": 0.5},
}


def post_json(url: str, body: object, timeout: float) -> None:
    """POST ``body`` as JSON; an error answer raises (``urllib.error.HTTPError``)."""
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}, method="POST"
    )
    with urllib.request.urlopen(request, timeout=timeout):
        pass


def configure_simulators() -> None:
    for vendor, settings in SIMULATOR_CONFIG.items():
        post_json(f"{SIMULATOR_URLS[vendor]}/_sim/config", settings, timeout=5)
    print("simulators: Teleprom V1 statuses and V3 replies (account 39, Meta's shapes), V0 (account 41); ITD as documented")


def drop_samples(env: dict[str, str]) -> None:
    """Copy the sample CSVs into their drop folders (as writers do: upload ``.part``, then rename)."""
    if not SAMPLES.exists():
        return
    root = Path(env["MESSAGING_DROP_DIR"])
    for sample in sorted(SAMPLES.glob("*/*.csv")):
        folder = root / sample.parent.name
        folder.mkdir(parents=True, exist_ok=True)
        part = folder / f"{sample.name}.part"
        shutil.copyfile(sample, part)
        part.rename(folder / sample.name)
    print(f"dropped the sample CSVs into {root}")


def run_dag(dag_id: str, env: dict[str, str]) -> bool:
    print(f"\n=== {dag_id} ===", flush=True)
    log = HOME / "logs" / f"{dag_id}.log"
    with open(log, "wb") as out:
        result = subprocess.run(
            [str(BIN / "airflow"), "dags", "test", dag_id], env=env, stdout=out, stderr=subprocess.STDOUT
        )
    text = log.read_text(errors="replace")
    state = "success" if result.returncode == 0 and "state=success" in text else "FAILED"
    print(f"{dag_id}: {state} (log: {log.relative_to(ROOT)})")
    if state != "success":
        print("\n".join(text.splitlines()[-40:]))
    return state == "success"


def _use_demo_environment(env: dict[str, str]) -> None:
    """This process as the DAGs see it: before Airflow is imported, its home and the connections of this run."""
    os.environ.update(env)
    if str(ROOT / "include") not in sys.path:
        sys.path.insert(0, str(ROOT / "include"))


def _warehouse(env: dict[str, str]):
    """The warehouse the DAGs of this run use (the ``messaging_warehouse`` connection), migrated."""
    _use_demo_environment(env)
    from latam_messaging.warehouse.db import Warehouse

    warehouse = Warehouse.from_connection()
    warehouse.migrate()
    return warehouse


def _masked(phone: str) -> str:
    from latam_messaging.page.queries import mask_phone

    return mask_phone(phone)


def _simulator_messages_to(vendor: str, phone: str) -> int:
    """How many messages the simulator has accepted for ``phone`` (its ``/_sim/state``)."""
    with urllib.request.urlopen(f"{SIMULATOR_URLS[vendor]}/_sim/state", timeout=5) as answer:
        state = json.load(answer)
    return sum(1 for message in state["messages"] if message["phone"] == phone)


def post_opt_out_reply(env: dict[str, str]) -> None:
    """The customer of ``OPT_OUT_PHONE`` answers the first campaign "Baja.": an ITD inbound webhook as ITD
    posts it (its document's ``webhook_inbound.json`` shape), through the webhook receiver. The same
    message (its ``uuid``) every run: a second run reads it again and changes nothing."""
    _use_demo_environment(env)
    from latam_messaging.itd.simulator import ACCOUNT_PHONE

    body = {
        "uuid": str(uuid.uuid5(uuid.NAMESPACE_URL, f"latam-messaging-demo/opt-out/{OPT_OUT_PHONE}")),
        "accountPhone": ACCOUNT_PHONE,
        "senderPhone": OPT_OUT_PHONE,
        "content": OPT_OUT_TEXT,
        "sendAt": int(time.time() * 1000),
        "messageType": "chat",
        "caption": "",
        "url": "",
        "title": "",
        "description": "",
        "lng": "",
        "lat": "",
        "direction": 1,
    }
    post_json(f"{RECEIVER_URL}/webhooks/itd/{env['MESSAGING_WEBHOOK_SECRET']}", body, timeout=10)
    phone = _masked(OPT_OUT_PHONE)
    print(f'\n(consent) {phone} replied "{OPT_OUT_TEXT}" to the ITD campaign (webhook posted to the receiver)')


def next_campaign_skips_the_opt_out(env: dict[str, str]) -> bool:
    """After ``webhook_ingest`` read the reply: show the suppression, drop the next campaign (which lists the
    phone again), send it, and show the row rejected for consent and the simulator's count for the phone
    (0 since the opt-out). False when any of them is not so."""
    import sqlalchemy as sa

    from latam_messaging.consent import suppressions
    from latam_messaging.warehouse import schema

    warehouse = _warehouse(env)
    phone = _masked(OPT_OUT_PHONE)
    with warehouse.engine.connect() as conn:
        active = suppressions.active(conn, OPT_OUT_PHONE)
    if not active:
        print(f"(consent) FAILED: no active suppression for {phone} after webhook_ingest")
        return False
    for row in active:
        print(
            f"(consent) {phone} suppressed: source {row['source']}, scope {row['scope']}, "
            f"{row['reason']}, evidence {row['evidence']}"
        )
    before = _simulator_messages_to("itd", OPT_OUT_PHONE)
    root = Path(env["MESSAGING_DROP_DIR"])
    samples = sorted(CONSENT_SAMPLES.glob("*/*.csv"))
    for sample in samples:
        folder = root / sample.parent.name
        folder.mkdir(parents=True, exist_ok=True)
        part = folder / f"{sample.name}.part"
        shutil.copyfile(sample, part)
        part.rename(folder / sample.name)
        print(f"(consent) dropped the next campaign {sample.parent.name}/{sample.name}: it lists {phone} again")
    ok = run_dag("itd_whatsapp_send", env)
    digests = [hashlib.sha256(sample.read_bytes()).hexdigest() for sample in samples]
    rejects = schema.drop_rejects
    query = (
        sa.select(rejects.c.row_number, rejects.c.reason)
        .where(rejects.c.file_sha256.in_(digests), rejects.c.reason.like("suppressed:%"))
        .order_by(rejects.c.row_number)
    )
    with warehouse.engine.connect() as conn:
        skipped = conn.execute(query).all()
    warehouse.engine.dispose()
    for row_number, reason in skipped:
        print(f"(consent) row {row_number} of the next campaign rejected: {reason}")
    after = _simulator_messages_to("itd", OPT_OUT_PHONE)
    print(
        f"(consent) messages the ITD simulator received for {phone} since the opt-out: {after - before} "
        f"(before it: {before})"
    )
    if not skipped or after != before:
        print("(consent) FAILED: the opted-out phone was not skipped")
        return False
    return ok


def summary(env: dict[str, str]) -> None:
    """Counts and funnel of the warehouse the ``messaging_warehouse`` connection names (as the DAGs saw it)."""
    import sqlalchemy as sa

    warehouse = _warehouse(env)
    where = warehouse.engine.url.render_as_string(hide_password=True)
    print(f"\nWarehouse tables ({where}):")
    for table, count in warehouse.table_counts().items():
        print(f"  {table:<28} {count:>8}")
    query = sa.text(
        "SELECT vendor, SUM(messages), SUM(accepted), SUM(sent), SUM(delivered), SUM(read_count), SUM(failed), SUM(unknown) "
        "FROM report_delivery_funnel GROUP BY vendor ORDER BY vendor"
    )
    with warehouse.engine.connect() as conn:
        rows = conn.execute(query).all()
    print("\nDelivery funnel (report_delivery_funnel):")
    print(
        f"  {'vendor':<10}{'messages':>9}{'accepted':>9}{'sent':>7}{'deliv.':>7}{'read':>6}{'failed':>7}{'unknown':>8}"
    )
    for row in rows:
        print(
            f"  {row[0]:<10}"
            + "".join(f"{int(v or 0):>{w}}" for v, w in zip(row[1:], (9, 9, 7, 7, 6, 7, 8), strict=True))
        )
    reasons = sa.text(
        "SELECT vendor, stage, reason, messages FROM report_failure_reasons ORDER BY messages DESC, vendor, reason"
    )
    with warehouse.engine.connect() as conn:
        failures = conn.execute(reasons).all()
    print("\nFailures by reason (report_failure_reasons):")
    for vendor, stage, reason, messages in failures[:12]:
        print(f"  {vendor:<10}{stage:<10}{int(messages):>5}  {str(reason)[:90]}")
    if not failures:
        print("  none")
    consent_summary(warehouse)
    campaigns_summary(warehouse)
    reports = sorted(Path(env["MESSAGING_REPORT_DIR"]).glob("*/index.html"))
    if reports:
        print(f"\nReport: {reports[-1]}")
    warehouse.engine.dispose()


def campaigns_summary(warehouse) -> None:
    """Each campaign's story in one line (the ``campaigns`` view), and the page's audit log size."""
    import sqlalchemy as sa

    with warehouse.engine.connect() as conn:
        rows = conn.execute(
            sa.text(
                "SELECT name, vendor, rows_valid, accepted, delivered, read_count, failed + delivery_failed, replies, "
                "opt_outs, cost, currency FROM campaigns ORDER BY created_at, name"
            )
        ).all()
        audited = conn.execute(sa.text("SELECT COUNT(*) FROM audit_log")).scalar()
    print("\nCampaigns (the campaigns view; the Messaging page shows each one's story):")
    print(f"  {'campaign':<30}{'vendor':<10}{'rows':>6}{'acc.':>6}{'deliv.':>7}{'read':>6}{'fail':>6}{'repl.':>6}{'opt-out':>8}  cost")
    for name, vendor, valid, accepted, delivered, read, failed, replies, opt_outs, cost, currency in rows:
        price = f"{float(cost):.2f} {currency}" if cost is not None and currency else "(no price)"
        print(
            f"  {str(name)[:29]:<30}{vendor:<10}"
            + "".join(f"{int(v or 0):>{w}}" for v, w in zip((valid, accepted, delivered, read, failed, replies, opt_outs), (6, 6, 7, 6, 6, 6, 8), strict=True))
            + f"  {price}"
        )
    if not rows:
        print("  none")
    print(f"Audit log (decisions made on the page): {int(audited or 0)} line(s)")


def consent_summary(warehouse) -> None:
    """Active suppressions by source and scope, and the rows skipped for consent per file and source."""
    import sqlalchemy as sa

    with warehouse.engine.connect() as conn:
        active = conn.execute(
            sa.text("SELECT source, scope, active FROM report_active_suppressions ORDER BY active DESC, source, scope")
        ).all()
        skipped = conn.execute(
            sa.text(
                "SELECT folder, path, source, rejected_at_ingest, suppressed_at_claim FROM report_suppressed_rows "
                "ORDER BY claimed_at, path, source"
            )
        ).all()
    print("\nConsent: active suppressions by source (report_active_suppressions):")
    for source, scope, count in active:
        print(f"  {source:<24}{'scope ' + scope:<16}{int(count):>6}")
    if not active:
        print("  none")
    print("Rows skipped for consent (report_suppressed_rows):")
    for folder, path, source, at_ingest, at_claim in skipped:
        name = f"{folder}/{Path(path).name.split('-', 2)[-1]}" if path else "(no file)"
        print(f"  {name:<44}{source:<20} at ingest {int(at_ingest):>3}, at send {int(at_claim):>3}")
    if not skipped:
        print("  none")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dag", help="run only this DAG (make run DAG=...)")
    parser.add_argument(
        "--warehouse",
        choices=["connection", "postgres"],
        default="connection",
        help="connection: the messaging_warehouse connection (default: the SQLite file .airflow/warehouse.db); "
        "postgres: a throwaway PostgreSQL cluster for this run (make demo WAREHOUSE=postgres)",
    )
    args = parser.parse_args()
    HOME.mkdir(exist_ok=True)
    postgres = None
    if args.warehouse == "postgres":
        if args.dag:
            print("WAREHOUSE=postgres is for the whole demo: a throwaway cluster would not keep the warehouse")
            return 2
        postgres = throwaway_postgres()
        os.environ["AIRFLOW_CONN_MESSAGING_WAREHOUSE"] = postgres_connection(postgres)
    try:
        return run_demo(args)
    finally:
        if postgres is not None:
            postgres.stop()
            print("stopped the throwaway PostgreSQL")


def throwaway_postgres():
    """A PostgreSQL cluster in a temporary directory, started the way the tests start theirs
    (``tests/helpers/postgres.py``: as the ``postgres`` user when run as root, since initdb refuses root)."""
    sys.path.insert(0, str(ROOT))
    import sqlalchemy as sa

    from tests.helpers.postgres import ThrowawayPostgres

    server = ThrowawayPostgres()
    admin = sa.create_engine(server.url(), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text('CREATE DATABASE "messaging"'))
    admin.dispose()
    print(f"started a throwaway PostgreSQL on 127.0.0.1:{server.port} (warehouse database: messaging)")
    return server


def postgres_connection(server) -> str:
    fields = {"conn_type": "postgres", "host": server.host, "port": server.port, "login": "postgres", "schema": "messaging"}
    return json.dumps(fields)


def run_demo(args: argparse.Namespace) -> int:
    env = demo_environment()
    subprocess.run([str(BIN / "airflow"), "db", "migrate"], env=env, check=True, capture_output=True)
    pools = ROOT / "deploy" / "pools.json"
    subprocess.run([str(BIN / "airflow"), "pools", "import", str(pools)], env=env, check=True, capture_output=True)
    available = [d for d in DEMO_ORDER if (ROOT / "dags" / f"{d}.py").exists()]
    if args.dag and args.dag not in available:
        print(f"unknown DAG {args.dag!r}; available: {', '.join(available)}")
        return 2
    started = start_services(env)
    try:
        configure_simulators()
        if not args.dag:
            drop_samples(env)
        results = []
        consent = not args.dag and all(d in available for d in CONSENT_DAGS)
        for dag_id in [args.dag] if args.dag else available:
            if dag_id == "itd_poll" and not args.dag:
                print("\n(waiting a few seconds for the simulators to deliver statuses and replies)")
                time.sleep(6)
            if consent and dag_id == "webhook_ingest":
                post_opt_out_reply(env)
            results.append(run_dag(dag_id, env))
            if consent and dag_id == "webhook_ingest":
                results.append(next_campaign_skips_the_opt_out(env))
        ok = all(results)
        summary(env)
    finally:
        for process in started:
            process.terminate()
            process.wait(timeout=10)
    print("\nall DAGs succeeded" if ok else "\nsome DAGs FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
