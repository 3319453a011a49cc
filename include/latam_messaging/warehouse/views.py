"""The reporting views as they are now (plain SQL over the ledger and event tables, the same on SQLite
and PostgreSQL except for date arithmetic). A migration that changes one drops and re-creates it from here."""

from __future__ import annotations

VIEW_NAMES = [
    "report_delivery_funnel",
    "report_failure_reasons",
    "report_time_to_deliver",
    "report_rejects_by_reason",
    "report_itd_credits_daily",
    "report_inbound_daily",
    "report_risky_share",
    "report_unrecognised_statuses",
    "report_conversations",
]

#: Views migration 5 drops and re-creates from :func:`view_statements` (new or changed there).
CHANGED_IN_V5 = ["report_time_to_deliver", "report_unrecognised_statuses"]
#: Views migration 7 drops and re-creates (failure reasons by the vendor's error; billable conversations).
CHANGED_IN_V7 = ["report_failure_reasons", "report_conversations"]


def seconds_between(start: str, end: str, dialect: str) -> str:
    if dialect == "postgresql":
        return f"EXTRACT(EPOCH FROM ({end} - {start}))"
    return f"((julianday({end}) - julianday({start})) * 86400.0)"


def least(a: str, b: str, dialect: str) -> str:
    return f"LEAST({a}, {b})" if dialect == "postgresql" else f"MIN({a}, {b})"


def view_statements(dialect: str) -> list[str]:
    day = "date({})"
    return [
        f"""CREATE VIEW report_delivery_funnel AS
SELECT vendor, account_id, COALESCE(template_name, content_type) AS template_or_type, {day.format("created_at")} AS day,
       COUNT(*) AS messages,
       SUM(CASE WHEN state = 'accepted' THEN 1 ELSE 0 END) AS accepted,
       SUM(CASE WHEN delivery_status IN ('sent', 'delivered', 'read') THEN 1 ELSE 0 END) AS sent,
       SUM(CASE WHEN delivery_status IN ('delivered', 'read') THEN 1 ELSE 0 END) AS delivered,
       SUM(CASE WHEN delivery_status = 'read' THEN 1 ELSE 0 END) AS read_count,
       SUM(CASE WHEN delivery_status = 'failed' THEN 1 ELSE 0 END) AS failed,
       SUM(CASE WHEN state = 'rejected' THEN 1 ELSE 0 END) AS rejected_by_vendor,
       SUM(CASE WHEN state = 'unknown' THEN 1 ELSE 0 END) AS unknown,
       SUM(CASE WHEN state IN ('pending', 'scheduled', 'sending') THEN 1 ELSE 0 END) AS waiting
FROM outbound_messages
GROUP BY vendor, account_id, COALESCE(template_name, content_type), {day.format("created_at")}""",
        # a delivery failure's reason is the vendor's error ("131047: Re-engagement message") when it gave one
        """CREATE VIEW report_failure_reasons AS
SELECT vendor, 'delivery' AS stage, COALESCE(reason, raw_status) AS reason, COUNT(DISTINCT vendor_message_id) AS messages
FROM message_status_events WHERE status = 'failed' GROUP BY vendor, COALESCE(reason, raw_status)
UNION ALL
SELECT vendor, 'send' AS stage, COALESCE(vendor_answer, error) AS reason, COUNT(*) AS messages
FROM outbound_messages WHERE state IN ('rejected', 'failed') GROUP BY vendor, COALESCE(vendor_answer, error)""",
        # Acceptance is the vendor's answer as recorded, or its first event for the message when that
        # is earlier (a vendor event proves acceptance): time to deliver is never negative.
        f"""CREATE VIEW report_time_to_deliver AS
SELECT o.vendor, o.message_key, {day.format("o.accepted_at")} AS day,
       {seconds_between(least("o.accepted_at", "MIN(a.event_at)", dialect), "MIN(e.event_at)", dialect)}
           AS seconds_to_deliver
FROM outbound_messages o
JOIN message_status_events e ON e.message_key = o.message_key AND e.status IN ('delivered', 'read')
JOIN message_status_events a ON a.message_key = o.message_key AND a.status <> 'unknown'
WHERE o.accepted_at IS NOT NULL
GROUP BY o.vendor, o.message_key, o.accepted_at""",
        """CREATE VIEW report_rejects_by_reason AS
SELECT folder, reason, COUNT(*) AS rows_rejected
FROM (
    SELECT f.folder,
           CASE WHEN r.reason LIKE 'phone%' THEN 'invalid or missing phone'
                WHEN r.reason LIKE 'duplicate%' THEN 'duplicate row in the file'
                WHEN r.reason LIKE 'held:%' THEN 'held: risky number'
                WHEN r.reason LIKE 'row has%' THEN 'malformed row'
                WHEN r.reason LIKE '%parameter(s)%' OR r.reason LIKE 'param_%' THEN 'wrong number of template parameters'
                WHEN r.reason LIKE 'template%' THEN 'template missing, not accepted or of another account'
                ELSE r.reason END AS reason
    FROM drop_rejects r JOIN drop_files f ON f.file_sha256 = r.file_sha256
) categorised
GROUP BY folder, reason""",
        f"""CREATE VIEW report_itd_credits_daily AS
SELECT {day.format("taken_at")} AS day, MAX(credits) AS max_credits, MIN(credits) AS min_credits, COUNT(*) AS snapshots
FROM itd_credit_snapshots GROUP BY {day.format("taken_at")}""",
        f"""CREATE VIEW report_inbound_daily AS
SELECT vendor, {day.format("received_at")} AS day, COUNT(*) AS messages
FROM inbound_messages GROUP BY vendor, {day.format("received_at")}""",
        """CREATE VIEW report_risky_share AS
SELECT (SELECT COUNT(DISTINCT phone) FROM risky_numbers) AS risky_phones,
       (SELECT COUNT(DISTINCT phone) FROM number_lookups WHERE error IS NULL) AS checked_phones""",
        # statuses the vocabulary does not know: stored as 'unknown' with the vendor's text, counted here
        """CREATE VIEW report_unrecognised_statuses AS
SELECT vendor, raw_status, COUNT(*) AS events, COUNT(DISTINCT vendor_message_id) AS messages
FROM message_status_events WHERE status = 'unknown' GROUP BY vendor, raw_status""",
        # what the vendor says it bills (Meta's pricing and conversation), per message first, then per day of
        # the message's first priced event; billable NULL = the vendor did not say; a message priced
        # without a conversation (per-message pricing) counts in messages, not in conversations
        f"""CREATE VIEW report_conversations AS
SELECT vendor, {day.format("first_at")} AS day, pricing_category, conversation_origin, billable,
       COUNT(DISTINCT conversation_id) AS conversations, COUNT(*) AS messages
FROM (
    SELECT vendor, vendor_message_id, MIN(event_at) AS first_at, MAX(pricing_category) AS pricing_category,
           MAX(conversation_origin) AS conversation_origin, MAX(conversation_id) AS conversation_id,
           MAX(CASE WHEN billable THEN 1 WHEN billable IS NOT NULL THEN 0 END) AS billable
    FROM message_status_events
    WHERE conversation_id IS NOT NULL OR pricing_category IS NOT NULL OR billable IS NOT NULL
    GROUP BY vendor, vendor_message_id
) priced
GROUP BY vendor, {day.format("first_at")}, pricing_category, conversation_origin, billable""",
    ]
