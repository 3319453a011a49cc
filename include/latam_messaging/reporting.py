"""Reporting views (created by migrations 3, 5, 7 and 8) and the rendered report under ``reports/<date>/``.

The views are plain SQL over the ledger and event tables, the same on SQLite and PostgreSQL except
for date arithmetic (see ``warehouse/views.py``). Percentiles of time to deliver are computed here
(numpy, the rows streamed), since SQLite has no percentile functions. Vendor measures (the ITD credit balance, burn and days left)
come from the vendors' page panels (``Vendor.page_panels``, handed in by the caller): the same numbers
as the Messaging page. So does its Consent section (``page.queries.consent``: suppressions, opt-outs,
keywords, rows skipped and rows under an exemption).
"""

from __future__ import annotations

import html
from array import array
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pendulum
import sqlalchemy as sa

from latam_messaging.page import queries
from latam_messaging.page.panels import Panel, PanelFunction
from latam_messaging.warehouse.db import Warehouse
from latam_messaging.warehouse.views import VIEW_NAMES


@dataclass
class ReportResult:
    directory: Path
    html: Path
    figures: list[Path]
    summary: dict


def _frame(warehouse: Warehouse, view: str) -> pd.DataFrame:
    with warehouse.engine.connect() as conn:
        return pd.read_sql_query(sa.text(f"SELECT * FROM {view}"), conn)


#: The quantiles of time to deliver the report shows (p50, p90, p99).
QUANTILES = (0.5, 0.9, 0.99)


def percentiles_of(seconds: Mapping[str, Sequence[float]]) -> pd.DataFrame:
    """:data:`QUANTILES` of each vendor's seconds, by linear interpolation (``Series.quantile``'s), in
    tenths; one row per vendor (sorted), one column per quantile; empty without values."""
    return _frame_of([(v, np.quantile(np.asarray(seconds[v], dtype=float), QUANTILES)) for v in sorted(seconds)])


def _frame_of(rows: Sequence[tuple[str, Sequence[float]]]) -> pd.DataFrame:
    """(vendor, its quantiles) rows as :func:`percentiles_of` gives them."""
    if not rows:
        return pd.DataFrame()
    index = pd.Index([vendor for vendor, _ in rows], name="vendor")
    return pd.DataFrame([list(values) for _, values in rows], index=index, columns=list(QUANTILES)).round(1)


def delivery_percentiles(warehouse: Warehouse, chunk: int = 100_000) -> pd.DataFrame:
    """:func:`percentiles_of` ``report_time_to_deliver``. PostgreSQL computes them itself
    (``percentile_cont``: the same linear interpolation), so no row leaves the database (reading the
    view's 15 M rows of the full history into Python took most of the report's 108 s). SQLite has no
    ordered-set aggregate: its rows are streamed in chunks and only the seconds held, 8 bytes a delivered
    message (a frame of the view's rows took 1.8 GB and half the report's time on 3.7 M delivered messages)."""
    if warehouse.dialect == "postgresql":
        quantiles = ", ".join(str(q) for q in QUANTILES)
        query = sa.text(
            f"SELECT vendor, percentile_cont(ARRAY[{quantiles}]) WITHIN GROUP "
            "(ORDER BY CAST(seconds_to_deliver AS DOUBLE PRECISION)) FROM report_time_to_deliver "
            "GROUP BY vendor ORDER BY vendor"
        )
        with warehouse.engine.connect() as conn:
            return _frame_of([(vendor, values) for vendor, values in conn.execute(query)])
    seconds: dict[str, array] = {}
    with warehouse.engine.connect() as conn:
        # a server-side cursor read ``chunk`` rows at a time by the result's own ``yield_per``: given as an
        # execution option instead, psycopg2's rows piled up (575 MB for 1.5 M rows, 5.7 GB for 15 M)
        rows = conn.execution_options(stream_results=True).execute(
            sa.text("SELECT vendor, seconds_to_deliver FROM report_time_to_deliver")
        )
        for part in rows.yield_per(chunk).partitions():
            for vendor, value in part:
                seconds.setdefault(vendor, array("d")).append(float(value))
    return percentiles_of(seconds)


