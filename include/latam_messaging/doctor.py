"""``python -m latam_messaging doctor``: is this Airflow ready to run the messaging DAGs?

Checks, each with what to do when it fails:

* the connections ``teleprom_default``, ``itd_default``, ``wavy_default`` and ``messaging_warehouse``
  resolve (environment, secrets backend or metadata database) and have the expected type;
* the vendor pools of ``deploy/pools.json`` exist (a missing pool leaves tasks *scheduled* forever,
  with an empty log);
* the warehouse answers and its migrations are at head;
* the webhook receiver answers ``GET /health``;
* with ``--test-connections``, each vendor hook's ``test_connection()`` (a real call to the vendor).

Exit status: 0 when all checks pass (warnings allowed), 1 otherwise.
"""

from __future__ import annotations

import argparse
import os
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from latam_messaging import settings
from latam_messaging.vendors import POOLS, VENDORS

#: conn id → accepted conn types (CONTRACT.md): each vendor's, and the warehouse.
REQUIRED_CONNECTIONS: dict[str, tuple[str, ...]] = {
    **{vendor.conn_id: (vendor.conn_type,) for vendor in VENDORS.values()},
    "messaging_warehouse": ("postgres", "sqlite"),
}


@dataclass
class Check:
    name: str
    ok: bool
    message: str
    warning: bool = False  # shown, but does not fail the run

    def line(self) -> str:
        mark = "WARN" if self.warning else ("ok  " if self.ok else "FAIL")
        return f"[{mark}] {self.name}: {self.message}"


def _describe(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0] if text else ''}"[:300]


def check_connections() -> list[Check]:
    from airflow.sdk import BaseHook

    checks = []
    for conn_id, types in REQUIRED_CONNECTIONS.items():
        try:
            conn = BaseHook.get_connection(conn_id)
        except Exception as error:
            checks.append(
                Check(
                    f"connection {conn_id}",
                    False,
                    f"not found ({_describe(error)}). Define it in the UI (Admin → Connections), with "
                    f"`airflow connections add {conn_id} --conn-type {types[0]} ...` or as AIRFLOW_CONN_{conn_id.upper()}.",
                )
            )
            continue
        if conn.conn_type not in types:
            checks.append(
                Check(
                    f"connection {conn_id}",
                    False,
                    f"has type {conn.conn_type!r}; expected {' or '.join(repr(t) for t in types)}",
                )
            )
            continue
        where = conn.host or ""
        if conn.port:
            where += f":{conn.port}"
        checks.append(Check(f"connection {conn_id}", True, f"{conn.conn_type} {where}".strip()))
    optional = settings.current().alert_conn_id
    try:
        BaseHook.get_connection(optional)
        checks.append(Check(f"connection {optional}", True, "failure alerts are sent"))
    except Exception:
        checks.append(
            Check(f"connection {optional}", True, "not defined: failure alerts are only in the task log", warning=True)
        )
    return checks


def check_pools(pool_names: list[str] | None = None) -> list[Check]:
    from airflow.models import Pool
    from airflow.utils.session import create_session

    names = pool_names or list(POOLS.values())
    checks = []
    try:
        with create_session() as session:
            existing = {p.pool: p.slots for p in session.query(Pool).filter(Pool.pool.in_(names))}
    except Exception as error:
        return [Check("pools", False, f"the Airflow metadata database is not readable ({_describe(error)})")]
    for name in names:
        if name in existing:
            slots = existing[name]
            checks.append(
                Check(f"pool {name}", slots != 0, f"{slots} slots" + ("" if slots else ": no task can run (0 slots)"))
            )
        else:
            checks.append(
                Check(
                    f"pool {name}",
                    False,
                    "missing: its tasks would stay 'scheduled' forever with an empty log. "
                    "Run `airflow pools import deploy/pools.json`.",
                )
            )
    return checks


