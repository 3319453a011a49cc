"""A dropped file becomes a campaign when the send DAG starts reading it (an upload already is one)."""

from __future__ import annotations

import logging
import pwd
from pathlib import Path
from typing import Any

import pendulum

from latam_messaging.campaigns.preview import CAMPAIGN_COLUMN
from latam_messaging.campaigns.records import CampaignState, Source, register
from latam_messaging.drops.csvfile import read_layout, read_rows
from latam_messaging.warehouse.db import Warehouse

log = logging.getLogger(__name__)


def campaign_name(path: Path, encoding: str, file_name: str) -> str:
    """The first row's ``campaign`` column, else the file's name without ``.csv``."""
    try:
        layout = read_layout(path, encoding, set())
        if CAMPAIGN_COLUMN in layout.columns:
            for chunk in read_rows(path, layout, chunk_rows=1):
                name = chunk[0].values.get(CAMPAIGN_COLUMN, "").strip()
                if name:
                    return name
                break
    except Exception as exc:  # the file's own reading reports what is wrong with it; a name is not worth more
        log.info("no campaign name read from %s (%s): its file name is used", file_name, type(exc).__name__)
    return file_name[:-4] if file_name.lower().endswith(".csv") else file_name


def owner_of(path: Path) -> str:
    """Who dropped the file: its owner on the shared volume (``uid <n>`` when the name is not known here)."""
    try:
        uid = path.stat().st_uid
    except OSError:
        return "unknown"
    try:
        return f"file owner {pwd.getpwuid(uid).pw_name}"
    except KeyError:
        return f"file owner uid {uid}"


def register_dropped_file(
    warehouse: Warehouse, adapter: Any, sha256: str, file_name: str, path: Path, encoding: str, now: pendulum.DateTime
) -> None:
    """Record the campaign of a dropped file about to be read (nothing changes for a known file: an upload
    confirmed on the page, or a file read before)."""
    with warehouse.begin() as conn:
        register(
            conn,
            warehouse,
            sha256=sha256,
            name=campaign_name(path, encoding, file_name),
            vendor=adapter.vendor,
            folder=adapter.folder,
            source=Source.DROP,
            file_name=file_name,
            created_by=owner_of(path),
            now=now,
            state=CampaignState.CONFIRMED,
        )
