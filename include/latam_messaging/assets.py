"""Airflow Assets for the warehouse tables, so DAGs can be scheduled on the data other DAGs write."""

from __future__ import annotations

from airflow.sdk import Asset


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