def _bar(frame: pd.DataFrame, path: Path, title: str, xlabel: str) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    # labels are data (reject reasons, template names): "$x^{$" is text, never math
    with matplotlib.rc_context({"text.parse_math": False, "text.usetex": False}):
        return _draw(plt, frame, path, title, xlabel)


def _draw(plt, frame: pd.DataFrame, path: Path, title: str, xlabel: str) -> Path:
    fig, ax = plt.subplots(figsize=(8, 4))
    if frame.empty:
        ax.text(0.5, 0.5, "no data yet", ha="center", va="center")
    else:
        frame.plot.barh(ax=ax)
        ax.invert_yaxis()
        ax.legend(loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False)
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def _panels(warehouse: Warehouse, makers: Sequence[PanelFunction]) -> list[Panel]:
    """The vendors' page panels, read in one read-only transaction: their measures join the summary,
    their notes follow the vendor sections."""
    with warehouse.read_only() as conn:
        return [make(conn) for make in makers]


def _consent(warehouse: Warehouse) -> dict:
    """The Messaging page's Consent section (``page.queries.consent``), read the same way: the same numbers."""
    with warehouse.read_only() as conn:
        return queries.consent(conn)


def _card_values(cards: list[dict]) -> dict:
    """``{title: value, "title: detail": value}`` of the page's cards, in their order."""
    values = {}
    for card in cards:
        values[card["title"]] = card["value"]
        values.update({f"{card['title']}: {detail['label']}": detail["value"] for detail in card["details"]})
    return values


def _files(rows: list[dict]) -> pd.DataFrame:
    """Per-file rows of the Consent section without the short hash (the file name and its claim time say which)."""
    return pd.DataFrame(rows).drop(columns=["file_sha256"], errors="ignore")


def render_report(
    warehouse: Warehouse,
    out_root: Path,
    day: pendulum.Date | None = None,
    *,
    panels: Sequence[PanelFunction] = (),
) -> ReportResult:
    """Write ``index.html`` and PNG charts under ``out_root/<day>/``; returns where and a summary.
    ``panels``: the vendors' page panels (the caller reads them from the registry), so the report
    shows the same vendor measures as the Messaging page."""
    day = day or pendulum.now("UTC").date()
    directory = Path(out_root) / day.isoformat()
    directory.mkdir(parents=True, exist_ok=True)

    funnel = _frame(warehouse, "report_delivery_funnel")
    stages = ["messages", "accepted", "sent", "delivered", "read_count", "failed"]
    by_vendor = funnel.groupby("vendor")[stages].sum() if not funnel.empty else pd.DataFrame(columns=stages)
    rejects = _frame(warehouse, "report_rejects_by_reason")
    reject_totals = (
        rejects.groupby("reason")["rows_rejected"].sum().sort_values(ascending=False)
        if not rejects.empty
        else pd.Series(dtype=int)
    )
    failures = _frame(warehouse, "report_failure_reasons")
    inbound = _frame(warehouse, "report_inbound_daily")
    credits = _frame(warehouse, "report_itd_credits_daily")
    risky = _frame(warehouse, "report_risky_share")
    unrecognised = _frame(warehouse, "report_unrecognised_statuses")

    percentiles = delivery_percentiles(warehouse)
    panels = _panels(warehouse, panels)
    consent = _consent(warehouse)
    consent_totals = {card["id"]: card for card in consent["cards"]}

    figures = [
        _bar(by_vendor, directory / "funnel.png", "Delivery funnel per vendor", "messages"),
        _bar(reject_totals.to_frame("rows"), directory / "rejects.png", "Rejected CSV rows by reason", "rows"),
        _bar(
            inbound.groupby("vendor")["messages"].sum().to_frame() if not inbound.empty else pd.DataFrame(),
            directory / "inbound.png",
            "Inbound messages per vendor",
            "messages",
        ),
    ]
    risky_share = None
    if not risky.empty and int(risky["checked_phones"].iloc[0] or 0):
        risky_share = round(100 * int(risky["risky_phones"].iloc[0]) / int(risky["checked_phones"].iloc[0]), 1)
    summary = {
        "messages": int(by_vendor["messages"].sum()) if not by_vendor.empty else 0,
        "delivered": int(by_vendor["delivered"].sum()) if not by_vendor.empty else 0,
        "read": int(by_vendor["read_count"].sum()) if not by_vendor.empty else 0,
        "failed": int(by_vendor["failed"].sum()) if not by_vendor.empty else 0,
        "rows_rejected": int(reject_totals.sum()) if not reject_totals.empty else 0,
        "inbound": int(inbound["messages"].sum()) if not inbound.empty else 0,
        **{name: value for panel in panels for name, value in panel.report_summary.items()},
        "risky_share_percent": risky_share,
        "unrecognised_status_events": int(unrecognised["events"].sum()) if not unrecognised.empty else 0,
        "suppressions_active": consent_totals["consent-active"]["value"],
        f"opt_outs_last_{queries.OPTOUT_DAYS}_days": consent_totals["consent-optouts"]["value"],
        f"rows_skipped_for_consent_last_{queries.DEFAULT_DAYS}_days": consent_totals["consent-skipped"]["value"],
        f"rows_consent_exempt_last_{queries.DEFAULT_DAYS}_days": consent_totals["consent-exempt"]["value"],
    }

    def table(frame: pd.DataFrame, index_name: str | None = None) -> str:
        """An HTML table without pandas' index column (a meaningful index becomes a named column);
        missing values read ``n/a``."""
        if frame.empty:
            return "<p><em>no data yet</em></p>"
        if index_name is not None:
            frame = frame.rename_axis(index_name).reset_index()
        shown = frame.astype(object).where(frame.notna(), "n/a")
        return shown.to_html(border=0, classes="t", index=False)

    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>Messaging report {day}</title>
