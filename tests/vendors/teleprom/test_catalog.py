"""``teleprom_catalog_sync`` run in-process against the Teleprom simulator, on both warehouses."""

from __future__ import annotations

import sqlalchemy as sa

from latam_messaging.teleprom.simulator import ACCOUNTS, TEMPLATES
from latam_messaging.warehouse import schema
from tests.helpers.simulators import configure


def catalogue(warehouse):
    templates = {r["template_id"]: r for r in warehouse.rows(schema.teleprom_templates)}
    accounts = {r["account_id"]: r for r in warehouse.rows(schema.teleprom_accounts)}
    return templates, accounts


def changes(warehouse):
    query = sa.select(schema.teleprom_catalog_changes).order_by(schema.teleprom_catalog_changes.c.id)
    return [(c["item_kind"], c["item_id"], c["change"], c["old_value"], c["new_value"]) for c in warehouse.rows(query)]


def test_sync_fills_the_tables_then_tracks_vanishing_and_status_changes(
    run_dag, warehouse, teleprom_hook, teleprom_server
):
    assert run_dag("teleprom_catalog_sync").state == "success"
    templates, accounts = catalogue(warehouse)
    assert set(templates) == {t["id"] for t in TEMPLATES} and set(accounts) == {39, 41}
    shipping = templates[24]
    assert (shipping["name"], shipping["account_id"], shipping["status"], shipping["parameter_count"]) == (
        "shipping_confirmation",
        39,
        "Accepted",
        1,
    )
    assert shipping["active"] and shipping["first_seen_at"] == shipping["last_seen_at"]
    assert shipping["vendor_created_at"].hour == 19  # 16:43 Argentina = 19:43 UTC
    assert len(changes(warehouse)) == len(TEMPLATES) + len(ACCOUNTS)

    # a rerun with the same vendor answer changes nothing but last_seen_at
    assert run_dag("teleprom_catalog_sync").state == "success"
    again, _ = catalogue(warehouse)
    strip = lambda rows: {k: {c: v for c, v in r.items() if c != "last_seen_at"} for k, r in rows.items()}  # noqa: E731
    assert strip(again) == strip(templates)
    assert again[24]["last_seen_at"] > templates[24]["last_seen_at"]
    assert len(changes(warehouse)) == len(TEMPLATES) + len(ACCOUNTS)

    # template 25 vanishes, 24 is rejected, account 41 vanishes
    edited = [dict(t, status="Rejected") if t["id"] == 24 else t for t in TEMPLATES if t["id"] != 25]
    configure(teleprom_server, templates=edited, accounts=[ACCOUNTS[0]])
    assert run_dag("teleprom_catalog_sync").state == "success"
    after, accounts_after = catalogue(warehouse)
    assert after[25]["active"] is False and after[25]["deactivated_at"] is not None  # kept, not deleted
    assert after[24]["status"] == "Rejected" and after[24]["status_changed_at"] is not None
    assert accounts_after[41]["active"] is False
    assert changes(warehouse)[-3:] == [
        ("account", 41, "removed", "MaytenVentas", None),
        ("template", 24, "status", "Accepted", "Rejected"),
        ("template", 25, "removed", "welcome", None),
    ]


def test_a_failed_run_leaves_the_previous_catalogue(run_dag, warehouse, teleprom_hook, teleprom_server):
    assert run_dag("teleprom_catalog_sync").state == "success"
    before = catalogue(warehouse)
    configure(teleprom_server, templates=[{"id": 1}])  # malformed answer: parsing fails before writing
    assert run_dag("teleprom_catalog_sync").state == "failed"
    assert catalogue(warehouse) == before
