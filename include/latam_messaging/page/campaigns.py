"""The campaign pages' data: the list of campaigns and the whole story of one, read-only.

Every function takes a connection opened by ``Warehouse.read_only()`` (like ``page.queries``) and runs the
same SQL on SQLite and PostgreSQL. The numbers come from the ``campaigns`` view (``campaigns.views``) and
the base tables under it; each list that stands under a count reads the rows the count counts (replies and
opt-outs: ``campaign_answers``, ``campaigns.answers``), and a list that is capped says so next to its
total, which is always the SQL count — never the length of the list.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterator, Mapping
from typing import Any

import pendulum
import sqlalchemy as sa

from latam_messaging.campaigns import answers, audit, records
from latam_messaging.campaigns import views as campaign_views
from latam_messaging.consent.confirm import WINDOW as REPLY_WINDOW
from latam_messaging.lifecycle import MessageState
from latam_messaging.page.queries import mask_phone, reject_category
from latam_messaging.warehouse import schema
from latam_messaging.warehouse import views as warehouse_views

#: Campaigns listed at most (the total of matches is counted in full).
LIST_LIMIT = 200
#: Rows listed at most in each of a campaign's tables (replies, opt-outs, rejects per page, ...).
ROWS_LIMIT = 200
#: The timeline's bucket, and how many buckets it draws at most (a longer campaign gets wider buckets).
BUCKET_MINUTES = 10
MAX_BUCKETS = 288
#: Messages per keyset page of the CSV export.
EXPORT_PAGE = 2000
PERCENTILES = (50, 90, 99)

Ts = schema.UtcDateTime
OUTBOUND = schema.outbound_messages
EVENTS = schema.message_status_events

#: The ``campaigns`` view's text columns, read as they are.
TEXT_COLUMNS = (
    "campaign_id",
    "name",
    "vendor",
    "folder",
    "source",
    "file_name",
    "file_sha256",
    "created_by",
    "state",
    "confirmed_by",
    "dag_run_id",
    "cancelled_by",
    "currency",
)
#: The ``campaigns`` view's columns, typed as the page reads them.
VIEW = sa.table(
    "campaigns",
    *(sa.column(name, sa.String) for name in TEXT_COLUMNS),
    *(
        sa.column(name, Ts())
        for name in (
            "created_at",
            "confirmed_at",
            "cancelled_at",
            "first_accepted_at",
            "last_accepted_at",
        )
    ),
    *(
        sa.column(name, sa.Integer)
        for name in (
            "rows_total",
            "rows_valid",
            "rows_rejected",
            "rows_suppressed_at_ingest",
            "messages",
            "scheduled",
            "pending",
            "sending",
            "accepted",
            "rejected_by_vendor",
            "failed",
            "unknown",
            "suppressed",
            "cancelled",
            "sent",
            "delivered",
            "read_count",
            "delivery_failed",
            "replies",
            "opt_outs",
            "clicks",
        )
    ),
    sa.column("cost", sa.Numeric(18, 6)),
)
COUNTS = [
    "rows_total", "rows_valid", "rows_rejected", "rows_suppressed_at_ingest", "messages", "scheduled", "pending",
    "sending", "accepted", "rejected_by_vendor", "failed", "unknown", "suppressed", "cancelled", "sent", "delivered",
    "read_count", "delivery_failed", "replies", "opt_outs", "clicks",
]  # fmt: skip
#: What the list may be sorted by (``?sort=``): a column of the view.
SORTABLE = ["created_at", "name", "vendor", "state", "messages", "accepted", "delivered", "read_count", "failed",
            "unknown", "replies", "opt_outs", "clicks", "cost"]  # fmt: skip


def _iso(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        return pendulum.instance(value if value.tzinfo else value.replace(tzinfo=dt.UTC)).in_timezone("UTC").isoformat()
    return str(value)


def _cost(value: Any) -> float | None:
    return None if value is None else round(float(value), 6)


def _campaign_row(row: Mapping[str, Any]) -> dict[str, Any]:
    """A view row as JSON: counts as ints, times as ISO-8601 UTC, cost as a number (None: not priced)."""
    out = {key: row[key] for key in TEXT_COLUMNS}
    out |= {
        key: _iso(row[key])
        for key in ("created_at", "confirmed_at", "cancelled_at", "first_accepted_at", "last_accepted_at")
    }
    out |= {key: int(row[key] or 0) for key in COUNTS}
    out["cost"] = _cost(row["cost"])
    return out


def _filters(
    columns: Any, vendor: str | None, since: dt.datetime | None, q: str | None
) -> list[sa.ColumnElement[bool]]:
    """The list's filters on ``columns``: the view's, or ``campaign_files``' (the same record columns)."""
    where: list[sa.ColumnElement[bool]] = []
    if vendor:
        where.append(columns.vendor == vendor)
    if since is not None:
        where.append(columns.created_at >= sa.literal(since, Ts()))
    if q:
        where.append(sa.func.lower(columns.name).contains(q.lower(), autoescape=True))
    return where


