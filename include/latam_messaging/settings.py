"""Project settings from the environment (CONTRACT.md): one object, read when a task runs, never at
import or DAG-parse time. Every ``MESSAGING_*`` variable is read here and nowhere else."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_TIMEZONE = "America/Argentina/Buenos_Aires"
#: The time zone of the DAG schedules and start dates (``latam_messaging.schedules``). A constant, not
#: ``MESSAGING_TIMEZONE``: DAG files read no environment at parse time, so the dag-processor parses
#: every DAG the same way whatever its environment. Change it here (it is code, versioned with the DAGs).
SCHEDULE_TIMEZONE = DEFAULT_TIMEZONE
#: ``itd_poll`` fails below this many ITD credits unless ``MESSAGING_ITD_LOW_CREDITS`` or the run's param says otherwise.
DEFAULT_ITD_LOW_CREDITS = 100


@dataclass(frozen=True)
class Settings:
    drop_dir: Path  # MESSAGING_DROP_DIR: root of the CSV drop folders
    default_region: str  # MESSAGING_DEFAULT_REGION: phone numbers written without a country code
    timezone: str  # MESSAGING_TIMEZONE: send windows and naive CSV times
    hold_risky_folders: frozenset[str]  # MESSAGING_HOLD_RISKY_FOLDERS: folders holding flagged numbers
    itd_low_credits: int  # MESSAGING_ITD_LOW_CREDITS: itd_poll fails below this
    alert_conn_id: str  # MESSAGING_ALERT_CONN_ID: the failure alerts' connection
    report_dir: Path  # MESSAGING_REPORT_DIR: where messaging_report writes
    spool_dir: Path  # MESSAGING_SPOOL_DIR: consume-once pages kept until committed
    webhook_secret: str  # MESSAGING_WEBHOOK_SECRET: the secret path segment of the webhook URLs
    receiver_url: str  # MESSAGING_RECEIVER_URL: where the doctor looks for the receiver
    send_windows: Mapping[str, str]  # MESSAGING_SEND_WINDOW_<VENDOR>, by lower-case vendor name
    #: MESSAGING_OPTOUT_KEYWORDS_<LANG> / MESSAGING_OPTIN_KEYWORDS_<LANG>: {lang: {"opt_out"|"opt_in": "a, b"}}
    consent_keywords: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    #: MESSAGING_CONSENT_CONFIRM: vendors that answer an opt-out with a confirmation (empty: none, the default)
    consent_confirm_vendors: frozenset[str] = frozenset()
    #: MESSAGING_CONSENT_CONFIRM_TEXT_<LANG>: the confirmation's text per language (defaults in consent.confirm)
    consent_confirm_texts: Mapping[str, str] = field(default_factory=dict)
    #: MESSAGING_PRICES: the price table, JSON ``{vendor: {category: price}}`` (campaigns.pricing); empty: no costs
    prices_json: str = ""
    #: MESSAGING_CURRENCY: the prices' currency
    currency: str = "USD"
    #: MESSAGING_UPLOAD_DIR: where the page keeps uploads until confirmed (on the drop volume: a confirmed
    #: upload is renamed into its drop folder, atomically). Default ``<drop dir>/_uploads``.
    upload_dir: Path | None = None
    #: MESSAGING_UPLOAD_MAX_MB: the largest upload the page accepts
    upload_max_mb: int = 50
    #: MESSAGING_RAW_RETENTION_DAYS: days a parsed raw webhook body is kept after it parsed, then archived and purged
    raw_retention_days: float = 30
    #: MESSAGING_RAW_ERROR_RETENTION_DAYS: the same for bodies that parsed with errors (``error``, ``partial``),
    #: kept longer so ``webhook_ingest``'s ``reparse_errors`` can read them after a parser fix
    raw_error_retention_days: float = 180
    #: MESSAGING_ARCHIVE_URL: where purged bodies are archived: a local folder (or ``file://``), or an object
    #: store URL (``s3://bucket/prefix``) through Airflow's ObjectStoragePath
    archive_url: str = "data/archive"
    #: MESSAGING_DROP_ARCHIVE_DAYS: days a processed drop file stays in its folder's ``archive/`` or ``failed/``
    drop_archive_days: float = 90

    def uploads(self) -> Path:
        return self.upload_dir or self.drop_dir / "_uploads"

    def prices(self):
        from latam_messaging.campaigns.pricing import parse_prices

        return parse_prices(self.prices_json)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        prefix = "MESSAGING_SEND_WINDOW_"
        keywords: dict[str, dict[str, str]] = {}
        for intent, start in (("opt_out", "MESSAGING_OPTOUT_KEYWORDS_"), ("opt_in", "MESSAGING_OPTIN_KEYWORDS_")):
            for name, value in env.items():
                if name.startswith(start) and value.strip():
                    keywords.setdefault(name[len(start) :].lower(), {})[intent] = value
        confirm_text = "MESSAGING_CONSENT_CONFIRM_TEXT_"
        return cls(
            drop_dir=Path(env.get("MESSAGING_DROP_DIR") or "data/drops"),
            default_region=env.get("MESSAGING_DEFAULT_REGION") or "AR",
            timezone=env.get("MESSAGING_TIMEZONE") or DEFAULT_TIMEZONE,
            hold_risky_folders=frozenset(
                f.strip() for f in env.get("MESSAGING_HOLD_RISKY_FOLDERS", "").split(",") if f.strip()
            ),
            itd_low_credits=int(env.get("MESSAGING_ITD_LOW_CREDITS") or DEFAULT_ITD_LOW_CREDITS),
            alert_conn_id=env.get("MESSAGING_ALERT_CONN_ID") or "messaging_alerts",
            report_dir=Path(env.get("MESSAGING_REPORT_DIR") or "reports"),
            spool_dir=Path(env.get("MESSAGING_SPOOL_DIR") or "data/spool"),
            webhook_secret=env.get("MESSAGING_WEBHOOK_SECRET", ""),
            receiver_url=env.get("MESSAGING_RECEIVER_URL") or "http://127.0.0.1:8090",
            send_windows={k[len(prefix) :].lower(): v for k, v in env.items() if k.startswith(prefix) and v},
            consent_keywords=keywords,
            consent_confirm_vendors=frozenset(
                v.strip().lower() for v in env.get("MESSAGING_CONSENT_CONFIRM", "").split(",") if v.strip()
            ),
            consent_confirm_texts={
                k[len(confirm_text) :].lower(): v for k, v in env.items() if k.startswith(confirm_text) and v.strip()
            },
            prices_json=env.get("MESSAGING_PRICES", ""),
            currency=(env.get("MESSAGING_CURRENCY") or "USD").strip().upper()[:8],
            upload_dir=Path(env["MESSAGING_UPLOAD_DIR"]) if env.get("MESSAGING_UPLOAD_DIR") else None,
            upload_max_mb=int(env.get("MESSAGING_UPLOAD_MAX_MB") or 50),
            raw_retention_days=_days(env, "MESSAGING_RAW_RETENTION_DAYS", 30),
            raw_error_retention_days=_days(env, "MESSAGING_RAW_ERROR_RETENTION_DAYS", 180),
            archive_url=(env.get("MESSAGING_ARCHIVE_URL") or "").strip() or "data/archive",
            drop_archive_days=_days(env, "MESSAGING_DROP_ARCHIVE_DAYS", 90),
        )


def _days(env: Mapping[str, str], name: str, default: float) -> float:
    """A number of days from ``name`` (fractions allowed); a negative or unreadable value is refused."""
    raw = (env.get(name) or "").strip()
    if not raw:
        return default
    try:
        days = float(raw)
    except ValueError:
        raise ValueError(f"{name} must be a number of days, not {raw!r}") from None
    if not days >= 0 or days == float("inf"):
        raise ValueError(f"{name} must be a number of days >= 0, not {raw!r}")
    return days


def current() -> Settings:
    """The settings as the environment says now (cheap: call it in the task, not at import)."""
    return Settings.from_env()


# Short accessors for the settings tasks use most.
def timezone() -> str:
    return current().timezone


def default_region() -> str:
    return current().default_region


def drop_dir() -> Path:
    return current().drop_dir


def hold_risky_folders() -> frozenset[str]:
    return current().hold_risky_folders


def itd_low_credits() -> int:
    return current().itd_low_credits
