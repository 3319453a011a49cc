"""What messages cost: the price table of the settings (``MESSAGING_PRICES``) copied into
``message_prices`` so that the ``campaigns`` view and analysts can price in SQL.

A sent message's category is what the vendor reported when it billed it (a status event's
``pricing_category``: Meta's ``marketing``, ``utility``, ``authentication``, ``service``), else ``default``;
a preview estimates with the category the send adapter expects (``SendAdapter.price_category``: a
template's category). A vendor without a price for that category uses its ``default``; without one either, the cost is
unknown (NULL), never zero. A message the vendor said is not billable costs nothing.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from decimal import Decimal, InvalidOperation

import pendulum
import sqlalchemy as sa

from latam_messaging.warehouse import schema
from latam_messaging.warehouse.db import Warehouse

PRICES = schema.message_prices
DEFAULT_CATEGORY = "default"


class PriceTableError(ValueError):
    pass


def parse_prices(text: str) -> dict[str, dict[str, Decimal]]:
    """``{"<vendor>": {"marketing": 0.0618, "default": 0.05}, ...}`` → Decimals,
    vendor and category names lower-case; anything else is refused with the reason."""
    if not text or not text.strip():
        return {}
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise PriceTableError(f"MESSAGING_PRICES is not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise PriceTableError("MESSAGING_PRICES must be an object of vendors")
    table: dict[str, dict[str, Decimal]] = {}
    for vendor, categories in data.items():
        if not isinstance(categories, dict):
            raise PriceTableError(f"MESSAGING_PRICES[{vendor!r}] must be an object of categories")
        for category, price in categories.items():
            try:
                value = Decimal(str(price))
            except InvalidOperation:
                raise PriceTableError(f"MESSAGING_PRICES[{vendor!r}][{category!r}] is not a number") from None
            if not value.is_finite() or value < 0:
                raise PriceTableError(f"MESSAGING_PRICES[{vendor!r}][{category!r}] must be a price ≥ 0")
            table.setdefault(str(vendor).lower(), {})[str(category).lower()[:40]] = value
    return table


def sync_prices(warehouse: Warehouse, prices: Mapping[str, Mapping[str, Decimal]], currency: str) -> int:
    """``message_prices`` becomes the settings' table (rows of categories no longer priced are removed)."""
    now = pendulum.now("UTC")
    rows = [
        {"vendor": v, "category": c, "unit_price": p, "currency": currency, "updated_at": now}
        for v, categories in prices.items()
        for c, p in categories.items()
    ]
    with warehouse.begin() as conn:
        current = {(r.vendor, r.category, Decimal(r.unit_price), r.currency) for r in conn.execute(sa.select(PRICES))}
        wanted = {(r["vendor"], r["category"], r["unit_price"], currency) for r in rows}
        if current == wanted:
            return 0
        conn.execute(sa.delete(PRICES))
        if rows:
            conn.execute(PRICES.insert(), rows)
    return len(rows)


def unit_price(prices: Mapping[str, Mapping[str, Decimal]], vendor: str, category: str | None) -> Decimal | None:
    table = prices.get(vendor, {})
    if category and category.lower() in table:
        return table[category.lower()]
    return table.get(DEFAULT_CATEGORY)


def estimate(
    prices: Mapping[str, Mapping[str, Decimal]], vendor: str, categories: Iterable[str | None]
) -> Decimal | None:
    """The cost of sending one message per category given (a file's valid rows); None if any is unpriced."""
    total = Decimal(0)
    for category in categories:
        price = unit_price(prices, vendor, category)
        if price is None:
            return None
        total += price
    return total
