"""Wavy's HTTP contract in one place (tags as in ``vendor-apis.md``); hook and simulator read it."""

from __future__ import annotations

from latam_messaging.common.endpoint import Endpoint

SEND = Endpoint("POST", "v1/send-sms", "SEED")
SEND_BULK = Endpoint("POST", "v1/send-bulk-sms", "SEED")
STATUS_SEARCH = Endpoint("POST", "v1/sms/status/search", "DOC")
STATUS_LIST = Endpoint("GET", "v1/sms/status/list", "DOC")
RECEIVE_LIST = Endpoint("GET", "v1/sms/receive/list", "DOC")
RECEIVE_SEARCH = Endpoint("GET", "v1/sms/receive/search", "DOC")

USER_HEADER = "UserName"  # [SEED]
TOKEN_HEADER = "AuthenticationToken"  # [SEED]
MAX_BULK = 1000  # [DOC]
MAX_TEXT = 1280  # [DOC]
MAX_CORRELATION_ID = 64  # [DOC]
MAX_EXTRA_INFO = 255  # [DOC]
STATUS_QUERIES_PER_S = 1.0  # [DOC] status queries: 1 request/s
SEND_REQUESTS_PER_S = 700.0  # [DOC] sends: 700 requests/s per IP
STATUS_ENVELOPE = "smsStatuses"  # [CODE]
#: ``receive/search`` takes ``start``/``end``; their format is not published [INFERRED]: ISO wall-clock
#: time without an offset, read in Wavy's own time zone (a Brazilian platform: São Paulo). The hook
#: converts whatever aware times it is given into this zone; the simulator reads them in it.
SEARCH_TIME_FORMAT = "YYYY-MM-DDTHH:mm:ss"
SEARCH_TIMEZONE = "America/Sao_Paulo"

SENT_STATUSES = {  # [DOC]
    2: "SENT_SUCCESS",
    101: "EXPIRED",
    102: "CARRIER_COMMUNICATION_ERROR",
    103: "REJECTED_BY_CARRIER",
    201: "NO_CREDIT",
    202: "INVALID_DESTINATION_NUMBER",
    203: "BLACKLISTED",
    204: "DESTINATION_BLOCKED_BY_OPTOUT",
    205: "DESTINATION_MESSAGE_LIMIT_REACHED",
    207: "INVALID_MESSAGE_TEXT",
    301: "INTERNAL_ERROR",
}
DELIVERED_STATUSES = {4: "DELIVERED_SUCCESS", 104: "NOT_DELIVERED"}  # [DOC]
SENT_SUCCESS = 2
DELIVERED_SUCCESS = 4
#: Codes that say the destination opted out of this sender's messages [DOC]: the phone is suppressed for Wavy.
OPT_OUT_CODES = frozenset({204})
#: The same, for a status that carries only the text.
OPT_OUT_TEXTS = frozenset({"DESTINATION_BLOCKED_BY_OPTOUT"})


def normalised_status(sent_code: int | None, delivered_code: int | None) -> str | None:
    """Map Wavy's two status codes onto the warehouse vocabulary (vendor-apis.md §4)."""
    if delivered_code is not None:
        return "delivered" if delivered_code == DELIVERED_SUCCESS else "failed"
    if sent_code is not None:
        return "sent" if sent_code == SENT_SUCCESS else "failed"
    return None
