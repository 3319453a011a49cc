"""Airflow Assets for the warehouse tables, so DAGs can be scheduled on the data other DAGs write.

A task that writes a table declares ``outlets=[changes(TABLE)]`` (an :class:`AssetAlias`) rather than the
asset itself, and calls :func:`emit_changes` with what it wrote: the asset event exists only when rows
changed. A task declaring the asset directly would emit an event on every success, even with nothing
new, and wake ``messaging_report`` every few minutes for nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from airflow.sdk import Asset, AssetAlias


def table_asset(table: str) -> Asset:
    return Asset(name=f"messaging_warehouse.{table}", uri=f"warehouse://messaging_warehouse/{table}", group="messaging")


TELEPROM_TEMPLATES = table_asset("teleprom_templates")
TELEPROM_ACCOUNTS = table_asset("teleprom_accounts")
OUTBOUND_MESSAGES = table_asset("outbound_messages")
MESSAGE_STATUS_EVENTS = table_asset("message_status_events")
INBOUND_MESSAGES = table_asset("inbound_messages")
ITD_CREDIT_SNAPSHOTS = table_asset("itd_credit_snapshots")
SIM_SWAP_CHECKS = table_asset("sim_swap_checks")
NUMBER_LOOKUPS = table_asset("number_lookups")
SUPPRESSIONS = table_asset("suppressions")


def changes(asset: Asset) -> AssetAlias:
    """The outlet to declare for ``asset``: an alias that carries an event only when :func:`emit_changes` adds one."""
    return AssetAlias(name=f"{asset.name}.changes", group="messaging")


def emit_changes(changed: Mapping[Asset, int], context: Mapping[str, Any] | None = None) -> dict[str, int]:
    """Add an asset event (``extra = {"rows": n}``) for each asset with ``n > 0`` changed rows.

    Call it inside a task whose ``outlets`` include ``changes(asset)``. Returns the events added, by name.
    """
    if context is None:
        from airflow.sdk import get_current_context

        context = get_current_context()
    emitted = {}
    for asset, rows in changed.items():
        if rows and rows > 0:
            context["outlet_events"][changes(asset)].add(asset, extra={"rows": int(rows)})
            emitted[asset.name] = int(rows)
    print(f"asset events: {emitted or 'none (nothing changed)'}")
    return emitted
