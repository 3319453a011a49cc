"""The Messaging page of the Airflow UI: what the warehouse says, read-only.

Query functions take a connection opened by ``Warehouse.read_only()`` (a read-only transaction: PostgreSQL
``SET TRANSACTION READ ONLY``, SQLite ``PRAGMA query_only``), so the page can never write. The same
SQL serves SQLite and PostgreSQL. :func:`snapshot` gathers every section; ``latam_messaging.page.app``
renders it as an authenticated FastAPI app that ``plugins/messaging_plugin.py`` mounts on the API server.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pendulum
import sqlalchemy as sa

from latam_messaging.lifecycle import MessageState
from latam_messaging.page.panels import Card, Detail, PanelFunction
from latam_messaging.warehouse import schema
from latam_messaging.warehouse.db import Warehouse
from latam_messaging.warehouse.views import SUPPRESSED_PREFIX

#: Days of history on the page.
DEFAULT_DAYS = 14
#: Sends in state ``unknown`` listed at most.
UNKNOWN_LIMIT = 200


def mask_phone(phone: str | None) -> str:
    """``5493515238015`` → ``5493•••••••15``: enough to recognise a number, not to dial it."""
    if not phone:
        return ""
    digits = str(phone)
    if len(digits) <= 6:
        return "•" * len(digits)
    return digits[:4] + "•" * (len(digits) - 6) + digits[-2:]


def _day(value: Any) -> str:
    """Dates come back as ``date`` (PostgreSQL) or text (SQLite)."""
    return value.isoformat() if hasattr(value, "isoformat") else str(value)


def _since(conn: sa.Connection, days: int, now: pendulum.DateTime) -> Any:
    """The first day shown, bound as the views' ``day`` column is typed (SQLite: text, PostgreSQL: date)."""
    day = now.subtract(days=days).date()
    return day.isoformat() if conn.dialect.name == "sqlite" else day


def funnel(conn: sa.Connection, *, days: int = DEFAULT_DAYS, now: pendulum.DateTime | None = None) -> list[dict]:
    """Per vendor and day (UTC, of creation): messages → accepted → sent → delivered → read, failed, unknown."""
    now = now or pendulum.now("UTC")
    query = sa.text(
        "SELECT vendor, day, SUM(messages), SUM(accepted), SUM(sent), SUM(delivered), SUM(read_count), "
        "SUM(failed), SUM(rejected_by_vendor), SUM(unknown), SUM(waiting) "
        "FROM report_delivery_funnel WHERE day >= :since GROUP BY vendor, day ORDER BY day DESC, vendor"
    )
    names = ["messages", "accepted", "sent", "delivered", "read", "failed", "rejected", "unknown", "waiting"]
    return [
        {"vendor": row[0], "day": _day(row[1]), **{n: int(v or 0) for n, v in zip(names, row[2:], strict=True)}}
        for row in conn.execute(query, {"since": _since(conn, days, now)})
    ]


def unknown_sends(
    conn: sa.Connection, *, limit: int = UNKNOWN_LIMIT, now: pendulum.DateTime | None = None
) -> list[dict]:
    """Sends in state ``unknown`` (in flight when a run died), oldest first: they wait for a decision
    (``release_unknown`` when triggering the send DAG)."""
    now = now or pendulum.now("UTC")
    outbound = schema.outbound_messages
    query = (
        sa.select(
            outbound.c.vendor,
            outbound.c.message_key,
            outbound.c.phone,
            outbound.c.updated_at,
            outbound.c.created_at,
            outbound.c.file_sha256,
            outbound.c.error,
        )
        .where(outbound.c.state == MessageState.UNKNOWN)
        .order_by(outbound.c.updated_at, outbound.c.message_key)
        .limit(limit)
    )
    result = []
    for row in conn.execute(query):
        since = row.updated_at or row.created_at
        since = pendulum.instance(since, tz="UTC") if since.tzinfo is None else pendulum.instance(since)
        result.append(
            {
                "vendor": row.vendor,
                "message_key": row.message_key,
                "phone": mask_phone(row.phone),
                "since": since.to_iso8601_string(),
                "age_hours": round((now - since).total_seconds() / 3600, 1),
                "file": (row.file_sha256 or "")[:12],
            }
        )
    return result


def count_unknown(conn: sa.Connection) -> int:
    """How many sends are in state ``unknown`` (all of them: :func:`unknown_sends` lists at most
    :data:`UNKNOWN_LIMIT`), from ``message_counts``: kept by triggers in the writers' own transactions, so
    equal to a ``COUNT(*)`` of the ledger, and a read of a few thousand rows whatever the history (SQLite's
    planner, without statistics or given the state as a parameter, counted by skipping through the ledger's
    ``(vendor, state)`` index: 0.1 s on 5 M sends)."""
    counts = schema.message_counts
    query = sa.select(sa.func.coalesce(sa.func.sum(counts.c.messages), 0)).where(counts.c.state == MessageState.UNKNOWN)
    return int(conn.execute(query).scalar_one())


