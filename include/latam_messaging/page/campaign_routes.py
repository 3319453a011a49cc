"""The campaign pages of the Messaging page (read side): the list, one campaign's story, its export.

Routes (under ``/messaging``; every one behind the app's Airflow authentication, ``app.create_app``):

* ``GET /api/campaigns`` – campaigns, newest first: ``?vendor=&since=&q=&sort=&dir=&limit=`` → ``{"campaigns",
  "total", "limit", "vendors"}`` (``total``: every match, however many are listed);
* ``GET /api/campaigns/{campaign_id}`` – one campaign (``page.campaigns.campaign``): ``funnel``, ``failures``,
  ``replies``, ``opt_outs``, ``clicks``, ``cost``, ``currency``, ``unknown`` and the tables under them; 404
  for an unknown id;
* ``GET /api/campaigns/{campaign_id}/messages.csv`` – one line per message (phone as stored), streamed in
  keyset pages, cells a spreadsheet would run as formulas prefixed with ``'``;
* ``GET /campaigns`` and ``GET /campaigns/{campaign_id}`` – the same as HTML, with charts drawn on the
  server (``page.charts``) and the forms that call the write API (``X-CSRF-Token`` from
  ``security.csrf_token``): upload → preview → confirm on the list; cancel, release or mark sent the
  unknown rows (of the campaign or one request batch) on a campaign's page, and answer a reply while its
  24-hour window is open (``reply_open`` of ``page.campaigns.replies``: the form is drawn only then).
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import pendulum
import sqlalchemy as sa
from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, StreamingResponse

from latam_messaging.campaigns import records
from latam_messaging.campaigns.records import CampaignNotFound
from latam_messaging.page import campaigns, charts, security
from latam_messaging.page.rendering import TEMPLATES

#: Where the page app is mounted (the Airflow UI is the API server's root, one level up).
MOUNT = "/messaging"

_TEMPLATES = TEMPLATES


def money(value: float | None) -> str:
    """A cost as shown: two decimals, more when it is below one (a message costs fractions of a cent)."""
    if value is None:
        return "n/a"
    text = f"{value:,.2f}" if abs(value) >= 1 else f"{value:.6f}".rstrip("0")
    return text + "0" * max(0, 2 - len(text.partition(".")[2]))


_TEMPLATES.filters["money"] = money


def _base(request: Request) -> str:
    return str(request.scope.get("root_path", "")).rstrip("/")


def _ui_root(base: str) -> str:
    """The Airflow UI's root: the API server's path above this app's mount."""
    return base[: -len(MOUNT)] if base.endswith(MOUNT) else ""


def parse_since(text: str | None) -> dt.datetime | None:
    """``YYYY-MM-DD`` (that day's start, UTC) or an ISO-8601 time (naive = UTC); 422 otherwise."""
    if not text:
        return None
    try:
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
            return pendulum.parse(text, tz="UTC")
        parsed = pendulum.parse(text, tz="UTC")
    except (ValueError, pendulum.parsing.exceptions.ParserError):
        raise HTTPException(status_code=422, detail=f"since: not a date or time: {text[:40]!r}") from None
    if not isinstance(parsed, dt.datetime):
        raise HTTPException(status_code=422, detail=f"since: not a date or time: {text[:40]!r}")
    return parsed