def check_warehouse() -> list[Check]:
    import sqlalchemy as sa

    from latam_messaging.warehouse import schema
    from latam_messaging.warehouse.db import Warehouse
    from latam_messaging.warehouse.migrations import MIGRATIONS

    try:
        warehouse = Warehouse.from_connection()
    except Exception as error:
        return [Check("warehouse", False, f"cannot build an engine from messaging_warehouse ({_describe(error)})")]
    try:
        with warehouse.engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
            if sa.inspect(conn).has_table(schema.schema_migrations.name):
                applied = set(conn.execute(sa.select(schema.schema_migrations.c.version)).scalars())
            else:
                applied = set()
    except Exception as error:
        warehouse.engine.dispose()
        return [Check("warehouse", False, f"{warehouse.dialect} not reachable ({_describe(error)})")]
    warehouse.engine.dispose()
    head = max(m.version for m in MIGRATIONS)
    pending = [m.version for m in MIGRATIONS if m.version not in applied]
    url = warehouse.engine.url.render_as_string(hide_password=True)
    if pending:
        return [
            Check(
                "warehouse migrations",
                False,
                f"{url}: pending {pending} (head v{head}). Run `python -m latam_messaging migrate` "
                "(any task that opens the warehouse also applies them).",
            )
        ]
    return [Check("warehouse migrations", True, f"{url} at head (v{head})")]


def check_receiver(url: str) -> list[Check]:
    try:
        with urllib.request.urlopen(f"{url.rstrip('/')}/health", timeout=3) as response:
            ok = response.status == 200
    except Exception as error:
        return [
            Check(
                "webhook receiver",
                False,
                f"{url}/health not reachable ({_describe(error)}). Start it: "
                "`python -m latam_messaging.webhooks.receiver --host 127.0.0.1 --port 8090`.",
            )
        ]
    return [Check("webhook receiver", ok, f"{url}/health answers" + ("" if ok else " with an error"))]


def check_vendors() -> list[Check]:
    checks = []
    for vendor in VENDORS.values():
        conn_id = vendor.conn_id
        try:
            hook = vendor.hook_class()()
            ok, message = hook.test_connection()
        except Exception as error:
            ok, message = False, _describe(error)
        checks.append(Check(f"vendor {conn_id}", bool(ok), str(message)[:300]))
    return checks


def run(argv: list[str] | None = None, out: Callable[[str], Any] = print) -> int:
    parser = argparse.ArgumentParser(prog="python -m latam_messaging doctor", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--receiver-url",
        default=settings.current().receiver_url,
        help="base URL of the webhook receiver (default: MESSAGING_RECEIVER_URL or %(default)s)",
    )
    parser.add_argument("--skip-receiver", action="store_true", help="do not check the webhook receiver")
    parser.add_argument("--test-connections", action="store_true", help="also call each vendor (test_connection)")
    args = parser.parse_args(argv)
    # Resolve connections like the API server and scheduler do: environment, secrets backend, then
    # the metadata database (outside a task the Task SDK otherwise skips the metadata database).
    os.environ.setdefault("_AIRFLOW_PROCESS_CONTEXT", "server")

    checks = check_connections() + check_pools() + check_warehouse()
    if not args.skip_receiver:
        checks += check_receiver(args.receiver_url)
    if args.test_connections:
        checks += check_vendors()
    for check in checks:
        out(check.line())
    failed = [c for c in checks if not c.ok and not c.warning]
    out(f"\n{len(failed)} problem(s) found" if failed else "\nall checks passed")
    return 1 if failed else 0


def migrate(argv: list[str] | None = None, out: Callable[[str], Any] = print) -> int:
    """``python -m latam_messaging migrate``: bring the warehouse schema to head."""
    from latam_messaging.warehouse.db import Warehouse

    argparse.ArgumentParser(prog="python -m latam_messaging migrate", description=migrate.__doc__).parse_args(argv)
    os.environ.setdefault("_AIRFLOW_PROCESS_CONTEXT", "server")
    warehouse = Warehouse.from_connection()
    applied = warehouse.migrate()
    warehouse.engine.dispose()
    out(f"applied migrations {applied}" if applied else "warehouse already at head")
    return 0
