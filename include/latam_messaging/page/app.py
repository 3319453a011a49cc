"""The Messaging page as a FastAPI app that the Airflow plugin mounts on the API server.

Every route depends on Airflow's own authentication (``airflow.api_fastapi.core_api.security.get_user``:
the UI's ``_token`` cookie or an ``Authorization: Bearer`` JWT): without it the answer is 401 (no or
expired token) or 403 (invalid token, or a user the auth manager does not allow this custom view).

Routes (under the mount prefix, ``/messaging``):

* ``GET /`` – the page (server-rendered HTML; the UI shows it in an iframe from its navigation);
* ``GET /api/summary`` – the same numbers as JSON;
* ``GET /report/`` and ``GET /report/<file>`` – the latest rendered report and its charts.
"""

from __future__ import annotations

import html
import re
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse

from latam_messaging.page import queries
from latam_messaging.page.panels import PanelFunction
from latam_messaging.warehouse.db import Warehouse

#: The resource name auth managers see for this page (``is_authorized_custom_view``).
RESOURCE_NAME = "Messaging"
URL_PREFIX = "/messaging"


async def require_airflow_user(request: Request) -> Any:
    """Airflow's own authentication, then the auth manager's decision on this custom view."""
    from airflow.api_fastapi.app import get_auth_manager
    from airflow.api_fastapi.core_api.security import bearer_scheme, get_user

    credentials = await bearer_scheme(request)  # auto_error=False: None without a bearer header
    user = await get_user(request=request, _oauth_token=None, bearer_credentials=credentials)
    if not get_auth_manager().is_authorized_custom_view(method="GET", resource_name=RESOURCE_NAME, user=user):
        raise HTTPException(status_code=403, detail="Forbidden: no access to the Messaging page")
    return user


def registry_panels() -> list[PanelFunction]:
    """Every vendor's page panels, from the registry (this app is a top: it may read it)."""
    from latam_messaging.vendors import page_panels

    return page_panels()


def snapshot(warehouse: Warehouse, **kwargs: Any) -> dict:
    """:func:`queries.snapshot` with the registry's page panels: what ``/api/summary`` answers."""
    return queries.snapshot(warehouse, panels=registry_panels(), **kwargs)


class _WarehouseHolder:
    """One engine for the app's life, created on first use (the connection may not exist at start-up)."""

    def __init__(self, factory: Callable[[], Warehouse]):
        self._factory, self._warehouse, self._lock = factory, None, threading.Lock()

    def get(self) -> Warehouse:
        with self._lock:
            if self._warehouse is None:
                self._warehouse = self._factory()
            return self._warehouse

    def reset(self) -> None:
        with self._lock:
            if self._warehouse is not None:
                self._warehouse.engine.dispose()
            self._warehouse = None


