"""Charts of the campaign pages as inline SVG, drawn on the server: no script, no CDN, no network.

Each function returns markup safe to embed (every label escaped) with the numbers it draws in
``data-*`` attributes, so a test (or a person's browser tools) reads the same number the bar shows.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from markupsafe import Markup, escape

#: Series colours (colour-blind safe: Okabe–Ito).
COLOURS = {"accepted": "#0072B2", "delivered": "#009E73", "read": "#E69F00", "failed": "#D55E00", "other": "#999999"}


def _fmt(value: float) -> str:
    return f"{value:.1f}".rstrip("0").rstrip(".")


def _nice_max(value: int) -> int:
    """The axis top: 1, 2 or 5 times a power of ten, at least ``value``."""
    if value <= 0:
        return 1
    step = 1
    while True:
        for factor in (1, 2, 5):
            if step * factor >= value:
                return step * factor
        step *= 10


def bars(
    items: Sequence[tuple[str, int]], *, chart_id: str, colour: str = COLOURS["accepted"], width: int = 640
) -> Markup:
    """Horizontal bars, one per ``(label, count)``, longest = the largest count; each bar carries
    ``data-label`` and ``data-count``."""
    if not items:
        return Markup(f'<p class="muted" id="{escape(chart_id)}-empty">Nothing to chart.</p>')
    row, label_width, pad = 24, 300, 60
    top = max(count for _, count in items) or 1
    scale = (width - label_width - pad) / top
    height = row * len(items) + 8
    parts = [
        f'<svg id="{escape(chart_id)}" class="chart" role="img" viewBox="0 0 {width} {height}" width="100%" '
        f'style="max-width:{width}px" xmlns="http://www.w3.org/2000/svg">'
    ]
    for n, (label, count) in enumerate(items):
        y = 4 + n * row
        text = str(label)
        short = text if len(text) <= 44 else text[:43] + "…"
        parts.append(
            f'<g class="bar" data-label="{escape(text)}" data-count="{int(count)}"><title>{escape(text)}: {int(count)}</title>'
            f'<text x="{label_width - 6}" y="{y + 16}" text-anchor="end" font-size="12" fill="currentColor">{escape(short)}</text>'
            f'<rect x="{label_width}" y="{y + 3}" width="{_fmt(max(count * scale, 1 if count else 0))}" height="{row - 8}" '
            f'rx="2" fill="{escape(colour)}"/>'
            f'<text x="{_fmt(label_width + count * scale + 4)}" y="{y + 16}" font-size="12" fill="currentColor">{int(count)}</text></g>'
        )
    parts.append("</svg>")
    return Markup("".join(parts))


def timeline(
    buckets: Sequence[dict[str, Any]],
    *,
    series: Sequence[str],
    chart_id: str,
    bucket_minutes: int,
    width: int = 760,
    height: int = 240,
) -> Markup:
    """Lines of ``series`` over time, one point per bucket (``{"at": iso, <series>: count}``), with a
    y axis, the first and last time under the x axis and a legend with each series' total."""
    if not buckets:
        return Markup(f'<p class="muted" id="{escape(chart_id)}-empty">Nothing sent yet.</p>')
    left, right, top_pad, bottom = 48, 12, 12, 40
    plot_w, plot_h = width - left - right, height - top_pad - bottom
    top = _nice_max(max(int(b.get(s, 0)) for b in buckets for s in series))
    n = len(buckets)

    def x(i: int) -> float:
        return left + (plot_w * (i + 0.5) / n)

    def y(v: int) -> float:
        return top_pad + plot_h - plot_h * v / top

    parts = [
        f'<svg id="{escape(chart_id)}" class="chart" role="img" viewBox="0 0 {width} {height}" width="100%" '
        f'style="max-width:{width}px" xmlns="http://www.w3.org/2000/svg" data-bucket-minutes="{int(bucket_minutes)}">'
    ]
    for tick in (0, top // 2, top):
        parts.append(
            f'<line x1="{left}" x2="{width - right}" y1="{_fmt(y(tick))}" y2="{_fmt(y(tick))}" stroke="#cbd5e0" stroke-width="0.5"/>'
            f'<text x="{left - 4}" y="{_fmt(y(tick) + 4)}" text-anchor="end" font-size="11" fill="currentColor">{tick}</text>'
        )
    for s in series:
        colour = COLOURS.get(s, COLOURS["other"])
        points = " ".join(f"{_fmt(x(i))},{_fmt(y(int(b.get(s, 0))))}" for i, b in enumerate(buckets))
        total = sum(int(b.get(s, 0)) for b in buckets)
        parts.append(
            f'<polyline class="series" data-series="{escape(s)}" data-total="{total}" fill="none" stroke="{colour}" '
            f'stroke-width="2" points="{points}"/>'
        )
        if n <= 60:  # a point per bucket, with its count on hover
            for i, b in enumerate(buckets):
                parts.append(
                    f'<circle cx="{_fmt(x(i))}" cy="{_fmt(y(int(b.get(s, 0))))}" r="2.5" fill="{colour}">'
                    f"<title>{escape(str(b['at'])[:16])} UTC · {escape(s)}: {int(b.get(s, 0))}</title></circle>"
                )
    first, last = str(buckets[0]["at"])[:16].replace("T", " "), str(buckets[-1]["at"])[:16].replace("T", " ")
    parts.append(
        f'<text x="{left}" y="{height - bottom + 16}" font-size="11" fill="currentColor">{escape(first)} UTC</text>'
        f'<text x="{width - right}" y="{height - bottom + 16}" text-anchor="end" font-size="11" fill="currentColor">'
        f"{escape(last)} UTC · {int(bucket_minutes)}-minute buckets</text>"
    )
    for k, s in enumerate(series):
        colour = COLOURS.get(s, COLOURS["other"])
        total = sum(int(b.get(s, 0)) for b in buckets)
        lx = left + k * 150
        parts.append(
            f'<rect x="{lx}" y="{height - 14}" width="12" height="4" fill="{colour}"/>'
            f'<text x="{lx + 16}" y="{height - 9}" font-size="12" fill="currentColor">{escape(s)} ({total})</text>'
        )
    parts.append("</svg>")
    return Markup("".join(parts))
