"""The failure alert picks the providers' notifier by the connection's type."""

from __future__ import annotations

from types import SimpleNamespace

from airflow.providers.http.notifications import HttpNotifier
from airflow.providers.smtp.notifications.smtp import SmtpNotifier

from latam_messaging.notify import MessagingAlertNotifier


def connection(conn_type: str, **extra) -> SimpleNamespace:
    return SimpleNamespace(conn_type=conn_type, extra_dejson=extra)


def test_an_http_connection_posts_the_text_through_the_http_providers_notifier():
    channel = MessagingAlertNotifier("alerts", text="task failed").channel(connection("http"))
    assert isinstance(channel, HttpNotifier)
    assert (channel.http_conn_id, channel.method, channel.json) == ("alerts", "POST", {"text": "task failed"})


def test_an_smtp_connection_mails_its_extra_to_through_the_smtp_providers_notifier():
    notifier = MessagingAlertNotifier("mail", text="x" * 200)
    channel = notifier.channel(connection("smtp", to=" ops@example.com, ,data@example.com ", from_email="af@example.com"))
    assert isinstance(channel, SmtpNotifier)
    assert channel.to == ["ops@example.com", "data@example.com"] and channel.from_email == "af@example.com"
    assert (channel.smtp_conn_id, channel.subject, channel.html_content) == ("mail", "x" * 120, "x" * 200)


def test_another_connection_type_has_no_channel():
    assert MessagingAlertNotifier("alerts").channel(connection("postgres")) is None
