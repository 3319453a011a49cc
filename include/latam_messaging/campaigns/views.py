"""The ``campaigns`` view (CONTRACT.md): each campaign's record with its funnel, replies, opt-outs,
clicks and cost, for analysts and the page's list.

* **Replies**: accepted messages of the campaign answered through the same vendor by the same subscriber
  (phones compared by their consent key: ``54 9…`` and ``54…`` are one person; a leading ``+`` ignored)
  within :data:`REPLY_WINDOW_HOURS` of the send, or naming the message they answer (``in_reply_to``, an id
  of that vendor). A message answered twice counts once.
* **Opt-outs**: accepted messages whose subscriber opted out (a keyword reply or the vendor's opt-out
  status, any scope, ended since or not) within the same window after the send.
* **Cost**: accepted, billable messages priced by ``message_prices`` (``campaigns.pricing``): the category
  the vendor reported with a status event (compared lower-case, as the price table stores it) when that
  category has a price, else the vendor's ``default``; NULL while any such message has no price.

:func:`reply_ways` and :func:`opt_out_condition` are the two definitions as SQL. The pairs they match
(send, reply) and (send, opt-out) are kept as data arrives in ``campaign_answers`` (``campaigns.answers``):
the view counts them and the campaign page lists them (``page.campaigns``), so a count and the rows listed
under it cannot differ.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from latam_messaging.consent.suppressions import consent_key_of

#: WhatsApp's customer-service window: a reply or an opt-out this long after a send counts for it.
REPLY_WINDOW_HOURS = 24
VIEW_NAMES = ["campaigns"]
#: Status events that say how a message is priced (``ix_status_events_priced`` holds only these).
PRICED_EVENTS = "(e.pricing_category IS NOT NULL OR e.billable IS NOT NULL)"


def as_sql(expression: sa.ColumnElement, dialect: str) -> str:
    compiled_for = postgresql.dialect() if dialect == "postgresql" else sqlite.dialect()
    return str(expression.compile(dialect=compiled_for, compile_kwargs={"literal_binds": True}))


def plus_hours(column: str, hours: int, dialect: str) -> str:
    if dialect == "postgresql":
        return f"({column} + INTERVAL '{int(hours)} hours')"
    return f"datetime({column}, '+{int(hours)} hours')"


def window_end(column: str, dialect: str) -> str:
    return plus_hours(column, REPLY_WINDOW_HOURS, dialect)


def reply_ways(dialect: str, *, i: str = "i", o: str = "o") -> tuple[str, str]:
    """The two ways inbound row ``i`` answers outbound row ``o`` of the same vendor: it quotes the message,
    or it came from the same subscriber within the window after the send (``i``, ``o``: the rows' names,
    ``NEW``/``OLD`` in a trigger)."""
    key_o = as_sql(consent_key_of(sa.literal_column(f"{o}.phone")), dialect)
    key_i = as_sql(consent_key_of(sa.func.replace(sa.literal_column(f"{i}.from_phone"), "+", "")), dialect)
    end = window_end(f"{o}.accepted_at", dialect)
    quoted = f"{i}.in_reply_to IS NOT NULL AND {i}.in_reply_to = {o}.vendor_message_id"
    in_window = f"{key_i} = {key_o} AND {i}.received_at >= {o}.accepted_at AND {i}.received_at < {end}"
    return quoted, in_window


def acceptance(edge: str, files: str) -> str:
    """SQL: the first (``edge`` ``MIN``) or last (``MAX``) acceptance of the sends of ``files`` (a condition
    on ``b.file_sha256``): an index lookup in ``ix_outbound_file`` (file, accepted_at) per file."""
    return f"(SELECT {edge}(b.accepted_at) FROM outbound_messages b WHERE {files} AND b.accepted_at IS NOT NULL)"


def reply_condition(dialect: str) -> str:
    """SQL: inbound row ``i`` answers outbound row ``o`` (see the module's definition of a reply)."""
    quoted, in_window = reply_ways(dialect)
    return f"(i.vendor = o.vendor AND (({quoted}) OR ({in_window})))"


def opt_out_condition(dialect: str, *, s: str = "s", o: str = "o", from_suppressions: bool = False) -> str:
    """SQL: suppression ``s`` is an opt-out of outbound row ``o``'s subscriber after its send (``s``, ``o``:
    the rows' names). ``from_suppressions``: the same condition for a lookup that starts from the
    suppressions and finds their sends by ``ix_outbound_consent_key`` (``s.phone || ''`` is an expression:
    SQLite then compares without the column's text affinity, which would keep it from using an index on an
    expression)."""
    key_o = as_sql(consent_key_of(sa.literal_column(f"{o}.phone")), dialect)
    end = window_end(f"{o}.accepted_at", dialect)
    phone = f"{s}.phone || ''" if from_suppressions else f"{s}.phone"
    return (
        f"({phone} = {key_o} AND {s}.source IN ('keyword', 'vendor_status')"
        f" AND {s}.since >= {o}.accepted_at AND {s}.since < {end})"
    )


def index_statements(dialect: str) -> list[str]:
    """DDL of migration 11, for the view to find replies' and opt-outs' sends without visiting every send:
    ``outbound_messages`` by its phone's consent key (the expression :func:`reply_condition` and
    :func:`opt_out_condition` compare), and the suppressions that are opt-outs, by source and time."""
    key = as_sql(consent_key_of(sa.literal_column("phone")), dialect)
    return [
        f"CREATE INDEX ix_outbound_consent_key ON outbound_messages (({key}), accepted_at)",
        "CREATE INDEX ix_suppressions_source_since ON suppressions (source, since)",
    ]


def view_statements_v9(dialect: str) -> list[str]:
    """The view as migration 9 made it (every count a ``GROUP BY`` over the ledger): frozen, and the
    definition ``tests/warehouse/test_aggregates.py`` holds today's view to."""
    billable = "CASE WHEN e.billable THEN 1 WHEN e.billable IS NOT NULL THEN 0 END"
    return [
        f"""CREATE VIEW campaigns AS
SELECT c.campaign_id, c.name, c.vendor, c.folder, c.source, c.file_name, c.file_sha256, c.created_by, c.created_at,
       c.state, c.confirmed_by, c.confirmed_at, c.dag_run_id, c.cancelled_by, c.cancelled_at,
       COALESCE(f.rows_total, 0) AS rows_total, COALESCE(f.rows_valid, 0) AS rows_valid,
       COALESCE(f.rows_rejected, 0) AS rows_rejected, COALESCE(r.rows, 0) AS rows_suppressed_at_ingest,
       COALESCE(m.messages, 0) AS messages, COALESCE(m.scheduled, 0) AS scheduled, COALESCE(m.pending, 0) AS pending,
       COALESCE(m.sending, 0) AS sending, COALESCE(m.accepted, 0) AS accepted,
       COALESCE(m.rejected_by_vendor, 0) AS rejected_by_vendor, COALESCE(m.failed, 0) AS failed,
       COALESCE(m.unknown, 0) AS unknown, COALESCE(m.suppressed, 0) AS suppressed, COALESCE(m.cancelled, 0) AS cancelled,
       COALESCE(m.sent, 0) AS sent, COALESCE(m.delivered, 0) AS delivered, COALESCE(m.read_count, 0) AS read_count,
       COALESCE(m.delivery_failed, 0) AS delivery_failed,
       COALESCE(m.replies, 0) AS replies, COALESCE(m.opt_outs, 0) AS opt_outs, COALESCE(l.clicks, 0) AS clicks,
       CASE WHEN k.unpriced > 0 THEN NULL ELSE COALESCE(k.cost, 0) END AS cost, k.currency,
       m.first_accepted_at, m.last_accepted_at
FROM campaign_files c
LEFT JOIN drop_files f ON f.file_sha256 = c.file_sha256
LEFT JOIN (
    SELECT file_sha256, COUNT(*) AS rows FROM drop_rejects WHERE reason LIKE 'suppressed:%' GROUP BY file_sha256
) r ON r.file_sha256 = c.file_sha256
LEFT JOIN (
    SELECT o.file_sha256, COUNT(*) AS messages,
           SUM(CASE WHEN o.state = 'scheduled' THEN 1 ELSE 0 END) AS scheduled,
           SUM(CASE WHEN o.state = 'pending' THEN 1 ELSE 0 END) AS pending,
           SUM(CASE WHEN o.state = 'sending' THEN 1 ELSE 0 END) AS sending,
           SUM(CASE WHEN o.state = 'accepted' THEN 1 ELSE 0 END) AS accepted,
           SUM(CASE WHEN o.state = 'rejected' THEN 1 ELSE 0 END) AS rejected_by_vendor,
           SUM(CASE WHEN o.state = 'failed' THEN 1 ELSE 0 END) AS failed,
           SUM(CASE WHEN o.state = 'unknown' THEN 1 ELSE 0 END) AS unknown,
           SUM(CASE WHEN o.state = 'suppressed' THEN 1 ELSE 0 END) AS suppressed,
           SUM(CASE WHEN o.state = 'cancelled' THEN 1 ELSE 0 END) AS cancelled,
           SUM(CASE WHEN o.delivery_status IN ('sent', 'delivered', 'read') THEN 1 ELSE 0 END) AS sent,
           SUM(CASE WHEN o.delivery_status IN ('delivered', 'read') THEN 1 ELSE 0 END) AS delivered,
           SUM(CASE WHEN o.delivery_status = 'read' THEN 1 ELSE 0 END) AS read_count,
           SUM(CASE WHEN o.delivery_status = 'failed' THEN 1 ELSE 0 END) AS delivery_failed,
           SUM(CASE WHEN o.accepted_at IS NOT NULL AND EXISTS (
                   SELECT 1 FROM inbound_messages i WHERE {reply_condition(dialect)}
               ) THEN 1 ELSE 0 END) AS replies,
           SUM(CASE WHEN o.accepted_at IS NOT NULL AND EXISTS (
                   SELECT 1 FROM suppressions s WHERE {opt_out_condition(dialect)}
               ) THEN 1 ELSE 0 END) AS opt_outs,
           MIN(o.accepted_at) AS first_accepted_at, MAX(o.accepted_at) AS last_accepted_at
    FROM outbound_messages o WHERE o.file_sha256 IS NOT NULL GROUP BY o.file_sha256
) m ON m.file_sha256 = c.file_sha256
LEFT JOIN (SELECT campaign_id, SUM(clicks) AS clicks FROM short_links GROUP BY campaign_id) l
    ON l.campaign_id = c.campaign_id
LEFT JOIN (
    SELECT p.file_sha256, SUM(COALESCE(pc.unit_price, pd.unit_price)) AS cost,
           SUM(CASE WHEN COALESCE(pc.unit_price, pd.unit_price) IS NULL THEN 1 ELSE 0 END) AS unpriced,
           MAX(COALESCE(pc.currency, pd.currency)) AS currency
    FROM (
        SELECT o.file_sha256, o.vendor,
               (SELECT MAX(LOWER(e.pricing_category)) FROM message_status_events e WHERE e.message_key = o.message_key)
                   AS category,
               (SELECT MAX({billable}) FROM message_status_events e WHERE e.message_key = o.message_key) AS billable
        FROM outbound_messages o WHERE o.state = 'accepted' AND o.file_sha256 IS NOT NULL
    ) p
    LEFT JOIN message_prices pc ON pc.vendor = p.vendor AND pc.category = p.category
    LEFT JOIN message_prices pd ON pd.vendor = p.vendor AND pd.category = 'default'
    WHERE p.billable IS NULL OR p.billable = 1
    GROUP BY p.file_sha256
) k ON k.file_sha256 = c.file_sha256""",
    ]


def view_statements(dialect: str) -> list[str]:
    """The ``campaigns`` view (migration 13): :func:`campaigns_query` over every campaign."""
    return [f"CREATE VIEW campaigns AS\n{campaigns_query(dialect)}"]


def campaigns_query(dialect: str, *, some_files: bool = False) -> str:
    """The view since migration 13, the numbers of :func:`view_statements_v9` found without visiting every
    send: the funnel counts of each file from ``message_counts`` (kept by triggers, ``warehouse.aggregates``);
    replies and opt-outs from ``campaign_answers`` (each answered send with what answered it, kept by
    triggers, ``campaigns.answers``); the cost from the accepted count less the sends whose events named a
    price category (``ix_status_events_priced``). ``some_files``: every part reads only the files of the
    expanding parameter ``:files`` (what the page shows)."""
    billable = "CASE WHEN e.billable THEN 1 WHEN e.billable IS NOT NULL THEN 0 END"
    only = {alias: f" AND {alias}file_sha256 IN :files" if some_files else "" for alias in ("", "o.")}
    return f"""WITH detailed AS (
    -- accepted sends whose status events said how they are priced, counted by what they said (the
    -- others are priced by their vendor's default: the accepted count of message_counts less these)
    SELECT o.file_sha256, o.vendor, p.category, p.billable, COUNT(*) AS n
    FROM (
        SELECT e.message_key, MAX(LOWER(e.pricing_category)) AS category, MAX({billable}) AS billable
        FROM message_status_events e WHERE {PRICED_EVENTS}
        GROUP BY e.message_key
    ) p
    JOIN outbound_messages o ON o.message_key = p.message_key
    WHERE o.state = 'accepted' AND o.file_sha256 IS NOT NULL{only['o.']}
    GROUP BY o.file_sha256, o.vendor, p.category, p.billable
)
SELECT c.campaign_id, c.name, c.vendor, c.folder, c.source, c.file_name, c.file_sha256, c.created_by, c.created_at,
       c.state, c.confirmed_by, c.confirmed_at, c.dag_run_id, c.cancelled_by, c.cancelled_at,
       COALESCE(f.rows_total, 0) AS rows_total, COALESCE(f.rows_valid, 0) AS rows_valid,
       COALESCE(f.rows_rejected, 0) AS rows_rejected, COALESCE(r.rows, 0) AS rows_suppressed_at_ingest,
       COALESCE(m.messages, 0) AS messages, COALESCE(m.scheduled, 0) AS scheduled, COALESCE(m.pending, 0) AS pending,
       COALESCE(m.sending, 0) AS sending, COALESCE(m.accepted, 0) AS accepted,
       COALESCE(m.rejected_by_vendor, 0) AS rejected_by_vendor, COALESCE(m.failed, 0) AS failed,
       COALESCE(m.unknown, 0) AS unknown, COALESCE(m.suppressed, 0) AS suppressed, COALESCE(m.cancelled, 0) AS cancelled,
       COALESCE(m.sent, 0) AS sent, COALESCE(m.delivered, 0) AS delivered, COALESCE(m.read_count, 0) AS read_count,
       COALESCE(m.delivery_failed, 0) AS delivery_failed,
       COALESCE(rp.replies, 0) AS replies, COALESCE(rp.opt_outs, 0) AS opt_outs, COALESCE(l.clicks, 0) AS clicks,
       CASE WHEN k.unpriced > 0 THEN NULL ELSE COALESCE(k.cost, 0) END AS cost, k.currency,
       {acceptance("MIN", "b.file_sha256 = c.file_sha256")} AS first_accepted_at,
       {acceptance("MAX", "b.file_sha256 = c.file_sha256")} AS last_accepted_at
FROM campaign_files c
LEFT JOIN drop_files f ON f.file_sha256 = c.file_sha256
LEFT JOIN (
    SELECT file_sha256, COUNT(*) AS rows FROM drop_rejects WHERE reason LIKE 'suppressed:%'{only['']} GROUP BY file_sha256
) r ON r.file_sha256 = c.file_sha256
LEFT JOIN (
    SELECT file_sha256, CAST(SUM(messages) AS BIGINT) AS messages,
           CAST(SUM(CASE WHEN state = 'scheduled' THEN messages ELSE 0 END) AS BIGINT) AS scheduled,
           CAST(SUM(CASE WHEN state = 'pending' THEN messages ELSE 0 END) AS BIGINT) AS pending,
           CAST(SUM(CASE WHEN state = 'sending' THEN messages ELSE 0 END) AS BIGINT) AS sending,
           CAST(SUM(CASE WHEN state = 'accepted' THEN messages ELSE 0 END) AS BIGINT) AS accepted,
           CAST(SUM(CASE WHEN state = 'rejected' THEN messages ELSE 0 END) AS BIGINT) AS rejected_by_vendor,
           CAST(SUM(CASE WHEN state = 'failed' THEN messages ELSE 0 END) AS BIGINT) AS failed,
           CAST(SUM(CASE WHEN state = 'unknown' THEN messages ELSE 0 END) AS BIGINT) AS unknown,
           CAST(SUM(CASE WHEN state = 'suppressed' THEN messages ELSE 0 END) AS BIGINT) AS suppressed,
           CAST(SUM(CASE WHEN state = 'cancelled' THEN messages ELSE 0 END) AS BIGINT) AS cancelled,
           CAST(SUM(CASE WHEN delivery_status IN ('sent', 'delivered', 'read') THEN messages ELSE 0 END) AS BIGINT) AS sent,
           CAST(SUM(CASE WHEN delivery_status IN ('delivered', 'read') THEN messages ELSE 0 END) AS BIGINT) AS delivered,
           CAST(SUM(CASE WHEN delivery_status = 'read' THEN messages ELSE 0 END) AS BIGINT) AS read_count,
           CAST(SUM(CASE WHEN delivery_status = 'failed' THEN messages ELSE 0 END) AS BIGINT) AS delivery_failed
    FROM message_counts WHERE file_sha256 IS NOT NULL{only['']} GROUP BY file_sha256
) m ON m.file_sha256 = c.file_sha256
LEFT JOIN (
    SELECT file_sha256,
           COUNT(DISTINCT CASE WHEN kind = 'reply' THEN message_key END) AS replies,
           COUNT(DISTINCT CASE WHEN kind = 'opt_out' THEN message_key END) AS opt_outs
    FROM campaign_answers{" WHERE file_sha256 IN :files" if some_files else ""} GROUP BY file_sha256
) rp ON rp.file_sha256 = c.file_sha256
LEFT JOIN (SELECT campaign_id, SUM(clicks) AS clicks FROM short_links GROUP BY campaign_id) l
    ON l.campaign_id = c.campaign_id
LEFT JOIN (
    SELECT q.file_sha256, SUM(q.n * COALESCE(pc.unit_price, pd.unit_price)) AS cost,
           SUM(CASE WHEN COALESCE(pc.unit_price, pd.unit_price) IS NULL THEN q.n ELSE 0 END) AS unpriced,
           MAX(COALESCE(pc.currency, pd.currency)) AS currency
    FROM (
        SELECT file_sha256, vendor, category, billable, n FROM detailed
        UNION ALL
        SELECT file_sha256, vendor, NULL, NULL, SUM(n) FROM (
            SELECT file_sha256, vendor, messages AS n FROM message_counts
            WHERE state = 'accepted' AND file_sha256 IS NOT NULL{only['']}
            UNION ALL
            SELECT file_sha256, vendor, -n FROM detailed
        ) plain GROUP BY file_sha256, vendor HAVING SUM(n) <> 0
    ) q
    LEFT JOIN message_prices pc ON pc.vendor = q.vendor AND pc.category = q.category
    LEFT JOIN message_prices pd ON pd.vendor = q.vendor AND pd.category = 'default'
    WHERE q.billable IS NULL OR q.billable = 1
    GROUP BY q.file_sha256
) k ON k.file_sha256 = c.file_sha256{" WHERE c.file_sha256 IN :files" if some_files else ""}"""
