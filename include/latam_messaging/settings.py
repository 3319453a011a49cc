"""Project settings from the environment (CONTRACT.md), read when a task runs, not at import."""

from __future__ import annotations

import os
from pathlib import Path

DEFAULT_TIMEZONE = "America/Argentina/Buenos_Aires"
#: The time zone of the DAG schedules and start dates (``latam_messaging.schedules``). A constant, not
#: ``MESSAGING_TIMEZONE``: DAG files read no environment at parse time, so the dag-processor parses
#: every DAG the same way whatever its environment. Change it here (it is code, versioned with the DAGs).
SCHEDULE_TIMEZONE = DEFAULT_TIMEZONE
#: ``itd_poll`` fails below this many ITD credits unless ``MESSAGING_ITD_LOW_CREDITS`` or the run's param says otherwise.
DEFAULT_ITD_LOW_CREDITS = 100


def timezone() -> str:
    """Local time for send windows and naive CSV times (``MESSAGING_TIMEZONE``)."""
    return os.environ.get("MESSAGING_TIMEZONE", DEFAULT_TIMEZONE)


def default_region() -> str:
    """Region of phone numbers written without a country code (``MESSAGING_DEFAULT_REGION``)."""
    return os.environ.get("MESSAGING_DEFAULT_REGION", "AR")


def drop_dir() -> Path:
    """Root of the CSV drop folders (``MESSAGING_DROP_DIR``)."""
    return Path(os.environ.get("MESSAGING_DROP_DIR", "data/drops"))


def hold_risky_folders() -> set[str]:
    """Drop folders that hold sends to numbers flagged by number_checks (``MESSAGING_HOLD_RISKY_FOLDERS``,
    comma-separated, e.g. ``teleprom_hsm,wavy_sms``)."""
    return {f.strip() for f in os.environ.get("MESSAGING_HOLD_RISKY_FOLDERS", "").split(",") if f.strip()}


def itd_low_credits() -> int:
    """Credits below which ``itd_poll`` fails the run (``MESSAGING_ITD_LOW_CREDITS``, default 100)."""
    return int(os.environ.get("MESSAGING_ITD_LOW_CREDITS", DEFAULT_ITD_LOW_CREDITS))
