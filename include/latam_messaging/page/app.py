"""The Messaging page as a FastAPI app that the Airflow plugin mounts on the API server.

Every route depends on Airflow's own authentication (``airflow.api_fastapi.core_api.security.get_user``:
the UI's ``_token`` cookie or an ``Authorization: Bearer`` JWT): without it the answer is 401 (no or
expired token) or 403 (invalid token, or a user the auth manager does not allow this custom view).

Routes (under the mount prefix, ``/messaging``):

* ``GET /`` – the page (server-rendered from ``templates/page.html``; the UI shows it in an iframe
  from its navigation);
* ``GET /api/summary`` – the same numbers as JSON;
* ``GET /campaigns``, ``GET /campaigns/<id>`` and their ``/api/`` JSON – the campaign pages
  (``page.campaign_routes``);
* ``GET /report/`` and ``GET /report/<file>`` – the latest rendered report and its charts.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse

from latam_messaging.page import actions, campaign_routes, queries, reply_routes, security
from latam_messaging.page.panels import PanelFunction
from latam_messaging.page.rendering import TEMPLATES
from latam_messaging.page.trigger import TriggerDag
from latam_messaging.warehouse.db import Warehouse

#: The resource name auth managers see for this page (``is_authorized_custom_view``).
RESOURCE_NAME = security.RESOURCE_NAME
URL_PREFIX = "/messaging"


async def require_airflow_user(request: Request) -> Any:
    """Airflow's own authentication, then the auth manager's decision on reading this custom view (writes
    need more: ``security.require_editor``)."""
    return await security.authenticated_user(request, "GET")


def registry_panels() -> list[PanelFunction]:
    """Every vendor's page panels, from the registry (this app is a top: it may read it)."""
    from latam_messaging.vendors import page_panels

    return page_panels()


def registry_send_folders() -> dict[str, str]:
    """Each vendor's send folder → the DAG that sends it (``<folder>_send``), from the registry."""
    from latam_messaging.vendors import VENDORS

    return {vendor.adapter_class().folder: f"{vendor.adapter_class().folder}_send" for vendor in VENDORS.values()}


def registry_adapter(name: str) -> Any:
    """A new send adapter of vendor ``name`` from the registry, or None for no such vendor."""
    from latam_messaging.vendors import VENDORS, adapter

    return adapter(name) if name in VENDORS else None


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
    trigger_dag: TriggerDag | None = None,
) -> FastAPI:
    """``warehouse_factory`` defaults to the ``messaging_warehouse`` connection, ``panels`` to the
    vendors' page panels of the registry, ``trigger_dag`` (how a write starts a send DAG run) to
    Airflow's own trigger (``trigger.airflow_trigger``)."""
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
    app.include_router(reply_routes.router(holder.get, registry_adapter, trigger=trigger_dag))

    def read(days: int) -> dict:
        try:
            return queries.snapshot(holder.get(), panels=panels, days=days, report_dir=report_dir)
        except Exception as error:  # the warehouse is down, unmigrated or misconfigured: say so on the page
            holder.reset()
            raise HTTPException(
                status_code=503, detail=f"warehouse not readable: {type(error).__name__}: {error}"
            ) from error

    @app.get("/api/csrf-token")
    def csrf(request: Request) -> JSONResponse:
        """This session's anti-CSRF token (a script of another site cannot read a same-origin answer)."""
        return JSONResponse({"token": security.csrf_token(request)}, headers={"Cache-Control": "no-store"})

    @app.get("/api/summary")
    def summary(days: int = Query(queries.DEFAULT_DAYS, ge=1, le=366)) -> JSONResponse:
        return JSONResponse(read(days))

    @app.get("/", response_class=HTMLResponse)
    def page(request: Request, days: int = Query(queries.DEFAULT_DAYS, ge=1, le=366)) -> HTMLResponse:
        try:
            data = read(days)
        except HTTPException as error:
            return HTMLResponse(render_page(None, str(error.detail), base=_base(request)), status_code=503)
        return HTMLResponse(render_page(data, None, base=_base(request)))

    app.include_router(campaign_routes.router(holder, send_folders=registry_send_folders))

    @app.get("/report/")
    def report_index() -> FileResponse:
        return FileResponse(_latest_report_file("index.html", report_dir), media_type="text/html")

    @app.get("/report/{name}")
    def report_file(name: str) -> FileResponse:
        return FileResponse(_latest_report_file(name, report_dir))

    app.include_router(actions.router(holder.get, trigger_dag))
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


# ---- HTML ----------------------------------------------------------------------------------------------
_TEMPLATES = TEMPLATES


def render_page(data: dict | None, error: str | None, *, base: str) -> str:
    """The page (``templates/page.html``) of a :func:`snapshot`, or of the error that prevented one."""
    return _TEMPLATES.get_template("page.html").render(data=data, error=error, base=base)