def create_app(
    warehouse_factory: Callable[[], Warehouse] | None = None,
    report_dir: str | Path | None = None,
    panels: Sequence[PanelFunction] | None = None,
) -> FastAPI:
    """``warehouse_factory`` defaults to the ``messaging_warehouse`` connection, ``panels`` to the
    vendors' page panels of the registry."""
    holder = _WarehouseHolder(warehouse_factory or Warehouse.from_connection)
    panels = registry_panels() if panels is None else list(panels)
    app = FastAPI(
        title="Messaging",
        description="Delivery funnel, unknown sends, rejects, ITD credits and inbound volume (read-only).",
        dependencies=[Depends(require_airflow_user)],
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    app.state.warehouse = holder

    def read(days: int) -> dict:
        try:
            return queries.snapshot(holder.get(), panels=panels, days=days, report_dir=report_dir)
        except Exception as error:  # the warehouse is down, unmigrated or misconfigured: say so on the page
            holder.reset()
            raise HTTPException(
                status_code=503, detail=f"warehouse not readable: {type(error).__name__}: {error}"
            ) from error

    @app.get("/api/summary")
    def summary(days: int = Query(queries.DEFAULT_DAYS, ge=1, le=366)) -> JSONResponse:
        return JSONResponse(read(days))

    @app.get("/", response_class=HTMLResponse)
    def page(request: Request, days: int = Query(queries.DEFAULT_DAYS, ge=1, le=366)) -> HTMLResponse:
        try:
            data = read(days)
        except HTTPException as error:
            return HTMLResponse(_page_html(None, str(error.detail), base=_base(request)), status_code=503)
        return HTMLResponse(_page_html(data, None, base=_base(request)))

    @app.get("/report/")
    def report_index() -> FileResponse:
        return FileResponse(_latest_report_file("index.html", report_dir), media_type="text/html")

    @app.get("/report/{name}")
    def report_file(name: str) -> FileResponse:
        return FileResponse(_latest_report_file(name, report_dir))

    return app


def _base(request: Request) -> str:
    """The app's own path (``/messaging``, behind any API root path) for links in the page."""
    return str(request.scope.get("root_path", "")).rstrip("/")


def _latest_report_file(name: str, report_dir: str | Path | None) -> Path:
    if not re.fullmatch(r"[A-Za-z0-9_.-]+\.(html|png|svg|csv)", name) or name.startswith("."):
        raise HTTPException(status_code=404, detail="not found")
    report = queries.latest_report(report_dir)
    path = report.parent / name if report else None
    if path is None or not path.is_file():
        raise HTTPException(status_code=404, detail="no rendered report yet: run the messaging_report DAG")
    return path


# ---- HTML ---------------------------------------------------------------------------------------------
_STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:1.2rem;color:#1a202c;background:#fff}
h1{font-size:1.4rem;margin:0 0 .3rem} h2{font-size:1.1rem;margin:1.6rem 0 .4rem}
table{border-collapse:collapse;font-size:.9rem} th,td{padding:.25rem .6rem;border-bottom:1px solid #e2e8f0;text-align:right}
th{background:#f7fafc} td.t,th.t{text-align:left} .muted{color:#718096;font-size:.85rem} .warn{color:#c53030;font-weight:600}
.cards{display:flex;gap:1rem;flex-wrap:wrap} .card{border:1px solid #e2e8f0;border-radius:.4rem;padding:.6rem 1rem}
.card b{display:block;font-size:1.5rem}
@media (prefers-color-scheme: dark){body{background:#1a202c;color:#e2e8f0} th{background:#2d3748} th,td{border-color:#4a5568}}
"""


def _table(rows: list[dict], columns: list[tuple[str, str]], empty: str, table_id: str) -> str:
    if not rows:
        return f'<p class="muted" id="{table_id}-empty">{html.escape(empty)}</p>'
    head = "".join(f'<th class="{"t" if k in _TEXT else ""}">{html.escape(label)}</th>' for k, label in columns)
    body = "".join(
        "<tr>"
        + "".join(
            f'<td class="{"t" if k in _TEXT else ""}" data-col="{k}">{html.escape("" if r.get(k) is None else str(r[k]))}</td>'
            for k, _ in columns
        )
        + "</tr>"
        for r in rows
    )
    return f'<table id="{table_id}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


_TEXT = {"vendor", "day", "message_key", "phone", "since", "file", "folder", "reason", "claimed_at", "file_sha256"}


def _page_html(data: dict | None, error: str | None, *, base: str) -> str:
    parts = [
        "<!doctype html><html lang=en><head><meta charset=utf-8><title>Messaging</title>",
        f"<style>{_STYLE}</style></head><body><h1>Messaging</h1>",
    ]
    if data is None:
        parts.append(f'<p class="warn" id="error">{html.escape(error or "")}</p></body></html>')
        return "".join(parts)
    totals = {k: sum(r[k] for r in data["funnel"]) for k in ("messages", "delivered", "failed")}
    credits = data["itd_credits"]
    report = data["report"]
    report_link = (
        f'<a id="report-link" href="{base}/report/" target="_blank" rel="noopener">report of {html.escape(report["date"])}</a>'
        if report
        else '<span class="muted" id="report-link">no rendered report yet (messaging_report DAG)</span>'
    )
    parts.append(
        f'<p class="muted">Warehouse: {html.escape(data["warehouse"])} · last {data["days"]} days (UTC) · '
        f"generated {html.escape(data['generated_at'][:19])} · {report_link} · "
        f'<a href="{base}/api/summary?days={data["days"]}">JSON</a></p>'
    )
    days_left = credits["days_left"]
    parts.append(
        '<div class="cards">'
        f'<div class="card">messages<b id="total-messages">{totals["messages"]}</b></div>'
        f'<div class="card">delivered<b id="total-delivered">{totals["delivered"]}</b></div>'
        f'<div class="card">failed<b id="total-failed">{totals["failed"]}</b></div>'
        f'<div class="card">unknown, waiting for a decision<b id="total-unknown">{len(data["unknown"])}</b></div>'
        f'<div class="card">ITD credits<b id="credits">{"n/a" if credits["credits"] is None else credits["credits"]}</b>'
        f'<span class="muted">days left: <span id="credits-days-left">{"n/a" if days_left is None else days_left}</span>'
        f' · burn/day: {"n/a" if credits["burn_per_day"] is None else credits["burn_per_day"]}</span></div>'
        "</div>"
    )
    parts.append("<h2>Delivery funnel per vendor and day</h2>")
    parts.append(
        _table(
            data["funnel"],
            [
                ("day", "day"),
                ("vendor", "vendor"),
                ("messages", "messages"),
                ("accepted", "accepted"),
                ("sent", "sent"),
                ("delivered", "delivered"),
                ("read", "read"),
                ("failed", "failed"),
                ("rejected", "rejected"),
                ("unknown", "unknown"),
                ("waiting", "waiting"),
            ],
            "No sends in this period.",
            "funnel",
        )
    )
    parts.append(
        "<h2>Unknown sends waiting for a decision</h2><p class=muted>In flight when a run stopped; never re-sent "
        "automatically. Decide per key: trigger the send DAG with <code>release_unknown</code>.</p>"
    )
    parts.append(
        _table(
            data["unknown"],
            [
                ("vendor", "vendor"),
                ("message_key", "message_key"),
                ("phone", "phone"),
                ("since", "since (UTC)"),
                ("age_hours", "age (h)"),
                ("file", "file"),
            ],
            "None.",
            "unknown",
        )
    )
    parts.append("<h2>Rejected rows by file and reason</h2>")
    parts.append(
        _table(
            data["rejects"],
            [
                ("claimed_at", "claimed (UTC)"),
                ("folder", "folder"),
                ("file", "file"),
                ("reason", "reason"),
                ("rows", "rows rejected"),
                ("rows_total", "rows in file"),
            ],
            "No rejected rows.",
            "rejects",
        )
    )
    parts.append("<h2>Inbound messages per vendor and day</h2>")
    parts.append(
        _table(
            data["inbound"],
            [("day", "day"), ("vendor", "vendor"), ("messages", "messages")],
            "No inbound messages in this period.",
            "inbound",
        )
    )
    parts.append("</body></html>")
    return "".join(parts)