def router(warehouse_holder: Any, send_folders: Callable[[], Mapping[str, str]]) -> APIRouter:
    """The campaign routes over the app's warehouse holder; ``send_folders()``: each send folder → the DAG
    that sends it (the app, a top, reads them from the vendor registry)."""
    routes = APIRouter()

    def run(read: Callable[[Any], Any]) -> Any:
        """``read(conn)`` in one read-only transaction; an unreadable warehouse is a 503 (and a new engine next time)."""
        try:
            with warehouse_holder.get().read_only(interactive=True) as conn:
                return read(conn)
        except (sa.exc.SQLAlchemyError, OSError) as error:
            warehouse_holder.reset()
            raise HTTPException(status_code=503, detail=f"warehouse not readable: {type(error).__name__}") from error

    def listing(vendor, since, q, sort, direction, limit) -> dict:
        if sort not in campaigns.SORTABLE:
            raise HTTPException(status_code=422, detail=f"sort: one of {', '.join(campaigns.SORTABLE)}")
        after = parse_since(since)
        return run(
            lambda conn: campaigns.list_campaigns(
                conn, vendor=vendor or None, since=after, q=q or None, sort=sort, direction=direction, limit=limit
            )
        )

    def story(campaign_id: str, rejects_page: int) -> dict:
        try:
            return run(lambda conn: campaigns.campaign(conn, campaign_id, rejects_page=rejects_page))
        except CampaignNotFound:
            raise HTTPException(status_code=404, detail="no such campaign") from None

    @routes.get("/api/campaigns")
    def api_campaigns(
        vendor: str | None = Query(None, max_length=16),
        since: str | None = Query(None, max_length=40),
        q: str | None = Query(None, max_length=200),
        sort: str = Query("created_at"),
        dir: str = Query("desc", pattern="^(asc|desc)$"),  # noqa: A002 - the query parameter's name
        limit: int = Query(campaigns.LIST_LIMIT, ge=1, le=1000),
    ) -> JSONResponse:
        return JSONResponse(listing(vendor, since, q, sort, dir, limit))

    @routes.get("/api/campaigns/{campaign_id}")
    def api_campaign(campaign_id: str, rejects_page: int = Query(1, ge=1, le=1_000_000)) -> JSONResponse:
        return JSONResponse(story(campaign_id, rejects_page))

    @routes.get("/api/campaigns/{campaign_id}/messages.csv")
    def export(campaign_id: str) -> StreamingResponse:
        try:
            sha = run(lambda conn: records.get(conn, campaign_id)["file_sha256"])
        except CampaignNotFound:
            raise HTTPException(status_code=404, detail="no such campaign") from None
        warehouse = warehouse_holder.get()

        def lines() -> Iterator[str]:
            buffer = io.StringIO()
            writer = csv.writer(buffer, lineterminator="\r\n")
            writer.writerow(campaigns.EXPORT_COLUMNS)
            yield _drain(buffer)
            for page in campaigns.export_pages(warehouse.read_only, sha):
                writer.writerows(page)
                yield _drain(buffer)

        name = re.sub(r"[^0-9a-f]", "", campaign_id)[:16]
        return StreamingResponse(
            _header_first(lines()),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="campaign-{name}-messages.csv"'},
        )

    @routes.get("/campaigns", response_class=HTMLResponse)
    def list_page(
        request: Request,
        vendor: str | None = Query(None, max_length=16),
        since: str | None = Query(None, max_length=40),
        q: str | None = Query(None, max_length=200),
        sort: str = Query("created_at"),
        dir: str = Query("desc", pattern="^(asc|desc)$"),  # noqa: A002
    ) -> HTMLResponse:
        data = listing(vendor, since, q, sort, dir, campaigns.LIST_LIMIT)
        base = _base(request)
        html = _TEMPLATES.get_template("campaigns.html").render(
            data=data,
            base=base,
            ui_root=_ui_root(base),
            csrf=security.csrf_token(request),
            folders=dict(send_folders()),
            filters={"vendor": vendor or "", "since": since or "", "q": q or "", "sort": sort, "dir": dir},
            sortable=campaigns.SORTABLE,
        )
        return HTMLResponse(html)

    @routes.get("/campaigns/{campaign_id}", response_class=HTMLResponse)
    def campaign_page(
        request: Request, campaign_id: str, rejects_page: int = Query(1, ge=1, le=1_000_000)
    ) -> HTMLResponse:
        data = story(campaign_id, rejects_page)
        base = _base(request)
        html = _TEMPLATES.get_template("campaign.html").render(
            d=data,
            c=data["campaign"],
            f=data["funnel"],
            base=base,
            ui_root=_ui_root(base),
            csrf=security.csrf_token(request),
            charts=_charts(data),
            funnel_steps=funnel_steps(data["funnel"]),
            dag_ids=dict(send_folders()),
        )
        return HTMLResponse(html)

    return routes


def _drain(buffer: io.StringIO) -> str:
    text = buffer.getvalue()
    buffer.seek(0)
    buffer.truncate()
    return text


def _header_first(chunks: Iterator[str]) -> Iterator[bytes]:
    """UTF-8 with a BOM, so a spreadsheet opens accents right."""
    yield "\ufeff".encode()
    for chunk in chunks:
        if chunk:
            yield chunk.encode()


def funnel_steps(f: Mapping[str, int]) -> list[tuple[str, str, int]]:
    """The funnel as (key, label, count), in the order a message goes through it."""
    return [
        ("rows_total", "rows in the file", f["rows_total"]),
        ("rows_valid", "valid rows", f["rows_valid"]),
        ("messages", "messages", f["messages"]),
        ("accepted", "accepted by the vendor", f["accepted"]),
        ("sent", "sent", f["sent"]),
        ("delivered", "delivered", f["delivered"]),
        ("read_count", "read", f["read_count"]),
    ]


def _charts(data: Mapping[str, Any]) -> dict[str, Any]:
    failures = data["failures"]
    reasons = [(f"send · {r['reason']}", r["messages"]) for r in failures["send"]]
    reasons += [(f"delivery · {r['reason']}", r["messages"]) for r in failures["delivery"]]
    reasons.sort(key=lambda item: -item[1])
    timeline = data["timeline"]
    return {
        "funnel": charts.bars(
            [(label, count) for _, label, count in funnel_steps(data["funnel"])], chart_id="funnel-chart"
        ),
        "timeline": charts.timeline(
            timeline["buckets"],
            series=["accepted", "delivered", "read"],
            chart_id="timeline-chart",
            bucket_minutes=timeline["bucket_minutes"],
        ),
        "failures": charts.bars(reasons[:20], chart_id="failures-chart", colour=charts.COLOURS["failed"]),
    }
