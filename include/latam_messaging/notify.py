"""Failure notifications, configured by an Airflow connection (``messaging_alerts`` by default).

The connection's type picks the providers' own notifier, so delivery, retries and templates are theirs:

* ``http``: :class:`~airflow.providers.http.notifications.HttpNotifier` posts ``{"text": ...}`` to a
  chat webhook (Slack, Google Chat, Teams incoming webhooks take that shape): host = the webhook URL;
* ``smtp``: :class:`~airflow.providers.smtp.notifications.smtp.SmtpNotifier` e-mails the addresses in
  the connection's extra ``to`` (comma-separated; ``from_email`` from the connection).

What stays here is what neither provider does: choosing by the connection at failure time (a
deployment switches channel without touching a DAG), masking the webhook URL (its path is its
token) in every log line, and staying silent when no alert connection exists (alerts are opt-in).
"""

from __future__ import annotations

import logging

from airflow.sdk import BaseHook, BaseNotifier
from airflow.sdk.log import mask_secret

log = logging.getLogger(__name__)

DEFAULT_TEXT = "Airflow: {{ ti.dag_id }}.{{ ti.task_id }} failed ({{ run_id }}). Log: {{ ti.log_url }}"


class MessagingAlertNotifier(BaseNotifier):
    template_fields = ("text",)

    def __init__(self, conn_id: str | None = None, text: str | None = None):
        super().__init__()
        self.conn_id = conn_id  # None: the settings' alert connection, looked up when a task fails
        self.text = text or DEFAULT_TEXT

    def channel(self, conn) -> BaseNotifier | None:
        """The provider notifier for connection ``conn`` (None for a type neither provider serves)."""
        if conn.conn_type in ("http", "https"):
            from airflow.providers.http.notifications import HttpNotifier

            return HttpNotifier(http_conn_id=self.conn_id, method="POST", json={"text": self.text})
        if conn.conn_type == "smtp":
            from airflow.providers.smtp.notifications.smtp import SmtpNotifier

            extra = conn.extra_dejson or {}
            to = [a.strip() for a in str(extra.get("to", "")).split(",") if a.strip()]
            return SmtpNotifier(
                to=to,
                from_email=extra.get("from_email"),
                smtp_conn_id=self.conn_id,
                subject=self.text[:120],
                html_content=self.text,
            )
        return None

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
        channel = self.channel(conn)
        if channel is None:
            log.warning("connection %r has type %r: use http (chat webhook) or smtp", self.conn_id, conn.conn_type)
            return
        try:
            channel.notify(context)
        except Exception as exc:  # the message may quote the webhook URL, whose path is its token
            raise RuntimeError(
                f"failure alert via connection {self.conn_id!r} not delivered ({type(exc).__name__})"
            ) from None


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