#: The categories of ``report_rejects_by_reason`` (warehouse/views.py): the first that matches wins.
_REJECT_CATEGORIES = [
    (
        lambda r: r.startswith("suppressed:"),
        lambda r: "suppressed: " + suppressed_source(r),
    ),  # its evidence may say anything
    (lambda r: r.startswith("phone"), "invalid or missing phone"),
    (lambda r: r.startswith("duplicate"), "duplicate row in the file"),
    (lambda r: r.startswith("held:"), "held: risky number"),
    (lambda r: r.startswith("row has"), "malformed row"),
    (lambda r: "parameter(s)" in r or r.startswith("param_"), "wrong number of template parameters"),
    (lambda r: r.startswith("template"), "template missing, not accepted or of another account"),
]


def suppressed_source(reason: str) -> str:
    """``suppressed: <source> (<evidence>)`` → ``<source>``, as ``views.suppressed_source`` reads it in SQL."""
    start, cut = len(SUPPRESSED_PREFIX), reason.find(" (")
    return reason[start:cut] if cut > start else reason[start:]


def reject_category(reason: str) -> str:
    category = next((category for matches, category in _REJECT_CATEGORIES if matches(reason)), reason)
    return category(reason) if callable(category) else category


def rejects_by_file(
    conn: sa.Connection, *, days: int = DEFAULT_DAYS, now: pendulum.DateTime | None = None
) -> list[dict]:
    """Rejected CSV rows per drop file (claimed within ``days``) and reason category."""
    now = now or pendulum.now("UTC")
    files, rejects = schema.drop_files, schema.drop_rejects
    query = (
        sa.select(
            files.c.file_sha256,
            files.c.folder,
            files.c.path,
            files.c.claimed_at,
            files.c.rows_total,
            rejects.c.reason,
            sa.func.count(),
        )
        .select_from(rejects.join(files, files.c.file_sha256 == rejects.c.file_sha256))
        .where(files.c.claimed_at >= now.subtract(days=days))
        .group_by(
            files.c.file_sha256, files.c.folder, files.c.path, files.c.claimed_at, files.c.rows_total, rejects.c.reason
        )
    )
    grouped: dict[tuple[str, str], dict] = {}
    for sha, folder, path, claimed_at, total, reason, count in conn.execute(query):
        category = reject_category(reason)
        entry = grouped.setdefault(
            (sha, category),
            {
                "file": Path(path).name,
                "folder": folder,
                "file_sha256": sha[:12],
                "claimed_at": _day(claimed_at)[:19],
                "rows_total": int(total or 0),
                "reason": category,
                "rows": 0,
            },
        )
        entry["rows"] += int(count)
    return sorted(grouped.values(), key=lambda e: (e["claimed_at"], e["file"], -e["rows"]), reverse=True)


def inbound_volume(
    conn: sa.Connection, *, days: int = DEFAULT_DAYS, now: pendulum.DateTime | None = None
) -> list[dict]:
    """Inbound messages (replies) per vendor and day."""
    now = now or pendulum.now("UTC")
    query = sa.text(
        "SELECT vendor, day, messages FROM report_inbound_daily WHERE day >= :since ORDER BY day DESC, vendor"
    )
    rows = conn.execute(query, {"since": _since(conn, days, now)})
    return [{"vendor": v, "day": _day(d), "messages": int(n)} for v, d, n in rows]


#: Failure reasons shown at most (the most frequent first).
FAILURE_REASONS_LIMIT = 50


def failure_reasons(conn: sa.Connection, *, limit: int = FAILURE_REASONS_LIMIT) -> list[dict]:
    """Why messages failed, per vendor and stage (``report_failure_reasons``: the vendor's error code and
    title where it gave one, e.g. Meta's ``131047: Re-engagement message``), most frequent first."""
    query = sa.text(
        "SELECT vendor, stage, reason, messages FROM report_failure_reasons "
        "ORDER BY messages DESC, vendor, stage, reason LIMIT :limit"
    )
    return [
        {"vendor": v, "stage": st, "reason": r, "messages": int(n)}
        for v, st, r, n in conn.execute(query, {"limit": limit})
    ]


# ---- consent -------------------------------------------------------------------------------------------
#: Days of opt-outs shown per day and source (today and the 6 before, UTC).
OPTOUT_DAYS = 7
#: Opt-out keywords listed at most (the most used first).
KEYWORDS_LIMIT = 10


