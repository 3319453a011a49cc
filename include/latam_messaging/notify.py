"""Failure notifications, configured by an Airflow connection (``messaging_alerts`` by default).

* an ``http`` connection: a chat webhook (Slack, Google Chat, Teams incoming webhooks take
  ``{"text": ...}``): host = the webhook URL;
* an ``smtp`` connection: e-mail to the addresses in its extra ``to`` (comma-separated).

Without the connection nothing is sent and the task log says so: alerts are opt-in.
"""

from __future__ import annotations

import logging

import pendulum
from airflow.sdk import BaseHook, BaseNotifier
from airflow.sdk.log import mask_secret

log = logging.getLogger(__name__)


class MessagingAlertNotifier(BaseNotifier):
    template_fields = ("text",)

    def __init__(self, conn_id: str | None = None, text: str | None = None):
        super().__init__()
        self.conn_id = conn_id  # None: the settings' alert connection, looked up when a task fails
        self.text = text or "Airflow: {{ ti.dag_id }}.{{ ti.task_id }} failed ({{ run_id }}). Log: {{ ti.log_url }}"

    def notify(self, context) -> None:
        if self.conn_id is None:
            from latam_messaging.settings import current

            self.conn_id = current().alert_conn_id
        try:
            conn = BaseHook.get_connection(self.conn_id)
        except Exception:
            log.info("no connection %r: failure alert not sent", self.conn_id)
            return
        mask_connection_secrets(conn)
        if conn.conn_type in ("http", "https"):
            from airflow.providers.http.hooks.http import HttpHook

            try:
                HttpHook(method="POST", http_conn_id=self.conn_id).run(json={"text": self.text})
            except Exception as exc:  # the message may quote the webhook URL, whose path is its token
                raise RuntimeError(
                    f"failure alert via connection {self.conn_id!r} not delivered ({type(exc).__name__})"
                ) from None
        elif conn.conn_type == "smtp":
            from airflow.providers.smtp.hooks.smtp import SmtpHook

            to = [a.strip() for a in str(conn.extra_dejson.get("to", "")).split(",") if a.strip()]
            with SmtpHook(smtp_conn_id=self.conn_id) as smtp:
                smtp.send_email_smtp(to=to, subject=self.text[:120], html_content=self.text)
        else:
            log.warning("connection %r has type %r: use http (chat webhook) or smtp", self.conn_id, conn.conn_type)


def mask_connection_secrets(conn) -> None:
    """A chat webhook URL carries its token in the path (Slack ``/services/T…/B…/secret``): the host,
    the password and every extra value are secrets, masked in every log line."""
    for value in (conn.password, conn.host, conn.get_uri() if conn.host else None):
        if value:
            mask_secret(value)
    for value in (conn.extra_dejson or {}).values():
        if isinstance(value, str) and len(value) >= 8:
            mask_secret(value)
    if conn.host and "/" in conn.host.split("://", 1)[-1]:
        mask_secret(conn.host.split("://", 1)[-1].split("/", 1)[1])


def dag_defaults(retries: int = 2, retry_delay_minutes: float = 2) -> dict:
    """``default_args`` every messaging DAG shares: retries with backoff, and the failure alert."""
    return {
        "retries": retries,
        "retry_delay": pendulum.duration(minutes=retry_delay_minutes),
        "retry_exponential_backoff": True,
        "on_failure_callback": [MessagingAlertNotifier()],
    }
