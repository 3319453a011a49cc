"""ITD Chile's HTTP contract in one place (tags as in ``vendor-apis.md``); hook and simulator read it."""

from __future__ import annotations

from latam_messaging.common.endpoint import Endpoint

BASE_PATH = "api/v2/whatsapp"  # [SEED]
SEND = Endpoint("POST", f"{BASE_PATH}/sendWhatsapp", "SEED")
STATUS = Endpoint("POST", f"{BASE_PATH}/statusWhatsappByKey", "SEED")
CREDITS = Endpoint("POST", f"{BASE_PATH}/creditsWhatsapp", "SEED")
RECEIVED = Endpoint("POST", f"{BASE_PATH}/recievedWhatsapp", "SEED")  # sic

#: ``Authorization: <scheme> <jwt>`` — the scheme is not published [INFERRED]; connection extra ``auth_scheme``.
DEFAULT_AUTH_SCHEME = "Bearer"
#: Naive times (``sent_at``, ``delivered_at``, webhook ``sent_at``) are Chilean local time [INFERRED].
VENDOR_TIMEZONE = "America/Santiago"
DEFAULT_PREFIX = "56"  # [SEED]
#: ``recievedWhatsapp`` answers the newest ``top`` messages of one phone and one day [SEED: "Límite de
#: últimos mensajes recibidos"]; a day is its narrowest window. A full page may hide older messages:
#: the poller asks again with ``top`` doubled, up to a cap [INFERRED: no maximum is published].
RECEIVED_TOP = 1000
RECEIVED_TOP_MAX = 16000
CONTENT_TYPES = ("TEXT", "IMAGE", "LINK", "FILE")  # [SEED]

# Error bodies [SEED]: statusApi / message pairs the hook tells apart.
NO_CREDITS_STATUS = "NOT_CREDITS"  # 502: stop sending, never retried
INVALID_MESSAGE_STATUS = "INVALID_MESSAGE"  # 503: not found / no messages, not an outage
NO_MESSAGES_TEXT = "NO WHATSAPP MESSAGES"
MESSAGE_NOT_FOUND_TEXT = "WHATSAPP MESSAGE NOT FOUND"
BAD_CONTENT_TYPE_TEXT = "Parámetro 'content_type' solo puede ser TEXT, IMAGE, LINK o FILE"
MISSING_KEY_TEXT = "Introduzca parámetro key"
MISSING_SENDER_TEXT = "Parámetro senderPhone es necesario."
BAD_SEND_AT_TEXT = "Parámetro sendAt es necesario y en formato ddMMyyyy ejemplo: 16081997"

#: Status texts [SEED: READ, MESSAGE QUEUED, SENT; others INFERRED] → the warehouse vocabulary.
STATUS_MAP = {
    "MESSAGE QUEUED": "enqueued",
    "QUEUED": "enqueued",
    "SENT": "sent",
    "DELIVERED": "delivered",
    "READ": "read",
    "FAILED": "failed",
    "ERROR": "failed",
}
