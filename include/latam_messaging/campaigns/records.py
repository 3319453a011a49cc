"""``campaign_files``: a campaign's record, and the operators' decisions on its rows.

A campaign is one file: ``campaign_id`` is the first 16 hex digits of its SHA-256, so the same bytes are
the same campaign whether they were uploaded on the page or dropped on the volume — and, like the file,
never sent twice. Every decision a person makes (:func:`cancel`, :func:`release_unknown`) is one
transaction that changes the rows and writes the ``audit_log`` line together.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import pendulum
import sqlalchemy as sa

from latam_messaging.campaigns import audit
from latam_messaging.lifecycle import OUTBOUND, MessageState, move
from latam_messaging.warehouse import schema
from latam_messaging.warehouse.db import Warehouse

log = logging.getLogger(__name__)
CAMPAIGNS = schema.campaign_files
ID_LENGTH = 16
MAX_NAME = 200


class CampaignState(StrEnum):
    UPLOADED = "uploaded"  # stored with its preview; nothing queued until someone confirms it
    CONFIRMED = "confirmed"  # in its drop folder, its send DAG triggered
    LOADED = "loaded"  # its rows are in the ledger
    FAILED = "failed"  # the file failed as a whole (nothing of it was queued)
    CANCELLED = "cancelled"  # an operator cancelled it: none of its waiting rows will be sent


class Source(StrEnum):
    UPLOAD = "upload"
    DROP = "drop"


class ReleaseOutcome(StrEnum):
    """What the vendor said of a campaign's in-doubt rows, as the operator checked."""

    NOT_SENT = "not_sent"  # released: pending again, sent by the next run
    SENT = "sent"  # the vendor has them: accepted


class CampaignError(ValueError):
    """A decision that cannot be made as asked (the text says why; the page shows it as a 409)."""


class CampaignNotFound(LookupError):
    pass


def campaign_id_of(sha256: str) -> str:
    return sha256[:ID_LENGTH]


def clean_name(name: str) -> str:
    """A campaign name as shown: one line, no control characters, at most :data:`MAX_NAME` characters."""
    text = " ".join("".join(c if c.isprintable() else " " for c in str(name)).split())
    return text[:MAX_NAME]


def register(
    conn: sa.Connection,
    warehouse: Warehouse,
    *,
    sha256: str,
    name: str,
    vendor: str,
    folder: str,
    source: Source,
    file_name: str | None,
    created_by: str,
    now: pendulum.DateTime,
    state: CampaignState,
    upload_path: str | None = None,
    preview: Mapping[str, Any] | None = None,
) -> bool:
    """Record a campaign unless its file is already known (then nothing changes). True if new."""
    row = {
        "campaign_id": campaign_id_of(sha256),
        "file_sha256": sha256,
        "name": clean_name(name) or campaign_id_of(sha256),
        "vendor": vendor,
        "folder": folder,
        "source": source,
        "file_name": (file_name or "")[:255] or None,
        "created_by": created_by[:256],
        "created_at": now,
        "state": state,
        "upload_path": upload_path,
        "preview": dict(preview) if preview is not None else None,
    }
    return bool(warehouse.insert_new(conn, CAMPAIGNS, [row], keys=["campaign_id"], count=True))


def get(conn: sa.Connection, campaign_id: str) -> dict[str, Any]:
    row = conn.execute(sa.select(CAMPAIGNS).where(CAMPAIGNS.c.campaign_id == campaign_id)).mappings().first()
    if row is None:
        raise CampaignNotFound(f"no campaign {campaign_id!r}")
    return dict(row)


def file_loaded(conn: sa.Connection, sha256: str, now: pendulum.DateTime) -> int:
    """In the transaction that makes a file's rows sendable: the campaign is ``loaded`` — unless it was
    cancelled meanwhile, and then its rows are cancelled here, before any run can claim one.

    The campaign row is updated first: that takes its lock, so a :func:`cancel` in progress (which found
    this file's rows still ``staged``) is waited for and then seen; a cancel that comes after waits for
    this transaction and finds the rows ``pending``."""
    campaign = CAMPAIGNS.c
    loaded = conn.execute(
        sa.update(CAMPAIGNS)
        .where(campaign.file_sha256 == sha256, campaign.state.in_([CampaignState.UPLOADED, CampaignState.CONFIRMED]))
        .values(state=CampaignState.LOADED, upload_path=None)
    ).rowcount
    if loaded:
        return 0
    cancelled = conn.execute(
        sa.select(campaign.cancelled_by).where(campaign.file_sha256 == sha256, campaign.state == CampaignState.CANCELLED)
    ).first()
    if cancelled is not None:
        rows = conn.execute(_cancel_rows(sha256, now, cancelled[0])).rowcount
        log.warning("campaign of file %s was cancelled before it loaded: its %d row(s) are cancelled", sha256[:16], rows)
        return rows
    return 0


def file_failed(conn: sa.Connection, sha256: str) -> None:
    conn.execute(
        sa.update(CAMPAIGNS)
        .where(CAMPAIGNS.c.file_sha256 == sha256, CAMPAIGNS.c.state != CampaignState.CANCELLED)
        .values(state=CampaignState.FAILED)
    )


def _cancel_rows(sha256: str, now: pendulum.DateTime, user: str | None) -> sa.Update:
    return move(
        (MessageState.PENDING, MessageState.SCHEDULED),
        MessageState.CANCELLED,
        OUTBOUND.c.file_sha256 == sha256,
        updated_at=now,
        error=f"campaign cancelled by {user or 'an operator'}",
    )


