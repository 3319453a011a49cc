"""The Messaging page's reply route: a person answers one inbound message with free text inside
WhatsApp's 24-hour window (``campaigns/replies.py``), and the vendor's send DAG is triggered to send it.

``POST /api/inbound/{vendor}/{vendor_message_id}/reply`` JSON ``{"text": "..."}`` →
``{"message_key", "expires_at", "queued", "dag_run_id"}``. Editors of the Messaging view only
(``security.require_editor``: 401 anonymous, 403 viewer, 403 cross-site or without the anti-CSRF token).
404: no such vendor or message; 409: refused (window closed, phone opted out, the vendor sends no free
text, empty or too long text), with the reason. A second identical request answers the first one's key
with ``queued`` false and triggers nothing. When the trigger fails the reply stays queued for the send
DAG's next scheduled run (``dag_run_id`` null, ``trigger_error`` says why).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException
from pydantic import BaseModel

from latam_messaging import settings
from latam_messaging.campaigns import replies
from latam_messaging.page import security
from latam_messaging.page import trigger as trigger_module
from latam_messaging.page.trigger import TriggerDag, send_dag_id
from latam_messaging.warehouse.db import Warehouse

log = logging.getLogger(__name__)


class ReplyBody(BaseModel):
    text: str


def router(
    warehouse: Callable[[], Warehouse],
    adapter_of: Callable[[str], Any],
    *,
    trigger: TriggerDag | None = None,
) -> APIRouter:
    """``adapter_of(vendor)``: that vendor's send adapter (its ``vendor``, ``channel``, ``folder`` and
    ``confirmation_fields``), or None for no such vendor — handed in by the page app, which may read the
    registry. ``trigger``: starts the send DAG (default: :func:`~latam_messaging.page.trigger.airflow_trigger`)."""
    api = APIRouter(dependencies=[Depends(security.require_editor)])

    @api.post("/api/inbound/{vendor}/{vendor_message_id}/reply")
    def reply(
        vendor: str, vendor_message_id: str, body: ReplyBody, user: Annotated[Any, Depends(security.require_editor)]
    ) -> dict:
        adapter = adapter_of(vendor)
        if adapter is None:
            raise HTTPException(status_code=404, detail=f"no vendor {vendor!r}")
        name = security.user_name(user)
        try:
            queued = replies.queue_reply(
                warehouse(), adapter, vendor_message_id, body.text, name, region=settings.default_region()
            )
        except replies.InboundNotFound as exc:
            raise HTTPException(status_code=404, detail=str(exc)) from exc
        except replies.ReplyRefused as exc:
            raise HTTPException(status_code=409, detail=str(exc)) from exc
        answer: dict[str, Any] = {
            "message_key": queued.message_key,
            "expires_at": queued.expires_at.to_iso8601_string(),
            "queued": queued.queued,
            "dag_run_id": None,
        }
        if queued.queued:
            dag_id = send_dag_id(adapter.folder)
            try:
                answer["dag_run_id"] = (trigger or trigger_module.airflow_trigger)(
                    dag_id, user=name, note=f"reply {queued.message_key} from the Messaging page"
                )
            except Exception as exc:  # noqa: BLE001 - the reply is queued: the next scheduled run sends it
                log.warning("reply %s queued, but %s could not be triggered: %s", queued.message_key, dag_id, exc)
                answer["trigger_error"] = f"{type(exc).__name__}: {exc}"
        return answer

    return api