#: List orders taken from the campaign's record alone (the others are numbers of the view).
RECORD_SORTS = ("created_at", "name", "vendor", "state")


def _some_campaigns(conn: sa.Connection, files: list[str]) -> list[Mapping[str, Any]]:
    """The ``campaigns`` view's rows of these files, by the view's own query read for them alone."""
    if not files:
        return []
    sql = campaign_views.campaigns_query(conn.dialect.name, some_files=True)
    query = sa.text(sql)
    # typed by name (columns given as objects would be matched by position)
    query = query.bindparams(sa.bindparam("files", expanding=True)).columns(**{c.name: c.type for c in VIEW.c})
    return list(conn.execute(query, {"files": files}).mappings())


def list_campaigns(
    conn: sa.Connection,
    *,
    vendor: str | None = None,
    since: dt.datetime | None = None,
    q: str | None = None,
    sort: str = "created_at",
    direction: str = "desc",
    limit: int = LIST_LIMIT,
) -> dict[str, Any]:
    """Campaigns matching ``vendor`` (exactly), ``since`` (created at or after, aware) and ``q`` (a substring
    of the name, any case), sorted by ``sort`` (one of :data:`SORTABLE`; newest first by default), at most
    ``limit``; ``total``: how many match. ``vendors``: every vendor that has a campaign (the filter's choices)."""
    if sort not in SORTABLE:
        raise ValueError(f"cannot sort by {sort!r}: one of {', '.join(SORTABLE)}")
    if direction not in ("asc", "desc"):
        raise ValueError("direction is asc or desc")
    c = schema.campaign_files.c
    if sort in RECORD_SORTS:  # the page's campaigns chosen from their records, then only theirs counted
        table, where = schema.campaign_files, _filters(c, vendor, since, q)
    else:  # sorted by a number: every campaign's numbers (the view)
        table, where = VIEW, _filters(VIEW.c, vendor, since, q)
    column = table.c[sort]
    order = column.asc() if direction == "asc" else column.desc()
    tie = table.c.campaign_id.asc() if direction == "asc" else table.c.campaign_id.desc()
    # NULL costs last either way (the two databases order NULLs differently by default)
    query = sa.select(table).where(*where).order_by(column.is_(None), order, tie).limit(limit)
    if sort in RECORD_SORTS:
        chosen = [r.file_sha256 for r in conn.execute(query)]
        by_file = {r["file_sha256"]: r for r in _some_campaigns(conn, chosen)}
        rows = [_campaign_row(by_file[sha]) for sha in chosen]
    else:
        rows = [_campaign_row(row) for row in conn.execute(query).mappings()]
    # the view has one row per campaign record: count the records (not the view's aggregates)
    files = sa.select(sa.func.count()).select_from(schema.campaign_files)
    total = conn.execute(files.where(*_filters(c, vendor, since, q))).scalar_one()
    vendors = list(conn.execute(sa.select(c.vendor).distinct().order_by(c.vendor)).scalars())
    return {"campaigns": rows, "total": int(total), "limit": limit, "vendors": vendors}


# ---- one campaign ---------------------------------------------------------------------------------------
def _bucket_sql(column: str, dialect: str) -> str:
    """Seconds since the epoch of the start of ``column``'s 10-minute bucket (UTC)."""
    width = BUCKET_MINUTES * 60
    if dialect == "postgresql":
        return f"(FLOOR(EXTRACT(EPOCH FROM {column}) / {width}) * {width})"
    return f"((CAST(strftime('%s', {column}) AS INTEGER) / {width}) * {width})"