def _since_time(now: pendulum.DateTime, days: int) -> sa.BindParameter:
    """``now - days`` bound as the warehouse stores times (a view's timestamp column compared in SQL)."""
    return sa.bindparam("since", now.subtract(days=days), type_=schema.UtcDateTime())


def active_suppressions(conn: sa.Connection) -> list[dict]:
    """Active suppressions (not ended) per source and scope, the most first (``report_active_suppressions``)."""
    query = sa.text("SELECT source, scope, active FROM report_active_suppressions ORDER BY active DESC, source, scope")
    return [{"source": s, "scope": sc, "active": int(n)} for s, sc, n in conn.execute(query)]


def count_suppressed_phones(conn: sa.Connection) -> int:
    """Phones with at least one active suppression (one phone may have several: a reply and a registry)."""
    t = schema.suppressions
    query = sa.select(sa.func.count(sa.distinct(t.c.phone))).where(t.c.ended_at.is_(None))
    return int(conn.execute(query).scalar_one())


def optouts_daily(conn: sa.Connection, *, days: int = OPTOUT_DAYS, now: pendulum.DateTime | None = None) -> list[dict]:
    """Suppressions started and ended per day (UTC, today and the ``days - 1`` before), source and scope."""
    now = now or pendulum.now("UTC")
    query = sa.text(
        "SELECT day, source, scope, started, ended FROM report_optouts_daily WHERE day >= :since "
        "ORDER BY day DESC, source, scope"
    )
    rows = conn.execute(query, {"since": _since(conn, days - 1, now)})
    return [
        {"day": _day(d), "source": s, "scope": sc, "started": int(a or 0), "ended": int(b or 0)}
        for d, s, sc, a, b in rows
    ]


def optout_keywords(conn: sa.Connection, *, limit: int = KEYWORDS_LIMIT) -> list[dict]:
    """The opt-out keywords customers replied, per language, the most used first (all time)."""
    query = sa.text(
        "SELECT keyword, language, opt_outs, phones FROM report_optout_keywords "
        "ORDER BY opt_outs DESC, keyword, language LIMIT :limit"
    )
    return [
        {"keyword": k, "language": lang, "opt_outs": int(n), "phones": int(p)}
        for k, lang, n, p in conn.execute(query, {"limit": limit})
    ]


def _file_columns(file_sha256: str | None, folder: str | None, path: str | None, claimed_at: Any) -> dict:
    return {
        "file": Path(path).name if path else ("(no file)" if file_sha256 is None else "(file not recorded)"),
        "folder": folder or "",
        "file_sha256": (file_sha256 or "")[:12],
        "claimed_at": _day(claimed_at)[:19] if claimed_at is not None else "",
    }


def suppressed_rows_by_file(
    conn: sa.Connection, *, days: int = DEFAULT_DAYS, now: pendulum.DateTime | None = None
) -> list[dict]:
    """Rows skipped for consent per drop file claimed within ``days`` (and rows of no recorded file) and source:
    rejected at ingest, and suppressed when claimed for sending (``report_suppressed_rows``)."""
    now = now or pendulum.now("UTC")
    query = (
        sa.text(
            "SELECT file_sha256, vendor, folder, path, claimed_at, source, rejected_at_ingest, suppressed_at_claim, "
            "rows_suppressed FROM report_suppressed_rows WHERE claimed_at >= :since OR claimed_at IS NULL "
            "ORDER BY claimed_at IS NULL, claimed_at DESC, file_sha256, source"
        )
        .bindparams(_since_time(now, days))
        .columns(claimed_at=schema.UtcDateTime())
    )
    return [
        {
            **_file_columns(r.file_sha256, r.folder, r.path, r.claimed_at),
            "vendor": r.vendor,
            "source": r.source,
            "at_ingest": int(r.rejected_at_ingest or 0),
            "at_claim": int(r.suppressed_at_claim or 0),
            "rows": int(r.rows_suppressed or 0),
        }
        for r in conn.execute(query)
    ]


def exempt_rows_by_file(
    conn: sa.Connection, *, days: int = DEFAULT_DAYS, now: pendulum.DateTime | None = None
) -> list[dict]:
    """Rows loaded under an explicit consent exemption per drop file claimed within ``days`` (and rows of
    no recorded file) and exemption (who and why): how many, and how many the vendor accepted (``report_consent_exempt``)."""
    now = now or pendulum.now("UTC")
    query = (
        sa.text(
            "SELECT file_sha256, vendor, folder, path, claimed_at, consent_exempt, rows_exempt, rows_sent "
            "FROM report_consent_exempt WHERE claimed_at >= :since OR claimed_at IS NULL "
            "ORDER BY claimed_at IS NULL, claimed_at DESC, file_sha256, consent_exempt"
        )
        .bindparams(_since_time(now, days))
        .columns(claimed_at=schema.UtcDateTime())
    )
    return [
        {
            **_file_columns(r.file_sha256, r.folder, r.path, r.claimed_at),
            "vendor": r.vendor,
            "exemption": r.consent_exempt,
            "rows": int(r.rows_exempt or 0),
            "sent": int(r.rows_sent or 0),
        }
        for r in conn.execute(query)
    ]


