"""Teleprom simulator: ``vendor-apis.md`` §1 on 127.0.0.1:8081.

Users (username / password → passwordState): ``demo``/``demo-pass`` (Ok), ``soon``/``soon-pass``
(ExpiresSoon), ``expired``/``expired-pass`` (Expired). Tokens live 24 h and are sticky per user.
A message's fate is fixed by the seed and its tracking number: most are read, some stop at
delivered, a few fail; destinations ending in ``0000`` always fail.
"""

from __future__ import annotations

import base64
import hashlib
from typing import Any

import pendulum

from latam_messaging.simulators.framework import HttpError, SimRequest, SimResponse, Simulator, route
from latam_messaging.teleprom import contract

TOKEN_LIFETIME_S = 24 * 3600
VENDOR_TZ = contract.VENDOR_TIMEZONE
#: Meta errors a failed V1/V3 status carries (code, title, details), as in Meta's error-code reference.
META_ERRORS = (
    (131047, "Re-engagement message", "Message failed to send because more than 24 hours have passed since the customer last replied to this number."),
    (131026, "Message Undeliverable", "Unable to deliver message. The recipient may not be a WhatsApp user or has not accepted the terms."),
    (131049, "This message was not delivered to maintain healthy ecosystem engagement.", "Meta chose not to deliver this marketing message."),
    (131050, "Unable to deliver the message. This recipient has chosen to stop receiving marketing messages on WhatsApp from your business.", None),
)

USERS = {
    "demo": ("demo-pass", "Ok"),
    "soon": ("soon-pass", "ExpiresSoon"),
    "expired": ("expired-pass", "Expired"),
}

ACCOUNTS = [
    {"id": 39, "srcName": "MaytenCloud", "source": "5493513582830"},
    {"id": 41, "srcName": "MaytenVentas", "source": "5491151234567"},
]

TEMPLATES = [
    {
        "id": 24,
        "name": "shipping_confirmation",
        "parameters": 1,
        "idRuteo": 39,
        "status": "Accepted",
        "category": "SHIPPING_UPDATE",
        "structure": "Your package has been shipped. It will be delivered in {{1}} business days.",
    },
    {
        "id": 25,
        "name": "welcome",
        "parameters": 0,
        "idRuteo": 39,
        "status": "Accepted",
        "category": "ACCOUNT_UPDATE",
        "structure": "Bienvenido a Mayten Cloud.",
    },
    {
        "id": 26,
        "name": "payment_reminder",
        "parameters": 2,
        "idRuteo": 39,
        "status": "Accepted",
        "category": "PAYMENT_UPDATE",
        "structure": "Hola {{1}}, tu factura de {{2}} vence mañana.",
    },
    {
        "id": 27,
        "name": "appointment_reminder",
        "parameters": 3,
        "idRuteo": 41,
        "status": "Accepted",
        "category": "APPOINTMENT_UPDATE",
        "structure": "Hola {{1}}, te esperamos el {{2}} a las {{3}}.",
    },
    {
        "id": 28,
        "name": "promo_black_friday",
        "parameters": 1,
        "idRuteo": 41,
        "status": "Rejected",
        "category": "MARKETING",
        "structure": "{{1}}: 30% de descuento solo hoy.",
    },
    {
        "id": 29,
        "name": "order_update",
        "parameters": 2,
        "idRuteo": 41,
        "status": "Pending",
        "category": "SHIPPING_UPDATE",
        "structure": "Tu pedido {{1}} está {{2}}.",
    },
]

CARRIERS = ("Personal", "Movistar", "Claro")
COUNTRY_PREFIXES = {"54": "AR", "56": "CL", "55": "BR", "52": "MX", "57": "CO", "51": "PE", "598": "UY"}


def _template_api(item: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": item["id"],
        "name": item["name"],
        "structure": item["structure"],
        "example": item.get("example", item["structure"]),
        "status": item["status"],
        "type": item.get("type", "TEXT"),
        "idioma": item.get("idioma", "es"),
        "fechaCreacion": item.get("fechaCreacion", "2022-05-13T16:43:11"),
        "category": item["category"],
        "parameters": item["parameters"],
        "idRuteo": item["idRuteo"],
    }


def _valid_number(number: Any) -> bool:
    return isinstance(number, str) and number.isdigit() and 10 <= len(number) <= 15


