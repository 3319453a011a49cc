"""The reporting views as they are now (plain SQL over the ledger and event tables, the same on SQLite
and PostgreSQL except for date arithmetic and string search). A migration that changes one drops and
re-creates it from here."""

from __future__ import annotations

from latam_messaging.warehouse import aggregates, failures
from latam_messaging.warehouse.counted import Counted, Counts

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
    "report_active_suppressions",
    "report_optouts_daily",
    "report_suppressed_rows",
    "report_optout_keywords",
    "report_consent_exempt",
]

#: Views migration 5 drops and re-creates from :func:`view_statements` (new or changed there).
CHANGED_IN_V5 = ["report_time_to_deliver", "report_unrecognised_statuses"]
#: Views migration 7 drops and re-creates (failure reasons by the vendor's error; billable conversations).
CHANGED_IN_V7 = ["report_failure_reasons", "report_conversations"]
#: Views migration 12 drops and re-creates (time to deliver: each send's events read once, not joined twice).
CHANGED_IN_V12 = ["report_time_to_deliver"]
#: Views migration 14 drops and re-creates (failure reasons counted from ``failure_counts``).
CHANGED_IN_V14 = ["report_failure_reasons"]
#: Views migration 15 drops and re-creates (rows skipped for consent counted from ``skipped_counts``).
CHANGED_IN_V15 = ["report_suppressed_rows"]
#: Views migration 16 drops and re-creates (time to deliver read from ``delivery_times``).
CHANGED_IN_V16 = ["report_time_to_deliver"]
#: Views migration 8 creates (consent) or drops and re-creates (rejects: ``suppressed: <source>`` is one
#: category per source, not one per piece of evidence).
NEW_IN_V8 = [
    "report_active_suppressions",
    "report_optouts_daily",
    "report_suppressed_rows",
    "report_optout_keywords",
    "report_consent_exempt",
]
CHANGED_IN_V8 = ["report_rejects_by_reason"]

#: What a row skipped for consent carries (``consent.suppressions.reason_text``): ``suppressed: <source> (<evidence>)``.
SUPPRESSED_PREFIX = "suppressed: "
#: What an opt-out reply's suppression says (``consent.replies``): ``replied '<keyword>' (<language>)``.
KEYWORD_REASON_PREFIX = "replied '"


def seconds_between(start: str, end: str, dialect: str) -> str:
    if dialect == "postgresql":
        return f"EXTRACT(EPOCH FROM ({end} - {start}))"
    return f"((julianday({end}) - julianday({start})) * 86400.0)"


def least(a: str, b: str, dialect: str) -> str:
    return f"LEAST({a}, {b})" if dialect == "postgresql" else f"MIN({a}, {b})"


def position(needle: str, haystack: str, dialect: str) -> str:
    """The 1-based place of ``needle`` in ``haystack`` (SQL expressions), 0 when absent."""
    return f"strpos({haystack}, {needle})" if dialect == "postgresql" else f"instr({haystack}, {needle})"


def suppressed_source(reason: str, dialect: str) -> str:
    """``suppressed: <source> (<evidence>)`` → ``<source>`` (``keyword``, ``vendor_status``, ``manual``,
    ``registry:<name>``): the text between the prefix and the first `` (``; all of the rest without one."""
    start = len(SUPPRESSED_PREFIX) + 1
    cut = position("' ('", reason, dialect)
    return (
        f"CASE WHEN {cut} > {start} THEN substr({reason}, {start}, {cut} - {start}) ELSE substr({reason}, {start}) END"
    )


def delivery_funnel_over_ledger(dialect: str) -> str:
    """``report_delivery_funnel`` as defined over ``outbound_messages`` until migration 11 (the view now
    reads ``message_counts``, which counts no staged row: rows of a file still being read are not yet messages;
    ``tests/warehouse/test_aggregates.py`` holds both to the same rows)."""
    day = "date({})"
    return f"""SELECT vendor, account_id, COALESCE(template_name, content_type) AS template_or_type, {day.format("created_at")} AS day,
       COUNT(*) AS messages,
       SUM(CASE WHEN state = 'accepted' THEN 1 ELSE 0 END) AS accepted,
       SUM(CASE WHEN delivery_status IN ('sent', 'delivered', 'read') THEN 1 ELSE 0 END) AS sent,
       SUM(CASE WHEN delivery_status IN ('delivered', 'read') THEN 1 ELSE 0 END) AS delivered,
       SUM(CASE WHEN delivery_status = 'read' THEN 1 ELSE 0 END) AS read_count,
       SUM(CASE WHEN delivery_status = 'failed' THEN 1 ELSE 0 END) AS failed,
       SUM(CASE WHEN state = 'rejected' THEN 1 ELSE 0 END) AS rejected_by_vendor,
       SUM(CASE WHEN state = 'unknown' THEN 1 ELSE 0 END) AS unknown,
       SUM(CASE WHEN state IN ('pending', 'scheduled', 'sending') THEN 1 ELSE 0 END) AS waiting
FROM outbound_messages WHERE state <> 'staged'
GROUP BY vendor, account_id, COALESCE(template_name, content_type), {day.format("created_at")}"""


