"""Teleprom's HTTP contract in one place: every path, and the shapes nobody published.

Sources, as tagged in ``vendor-apis.md``: SEED (vendor document we hold), DOC (vendor's public
documentation), CODE (seen in working clients), INFERRED (our guess). When the vendor publishes an
INFERRED item, correct it here; the hook and the simulator both read this module.
"""

from __future__ import annotations

from typing import Any

from latam_messaging.common.endpoint import Endpoint

AUTH = Endpoint("POST", "Auth", "SEED")
TEMPLATES = Endpoint("GET", "GetTemplates", "SEED")
ACCOUNTS = Endpoint("GET", "GetAllRuteos", "SEED")
SEND_HSM = Endpoint("POST", "api/Integration/MessageWpp", "DOC")
SEND_FREE_FORM = Endpoint("POST", "api/Integration/MessageWppFreeForm", "INFERRED")
NUMBER_LOOKUP = Endpoint("POST", "api/NumberLookup", "INFERRED")
SIM_SWAP = Endpoint("POST", "api/SimSwap/GetChange", "INFERRED")
SHORTEN = Endpoint("POST", "api/Shortener", "INFERRED")
CLICK_EXPORT = Endpoint("GET", "api/BaseContactos/ExportDataClicks", "CODE")

#: Naive vendor timestamps (``fechaCreacion``) are Argentine local time [INFERRED].
VENDOR_TIMEZONE = "America/Argentina/Buenos_Aires"
#: Per-destination statuses of an accepted send [DOC]; any other value rejects that destination.
ACCEPTED_SEND_STATUSES = frozenset({"OK", "OK, with line break"})
LINE_BREAK_STATUS = "OK, with line break"
#: Largest MessageWpp batch is not published; ours by default (connection extra ``batch_size``).
DEFAULT_BATCH_SIZE = 500
#: Meta error codes of a status that say the recipient opted out of this business's messages [DOC: Meta's
#: error codes reference]: 131050 "the recipient has chosen to stop receiving marketing messages on WhatsApp
#: from your business". A block of the business shows only as 131026 "message undeliverable", which has
#: other causes (no WhatsApp, an old app): it is not read as an opt-out.
OPT_OUT_ERROR_CODES = frozenset({"131050"})


# ---- what the V1/V3 envelopes carry: Meta's WhatsApp Cloud API webhooks, relayed by Gupshup -------
# Teleprom's document [SEED] shows only the envelope and a thin status/incoming example; the payload is
# Meta's webhook as Gupshup relays it. The fields below are read from the public references [DOC]:
# * Meta, "Status messages webhook reference" (statuses[]: id, status, timestamp, recipient_id,
#   errors[] {code, title, message, error_data.details}, conversation {id, expiration_timestamp,
#   origin.type}, pricing {billable, pricing_model, category}):
#   https://developers.facebook.com/documentation/business-messaging/whatsapp/webhooks/reference/messages/status/
# * Meta, "Messages webhook reference" (contacts[] {profile.name, wa_id}; messages[] of type text,
#   button {payload, text}, interactive {button_reply|list_reply {id, title, description}}, image,
#   document, audio, video, sticker {id, mime_type, caption, filename}, location {latitude, longitude,
#   name, address}, contacts[], reaction {message_id, emoji}; context {id}):
#   https://developers.facebook.com/documentation/business-messaging/whatsapp/webhooks/reference/messages/
# * Gupshup, "Events" (V3 relay: statuses carry gs_id beside Meta's id; the ``enqueued`` event's
#   timestamp is an integer in MILLISECONDS, Meta's are strings in seconds):
#   https://partner-docs.gupshup.io/docs/events
#: Status texts of the envelopes (Gupshup adds ``enqueued``; Meta sends ``deleted`` when the user deletes).
META_STATUSES = frozenset({"enqueued", "sent", "delivered", "read", "failed", "deleted"})
#: Inbound message types whose object is a media item (id, mime_type, caption, url/link when relayed).
META_MEDIA_TYPES = frozenset({"image", "document", "audio", "video", "sticker", "voice"})
#: Interactive reply kinds (``interactive.type``) and the object each is under.
META_INTERACTIVE_REPLIES = ("button_reply", "list_reply", "nfm_reply")


# ---- shapes of INFERRED endpoints: request builders and answer readers -----------------------
def free_form_body(source_id: int, destinations: list[dict]) -> dict:
    """``destinations``: dicts with trackingNumber, dstNumber, text, mediaUrl."""
    return {"messages": [{"sourceId": source_id, "destinations": destinations}]}


def number_lookup_body(numbers: list[str]) -> dict:
    return {"numbers": numbers}


def number_lookup_results(answer: dict) -> list[dict]:
    return answer.get("results", [])


def sim_swap_body(number: str, max_age_hours: int) -> dict:
    return {"number": number, "maxAgeHours": max_age_hours}


def shorten_body(url: str) -> dict:
    return {"url": url}


def short_url(answer: dict) -> str:
    return answer["shortUrl"]


#: ``ExportDataClicks`` items, as a public Teleprom client reads them [CODE: field names; the body's
#: envelope is unpublished, so a bare list or ``{"links": [...]}`` is accepted]: ``idTemp`` (the link's
#: id), ``longUrl``, ``shortUrl``, ``qtyClicks`` and ``lastDatetimeClick`` (local time, no offset).
CLICK_ID, CLICK_LONG_URL, CLICK_SHORT_URL, CLICK_COUNT, CLICK_LAST_AT = (
    "idTemp",
    "longUrl",
    "shortUrl",
    "qtyClicks",
    "lastDatetimeClick",
)


def click_export_items(answer: Any) -> list[dict]:
    return answer if isinstance(answer, list) else (answer or {}).get("links", [])