def cancel(warehouse: Warehouse, campaign_id: str, user: str, now: pendulum.DateTime | None = None) -> int:
    """The campaign is cancelled: its ``pending``/``scheduled`` rows become ``cancelled`` (rows a run has
    already claimed, or the vendor answered, stay). A file not yet loaded is cancelled as it loads
    (:func:`file_loaded`). Returns how many rows were cancelled; audited."""
    now = now or pendulum.now("UTC")
    with warehouse.begin() as conn:
        campaign = get(conn, campaign_id)
        conn.execute(
            sa.update(CAMPAIGNS)
            .where(CAMPAIGNS.c.campaign_id == campaign_id, CAMPAIGNS.c.state != CampaignState.CANCELLED)
            .values(state=CampaignState.CANCELLED, cancelled_by=user[:256], cancelled_at=now)
        )
        rows = conn.execute(_cancel_rows(campaign["file_sha256"], now, user)).rowcount
        audit.record(conn, user, audit.Action.CANCEL, campaign_id, rows, {"was": campaign["state"]}, now=now)
    log.info("campaign %s cancelled by %s: %d waiting row(s) cancelled", campaign_id, user, rows)
    return rows


@dataclass(frozen=True)
class Batch:
    """One request's rows: the run (lease owner) that claimed them and when its request started."""

    owner: str
    started_at: pendulum.DateTime

    @property
    def batch_id(self) -> str:
        return f"{self.owner}@{self.started_at.isoformat()}"

    @classmethod
    def parse(cls, text: str) -> Batch:
        owner, at, started = str(text).rpartition("@")
        try:
            parsed = dt.datetime.fromisoformat(started)
        except ValueError:
            parsed = None
        if not at or not owner or parsed is None or parsed.tzinfo is None:
            raise CampaignError(f"not a batch id: {text[:120]!r}")
        return cls(owner, pendulum.instance(parsed).in_timezone("UTC"))


def unknown_batches(conn: sa.Connection, campaign_id: str) -> list[dict[str, Any]]:
    """The campaign's in-doubt rows by request: ``batch`` id, rows, when the request started, the error."""
    sha = get(conn, campaign_id)["file_sha256"]
    o = OUTBOUND.c
    query = (
        sa.select(o.claimed_by, o.request_started_at, sa.func.count().label("rows"), sa.func.max(o.error).label("error"))
        .where(o.file_sha256 == sha, o.state == MessageState.UNKNOWN)
        .group_by(o.claimed_by, o.request_started_at)
        .order_by(o.request_started_at, o.claimed_by)
    )
    batches = []
    for owner, started, rows, error in conn.execute(query):
        batch_id = Batch(owner, pendulum.instance(started)).batch_id if owner and started else None
        batches.append({"batch": batch_id, "rows": rows, "request_started_at": started, "error": error})
    return batches


def release_unknown(
    warehouse: Warehouse,
    campaign_id: str,
    user: str,
    outcome: ReleaseOutcome,
    *,
    batch: str | None = None,
    now: pendulum.DateTime | None = None,
) -> int:
    """An operator's decision on the campaign's in-doubt rows (all, or one request's ``batch``), after
    checking with the vendor: ``not_sent`` → ``pending`` (sent by the next run), ``sent`` → ``accepted``.
    One transaction with its audit line; rows no longer in doubt are left alone. Returns how many moved.
    Released rows of a cancelled campaign are cancelled in the same transaction: never sent after the
    cancel (the campaign row is locked first, so a cancel at the same moment is waited for and seen)."""
    now = now or pendulum.now("UTC")
    outcome = ReleaseOutcome(outcome)
    with warehouse.begin() as conn:
        get(conn, campaign_id)
        locked = sa.select(CAMPAIGNS.c.file_sha256, CAMPAIGNS.c.state, CAMPAIGNS.c.cancelled_by)
        sha, state, cancelled_by = conn.execute(
            locked.where(CAMPAIGNS.c.campaign_id == campaign_id).with_for_update()
        ).one()
        where = [OUTBOUND.c.file_sha256 == sha]
        if batch:
            parsed = Batch.parse(batch)
            where += [OUTBOUND.c.claimed_by == parsed.owner, OUTBOUND.c.request_started_at == parsed.started_at]
        if outcome is ReleaseOutcome.NOT_SENT:
            statement = move(
                MessageState.UNKNOWN,
                MessageState.PENDING,
                *where,
                updated_at=now,
                claimed_by=None,
                error=f"released by {user} (checked with the vendor: not sent)",
            )
            action = audit.Action.RELEASE_UNKNOWN
        else:
            statement = move(
                MessageState.UNKNOWN,
                MessageState.ACCEPTED,
                *where,
                updated_at=now,
                error=f"marked sent by {user} (the vendor confirmed it)",
                accepted_at=sa.func.coalesce(OUTBOUND.c.request_started_at, sa.literal(now, schema.UtcDateTime())),
            )
            action = audit.Action.MARK_SENT
        rows = conn.execute(statement).rowcount
        detail: dict[str, Any] = {"batch": batch, "checked_with_vendor": True}
        if state == CampaignState.CANCELLED and outcome is ReleaseOutcome.NOT_SENT:
            detail["cancelled"] = conn.execute(_cancel_rows(sha, now, cancelled_by)).rowcount
        audit.record(conn, user, action, campaign_id, rows, detail, now=now)
    log.info("campaign %s: %d in-doubt row(s) %s by %s", campaign_id, rows, action, user)
    return rows