def consent(conn: sa.Connection, *, days: int = DEFAULT_DAYS, now: pendulum.DateTime | None = None) -> dict:
    """The page's Consent section (and the report's): who is suppressed, opt-outs of the last
    :data:`OPTOUT_DAYS` days, the top keywords, rows skipped and rows sent under an exemption per file of
    the last ``days`` days; ``cards``: the totals of those tables."""
    now = now or pendulum.now("UTC")
    data = {
        "optout_days": OPTOUT_DAYS,
        "active": active_suppressions(conn),
        "phones": count_suppressed_phones(conn),
        "optouts": optouts_daily(conn, now=now),
        "keywords": optout_keywords(conn),
        "suppressed": suppressed_rows_by_file(conn, days=days, now=now),
        "exempt": exempt_rows_by_file(conn, days=days, now=now),
    }
    cards = [
        Card(
            "active suppressions",
            sum(r["active"] for r in data["active"]),
            "consent-active",
            (Detail("phones", data["phones"], "consent-phones"),),
        ),
        Card(
            f"opt-outs, last {OPTOUT_DAYS} days",
            sum(r["started"] for r in data["optouts"]),
            "consent-optouts",
            (Detail("ended", sum(r["ended"] for r in data["optouts"]), "consent-optins"),),
        ),
        Card(
            "rows skipped for consent",
            sum(r["rows"] for r in data["suppressed"]),
            "consent-skipped",
            (
                Detail("at ingest", sum(r["at_ingest"] for r in data["suppressed"]), "consent-skipped-ingest"),
                Detail("at send", sum(r["at_claim"] for r in data["suppressed"]), "consent-skipped-claim"),
            ),
        ),
        Card(
            "rows under a consent exemption",
            sum(r["rows"] for r in data["exempt"]),
            "consent-exempt",
            (Detail("sent", sum(r["sent"] for r in data["exempt"]), "consent-exempt-sent"),),
        ),
    ]
    data["cards"] = [dataclasses.asdict(card) for card in cards]
    return data


def latest_report(report_dir: str | Path | None = None) -> Path | None:
    """The newest ``<MESSAGING_REPORT_DIR>/<date>/index.html`` (default ``reports/``)."""
    from latam_messaging.settings import current

    root = Path(report_dir or current().report_dir)
    reports = sorted(root.glob("*/index.html"))
    return reports[-1] if reports else None


def snapshot(
    warehouse: Warehouse,
    *,
    panels: Sequence[PanelFunction] = (),
    days: int = DEFAULT_DAYS,
    report_dir: str | Path | None = None,
    now: pendulum.DateTime | None = None,
) -> dict:
    """Every section of the page, read in one read-only transaction. ``panels``: the vendors' page
    panels (the app passes the registry's); each one's data goes under its own key, its cards join
    the header ``cards`` (what the page shows at the top, in order)."""
    now = now or pendulum.now("UTC")
    with warehouse.read_only(interactive=True) as conn:
        data = {
            "generated_at": now.to_iso8601_string(),
            "warehouse": warehouse.dialect,
            "days": days,
            "funnel": funnel(conn, days=days, now=now),
            "unknown": unknown_sends(conn, now=now),
            "unknown_total": count_unknown(conn),
            "rejects": rejects_by_file(conn, days=days, now=now),
            "inbound": inbound_volume(conn, days=days, now=now),
            "failures": failure_reasons(conn),
            "consent": consent(conn, days=days, now=now),
        }
        totals = {k: sum(row[k] for row in data["funnel"]) for k in ("messages", "delivered", "failed")}
        cards = [
            Card("messages", totals["messages"], "total-messages"),
            Card("delivered", totals["delivered"], "total-delivered"),
            Card("failed", totals["failed"], "total-failed"),
            Card("unknown, waiting for a decision", data["unknown_total"], "total-unknown"),
        ]
        for panel in (make(conn) for make in panels):
            data[panel.key] = dict(panel.data)
            cards.extend(panel.cards)
    data["cards"] = [dataclasses.asdict(card) for card in cards]
    report = latest_report(report_dir)
    data["report"] = {"path": str(report), "date": report.parent.name} if report else None
    return data