def _country(number: str) -> str | None:
    for prefix in sorted(COUNTRY_PREFIXES, key=len, reverse=True):
        if number.startswith(prefix):
            return COUNTRY_PREFIXES[prefix]
    return None


def _local_iso(epoch_s: float, fraction_digits: int = 3) -> str:
    moment = pendulum.from_timestamp(epoch_s, tz=VENDOR_TZ)
    micro = f"{moment.microsecond:06d}{'0' * 6}"[:fraction_digits]
    return moment.format("YYYY-MM-DDTHH:mm:ss") + f".{micro}" + moment.format("Z")


class TelepromSimulator(Simulator):
    name = "teleprom"
    default_port = 8081
    #: ``webhook_versions``: account id → "V0" (default), "V1" or "V3", the webhook format that account's
    #: callbacks use (Teleprom configures it per account: ``/_sim/config {"webhook_versions": {"41": "V1"}}``),
    #: or ``{"status": "V1", "incoming": "V3"}`` for one format per kind of event
    extra_config = {
        "templates": None,
        "accounts": None,
        "inbound_reply_rate": 0.1,
        "reject_all_tokens": False,
        "webhook_versions": {},
    }

    def reset_state(self) -> None:
        self.tokens: dict[str, tuple[str, float]] = {}  # token -> (user, expires epoch)
        self.user_tokens: dict[str, str] = {}
        self.logins = 0
        self.messages: list[tuple] = []  # (id, phone, tracking, source, hsm, accepted_at, kind, params)
        self.tracking_counts: dict[str, int] = {}
        self.short_links: dict[str, dict[str, Any]] = {}
        self.shorten_calls = 0

    def config_actions(self) -> set[str]:
        return {"expire_tokens"}

    def apply_action(self, key: str, value: Any) -> None:
        if key == "expire_tokens" and value:
            past = self.now() - 1
            self.tokens = {token: (user, past) for token, (user, _) in self.tokens.items()}

    # ---- catalogue -----------------------------------------------------------------------------
    def catalogue(self) -> tuple[list[dict], list[dict]]:
        templates = self.config["templates"] if self.config["templates"] is not None else TEMPLATES
        accounts = self.config["accounts"] if self.config["accounts"] is not None else ACCOUNTS
        return templates, accounts

    # ---- auth ----------------------------------------------------------------------------------
    @route("POST", contract.AUTH.path)
    def auth(self, request: SimRequest) -> SimResponse:
        body = request.json()
        if not isinstance(body, dict):
            raise HttpError(400, {"message": "username and password are required"})
        user, password = body.get("username"), body.get("password")
        if user not in USERS or USERS[user][0] != password:
            raise HttpError(401, {"message": "Usuario o contraseña incorrectos"})
        with self.lock:
            self.logins += 1
            now = self.now()
            token = self.user_tokens.get(user)
            if token is None or self.tokens[token][1] <= now:
                token = (
                    base64.urlsafe_b64encode(hashlib.sha256(f"{self.seed}:{user}:{now}".encode()).digest())
                    .decode()
                    .rstrip("=")
                )
                self.tokens[token] = (user, now + TOKEN_LIFETIME_S)
                self.user_tokens[user] = token
            expires = self.tokens[token][1]
        return SimResponse(200, {"token": token, "expires": _local_iso(expires, 7), "passwordState": USERS[user][1]})

    def _require_token(self, request: SimRequest) -> str:
        header = request.header("Authorization") or ""
        token = header[7:] if header.lower().startswith("bearer ") else ""
        with self.lock:
            entry = self.tokens.get(token)
            if entry is None or entry[1] <= self.now() or self.config["reject_all_tokens"]:
                raise HttpError(401, None)
            return entry[0]

    # ---- catalogue endpoints -------------------------------------------------------------------
    @route("GET", contract.TEMPLATES.path)
    def get_templates(self, request: SimRequest) -> SimResponse:
        self._require_token(request)
        templates, _ = self.catalogue()
        return SimResponse(200, {"hsms": [_template_api(t) for t in templates]})

    @route("GET", contract.ACCOUNTS.path)
    def get_accounts(self, request: SimRequest) -> SimResponse:
        self._require_token(request)
        _, accounts = self.catalogue()
        return SimResponse(200, {"ruteadors": [dict(a) for a in accounts]})

    # ---- sends ---------------------------------------------------------------------------------
    def _messages_of(self, request: SimRequest) -> list[dict]:
        body = request.json()
        messages = body.get("messages") if isinstance(body, dict) else None
        if not isinstance(messages, list) or not messages:
            raise HttpError(400, {"message": "The messages field is required."})
        for message in messages:
            if not isinstance(message, dict) or not isinstance(message.get("destinations"), list):
                raise HttpError(400, {"message": "Each message needs sourceId and destinations."})
            if not isinstance(message.get("sourceId"), int):
                raise HttpError(400, {"message": "sourceId must be a number."})
        return messages

    @route("POST", contract.SEND_HSM.path)
    def send_hsm(self, request: SimRequest) -> SimResponse:
        self._require_token(request)
        messages = self._messages_of(request)
        templates, accounts = self.catalogue()
        by_template = {t["id"]: t for t in templates}
        account_ids = {a["id"] for a in accounts}
        responses = []
        for message in messages:
            if not isinstance(message.get("hsmId"), int):
                raise HttpError(400, {"message": "hsmId must be a number."})
            template = by_template.get(message["hsmId"])
            if message["sourceId"] not in account_ids:
                refusal = "Account not found"
            elif template is None:
                refusal = "Template not found"
            elif template["idRuteo"] != message["sourceId"]:
                refusal = "Template does not belong to account"
            elif template["status"] != "Accepted":
                refusal = "Template not approved"
            else:
                refusal = None
            for destination in message["destinations"]:
                params = destination.get("hsmParams") or []
                responses.append(self._accept(destination, message, refusal, params, kind="hsm"))
        return SimResponse(200, {"responses": responses, "trackUuid": self.new_uuid()})

    @route("POST", contract.SEND_FREE_FORM.path)
    def send_free_form(self, request: SimRequest) -> SimResponse:
        self._require_token(request)
        messages = self._messages_of(request)
        _, accounts = self.catalogue()
        account_ids = {a["id"] for a in accounts}
        responses = []
        for message in messages:
            refusal = None if message["sourceId"] in account_ids else "Account not found"
            for destination in message["destinations"]:
                own = refusal
                if own is None and not (destination.get("text") or destination.get("mediaUrl")):
                    own = "text or mediaUrl is required"
                responses.append(self._accept(destination, message, own, [destination.get("text") or ""], kind="free"))
        return SimResponse(200, {"responses": responses, "trackUuid": self.new_uuid()})

    def _accept(self, destination: Any, message: dict, refusal: str | None, params: list, kind: str) -> dict:
        if not isinstance(destination, dict):
            raise HttpError(400, {"message": "Each destination must be an object."})
        tracking = str(destination.get("trackingNumber") or "")
        phone = destination.get("dstNumber")
        if refusal is None and not _valid_number(phone):
            refusal = "Invalid destination number"
        if refusal is not None:
            return {"trackingNumber": tracking, "messageId": None, "status": refusal}
        status = "OK, with line break" if any("\n" in str(p) for p in params) else "OK"
        message_id = self.new_uuid()
        now = self.now()
        with self.lock:
            self.messages.append(
                (message_id, phone, tracking, message["sourceId"], message.get("hsmId"), now, kind, list(params))
            )
            self.tracking_counts[tracking] = self.tracking_counts.get(tracking, 0) + 1
        self._schedule_status_webhooks(message_id, phone, tracking, message["sourceId"], now)
        return {"trackingNumber": tracking, "messageId": message_id, "status": status}

    def timeline(self, tracking: str, phone: str) -> list[str]:
        """The statuses one message goes through, fixed by the seed and its tracking number."""
        fate = self.fraction("fate", tracking, phone)
        if self.opted_out(phone):  # Meta refuses it: 131050, the recipient stopped marketing messages
            return ["failed"]
        if phone.endswith("0000") or fate < 0.03:
            return ["enqueued", "failed"]
        if fate < 0.05:
            return ["failed"]
        if fate < 0.25:
            return ["enqueued", "sent", "delivered"]
        return ["enqueued", "sent", "delivered", "read"]

    def webhook_version(self, source_id: int, kind: str = "status") -> str:
        chosen = (self.config.get("webhook_versions") or {}).get(str(source_id), "V0")
        if isinstance(chosen, dict):
            chosen = chosen.get(kind, "V0")
        version = str(chosen).upper()
        return version if version in ("V0", "V1", "V3") else "V0"

    def _schedule_status_webhooks(
        self, message_id: str, phone: str, tracking: str, source_id: int, accepted_at: float
    ) -> None:
        if not self.config.get("webhook_url"):
            return
        _, accounts = self.catalogue()
        account = next((a for a in accounts if a["id"] == source_id), {})
        version = self.webhook_version(source_id)
        statuses = self.timeline(tracking, phone)
        spelling = "senttime" if self.fraction("spelling", tracking) < 0.5 else "sentTime"
        wamid = "wamid." + base64.b64encode(hashlib.sha256(message_id.encode()).digest()[:24]).decode()
        for step, status in enumerate(statuses, start=1):
            due = accepted_at + step * self.step
            if version == "V0":
                event: Any = {
                    "fechaHora": _local_iso(due),
                    "identificador": tracking,
                    "telefono": phone,
                    "resultado": status,
                    "empresa": account.get("srcName", ""),
                    "origen": "WSP",
                    spelling: f"{(due - accepted_at) * 1000:.4f}",
                }
            else:  # the V1 example's shape: gs_id is the id MessageWpp answered, id WhatsApp's own
                value = {
                    "messaging_product": "whatsapp",
                    "statuses": [self._meta_status(wamid, message_id, status, due, phone, tracking, source_id)],
                }
                event = self._envelope(version, "STATUS", value)
            self.webhooks.schedule(due, version, event)
        if statuses[-1] == "read" and self.fraction("reply", tracking) < float(self.config["inbound_reply_rate"]):
            due = accepted_at + (len(statuses) + 1) * self.step
            version = self.webhook_version(source_id, "incoming")
            if version == "V0":
                event = {
                    "fechaHora": _local_iso(due),
                    "identificador": tracking,
                    "telefono": phone,
                    "resultado": "received",
                    "empresa": account.get("srcName", ""),
                    "origen": "WSP",
                    "mensaje": "Gracias, recibido",
                }
            else:  # the V3 example's shape: a reply (button, text, list row, photo, place or reaction)
                value = {
                    "contacts": [{"profile": {"name": "Cliente"}, "wa_id": phone}],
                    "messages": [self._meta_reply(message_id, wamid, phone, tracking, account, due)],
                    "messaging_product": "whatsapp",
                    "metadata": {"display_phone_number": account.get("source", ""), "phone_number_id": str(source_id)},
                }
                event = self._envelope(version, "INCOMING", value)
            self.webhooks.schedule(due, version, event)

    def customer_says(self, phone: str, text: str) -> dict[str, Any]:
        """A WhatsApp message from ``phone``, posted in the incoming format of the account that last wrote to
        it (V0 ``received``, or a Meta text message in a V1/V3 envelope, replying to that message)."""
        if not self.config.get("webhook_url"):
            raise HttpError(409, {"message": "no webhook_url configured: Teleprom delivers inbound only by webhook"})
        _, accounts = self.catalogue()
        with self.lock:
            last = next((m for m in reversed(self.messages) if m[1] == phone), None)
        source_id = last[3] if last else accounts[0]["id"]
        account = next((a for a in accounts if a["id"] == source_id), {})
        due = self.now()
        version = self.webhook_version(source_id, "incoming")
        message_id = self.new_uuid()
        if version == "V0":
            event: Any = {
                "fechaHora": _local_iso(due),
                "identificador": last[2] if last else message_id,
                "telefono": phone,
                "resultado": "received",
                "empresa": account.get("srcName", ""),
                "origen": "WSP",
                "mensaje": text,
            }
        else:
            wamid = "wamid." + base64.b64encode(hashlib.sha256(message_id.encode()).digest()[:24]).decode()
            reply: dict[str, Any] = {"from": phone, "id": wamid, "timestamp": str(int(due)), "type": "text", "text": {"body": text}}
            if last:
                reply["context"] = {"from": account.get("source", ""), "gs_id": last[0], "id": last[0]}
            value = {
                "contacts": [{"profile": {"name": "Cliente"}, "wa_id": phone}],
                "messages": [reply],
                "messaging_product": "whatsapp",
                "metadata": {"display_phone_number": account.get("source", ""), "phone_number_id": str(source_id)},
            }
            event = self._envelope(version, "INCOMING", value)
            message_id = wamid
        self.webhooks.schedule(due, version, event)
        return {"id": message_id}

    def _meta_status(
        self, wamid: str, message_id: str, status: str, due: float, phone: str, tracking: str, source_id: int
    ) -> dict[str, Any]:
        """One status as Meta sends it through Gupshup: ``enqueued`` (Gupshup's) with an integer timestamp
        in milliseconds, the others in seconds as strings; ``sent`` with its conversation and pricing,
        ``failed`` with an ``errors[]`` entry."""
        item: dict[str, Any] = {"id": wamid, "gs_id": message_id, "status": status, "recipient_id": phone}
        item["timestamp"] = int(due * 1000) if status == "enqueued" else str(int(due))
        if status == "sent":
            day = pendulum.from_timestamp(due, tz="UTC").format("YYYYMMDD")
            category = "marketing" if self.fraction("category", tracking) < 0.7 else "utility"
            item["conversation"] = {
                "id": hashlib.sha256(f"{source_id}:{phone}:{day}".encode()).hexdigest()[:32],
                "expiration_timestamp": str(int(due) + 24 * 3600),
                "origin": {"type": category},
            }
            item["pricing"] = {"billable": True, "pricing_model": "CBP", "category": category}
        if status == "failed":
            code, title, details = META_ERRORS[int(self.fraction("error", tracking) * len(META_ERRORS))]
            if self.opted_out(phone):
                code, title, details = next(e for e in META_ERRORS if e[0] == 131050)
            error: dict[str, Any] = {"code": code, "title": title, "message": title}
            if details:
                error["error_data"] = {"details": details}
            item["errors"] = [error]
        return item

    def _meta_reply(
        self, message_id: str, wamid: str, phone: str, tracking: str, account: dict[str, Any], due: float
    ) -> dict[str, Any]:
        """A customer's answer in one of Meta's inbound message types, fixed by the tracking number."""
        reply: dict[str, Any] = {
            "context": {"from": account.get("source", ""), "gs_id": message_id, "id": wamid},
            "from": phone,
            "id": "wamid." + self.new_uuid(),
            "timestamp": str(int(due)),
        }
        kinds = (
            ("button", {"payload": "Gracias, recibido", "text": "Gracias, recibido"}),
            ("text", {"body": "Hola, ¿cuándo abren?"}),
            ("interactive", {"type": "list_reply", "list_reply": {"id": "turno-2", "title": "Martes 10 hs"}}),
            ("image", {"id": self.new_uuid(), "mime_type": "image/jpeg", "sha256": "0" * 64, "caption": "comprobante"}),
            ("location", {"latitude": -31.4135, "longitude": -64.18105, "name": "Casa"}),
            ("reaction", {"message_id": wamid, "emoji": "👍"}),
        )
        kind, body = kinds[int(self.fraction("reply_kind", tracking) * len(kinds))]
        reply.update({"type": kind, kind: body})
        if kind == "reaction":  # a reaction names the message it reacts to itself, without a context
            del reply["context"]
        return reply

    def _envelope(self, version: str, kind: str, value: dict[str, Any]) -> dict[str, Any]:
        return {
            "Uuid": self.new_uuid(),
            "Id": "",
            "Version": version[1:],
            "Type": kind,
            "Payload": {
                "gs_app_id": "APP_ID",
                "object": "whatsapp_business_account",
                "entry": [{"changes": [{"value": value, "field": "messages"}], "id": "275578198964163"}],
            },
        }

    def webhook_posts(self, channel: str, events: list[Any]):
        """V0 webhooks come in bulk (one JSON array per post); V1 and V3 one envelope per post."""
        if channel == "V0":
            yield self.channel_url(channel), events, events
            return
        for event in events:
            yield self.channel_url(channel), event, [event]

    # ---- number checks, shortener --------------------------------------------------------------
    @route("POST", contract.NUMBER_LOOKUP.path)
    def number_lookup(self, request: SimRequest) -> SimResponse:
        self._require_token(request)
        body = request.json()
        numbers = body.get("numbers") if isinstance(body, dict) else None
        if not isinstance(numbers, list) or not numbers or len(numbers) > 1000:
            raise HttpError(400, {"message": "numbers must be a list of 1 to 1000 numbers"})
        results = []
        for number in numbers:
            number = str(number)
            draw = self.fraction("lookup", number)
            valid = _valid_number(number) and draw >= 0.05
            mobile = valid and (not number.startswith("54") or number.startswith("549")) and draw >= 0.15
            results.append(
                {
                    "number": number,
                    "valid": valid,
                    "carrier": CARRIERS[int(draw * 1000) % len(CARRIERS)] if valid else None,
                    "lineType": ("mobile" if mobile else "landline") if valid else "unknown",
                    "ported": valid and draw < 0.25,
                    "country": _country(number) if valid else None,
                }
            )
        return SimResponse(200, {"results": results})

    @route("POST", contract.SIM_SWAP.path)
    def sim_swap(self, request: SimRequest) -> SimResponse:
        self._require_token(request)
        body = request.json()
        number = body.get("number") if isinstance(body, dict) else None
        max_age = body.get("maxAgeHours", 240) if isinstance(body, dict) else None
        if not _valid_number(number) or not isinstance(max_age, int) or max_age <= 0:
            raise HttpError(400, {"message": "number (digits with country code) and maxAgeHours are required"})
        draw = self.fraction("simswap", number)
        last_change = None
        changed = False
        if draw < 0.3:
            hours_ago = 1 + draw / 0.3 * 720  # within the last 30 days
            last_change = self.now() - hours_ago * 3600
            changed = hours_ago <= max_age
        return SimResponse(
            200,
            {
                "number": number,
                "changed": changed,
                "lastChange": _local_iso(last_change) if last_change else None,
            },
        )

    @route("POST", contract.SHORTEN.path)
    def shorten(self, request: SimRequest) -> SimResponse:
        self._require_token(request)
        body = request.json()
        url = body.get("url") if isinstance(body, dict) else None
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise HttpError(400, {"message": "url must be an absolute http(s) URL"})
        code = base64.urlsafe_b64encode(hashlib.sha256(url.encode()).digest())[:6].decode()
        short = f"https://tpm.li/{code}"
        with self.lock:
            self.shorten_calls += 1
            self.short_links.setdefault(
                short,
                {
                    contract.CLICK_ID: len(self.short_links) + 1,
                    contract.CLICK_LONG_URL: url,
                    contract.CLICK_SHORT_URL: short,
                    contract.CLICK_COUNT: 0,
                    contract.CLICK_LAST_AT: None,
                },
            )
        return SimResponse(200, {"shortUrl": short})

    @route("GET", contract.CLICK_EXPORT.path)
    def click_export(self, request: SimRequest) -> SimResponse:
        self._require_token(request)
        with self.lock:
            return SimResponse(200, list(self.short_links.values()))

    def control(self, action: str, request: SimRequest) -> SimResponse | None:
        """``POST /_sim/click {"short_url"}``: a customer opens one of our short links (one click, counted
        in ``ExportDataClicks``); 404 for a link this simulator did not make."""
        if action != "click" or request.method != "POST":
            return None
        body = request.json()
        short = body.get("short_url") if isinstance(body, dict) else None
        with self.lock:
            link = self.short_links.get(short) if isinstance(short, str) else None
            if link is None:
                raise HttpError(404, {"message": "no such short link"})
            link[contract.CLICK_COUNT] += 1
            link[contract.CLICK_LAST_AT] = pendulum.now(contract.VENDOR_TIMEZONE).format("YYYY-MM-DDTHH:mm:ss")
            return SimResponse(200, {"shortUrl": short, "qtyClicks": link[contract.CLICK_COUNT]})

    # ---- /_sim/state ---------------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        state = super().state()
        state.update(
            accepted_messages=len(self.messages),
            logins=self.logins,
            shorten_calls=self.shorten_calls,
            duplicate_trackings=sorted(t for t, n in self.tracking_counts.items() if n > 1 and t),
            messages=[
                {
                    "id": m[0],
                    "phone": m[1],
                    "tracking": m[2],
                    "account_id": m[3],
                    "template_id": m[4],
                    "kind": m[6],
                    "params": m[7],
                }
                for m in self.messages
            ],
        )
        return state
