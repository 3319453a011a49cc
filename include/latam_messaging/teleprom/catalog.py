"""Teleprom catalogue (templates, accounts) into the warehouse, keeping history.

Items are upserted by id; an item missing from the vendor's answer is marked inactive, never
deleted; every addition, removal, reappearance and status/name change is written to
``teleprom_catalog_changes``. Both tables change in one transaction, so a run that fails half-way
leaves the previous catalogue as it was.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pendulum
import sqlalchemy as sa

from latam_messaging.teleprom.models import Account, Template
from latam_messaging.warehouse import schema
from latam_messaging.warehouse.db import Warehouse


@dataclass
class CatalogSyncStats:
    templates: int = 0
    accounts: int = 0
    added: int = 0
    removed: int = 0
    changed: int = 0


def _template_row(t: Template) -> dict[str, Any]:
    return {
        "template_id": t.template_id,
        "name": t.name,
        "account_id": t.account_id,
        "status": t.status,
        "category": t.category,
        "language": t.language,
        "parameter_count": t.parameter_count,
        "structure": t.structure,
        "example": t.example,
        "template_type": t.type,
        "vendor_created_at": t.created_at,
    }


def _account_row(a: Account) -> dict[str, Any]:
    return {"account_id": a.account_id, "name": a.name, "source_number": a.source_number}


#: Which columns' changes are recorded, per item kind.
_TRACKED = {"template": ("status", "name", "account_id"), "account": ("name", "source_number")}


def _merge(
    conn: sa.Connection,
    warehouse: Warehouse,
    table: sa.Table,
    kind: str,
    key: str,
    incoming: list[dict[str, Any]],
    now: pendulum.DateTime,
    stats: CatalogSyncStats,
) -> None:
    existing = {row[key]: dict(row) for row in conn.execute(sa.select(table)).mappings()}
    changes: list[dict[str, Any]] = []
    rows: list[dict[str, Any]] = []

    def change(item_id: int, what: str, old: Any = None, new: Any = None) -> None:
        changes.append(
            {
                "item_kind": kind,
                "item_id": item_id,
                "change": what,
                "old_value": None if old is None else str(old),
                "new_value": None if new is None else str(new),
                "changed_at": now,
            }
        )

    for item in incoming:
        before = existing.get(item[key])
        row = {**item, "active": True, "last_seen_at": now, "deactivated_at": None}
        if before is None:
            row["first_seen_at"] = now
            change(item[key], "added", new=item.get("name"))
            stats.added += 1
        else:
            row["first_seen_at"] = before["first_seen_at"]
            if not before["active"]:
                change(item[key], "reappeared")
            for column in _TRACKED[kind]:
                if before[column] != item[column]:
                    change(item[key], column, before[column], item[column])
                    stats.changed += 1
        if kind == "template":
            status_changed = before is not None and before["status"] != item["status"]
            row["status_changed_at"] = now if status_changed else (before or {}).get("status_changed_at")
        rows.append(row)

    seen = {item[key] for item in incoming}
    for item_id, before in existing.items():
        if item_id not in seen and before["active"]:
            rows.append({**before, "active": False, "deactivated_at": now})
            change(item_id, "removed", old=before["name"])
            stats.removed += 1

    warehouse.upsert(conn, table, rows, keys=[key])
    warehouse.insert_new(conn, schema.teleprom_catalog_changes, changes)


def sync_catalog(
    warehouse: Warehouse,
    templates: Sequence[Template],
    accounts: Sequence[Account],
    now: pendulum.DateTime | None = None,
) -> CatalogSyncStats:
    """Write a complete catalogue answer. Call only with both lists fetched in full."""
    now = now or pendulum.now("UTC")
    stats = CatalogSyncStats(templates=len(templates), accounts=len(accounts))
    with warehouse.begin() as conn:
        _merge(
            conn,
            warehouse,
            schema.teleprom_accounts,
            "account",
            "account_id",
            [_account_row(a) for a in accounts],
            now,
            stats,
        )
        _merge(
            conn,
            warehouse,
            schema.teleprom_templates,
            "template",
            "template_id",
            [_template_row(t) for t in templates],
            now,
            stats,
        )
    return stats