def step_first(dialect: str) -> str:
    """What makes a ``WITH`` query a step of its own on SQLite (``MATERIALIZED``), for the campaign page's
    time to deliver of one file's sends: joined directly, SQLite's planner — told by ``ANALYZE`` that a
    file has 10,000 sends — walked every send in key order to spare the events form's ``GROUP BY`` its
    sort (0.3 s instead of 0.04 s on 500,000 sends; the form over ``delivery_times`` has no ``GROUP BY``,
    the step is kept so the file's sends are always found first). PostgreSQL plans the plain join well, and a materialised
    one (no statistics) can be planned as a pass over the other table: there the ``WITH`` is inlined."""
    return "MATERIALIZED " if dialect == "sqlite" else ""


def _chosen(dialect: str, where: str) -> tuple[str, str]:
    """(the ``WITH`` choosing the sends ``o`` that ``where`` selects, the name to read them by); none
    without ``where``."""
    if not where:
        return "", "outbound_messages o"
    return f"WITH chosen AS {step_first(dialect)}(SELECT * FROM outbound_messages o WHERE {where})\n", "chosen o"


def time_to_deliver(dialect: str, where: str = "") -> str:
    """``report_time_to_deliver``'s query over ``delivery_times`` (migration 16): the same rows as
    :func:`time_to_deliver_over_events`; ``where``: only the sends ``o`` it selects (the campaign page
    measures one file's sends), chosen first (:func:`step_first`)."""
    chosen, sends = _chosen(dialect, where)
    return f"""{chosen}SELECT o.vendor, o.message_key, date(o.accepted_at) AS day,
       {seconds_between(least("o.accepted_at", "t.first_event_at", dialect), "t.delivered_at", dialect)}
           AS seconds_to_deliver
FROM {sends}
JOIN delivery_times t ON t.message_key = o.message_key
WHERE o.accepted_at IS NOT NULL AND t.delivered_at IS NOT NULL"""


def time_to_deliver_over_events(dialect: str, where: str = "") -> str:
    """``report_time_to_deliver`` over the events (migrations 12 to 15; the reference its form over
    ``delivery_times`` equals): each accepted send joined with its events of a known status."""
    chosen, sends = _chosen(dialect, where)
    delivered = "MIN(CASE WHEN a.status IN ('delivered', 'read') THEN a.event_at END)"
    return f"""{chosen}SELECT o.vendor, o.message_key, date(o.accepted_at) AS day,
       {seconds_between(least("o.accepted_at", "MIN(a.event_at)", dialect), delivered, dialect)}
           AS seconds_to_deliver
FROM {sends}
JOIN message_status_events a ON a.message_key = o.message_key AND a.status <> 'unknown'
WHERE o.accepted_at IS NOT NULL
GROUP BY o.vendor, o.message_key, o.accepted_at
HAVING {delivered} IS NOT NULL"""


def time_to_deliver_frozen(dialect: str) -> dict[str, str]:
    """Migrations 5 and 12 make ``report_time_to_deliver`` over the events (``delivery_times`` is 16's)."""
    return {"report_time_to_deliver": time_to_deliver_over_events(dialect)}


#: ``report_failure_reasons`` over the events and the ledger (migrations 7 to 13; the reference its form
#: over ``failure_counts`` equals): a delivery failure's reason is the vendor's error ("131047:
#: Re-engagement message") when it gave one, each message counted once per reason; a send refused, the
#: vendor's answer, else our error.
FAILURE_REASONS_OVER_LEDGER = """SELECT vendor, 'delivery' AS stage, COALESCE(reason, raw_status) AS reason, COUNT(DISTINCT vendor_message_id) AS messages
FROM message_status_events WHERE status = 'failed' GROUP BY vendor, COALESCE(reason, raw_status)
UNION ALL
SELECT vendor, 'send' AS stage, COALESCE(vendor_answer, error) AS reason, COUNT(*) AS messages
FROM outbound_messages WHERE state IN ('rejected', 'failed') GROUP BY vendor, COALESCE(vendor_answer, error)"""


