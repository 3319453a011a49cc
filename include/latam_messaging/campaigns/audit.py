"""``audit_log``: every write a person makes from the Messaging page — who, when, what, how many rows —
written in the same transaction as the write itself."""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import Any

import pendulum
import sqlalchemy as sa

from latam_messaging.warehouse import schema

AUDIT = schema.audit_log


class Action(StrEnum):
    UPLOAD = "upload"
    CONFIRM = "confirm"
    CANCEL = "cancel"
    RELEASE_UNKNOWN = "release_unknown"
    MARK_SENT = "mark_sent"
    REPLY = "reply"


def record(
    conn: sa.Connection,
    user: str,
    action: Action,
    campaign_id: str | None,
    rows: int,
    detail: Mapping[str, Any] | None = None,
    *,
    now: pendulum.DateTime | None = None,
) -> None:
    conn.execute(
        AUDIT.insert().values(
            at=now or pendulum.now("UTC"),
            user_name=str(user)[:256],
            action=Action(action),
            campaign_id=campaign_id,
            rows_affected=int(rows),
            detail=dict(detail or {}),
        )
    )


def entries(conn: sa.Connection, campaign_id: str | None = None, limit: int = 200) -> list[dict[str, Any]]:
    query = sa.select(AUDIT).order_by(AUDIT.c.at.desc(), AUDIT.c.id.desc()).limit(limit)
    if campaign_id is not None:
        query = query.where(AUDIT.c.campaign_id == campaign_id)
    return [dict(row) for row in conn.execute(query).mappings()]
