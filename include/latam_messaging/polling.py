"""What every poller shares: watermarks, and consume-once pages made durable before use.

A consume-once page (Wavy's ``status/list`` and ``receive/list``) is first spooled to a local file
(fsynced, under ``MESSAGING_SPOOL_DIR``), then committed raw to ``raw_webhook_events``, then its
file is removed: a warehouse failure after the fetch loses nothing, and the next run replays the
spool first. The vendors' pollers are in ``<vendor>/poller.py``.
"""

from __future__ import annotations

import json
import logging
import os
import uuid
from pathlib import Path
from typing import Any

import pendulum
import sqlalchemy as sa

from latam_messaging.warehouse import schema
from latam_messaging.warehouse.db import Warehouse
from latam_messaging.webhooks.raw import raw_event_row

log = logging.getLogger(__name__)
WATERMARKS = schema.poll_watermarks


def watermarks(warehouse: Warehouse, source: str) -> dict[str, str]:
    with warehouse.engine.connect() as conn:
        return dict(conn.execute(sa.select(WATERMARKS.c.item, WATERMARKS.c.value).where(WATERMARKS.c.source == source)).all())


def store_raw_page(warehouse: Warehouse, vendor: str, channel: str, page: dict[str, Any]) -> None:
    """Commit a consume-once page before anything else is done with it."""
    body = json.dumps(page, ensure_ascii=False, sort_keys=True).encode()
    row = raw_event_row(vendor, channel, body, "application/json", format_version="poll")
    with warehouse.begin() as conn:
        warehouse.insert_new(conn, schema.raw_webhook_events, [row])


def spool_dir(vendor: str, channel: str) -> Path:
    from latam_messaging.settings import current

    root = current().spool_dir
    return root / vendor / channel


def spool(directory: Path, page: dict[str, Any]) -> Path:
    """Write the page to a file that survives the process (fsynced, renamed into place)."""
    directory.mkdir(parents=True, exist_ok=True)
    final = directory / f"{pendulum.now('UTC').format('YYYYMMDDHHmmssSSSSSS')}-{uuid.uuid4().hex}.json"
    part = final.with_suffix(".part")
    with part.open("wb") as handle:
        handle.write(json.dumps(page, ensure_ascii=False, sort_keys=True).encode())
        handle.flush()
        os.fsync(handle.fileno())
    part.rename(final)
    return final


def replay_spool(warehouse: Warehouse, vendor: str, channel: str) -> int:
    """Commit the pages a failed run spooled but did not store; returns how many."""
    directory = spool_dir(vendor, channel)
    if not directory.is_dir():
        return 0
    replayed = 0
    for path in sorted(directory.glob("*.json")):
        store_raw_page(warehouse, vendor, channel, json.loads(path.read_bytes()))
        path.unlink()
        replayed += 1
    if replayed:
        log.info("%d spooled %s page(s) committed", replayed, channel)
    return replayed
