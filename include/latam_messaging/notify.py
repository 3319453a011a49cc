"""Failure notifications, configured by an Airflow connection (``messaging_alerts`` by default).

* an ``http`` connection: a chat webhook (Slack, Google Chat, Teams incoming webhooks take
  ``{"text": ...}``): host = the webhook URL;
* an ``smtp`` connection: e-mail to the addresses in its extra ``to`` (comma-separated).

Without the connection nothing is sent and the task log says so: alerts are opt-in.
"""

from __future__ import annotations

import logging
import os

import pendulum
from airflow.sdk import BaseHook, BaseNotifier

log = logging.getLogger(__name__)
ALERT_CONN_ID = "messaging_alerts"


class MessagingAlertNotifier(BaseNotifier):
    template_fields = ("text",)

    def __init__(self, conn_id: str | None = None, text: str | None = None):
        super().__init__()
        self.conn_id = conn_id or os.environ.get("MESSAGING_ALERT_CONN_ID", ALERT_CONN_ID)
        self.text = text or "Airflow: {{ ti.dag_id }}.{{ ti.task_id }} failed ({{ run_id }}). Log: {{ ti.log_url }}"

    def notify(self, context) -> None:
        try:
            conn = BaseHook.get_connection(self.conn_id)
        except Exception:
            log.info("no connection %r: failure alert not sent", self.conn_id)
            return
        if conn.conn_type in ("http", "https"):
            from airflow.providers.http.hooks.http import HttpHook

            HttpHook(method="POST", http_conn_id=self.conn_id).run(json={"text": self.text})
        elif conn.conn_type == "smtp":
            from airflow.providers.smtp.hooks.smtp import SmtpHook

            to = [a.strip() for a in str(conn.extra_dejson.get("to", "")).split(",") if a.strip()]
            with SmtpHook(smtp_conn_id=self.conn_id) as smtp:
                smtp.send_email_smtp(to=to, subject=self.text[:120], html_content=self.text)
        else:
            log.warning("connection %r has type %r: use http (chat webhook) or smtp", self.conn_id, conn.conn_type)


def dag_defaults(retries: int = 2, retry_delay_minutes: float = 2) -> dict:
    """``default_args`` every messaging DAG shares: retries with backoff, and the failure alert."""
    return {
        "retries": retries,
        "retry_delay": pendulum.duration(minutes=retry_delay_minutes),
        "retry_exponential_backoff": True,
        "on_failure_callback": [MessagingAlertNotifier()],
    }
