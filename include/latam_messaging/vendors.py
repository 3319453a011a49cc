"""The vendor registry: what each vendor folder provides, in one place.

A fourth vendor is one new folder (hook, contract, models, exceptions, ``send.py`` with its row
validator and send adapter, ``callbacks.py``, ``poller.py``, ``simulator.py``) plus one entry here.

Only the top reads this registry — the DAG files and their tasks, the receiver's and the Messaging
page's app factories, the rendered report, the CLIs (simulators, doctor, demo, bench) — and hands
what an engine needs to it as an argument: the shared engines (drops, ledger, dispatch, ingest,
polling, simulator framework, the page's queries) never name a vendor.
Entries name their classes by import path, so reading the registry at DAG parse time stays cheap;
``load()`` imports a class when a task needs it.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any


def load(path: str) -> Any:
    """``"package.module:attribute"`` → the attribute (imported now)."""
    module, _, name = path.partition(":")
    return getattr(importlib.import_module(module), name)


@dataclass(frozen=True)
class Vendor:
    name: str  # the ``vendor`` of every row, the webhook path segment, the DAG tag
    conn_type: str
    conn_id: str
    pool: str  # one Airflow pool per vendor caps concurrent API tasks across DAGs (deploy/pools.json)
    hook: str
    adapter: str  # send adapter (row validator, batching, answers)
    callbacks: str  # webhook body parser
    simulator: str
    connection: str  # the connection form (plain data, read by ``get_provider_info``)
    #: Webhook channels under ``/webhooks/<vendor>/<secret>/<channel>``; empty: the bare path only.
    webhook_channels: tuple[str, ...] = field(default=())
    #: The vendor's panels of the Messaging page and the rendered report: functions taking the
    #: read-only connection and returning a ``latam_messaging.page.panels.Panel``.
    page_panels: tuple[str, ...] = field(default=())

    def hook_class(self) -> type:
        return load(self.hook)

    def adapter_class(self) -> type:
        return load(self.adapter)

    def parse_callback(self):
        return load(self.callbacks)

    def simulator_class(self) -> type:
        return load(self.simulator)


VENDORS: dict[str, Vendor] = {
    vendor.name: vendor
    for vendor in (
        Vendor(
            name="teleprom",
            conn_type="teleprom",
            conn_id="teleprom_default",
            pool="teleprom_api",
            hook="latam_messaging.teleprom.hook:TelepromHook",
            adapter="latam_messaging.teleprom.send:TelepromAdapter",
            callbacks="latam_messaging.teleprom.callbacks:parse_callback",
            connection="latam_messaging.teleprom.connection:FORM",
            simulator="latam_messaging.teleprom.simulator:TelepromSimulator",
        ),
        Vendor(
            name="itd",
            conn_type="itd_chile",
            conn_id="itd_default",
            pool="itd_api",
            hook="latam_messaging.itd.hook:ItdHook",
            adapter="latam_messaging.itd.send:ItdAdapter",
            callbacks="latam_messaging.itd.callbacks:parse_callback",
            connection="latam_messaging.itd.connection:FORM",
            simulator="latam_messaging.itd.simulator:ItdSimulator",
            page_panels=("latam_messaging.itd.credits:page_panel",),
        ),
        Vendor(
            name="wavy",
            conn_type="wavy",
            conn_id="wavy_default",
            pool="wavy_api",
            hook="latam_messaging.wavy.hook:WavyHook",
            adapter="latam_messaging.wavy.send:WavyAdapter",
            callbacks="latam_messaging.wavy.callbacks:parse_callback",
            connection="latam_messaging.wavy.connection:FORM",
            simulator="latam_messaging.wavy.simulator:WavySimulator",
            webhook_channels=("callback", "dlr", "mo"),
        ),
    )
}

#: Pool of each vendor, by name (what the DAG files need at parse time).
POOLS = {name: vendor.pool for name, vendor in VENDORS.items()}


def callback_parsers() -> dict[str, Any]:
    """Each vendor's webhook body parser, for ``webhooks.ingest.ingest_pending``."""
    return {name: vendor.parse_callback() for name, vendor in VENDORS.items()}


def page_panels() -> list[Any]:
    """Every vendor's page panel functions (``Vendor.page_panels``), loaded, in registry order."""
    return [load(path) for vendor in VENDORS.values() for path in vendor.page_panels]


def suppression_scopes() -> frozenset[str]:
    """The scopes a suppression may name besides ``all``: every vendor and every vendor's channel
    (``whatsapp``, ``sms``), for the ``suppression_lists`` DAG (loads the send adapters' classes)."""
    channels = {VENDORS[name].adapter_class().channel for name in VENDORS}
    return frozenset(VENDORS) | {channel for channel in channels if channel}


def adapter(name: str):
    """A new send adapter of vendor ``name``."""
    return VENDORS[name].adapter_class()()


def consent_rules():
    """The consent rules in force (``consent.replies.ConsentRules``) with every vendor's send adapter,
    which says what an opt-out's confirmation needs at that vendor (``consent.confirm``): what the tops
    that store inbound messages hand ``webhooks.ingest.ingest_pending`` and the pollers."""
    from latam_messaging.consent.replies import ConsentRules

    return ConsentRules.from_settings(confirmers={name: adapter(name) for name in VENDORS})
