"""Consent: who must not be sent to (``suppressions``), from opt-out replies, vendors' opt-out statuses,
and list or registry files; checked when a file is ingested and again when each row is claimed.

A shared engine: it never names a vendor. Callers hand it the scopes a send falls under (``all``, its
vendor, its channel) and the inbound rows or status events to read.
"""
