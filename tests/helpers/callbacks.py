"""Vendor callback bodies through ``parse_body``, the way ``webhook_ingest`` parses them."""

from __future__ import annotations

import json

import pendulum

from tests.helpers.paths import VENDOR_DOCS as DOCS

RECEIVED = pendulum.datetime(2026, 3, 2, 15, 0, tz="UTC")
SENT_AT, DELIVERED_AT = 1772463600000, 1772463660000  # epoch milliseconds, as Wavy and ITD give times


def doc(vendor: str, name: str) -> str:
    return (DOCS / vendor / name).read_text(encoding="utf-8")


def parse(vendor, body, channel=None):
    """A stored body through ``parse_body``, as ``webhook_ingest`` parses it."""
    from latam_messaging.webhooks.parsers import parse_body

    text = body if isinstance(body, str) else json.dumps(body)
    from latam_messaging.vendors import VENDORS  # the top hands parse_body the vendor's parser

    if vendor not in VENDORS:
        return parse_body(None, channel, text, RECEIVED)
    return parse_body(VENDORS[vendor].parse_callback(), channel, text, RECEIVED)


def envelope(kind: str, values: list, version="1"):
    """A Teleprom V1/V3 envelope around ``values``."""
    return {"Version": version, "Type": kind, "Payload": {"entry": [{"changes": [{"value": v} for v in values]}]}}
