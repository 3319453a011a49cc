"""Every warehouse table, as SQLAlchemy Core metadata (the same definitions for SQLite and PostgreSQL).

Timestamps are stored in UTC (:class:`UtcDateTime`): vendor-local naive times are converted when
parsed, never here. Column names are what analysts query; see the table catalogue in README.md.
"""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from sqlalchemy.types import TypeDecorator


class UtcDateTime(TypeDecorator):
    """An aware UTC datetime on both databases (SQLite keeps no offset: we store UTC, read as UTC)."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        offset = value.utcoffset()
        if offset is None:
            raise ValueError(f"naive datetime {value!r} given to the warehouse: convert to UTC first")
        # plain datetime arithmetic: pendulum's astimezone costs ~3 µs a value on bulk loads
        naive_utc = (
            dt.datetime(value.year, value.month, value.day, value.hour, value.minute, value.second, value.microsecond)
            - offset
        )
        return naive_utc if dialect.name == "sqlite" else naive_utc.replace(tzinfo=dt.UTC)

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        if isinstance(value, str):  # SQLite read through a raw cursor
            value = dt.datetime.fromisoformat(value)
        return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


metadata = sa.MetaData()

Ts = UtcDateTime


def partial_index(
    name: str, *columns: str, where: str, unique: bool = False, postgresql_where: str | None = None
) -> sa.Index:
    """An index of only the rows matching ``where`` (SQL), the same on SQLite and PostgreSQL unless
    ``postgresql_where`` says it there in another spelling."""
    return sa.Index(
        name, *columns, unique=unique, sqlite_where=sa.text(where), postgresql_where=sa.text(postgresql_where or where)
    )

schema_migrations = sa.Table(
    "schema_migrations",
    metadata,
    sa.Column("version", sa.Integer, primary_key=True),
    sa.Column("description", sa.String(200), nullable=False),
    sa.Column("applied_at", Ts, nullable=False),
)

teleprom_accounts = sa.Table(
    "teleprom_accounts",
    metadata,
    sa.Column("account_id", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("name", sa.String(200)),
    sa.Column("source_number", sa.String(32)),
    sa.Column("active", sa.Boolean, nullable=False),
    sa.Column("first_seen_at", Ts, nullable=False),
    sa.Column("last_seen_at", Ts, nullable=False),
    sa.Column("deactivated_at", Ts),
)

teleprom_templates = sa.Table(
    "teleprom_templates",
    metadata,
    sa.Column("template_id", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("name", sa.String(512), nullable=False),
    sa.Column("account_id", sa.BigInteger, nullable=False),
    sa.Column("status", sa.String(64), nullable=False),
    sa.Column("category", sa.String(64)),
    sa.Column("language", sa.String(16)),
    sa.Column("parameter_count", sa.Integer, nullable=False),
    sa.Column("structure", sa.Text),
    sa.Column("example", sa.Text),
    sa.Column("template_type", sa.String(32)),
    sa.Column("vendor_created_at", Ts),
    sa.Column("active", sa.Boolean, nullable=False),
    sa.Column("first_seen_at", Ts, nullable=False),
    sa.Column("last_seen_at", Ts, nullable=False),
    sa.Column("status_changed_at", Ts),
    sa.Column("deactivated_at", Ts),
    sa.Index("ix_teleprom_templates_name", "name"),
)

teleprom_catalog_changes = sa.Table(
    "teleprom_catalog_changes",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("item_kind", sa.String(16), nullable=False),  # template | account
    sa.Column("item_id", sa.BigInteger, nullable=False),
    sa.Column("change", sa.String(32), nullable=False),  # added | removed | reappeared | status | name | account
    sa.Column("old_value", sa.Text),
    sa.Column("new_value", sa.Text),
    sa.Column("changed_at", Ts, nullable=False),
)

drop_files = sa.Table(
    "drop_files",
    metadata,
    sa.Column("file_sha256", sa.String(64), primary_key=True),
    sa.Column("vendor", sa.String(16), nullable=False),
    sa.Column("folder", sa.String(64), nullable=False),
    sa.Column("path", sa.Text, nullable=False),
    sa.Column("size_bytes", sa.BigInteger),
    sa.Column("rows_total", sa.Integer, nullable=False, default=0),
    sa.Column("rows_valid", sa.Integer, nullable=False, default=0),
    sa.Column("rows_rejected", sa.Integer, nullable=False, default=0),
    sa.Column("state", sa.String(16), nullable=False),  # claimed | loaded | done | duplicate | failed
    sa.Column("error", sa.Text),
    sa.Column("claimed_at", Ts, nullable=False),
    sa.Column("loaded_at", Ts),
    sa.Column("finished_at", Ts),
    sa.Index("ix_drop_files_claimed_at", "claimed_at"),  # migration 11: the page's files of the last days
)

drop_rejects = sa.Table(
    "drop_rejects",
    metadata,
    sa.Column("file_sha256", sa.String(64), primary_key=True),
    sa.Column("row_number", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("raw_row", sa.Text, nullable=False),
    sa.Column("rejected_at", Ts, nullable=False),
)

outbound_messages = sa.Table(
    "outbound_messages",
    metadata,
    sa.Column("message_key", sa.String(40), primary_key=True),
    sa.Column("vendor", sa.String(16), nullable=False),
    sa.Column("file_sha256", sa.String(64)),
    sa.Column("row_number", sa.Integer),
    sa.Column("phone", sa.String(20), nullable=False),
    sa.Column("account_id", sa.BigInteger),
    sa.Column("template_id", sa.BigInteger),
    sa.Column("template_name", sa.String(512)),
    sa.Column("params", sa.JSON),
    sa.Column("content_type", sa.String(16)),
    sa.Column("content", sa.Text),
    sa.Column("caption", sa.Text),
    sa.Column("description", sa.Text),
    sa.Column("url_thumb", sa.Text),
    sa.Column("tracking_id", sa.String(128)),
    sa.Column("send_at", Ts),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("vendor_message_id", sa.String(128)),
    sa.Column("vendor_answer", sa.Text),
    sa.Column("error", sa.Text),
    sa.Column("created_at", Ts, nullable=False),
    sa.Column("updated_at", Ts, nullable=False),
    sa.Column("request_started_at", Ts),
    sa.Column("accepted_at", Ts),
    sa.Column("delivery_status", sa.String(16)),
    sa.Column("delivery_status_at", Ts),
    sa.Column("claimed_by", sa.String(80)),  # migration 4: the send run (lease owner) that claimed the row
    # migration 8: consent. Set only by an explicit exemption (a DAG run's ``consent_exempt`` param, an
    # opt-out confirmation): the row is sent although its phone is suppressed; the text says who and why.
    sa.Column("consent_exempt", sa.String(300)),
    sa.Column("expires_at", Ts),  # not sent after this (a reply inside WhatsApp's 24-hour window); failed then
    sa.Index("ix_outbound_vendor_state", "vendor", "state", "message_key"),
    sa.Index("ix_outbound_vendor_message_id", "vendor", "vendor_message_id"),
    # migration 12: (file, accepted_at) — a campaign's first and last acceptance are two index lookups
    sa.Index("ix_outbound_file", "file_sha256", "accepted_at"),
    # migration 11: the rows sent under a consent exemption (few; report_consent_exempt reads only them)
    partial_index("ix_outbound_exempt", "file_sha256", where="consent_exempt IS NOT NULL"),
    # migration 12: the few rows the page lists and counts by state (waiting for a decision, refused at send:
    # report_failure_reasons, skipped for consent at send: report_suppressed_rows)
    partial_index("ix_outbound_unknown", "updated_at", "message_key", where="state = 'unknown'"),
    # (PostgreSQL: spelled as it prints it back, so re-creating it from pg_get_indexdef gives the same text)
    partial_index(
        "ix_outbound_refused", "vendor", "vendor_answer", "error", where="state IN ('rejected', 'failed')",
        postgresql_where="(state)::text = ANY (ARRAY['rejected'::text, 'failed'::text])",
    ),
    partial_index("ix_outbound_suppressed", "file_sha256", "vendor", "error", where="state = 'suppressed'"),
)

send_leases = sa.Table(  # migration 4
    "send_leases",
    metadata,
    sa.Column("owner", sa.String(80), primary_key=True),
    sa.Column("vendor", sa.String(16), nullable=False),
    sa.Column("started_at", Ts, nullable=False),
    sa.Column("lease_until", Ts, nullable=False),
)

#: What makes a status event the same event (its unique constraint; new events are inserted on it).
STATUS_EVENT_KEY = ("vendor", "vendor_message_id", "status", "event_at")

message_status_events = sa.Table(
    "message_status_events",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("vendor", sa.String(16), nullable=False),
    sa.Column("vendor_message_id", sa.String(128), nullable=False),
    sa.Column("message_key", sa.String(40)),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("raw_status", sa.String(128), nullable=False),
    sa.Column("event_at", Ts, nullable=False),
    sa.Column("recorded_at", Ts, nullable=False),
    sa.Column("source", sa.String(16), nullable=False),  # webhook | poll
    sa.Column("raw_event_id", sa.Integer),
    sa.Column("raw_text", sa.Text),  # the vendor's status text in full (raw_status holds 128 characters)
    sa.Column("vendor_ids", sa.JSON),  # every id the event carried (e.g. Teleprom V1 gs_id and id)
    sa.Column("note", sa.Text),  # e.g. a placeholder timestamp replaced by the receive time
    # migration 7: why a message failed, and what the vendor will charge (Meta's errors[], pricing, conversation)
    sa.Column("reason", sa.String(300)),  # "<code>: <title>" of the vendor's first error
    sa.Column("message_sent_at", Ts),  # the send time the vendor reports with the event (ITD's sent_at)
    sa.Column("billable", sa.Boolean),
    sa.Column("pricing_category", sa.String(40)),  # marketing | utility | authentication | service | ...
    sa.Column("pricing_model", sa.String(40)),  # CBP | PMP | ...
    sa.Column("conversation_id", sa.String(128)),
    sa.Column("conversation_origin", sa.String(40)),
    sa.Column("conversation_expires_at", Ts),
    sa.UniqueConstraint(*STATUS_EVENT_KEY, name="uq_status_event"),
    sa.Index("ix_status_events_message_key", "message_key"),
    # migration 11: the failed events, covering what report_failure_reasons groups and counts
    partial_index("ix_status_events_failed", "vendor", "reason", "raw_status", "vendor_message_id", where="status = 'failed'"),
    # migration 14: the events whose status text the vocabulary does not know (report_unrecognised_statuses)
    partial_index("ix_status_events_unknown", "vendor", "raw_status", "vendor_message_id", where="status = 'unknown'"),
    # migration 11: the events that say how a message is priced (the campaigns view's cost reads only these)
    partial_index("ix_status_events_priced", "message_key", where="pricing_category IS NOT NULL OR billable IS NOT NULL"),
)

raw_webhook_events = sa.Table(
    "raw_webhook_events",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("vendor", sa.String(16), nullable=False),
    sa.Column("channel", sa.String(32)),
    sa.Column("format_version", sa.String(16)),
    sa.Column("received_at", Ts, nullable=False),
    sa.Column("content_type", sa.String(200)),
    sa.Column("body_sha256", sa.String(64), nullable=False),
    sa.Column("body", sa.Text, nullable=False),
    sa.Column("parse_state", sa.String(16), nullable=False, default="pending"),  # pending | parsed | error
    sa.Column("parse_error", sa.Text),
    sa.Column("parsed_at", Ts),
    # migration 10: retention (maintenance/raw_retention.py). A purged row keeps its id (status events
    # point at it) and its (vendor, body_sha256) (replays stay deduplicated); its body is '' and lives in
    # the archive part ``archive_path``. ``archive_path`` set with ``purged_at`` NULL: archiving in progress.
    sa.Column("purged_at", Ts),
    sa.Column("archive_path", sa.Text),
    sa.UniqueConstraint("vendor", "body_sha256", name="uq_raw_webhook_body"),
    sa.Index("ix_raw_webhook_state", "parse_state"),
    # the bodies still held, oldest parse first: the retention's next batch is the index's first entries
    partial_index("ix_raw_webhook_unpurged", "parsed_at", "id", where="purged_at IS NULL"),
    # the parts being archived (a handful at a time): found again after a kill
    partial_index("ix_raw_webhook_archiving", "archive_path", where="purged_at IS NULL AND archive_path IS NOT NULL"),
)

inbound_messages = sa.Table(
    "inbound_messages",
    metadata,
    sa.Column("vendor", sa.String(16), primary_key=True),
    sa.Column("vendor_message_id", sa.String(255), primary_key=True),
    sa.Column("from_phone", sa.String(32)),
    sa.Column("to_account", sa.String(64)),
    sa.Column("message_type", sa.String(32)),
    sa.Column("text", sa.Text),
    sa.Column("media_url", sa.Text),
    sa.Column("received_at", Ts),
    sa.Column("recorded_at", Ts, nullable=False),
    sa.Column("source", sa.String(16), nullable=False),
    sa.Column("in_reply_to", sa.String(128)),
    sa.Column("raw", sa.JSON),
    sa.Column("direction", sa.Integer),  # ITD's field as sent (its legend and its examples disagree)
    sa.Column("note", sa.Text),
    # migration 7: what Meta's inbound messages carry beyond text
    sa.Column("profile_name", sa.String(256)),  # the sender's WhatsApp profile name
    sa.Column("reply_id", sa.String(256)),  # the payload/id of a quick-reply button or list row chosen
    sa.Column("media_id", sa.String(256)),
    sa.Column("media_mime_type", sa.String(128)),
    sa.Column("caption", sa.Text),
    # migration 12: the inbound rows of a time range (a campaign's reply windows read it until migration 13;
    # kept for reads of inbound by day)
    sa.Index("ix_inbound_received_at", "received_at"),
    # migration 13: the replies quoting a send (campaign_answers' triggers; by sender: ix_inbound_consent_key)
    partial_index("ix_inbound_in_reply_to", "vendor", "in_reply_to", where="in_reply_to IS NOT NULL"),
)

#: Phones not to be sent to (migration 8; CONTRACT.md). One row per piece of evidence: an opt-out
#: reply, a vendor's opt-out status, a line of a list or registry file. An opt-in or a ``remove`` ends a
#: row (``ended_*``), never deletes it. At most one row is active per (phone, scope, source); a send is
#: blocked by any active row whose scope is ``all``, its vendor or its channel.
suppressions = sa.Table(
    "suppressions",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("phone", sa.String(20), nullable=False),  # E.164 digits in their consent key form (common.phones)
    sa.Column("scope", sa.String(16), nullable=False),  # all | a vendor | a channel (whatsapp, sms)
    sa.Column("source", sa.String(64), nullable=False),  # keyword | vendor_status | manual | registry:<name>
    sa.Column("evidence", sa.String(300), nullable=False),  # what proves it: an inbound id, an event id, a file row
    sa.Column("reason", sa.Text),
    sa.Column("since", Ts, nullable=False),  # when the evidence happened (the reply's time, the event's, the load's)
    sa.Column("last_seen_at", Ts),  # the newest evidence of the same (phone, scope, source) while active
    sa.Column("created_at", Ts, nullable=False),
    sa.Column("created_by", sa.String(256), nullable=False),  # a DAG/task, a receiver, a person
    sa.Column("ended_at", Ts),
    sa.Column("ended_by", sa.String(256)),
    sa.Column("end_evidence", sa.String(300)),  # the opt-in reply, the file row that removed it
    sa.UniqueConstraint("phone", "scope", "evidence", name="uq_suppression_evidence"),
    # the lookup of every send and ingest; unique: one active row per (phone, scope, source)
    partial_index("ux_suppressions_active", "phone", "scope", "source", where="ended_at IS NULL", unique=True),
    sa.Index("ix_suppressions_since", "since"),
)

#: A suppression list file's rows while it is read (migration 8): applied all at once when the whole
#: file has been read, then deleted; a failed file's rows are deleted unapplied.
suppression_staging = sa.Table(
    "suppression_staging",
    metadata,
    sa.Column("file_sha256", sa.String(64), primary_key=True),
    sa.Column("row_number", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("phone", sa.String(20), nullable=False),
    sa.Column("scope", sa.String(16), nullable=False),
    sa.Column("action", sa.String(8), nullable=False),  # add | remove
    sa.Column("reason", sa.Text),
)

#: A campaign is one dropped file or one upload (migration 9; CONTRACT.md ``campaigns``, a view over this
#: table and the ledger): its name, who made it, and what people decided about it. ``campaign_id`` is the
#: first 16 hex digits of the file's SHA-256, so the same file is the same campaign however it arrives.
campaign_files = sa.Table(
    "campaign_files",
    metadata,
    sa.Column("campaign_id", sa.String(16), primary_key=True),
    sa.Column("file_sha256", sa.String(64), nullable=False, unique=True),
    sa.Column("name", sa.String(200), nullable=False),  # the ``campaign`` column, the upload's name, the file's
    sa.Column("vendor", sa.String(16), nullable=False),
    sa.Column("folder", sa.String(64), nullable=False),
    sa.Column("source", sa.String(16), nullable=False),  # upload | drop
    sa.Column("file_name", sa.String(255)),
    sa.Column("created_by", sa.String(256), nullable=False),  # the uploading user, or the dropped file's owner
    sa.Column("created_at", Ts, nullable=False),
    sa.Column("state", sa.String(16), nullable=False),  # uploaded | confirmed | loaded | failed | cancelled
    sa.Column("upload_path", sa.Text),  # where an upload waits for its confirmation
    sa.Column("preview", sa.JSON),  # the dry run shown before confirming
    sa.Column("confirmed_by", sa.String(256)),
    sa.Column("confirmed_at", Ts),
    sa.Column("dag_run_id", sa.String(250)),
    sa.Column("cancelled_by", sa.String(256)),
    sa.Column("cancelled_at", Ts),
    sa.Index("ix_campaign_files_created_at", "created_at"),
)

#: Every write a person makes from the Messaging page (migration 9): who, when, what, how many rows.
audit_log = sa.Table(
    "audit_log",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("at", Ts, nullable=False),
    sa.Column("user_name", sa.String(256), nullable=False),  # the Airflow user (``user`` is reserved in SQL)
    sa.Column("action", sa.String(32), nullable=False),  # upload | confirm | cancel | release_unknown | mark_sent | reply
    sa.Column("campaign_id", sa.String(16)),
    sa.Column("rows_affected", sa.Integer, nullable=False, default=0),
    sa.Column("detail", sa.JSON),
    sa.Index("ix_audit_log_campaign", "campaign_id", "at"),
)

#: Links of a campaign's template parameters shortened at the vendor (migration 9), with the clicks the
#: vendor reported (imported daily). One row per (campaign, long URL).
short_links = sa.Table(
    "short_links",
    metadata,
    sa.Column("campaign_id", sa.String(16), primary_key=True),
    sa.Column("url_sha256", sa.String(64), primary_key=True),
    sa.Column("vendor", sa.String(16), nullable=False),
    sa.Column("long_url", sa.Text, nullable=False),
    sa.Column("short_url", sa.Text, nullable=False),
    sa.Column("created_at", Ts, nullable=False),
    sa.Column("clicks", sa.Integer, nullable=False, default=0),
    sa.Column("clicks_updated_at", Ts),
)

#: What a message costs (migration 9), from the settings' price table (``MESSAGING_PRICES``): per vendor and
#: pricing category (Meta's ``marketing``/``utility``/…, a template's category, or ``default``).
message_prices = sa.Table(
    "message_prices",
    metadata,
    sa.Column("vendor", sa.String(16), primary_key=True),
    sa.Column("category", sa.String(40), primary_key=True),
    sa.Column("unit_price", sa.Numeric(14, 6), nullable=False),
    sa.Column("currency", sa.String(8), nullable=False),
    sa.Column("updated_at", Ts, nullable=False),
)

#: How many outbound rows are in each (vendor, account, template or type, file, day of creation, state,
#: delivery status), kept by the database itself (migration 11; ``warehouse.aggregates``): triggers on
#: ``outbound_messages`` add a signed count for every row inserted, moved or deleted, in the writer's own
#: transaction. A key may have several rows (PostgreSQL appends one per statement, so concurrent writers
#: never wait on each other); what a key counts is the SUM of its rows. ``report_delivery_funnel`` reads it.
message_counts = sa.Table(
    "message_counts",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
    sa.Column("day", sa.Date, nullable=False),  # UTC day of outbound_messages.created_at
    sa.Column("vendor", sa.String(16), nullable=False),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("delivery_status", sa.String(16)),
    sa.Column("account_id", sa.BigInteger),
    sa.Column("template_or_type", sa.String(512)),
    sa.Column("file_sha256", sa.String(64)),
    sa.Column("messages", sa.BigInteger, nullable=False),  # signed: the SUM over a key's rows is its count
    sa.Index("ix_message_counts_file", "file_sha256"),  # one campaign's counts (the campaign page)
    sa.Index(
        "ix_message_counts_key",
        "day",
        "vendor",
        "state",
        "file_sha256",
        "delivery_status",
        "account_id",
        "template_or_type",
    ),
)

#: The sends of campaigns answered, with what answered them (migration 13; ``campaigns.answers``): one row
#: per (send, reply) and (send, opt-out) pair of the ``campaigns`` view's definitions, kept by triggers on
#: ``inbound_messages``, ``suppressions`` and ``outbound_messages`` in the writer's own transaction. The
#: view counts a campaign's answered sends here; the campaign page lists them.
campaign_answers = sa.Table(
    "campaign_answers",
    metadata,
    sa.Column("kind", sa.String(8), primary_key=True),  # reply | opt_out (campaigns.answers.Kind)
    sa.Column("vendor", sa.String(16), primary_key=True),  # the send's (a reply's is the same)
    sa.Column("answer", sa.String(255), primary_key=True),  # reply: inbound vendor_message_id; opt_out: suppression id
    sa.Column("message_key", sa.String(40), primary_key=True),  # the send answered
    sa.Column("file_sha256", sa.String(64), nullable=False),  # its campaign's file
    sa.Index("ix_campaign_answers_send", "message_key"),  # a send's pairs (its row changed or deleted)
    sa.Index("ix_campaign_answers_file", "file_sha256", "kind", "message_key"),  # a campaign's counts and lists
)

#: The messages that failed, per reason (migration 14; ``warehouse.failures``): one row per (vendor, vendor
#: message id, reason) of the ``failed`` status events, kept by triggers on ``message_status_events``, so
#: ``report_failure_reasons`` counts each message once per reason without reading the events.
failed_messages = sa.Table(
    "failed_messages",
    metadata,
    sa.Column("vendor", sa.String(16), primary_key=True),
    sa.Column("vendor_message_id", sa.String(128), primary_key=True),
    sa.Column("reason", sa.String(300), primary_key=True),  # COALESCE(reason, raw_status) of a failed event
)

#: How many messages failed for each (stage, vendor, reason): signed rows kept by triggers on
#: ``failed_messages`` (stage ``delivery``) and on ``outbound_messages`` rows refused at send (stage ``send``)
#: (migration 14; as ``message_counts``: SQLite one row per key, PostgreSQL rows inserted, folded daily).
failure_counts = sa.Table(
    "failure_counts",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
    sa.Column("stage", sa.String(8), nullable=False),  # delivery | send
    sa.Column("vendor", sa.String(16), nullable=False),
    # the vendor's error or status text (delivery); its answer, else our error, in full (send); NULL: a send
    # refused with neither
    sa.Column("reason", sa.Text),
    sa.Column("messages", sa.BigInteger, nullable=False),  # signed: the SUM over a key's rows is its count
)

#: The rows skipped for consent per (stage, file, vendor, source): signed rows kept by triggers on
#: ``drop_rejects`` (stage ``ingest``: rows rejected as suppressed; vendor NULL, the file's is read with them)
#: and ``outbound_messages`` (stage ``claim``: rows suppressed when claimed for sending) — migration 15,
#: ``warehouse.counted``; ``report_suppressed_rows`` reads them.
skipped_counts = sa.Table(
    "skipped_counts",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
    sa.Column("stage", sa.String(8), nullable=False),  # ingest | claim
    sa.Column("file_sha256", sa.String(64)),
    sa.Column("vendor", sa.String(16)),
    sa.Column("source", sa.Text),  # keyword | vendor_status | manual | registry:<name> (of the row's reason)
    sa.Column("messages", sa.BigInteger, nullable=False),  # rows; signed: the SUM over a key's rows is its count
)

#: Each send's first event and first delivery, as its events make them (migration 16;
#: ``warehouse.delivery_times``): one row per message key with a linked event of a known status, kept by
#: triggers on ``message_status_events``, so ``report_time_to_deliver`` reads no event.
delivery_times = sa.Table(
    "delivery_times",
    metadata,
    sa.Column("message_key", sa.String(40), primary_key=True),
    sa.Column("first_event_at", Ts, nullable=False),  # its earliest event not of status unknown
    sa.Column("delivered_at", Ts),  # its earliest delivered or read event; NULL: none yet
)

itd_credit_snapshots = sa.Table(
    "itd_credit_snapshots",
    metadata,
    sa.Column("taken_at", Ts, primary_key=True),
    sa.Column("credits", sa.BigInteger, nullable=False),
)

sim_swap_checks = sa.Table(
    "sim_swap_checks",
    metadata,
    sa.Column("phone", sa.String(20), primary_key=True),
    sa.Column("checked_at", Ts, primary_key=True),
    sa.Column("max_age_hours", sa.Integer),
    sa.Column("changed", sa.Boolean),
    sa.Column("last_change_at", Ts),
    sa.Column("error", sa.Text),
    sa.Column("raw", sa.JSON),
)

number_lookups = sa.Table(
    "number_lookups",
    metadata,
    sa.Column("phone", sa.String(20), primary_key=True),
    sa.Column("checked_at", Ts, primary_key=True),
    sa.Column("valid", sa.Boolean),
    sa.Column("carrier", sa.String(64)),
    sa.Column("line_type", sa.String(16)),
    sa.Column("ported", sa.Boolean),
    sa.Column("country", sa.String(8)),
    sa.Column("error", sa.Text),
    sa.Column("raw", sa.JSON),
)

poll_watermarks = sa.Table(
    "poll_watermarks",
    metadata,
    sa.Column("source", sa.String(64), primary_key=True),
    sa.Column("item", sa.String(128), primary_key=True),
    sa.Column("value", sa.String(64), nullable=False),
    sa.Column("updated_at", Ts, nullable=False),
)

number_check_queue = sa.Table(
    "number_check_queue",
    metadata,
    sa.Column("phone", sa.String(20), primary_key=True),
    sa.Column("max_age_hours", sa.Integer, nullable=False),
    sa.Column("source", sa.String(64), nullable=False),  # drop:<sha256> | query
    sa.Column("queued_at", Ts, nullable=False),
)

#: A ``number_checks/`` file's phones while it is read (migration 17): they join ``number_check_queue``
#: only in the transaction that marks the file loaded, so a file that fails queues nothing (each check
#: costs money at the vendor).
number_check_staging = sa.Table(
    "number_check_staging",
    metadata,
    sa.Column("file_sha256", sa.String(64), primary_key=True),
    sa.Column("row_number", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("phone", sa.String(20), nullable=False),
    sa.Column("max_age_hours", sa.Integer, nullable=False),
)

#: Numbers the send pipeline may hold (opt-in per drop folder): the latest successful check of
#: each phone says invalid, landline, or SIM changed within the asked window.
RISKY_NUMBERS_VIEW = """
CREATE VIEW risky_numbers AS
SELECT l.phone AS phone,
       CASE WHEN NOT l.valid THEN 'invalid number' ELSE 'landline' END AS reason,
       l.checked_at AS checked_at
FROM number_lookups l
WHERE l.error IS NULL
  AND l.checked_at = (SELECT MAX(x.checked_at) FROM number_lookups x WHERE x.phone = l.phone AND x.error IS NULL)
  AND (NOT l.valid OR l.line_type = 'landline')
UNION ALL
SELECT s.phone AS phone,
       'SIM changed within ' || s.max_age_hours || ' h' AS reason,
       s.checked_at AS checked_at
FROM sim_swap_checks s
WHERE s.error IS NULL
  AND s.checked_at = (SELECT MAX(x.checked_at) FROM sim_swap_checks x WHERE x.phone = s.phone AND x.error IS NULL)
  AND s.changed
"""