def view_statements(dialect: str) -> list[str]:
    day = "date({})"
    source = suppressed_source("r.reason", dialect)
    return [
        aggregates.delivery_funnel_view(dialect),  # migration 11: over message_counts
        f"CREATE VIEW report_failure_reasons AS\n{failures.failure_reasons()}",  # migration 14: over failure_counts
        # Acceptance is the vendor's answer as recorded, or its first event for the message when that
        # is earlier (a vendor event proves acceptance): time to deliver is never negative.
        f"CREATE VIEW report_time_to_deliver AS\n{time_to_deliver(dialect)}",
        f"""CREATE VIEW report_rejects_by_reason AS
SELECT folder, reason, COUNT(*) AS rows_rejected
FROM (
    SELECT f.folder,
           CASE WHEN r.reason LIKE 'suppressed:%' THEN 'suppressed: ' || {source}
                WHEN r.reason LIKE 'phone%' THEN 'invalid or missing phone'
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
        *consent_statements(dialect),
    ]


#: Where a row skipped for consent is counted: rejected at ingest (a ``drop_rejects`` row ``suppressed: …``)
#: or suppressed when claimed for sending (an ``outbound_messages`` row ``suppressed``, its error naming the
#: suppression).
SKIPPED_AT_INGEST, SKIPPED_AT_CLAIM = "ingest", "claim"
#: The ``drop_rejects`` reasons of rows rejected for consent (a ``LIKE`` pattern).
SKIPPED_REASONS = SUPPRESSED_PREFIX.rstrip() + "%"


def suppressed_rows_over_ledger(dialect: str) -> str:
    """``report_suppressed_rows`` over ``drop_rejects`` and ``outbound_messages`` (migrations 8 to 14; the
    reference its form over ``skipped_counts`` equals): per drop file and source, rows rejected at ingest
    and rows that became ``suppressed`` when claimed for sending; rows of no file: NULL file."""
    return f"""SELECT s.file_sha256, s.vendor, f.folder, f.path, f.claimed_at, s.source,
       SUM(s.at_ingest) AS rejected_at_ingest, SUM(s.at_claim) AS suppressed_at_claim, COUNT(*) AS rows_suppressed
FROM (
    SELECT r.file_sha256, d.vendor, {suppressed_source("r.reason", dialect)} AS source, 1 AS at_ingest, 0 AS at_claim
    FROM drop_rejects r JOIN drop_files d ON d.file_sha256 = r.file_sha256
    WHERE r.reason LIKE '{SKIPPED_REASONS}'
    UNION ALL
    SELECT o.file_sha256, o.vendor, {suppressed_source("o.error", dialect)} AS source, 0 AS at_ingest, 1 AS at_claim
    FROM outbound_messages o WHERE o.state = 'suppressed'
) s
LEFT JOIN drop_files f ON f.file_sha256 = s.file_sha256
GROUP BY s.file_sha256, s.vendor, f.folder, f.path, f.claimed_at, s.source"""


def skipped_counts(dialect: str) -> Counts:
    """``skipped_counts`` (migration 15): the rows skipped for consent per (stage, file, vendor, source),
    kept by triggers on ``drop_rejects`` and ``outbound_messages`` (``warehouse.counted``). A reject's
    vendor is its file's, read with the counts (the view's join), so it is not part of the key."""
    return Counts(
        "skipped_counts",
        (
            Counted(
                "skipped_counts_ingest", "drop_rejects", f"{{row}}.reason LIKE '{SKIPPED_REASONS}'",
                {"stage": f"'{SKIPPED_AT_INGEST}'", "file_sha256": "{row}.file_sha256", "vendor": "NULL",
                 "source": suppressed_source("{row}.reason", dialect)},
                ("file_sha256", "reason"), f"stage = '{SKIPPED_AT_INGEST}'",
            ),
            Counted(
                "skipped_counts_claim", "outbound_messages", "{row}.state = 'suppressed'",
                {"stage": f"'{SKIPPED_AT_CLAIM}'", "file_sha256": "{row}.file_sha256", "vendor": "{row}.vendor",
                 "source": suppressed_source("{row}.error", dialect)},
                ("file_sha256", "vendor", "state", "error"), f"stage = '{SKIPPED_AT_CLAIM}'",
            ),
        ),
        # a file hash, a vendor or a source is never the empty text, nor one NUL character
        "stage, COALESCE(file_sha256, ''), COALESCE(vendor, ''), COALESCE(source, char(0))",
    )


def rebuild_skipped_counts(conn) -> None:
    """``skipped_counts`` computed from the rows (the benchmark's history, filled with the triggers off)."""
    skipped_counts(conn.dialect.name).rebuild(conn)


#: ``report_suppressed_rows`` over ``skipped_counts``: its columns and numbers over the ledger.
SUPPRESSED_ROWS_OVER_COUNTS = f"""SELECT s.file_sha256, s.vendor, f.folder, f.path, f.claimed_at, s.source,
       CAST(SUM(s.at_ingest) AS BIGINT) AS rejected_at_ingest, CAST(SUM(s.at_claim) AS BIGINT) AS suppressed_at_claim,
       CAST(SUM(s.n) AS BIGINT) AS rows_suppressed
FROM (
    SELECT k.file_sha256, d.vendor, k.source, k.messages AS at_ingest, 0 AS at_claim, k.messages AS n
    FROM skipped_counts k JOIN drop_files d ON d.file_sha256 = k.file_sha256 WHERE k.stage = '{SKIPPED_AT_INGEST}'
    UNION ALL
    SELECT k.file_sha256, k.vendor, k.source, 0 AS at_ingest, k.messages AS at_claim, k.messages AS n
    FROM skipped_counts k WHERE k.stage = '{SKIPPED_AT_CLAIM}'
) s
LEFT JOIN drop_files f ON f.file_sha256 = s.file_sha256
GROUP BY s.file_sha256, s.vendor, f.folder, f.path, f.claimed_at, s.source
HAVING SUM(s.n) <> 0"""


def consent_statements(dialect: str) -> list[str]:
    """The consent views (migration 8): who is suppressed now, opt-outs per day, rows skipped per file,
    the keywords customers used, and rows loaded under an explicit exemption."""
    day = "date({})"
    # where "' (" follows the keyword of "replied 'baja' (es)" (the SQL literal ''' (' is the text ' ()
    quote_paren = position("''' ('", "reason", dialect)
    kw = len(KEYWORD_REASON_PREFIX) + 1
    is_reply = f"reason LIKE 'replied ''%' AND {quote_paren} > {kw}"
    return [
        """CREATE VIEW report_active_suppressions AS
SELECT source, scope, COUNT(*) AS active
FROM suppressions WHERE ended_at IS NULL GROUP BY source, scope""",
        # started: the day of the evidence (the reply, the vendor's event, the file's load); ended: the day of
        # the opt-in or the remove line that closed it. One started and ended on the same day counts in both.
        f"""CREATE VIEW report_optouts_daily AS
SELECT day, source, scope, SUM(started) AS started, SUM(ended) AS ended
FROM (
    SELECT {day.format("since")} AS day, source, scope, 1 AS started, 0 AS ended FROM suppressions
    UNION ALL
    SELECT {day.format("ended_at")} AS day, source, scope, 0 AS started, 1 AS ended FROM suppressions
    WHERE ended_at IS NOT NULL
) changes
GROUP BY day, source, scope""",
        # per drop file and source: rows rejected at ingest and rows suppressed when claimed (migration 15:
        # from skipped_counts; SUPPRESSED_ROWS_OVER_LEDGER is the definition it equals)
        f"CREATE VIEW report_suppressed_rows AS\n{SUPPRESSED_ROWS_OVER_COUNTS}",
        # every opt-out reply read (ended ones too): "replied 'baja' (es)" → keyword baja, language es
        f"""CREATE VIEW report_optout_keywords AS
SELECT keyword, language, COUNT(*) AS opt_outs, COUNT(DISTINCT phone) AS phones
FROM (
    SELECT phone,
           CASE WHEN {is_reply} THEN substr(reason, {kw}, {quote_paren} - {kw}) ELSE reason END AS keyword,
           CASE WHEN {is_reply} THEN substr(reason, {quote_paren} + 3, length(reason) - {quote_paren} - 3) END
               AS language
    FROM suppressions WHERE source = 'keyword'
) replies
GROUP BY keyword, language
ORDER BY opt_outs DESC, keyword, language""",
        # rows loaded under an explicit exemption (a send run's consent_exempt param, an opt-out confirmation),
        # per file and exemption text (who and why); rows_sent: those the vendor accepted
        """CREATE VIEW report_consent_exempt AS
SELECT o.file_sha256, o.vendor, f.folder, f.path, f.claimed_at, o.consent_exempt,
       COUNT(*) AS rows_exempt, SUM(CASE WHEN o.state = 'accepted' THEN 1 ELSE 0 END) AS rows_sent
FROM outbound_messages o
LEFT JOIN drop_files f ON f.file_sha256 = o.file_sha256
WHERE o.consent_exempt IS NOT NULL
GROUP BY o.file_sha256, o.vendor, f.folder, f.path, f.claimed_at, o.consent_exempt""",
    ]