<style>body{{font-family:sans-serif;margin:2em;max-width:1000px}} .t{{border-collapse:collapse}} .t td,.t th{{padding:4px 10px;border-bottom:1px solid #ddd;text-align:right}}</style>
</head><body>
<h1>Messaging report — {day}</h1>
<p>Generated {html.escape(pendulum.now("UTC").to_iso8601_string())} from the warehouse views <code>{", ".join(VIEW_NAMES)}</code>.</p>
<h2>Summary</h2>{table(pd.DataFrame([summary]).T.rename(columns={0: "value"}), "measure")}
<h2>Delivery funnel per vendor</h2><img src="funnel.png" alt="funnel">{table(by_vendor, "vendor")}
<h2>Time to deliver (seconds, p50 / p90 / p99)</h2>{table(percentiles, "vendor")}
<h2>Failures by reason</h2>{table(failures)}
<h2>Status texts the vocabulary does not know (stored as <code>unknown</code>)</h2>{table(unrecognised)}
<h2>Rejected CSV rows by reason</h2><img src="rejects.png" alt="rejects">{table(rejects)}
<h2>Inbound volume</h2><img src="inbound.png" alt="inbound">{table(inbound)}
<h2>ITD credits</h2>{table(credits)}
{"".join(f"<p>{html.escape(note)}</p>" for panel in panels for note in panel.report_notes)}
<h2>Risky numbers</h2>{table(risky)}
<h2>Consent</h2>
<p>Phones that must not be sent to (an opt-out reply, the vendor's opt-out status, a list or registry file): rows to
them are rejected at ingest or skipped when claimed for sending. The same numbers as the Messaging page.</p>
{table(pd.DataFrame([_card_values(consent["cards"])]).T.rename(columns={0: "value"}), "measure")}
<h3>Active suppressions by source</h3>{table(pd.DataFrame(consent["active"]))}
<h3>Opt-outs per day and source (last {queries.OPTOUT_DAYS} days)</h3>{table(pd.DataFrame(consent["optouts"]))}
<h3>Opt-out keywords customers replied</h3>{table(pd.DataFrame(consent["keywords"]))}
<h3>Rows skipped for consent by file (last {queries.DEFAULT_DAYS} days)</h3>{table(_files(consent["suppressed"]))}
<h3>Rows under a consent exemption by file (last {queries.DEFAULT_DAYS} days)</h3>{table(_files(consent["exempt"]))}
</body></html>"""
    index = directory / "index.html"
    index.write_text(page, encoding="utf-8")
    return ReportResult(directory, index, figures, summary)