def timeline(conn: sa.Connection, sha256: str) -> dict[str, Any]:
    """Accepted (``accepted_at``), delivered and read (each message's first event of that status;
    delivered = its first ``delivered`` or ``read`` event, as the funnel counts a read message delivered)
    per bucket of :data:`BUCKET_MINUTES` minutes (UTC), every bucket from the first to the last, empty
    ones included; a campaign spread over more than :data:`MAX_BUCKETS` buckets gets wider ones
    (``bucket_minutes``). Each series sums to the messages it counts."""
    dialect = conn.dialect.name
    # delivered: each send's first delivered or read event as ``delivery_times`` keeps it (no event read),
    # looked up send by send: joined, PostgreSQL hashed every row of the table (0.6 s on 1.8 M messages)
    delivered = (
        "SELECT first_at FROM (SELECT (SELECT t.delivered_at FROM delivery_times t WHERE t.message_key = o.message_key) "
        "AS first_at FROM outbound_messages o WHERE o.file_sha256 = :sha) f WHERE first_at IS NOT NULL"
    )
    read = (
        "SELECT e.message_key, MIN(e.event_at) AS first_at FROM message_status_events e "
        "JOIN outbound_messages o ON o.message_key = e.message_key "
        "WHERE o.file_sha256 = :sha AND e.status = 'read' GROUP BY e.message_key"
    )
    series = {
        "accepted": f"SELECT {_bucket_sql('accepted_at', dialect)} AS b, COUNT(*) FROM outbound_messages "
        "WHERE file_sha256 = :sha AND accepted_at IS NOT NULL GROUP BY 1",
        "delivered": f"SELECT {_bucket_sql('f.first_at', dialect)} AS b, COUNT(*) FROM ({delivered}) f GROUP BY 1",
        "read": f"SELECT {_bucket_sql('f.first_at', dialect)} AS b, COUNT(*) FROM ({read}) f GROUP BY 1",
    }
    counts: dict[int, dict[str, int]] = {}
    for name, sql in series.items():
        for bucket, count in conn.execute(sa.text(sql), {"sha": sha256}):
            counts.setdefault(int(bucket), {}).setdefault(name, 0)
            counts[int(bucket)][name] += int(count)
    totals = {name: sum(c.get(name, 0) for c in counts.values()) for name in series}
    if not counts:
        return {"bucket_minutes": BUCKET_MINUTES, "buckets": [], "totals": totals}
    width = BUCKET_MINUTES * 60
    first, last = min(counts), max(counts)
    factor = max(1, math.ceil(((last - first) // width + 1) / MAX_BUCKETS))
    width *= factor
    merged: dict[int, dict[str, int]] = {}
    for bucket, found in counts.items():
        slot = merged.setdefault(first + (bucket - first) // width * width, {})
        for name, count in found.items():
            slot[name] = slot.get(name, 0) + count
    buckets = [
        {"at": _iso(dt.datetime.fromtimestamp(start, dt.UTC)), **{n: merged.get(start, {}).get(n, 0) for n in series}}
        for start in range(first, max(merged) + 1, width)
    ]
    return {"bucket_minutes": width // 60, "buckets": buckets, "totals": totals}


def failures(conn: sa.Connection, sha256: str) -> dict[str, Any]:
    """Why the campaign's messages failed. ``send``: rows the vendor refused or that failed to send
    (``rejected``/``failed``), by the vendor's answer or the error; sums to those rows. ``delivery``:
    messages with a ``failed`` status event, by the reason (else the raw status) of their first one;
    sums to the messages with such an event."""
    o = OUTBOUND.c
    reason = sa.func.coalesce(o.vendor_answer, o.error, "(no reason given)")
    send = conn.execute(
        sa.select(o.state, reason.label("reason"), sa.func.count().label("messages"))
        .where(o.file_sha256 == sha256, o.state.in_([MessageState.REJECTED, MessageState.FAILED]))
        .group_by(o.state, reason)
        .order_by(sa.desc("messages"), reason)
    ).all()
    # each of the file's sends looks its first failed event up (scalar subqueries: neither database turns
    # them into a join, which both planned as a pass over every failed event of the history: 0.15–0.5 s)
    first = (
        "FROM message_status_events f WHERE f.message_key = o.message_key AND f.status = 'failed' "
        "ORDER BY f.event_at, f.id LIMIT 1"
    )
    delivery = conn.execute(
        sa.text(
            f"SELECT reason, COUNT(*) FROM ("
            f" SELECT (SELECT COALESCE(f.reason, f.raw_status) {first}) AS reason, (SELECT f.id {first}) AS first_id"
            f" FROM outbound_messages o WHERE o.file_sha256 = :sha) x "
            "WHERE first_id IS NOT NULL GROUP BY reason ORDER BY COUNT(*) DESC, reason"
        ),
        {"sha": sha256},
    ).all()
    send_rows = [{"stage": "send", "state": s, "reason": r, "messages": int(n)} for s, r, n in send]
    delivery_rows = [{"stage": "delivery", "reason": r, "messages": int(n)} for r, n in delivery]
    return {
        "send": send_rows,
        "delivery": delivery_rows,
        "send_total": sum(r["messages"] for r in send_rows),
        "delivery_total": sum(r["messages"] for r in delivery_rows),
    }


def rejects(conn: sa.Connection, sha256: str, *, page: int = 1, per_page: int = ROWS_LIMIT) -> dict[str, Any]:
    """The file's rejected rows with their row numbers (``page`` of ``per_page``, in row order), the total,
    and the count per reason category (as the main page groups them)."""
    r = schema.drop_rejects.c
    where = r.file_sha256 == sha256
    total = int(conn.execute(sa.select(sa.func.count()).where(where)).scalar_one())
    rows = conn.execute(
        sa.select(r.row_number, r.reason)
        .where(where)
        .order_by(r.row_number)
        .limit(per_page)
        .offset((max(page, 1) - 1) * per_page)
    ).all()
    by_reason: dict[str, int] = {}
    for reason, count in conn.execute(sa.select(r.reason, sa.func.count()).where(where).group_by(r.reason)):
        category = reject_category(reason)
        by_reason[category] = by_reason.get(category, 0) + int(count)
    return {
        "total": total,
        "page": max(page, 1),
        "pages": max(1, math.ceil(total / per_page)),
        "rows": [{"row": int(n), "reason": reason} for n, reason in rows],
        "by_reason": [{"reason": k, "rows": v} for k, v in sorted(by_reason.items(), key=lambda kv: (-kv[1], kv[0]))],
    }


def replies(
    conn: sa.Connection, sha256: str, *, limit: int = ROWS_LIMIT, now: pendulum.DateTime | None = None
) -> list[dict[str, Any]]:
    """The campaign's answered messages (the view's ``replies``, same definition), first answered first:
    the message, its masked phone, how many inbound messages answer it, the first one's time and text,
    and the one a person may answer from the page: the latest (``reply_to``: vendor and message id,
    ``reply_until``: its 24-hour window's end), with ``reply_open`` — whether that window is still open
    at ``now`` (the reply route refuses a closed one; the page shows its form only while it is open)."""
    # the campaign's (send, inbound) pairs (campaign_answers, kept by triggers), then each answered send's
    # numbers from those few pairs in one pass
    pairs = (
        "SELECT a.message_key, i.vendor_message_id AS in_id, i.received_at, i.text FROM campaign_answers a "
        "JOIN inbound_messages i ON i.vendor = a.vendor AND i.vendor_message_id = a.answer "
        f"WHERE a.file_sha256 = :sha AND a.kind = '{answers.Kind.REPLY}'"
    )
    latest_first = "CASE WHEN p.received_at IS NULL THEN 1 ELSE 0 END, p.received_at DESC, p.in_id DESC"
    sql = f"""WITH pairs AS ({pairs}),
ranked AS (
    SELECT p.*, ROW_NUMBER() OVER (PARTITION BY p.message_key ORDER BY p.received_at, p.in_id) AS nth,
           ROW_NUMBER() OVER (PARTITION BY p.message_key ORDER BY {latest_first}) AS nth_latest
    FROM pairs p
),
answered AS (
    SELECT message_key, COUNT(*) AS answers, MIN(received_at) AS first_at, MAX(received_at) AS last_at,
           MAX(CASE WHEN nth = 1 THEN text END) AS text,
           MAX(CASE WHEN nth_latest = 1 AND received_at IS NOT NULL THEN in_id END) AS last_id
    FROM ranked GROUP BY message_key
)
SELECT o.message_key, o.vendor, o.phone, o.accepted_at, a.answers, a.first_at, a.text, a.last_id, a.last_at
FROM answered a JOIN outbound_messages o ON o.message_key = a.message_key
ORDER BY a.first_at, o.message_key LIMIT :limit"""
    query = sa.text(sql).columns(
        sa.column("message_key"),
        sa.column("vendor"),
        sa.column("phone"),
        sa.column("accepted_at", Ts()),
        sa.column("answers"),
        sa.column("first_at", Ts()),
        sa.column("text"),
        sa.column("last_id"),
        sa.column("last_at", Ts()),
    )
    now = now or pendulum.now("UTC")
    out = []
    for r in conn.execute(query, {"sha": sha256, "limit": limit}):
        until = None if r.last_at is None or r.last_id is None else pendulum.instance(r.last_at) + REPLY_WINDOW
        out.append(
            {
                "message_key": r.message_key,
                "phone": mask_phone(r.phone),
                "accepted_at": _iso(r.accepted_at),
                "answers": int(r.answers),
                "first_reply_at": _iso(r.first_at),
                "text": (r.text or "")[:160],
                "reply_to": {"vendor": r.vendor, "vendor_message_id": r.last_id} if until else None,
                "reply_until": _iso(until),
                "reply_open": until is not None and now < until,
            }
        )
    return out


def opt_outs(conn: sa.Connection, sha256: str, *, limit: int = ROWS_LIMIT) -> list[dict[str, Any]]:
    """The campaign's messages whose subscriber opted out after them (the view's ``opt_outs``): the message,
    its masked phone, when and how (the first such suppression)."""
    sql = f"""WITH firsts AS (
    SELECT a.message_key, s.since, s.source,
           ROW_NUMBER() OVER (PARTITION BY a.message_key ORDER BY s.since, s.id) AS nth
    FROM campaign_answers a JOIN suppressions s ON s.id = CAST(a.answer AS INTEGER)
    WHERE a.file_sha256 = :sha AND a.kind = '{answers.Kind.OPT_OUT}'
)
SELECT o.message_key, o.phone, o.accepted_at, f.since AS opted_out_at, f.source
FROM firsts f JOIN outbound_messages o ON o.message_key = f.message_key
WHERE f.nth = 1
ORDER BY opted_out_at, o.message_key LIMIT :limit"""
    query = sa.text(sql).columns(
        sa.column("message_key"),
        sa.column("phone"),
        sa.column("accepted_at", Ts()),
        sa.column("opted_out_at", Ts()),
        sa.column("source"),
    )
    return [
        {
            "message_key": r.message_key,
            "phone": mask_phone(r.phone),
            "accepted_at": _iso(r.accepted_at),
            "opted_out_at": _iso(r.opted_out_at),
            "source": r.source,
        }
        for r in conn.execute(query, {"sha": sha256, "limit": limit})
    ]


def clicks(conn: sa.Connection, campaign_id: str) -> list[dict[str, Any]]:
    """The campaign's shortened links with the clicks the vendor reported, the most clicked first."""
    t = schema.short_links.c
    rows = conn.execute(
        sa.select(t.long_url, t.short_url, t.clicks, t.clicks_updated_at)
        .where(t.campaign_id == campaign_id)
        .order_by(t.clicks.desc(), t.long_url)
    )
    return [
        {
            "long_url": r.long_url,
            "short_url": r.short_url,
            "clicks": int(r.clicks or 0),
            "clicks_updated_at": _iso(r.clicks_updated_at),
        }
        for r in rows
    ]


def percentile(values: list[float], p: float) -> float | None:
    """The nearest-rank ``p``-th percentile of ``values`` (sorted), None of none."""
    if not values:
        return None
    return values[max(0, math.ceil(p / 100 * len(values)) - 1)]


def time_to_deliver(conn: sa.Connection, sha256: str) -> dict[str, Any]:
    """Seconds from acceptance to delivery (``report_time_to_deliver``) of the campaign's delivered
    messages: how many were measured and the p50/p90/p99 (nearest rank)."""
    # the view's own query for this file's sends (joining the view would group every send first)
    query = sa.text(f"SELECT seconds_to_deliver FROM ({warehouse_views.time_to_deliver(conn.dialect.name, 'o.file_sha256 = :sha')}) t")
    values = sorted(float(v) for (v,) in conn.execute(query, {"sha": sha256}) if v is not None)
    return {"messages": len(values), **{f"p{p}": _round(percentile(values, p)) for p in PERCENTILES}}


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


def unknown_batches(conn: sa.Connection, campaign_id: str) -> list[dict[str, Any]]:
    return [
        {**batch, "request_started_at": _iso(batch["request_started_at"])}
        for batch in records.unknown_batches(conn, campaign_id)
    ]


def audit_entries(conn: sa.Connection, campaign_id: str) -> list[dict[str, Any]]:
    return [
        {
            "at": _iso(e["at"]),
            "user": e["user_name"],
            "action": e["action"],
            "rows": int(e["rows_affected"] or 0),
            "detail": e["detail"] or {},
        }
        for e in audit.entries(conn, campaign_id, limit=ROWS_LIMIT)
    ]


def campaign(
    conn: sa.Connection, campaign_id: str, *, rejects_page: int = 1, now: pendulum.DateTime | None = None
) -> dict[str, Any]:
    """One campaign's whole story (reply windows judged at ``now``, default the present). Raises
    ``records.CampaignNotFound`` for an unknown id."""
    record = records.get(conn, campaign_id)
    sha = record["file_sha256"]
    [row] = _some_campaigns(conn, [sha])
    head = _campaign_row(row)
    funnel = {key: head[key] for key in COUNTS}
    return {
        "campaign": {key: head[key] for key in head if key not in COUNTS and key != "cost"},
        "preview": record["preview"],
        "funnel": funnel,
        "replies": head["replies"],
        "opt_outs": head["opt_outs"],
        "clicks": head["clicks"],
        "cost": head["cost"],
        "currency": head["currency"],
        "unknown": head["unknown"],
        "timeline": timeline(conn, sha),
        "failures": failures(conn, sha),
        "rejects": rejects(conn, sha, page=rejects_page),
        "reply_rows": replies(conn, sha, now=now),
        "opt_out_rows": opt_outs(conn, sha),
        "click_rows": clicks(conn, campaign_id),
        "time_to_deliver": time_to_deliver(conn, sha),
        "unknown_batches": unknown_batches(conn, campaign_id),
        "audit": audit_entries(conn, campaign_id),
    }


# ---- the per-message export ----------------------------------------------------------------------------
EXPORT_COLUMNS = [
    "message_key", "row_number", "phone", "vendor", "template_name", "tracking_id", "state", "delivery_status",
    "vendor_message_id", "error", "send_at", "created_at", "accepted_at", "delivery_status_at",
]  # fmt: skip
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value: Any) -> str:
    """A cell as text; one that a spreadsheet would read as a formula gets a leading ``'``."""
    text = "" if value is None else _iso(value) if isinstance(value, dt.datetime) else str(value)
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def export_pages(open_conn, sha256: str, *, page: int = EXPORT_PAGE) -> Iterator[list[list[str]]]:
    """The campaign's messages in ``message_key`` order, ``page`` at a time, each page read in its own
    read-only transaction (``open_conn()``): an export of a million rows holds no transaction open."""
    o = OUTBOUND.c
    after: str | None = None
    while True:
        query = sa.select(*(o[name] for name in EXPORT_COLUMNS)).where(o.file_sha256 == sha256)
        if after is not None:
            query = query.where(o.message_key > after)
        with open_conn() as conn:
            rows = conn.execute(query.order_by(o.message_key).limit(page)).all()
        if not rows:
            return
        yield [[csv_cell(value) for value in row] for row in rows]
        after = rows[-1].message_key
        if len(rows) < page:
            return
