"""What a vendor adds to the Messaging page and to the rendered report: a :class:`Panel`.

The registry names each vendor's panel functions by import path (``Vendor.page_panels``); each takes
the page's read-only connection (``Warehouse.read_only()``) and returns a :class:`Panel`. The page's app
and the report read the registry and show what the panels return, so neither names a vendor.
Plain data only (no FastAPI, no templates): a vendor folder imports this module cheaply.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa


@dataclass(frozen=True)
class Detail:
    """A labelled value under a card's number; ``id``: its HTML element id (None: no element of its own)."""

    label: str
    value: Any
    id: str | None = None


@dataclass(frozen=True)
class Card:
    """A header card of the page: a title over one number whose HTML element id is ``id``
    (a value of None reads ``n/a``)."""

    title: str
    value: Any
    id: str
    details: tuple[Detail, ...] = ()


@dataclass(frozen=True)
class Panel:
    #: Where ``data`` goes in the page's JSON summary (``/api/summary``).
    key: str
    data: Mapping[str, Any]
    #: Header cards on the page, after the funnel's own.
    cards: tuple[Card, ...] = ()
    #: Measures added to the rendered report's summary (its ``summary`` dict and table).
    report_summary: Mapping[str, Any] = field(default_factory=dict)
    #: Lines of text the report shows (HTML-escaped) under its vendor sections.
    report_notes: tuple[str, ...] = ()


#: A vendor's page panel: the read-only connection in, the panel out.
PanelFunction = Callable[[sa.Connection], Panel]
