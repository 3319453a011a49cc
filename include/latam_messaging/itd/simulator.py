"""ITD Chile simulator: ``vendor-apis.md`` §2 on 127.0.0.1:8082, paths under ``/api/v2/whatsapp/``.

Every endpoint answers GET (query string) and POST (JSON; without ``Content-Type: application/json``
→ 415). API token: ``itd-demo-token`` (``Authorization: Bearer <token>``). Each send costs
``credit_usage`` credits (1 for TEXT, 2 for media); at zero → 502 NOT ENOUGH CREDITS.
"""

from __future__ import annotations

from typing import Any

import pendulum

from latam_messaging.common.phones import InvalidPhoneError, split_country_code
from latam_messaging.common.timeparse import parse_ddmmyyyy, to_epoch_ms
from latam_messaging.itd import contract
from latam_messaging.simulators.framework import HttpError, SimRequest, SimResponse, Simulator, route

TZ = contract.VENDOR_TIMEZONE
ACCOUNT_PHONE = "56932028245"
REPLIES = ("Hola, ¿cuál es el horario?", "Gracias", "SI", "No me interesa")


def _error(status: int, message: str | None, status_api: str) -> HttpError:
    body = {"statusApi": status_api, "code": status}
    if message is not None:
        body = {"message": message, **body}
    return HttpError(status, body)


def _bad(message: str = "BAD PARAMETERS") -> HttpError:
    return _error(400, message, "BAD_REQUEST")


def _local(epoch_s: float, fmt: str) -> str:
    return pendulum.from_timestamp(epoch_s, tz=TZ).format(fmt)


class ItdSimulator(Simulator):
    name = "itd"
    default_port = 8082
    fault_statuses = (500, 503)  # 502 is ITD's "no credits": injected faults must not look like it
    extra_config = {"credits": 1000, "api_tokens": ["itd-demo-token"], "reply_rate": 0.3}

    def reset_state(self) -> None:
        self.messages: dict[str, dict[str, Any]] = {}
        self.inbound: list[dict[str, Any]] = []
        self.credit_usage_total = 0

    # ---- request plumbing ----------------------------------------------------------------------
    def _params(self, request: SimRequest) -> dict[str, Any]:
        """Auth first, then the parameters from the query string (GET) or the JSON body (POST)."""
        header = request.header("Authorization") or ""
        scheme, _, token = header.partition(" ")
        if scheme.lower() != contract.DEFAULT_AUTH_SCHEME.lower() or token not in self.config["api_tokens"]:
            raise _error(401, "UNAUTHORIZED", "UNAUTHORIZED")
        if request.method == "GET":
            return dict(request.query)
        content_type = (request.header("Content-Type") or "").split(";")[0].strip().lower()
        if content_type != "application/json":
            raise HttpError(415, {"message": "Unsupported Media Type", "code": 415})
        body = request.json() if request.body else {}
        if not isinstance(body, dict):
            raise _bad()
        return body

    # ---- sendWhatsapp --------------------------------------------------------------------------
    @route("GET", contract.SEND.path)
    @route("POST", contract.SEND.path)
    def send(self, request: SimRequest) -> SimResponse:
        params = self._params(request)
        content_type = str(params.get("content_type") or "").upper()
        if content_type not in contract.CONTENT_TYPES:
            raise _bad(contract.BAD_CONTENT_TYPE_TEXT)
        content, national = params.get("content"), str(params.get("phone") or "")
        prefix = str(params.get("prefijo") or contract.DEFAULT_PREFIX)
        if not content or not national.isdigit() or not prefix.isdigit():
            raise _bad()
        if content_type != "TEXT" and not str(content).startswith(("http://", "https://")):
            raise _bad()
        cost = 1 if content_type == "TEXT" else 2
        with self.lock:
            if int(self.config["credits"]) < cost:
                raise _error(502, "NOT ENOUGH CREDITS", "NOT_CREDITS")
            self.config["credits"] = int(self.config["credits"]) - cost
            self.credit_usage_total += cost
        key = self.new_uuid()
        phone = prefix + national
        now = self.now()
        record = {
            "uuid": key,
            "phone": phone,
            "content_type": content_type,
            "accepted_at": now,
            "credit_usage": cost,
            "timeline": self.timeline(key, phone),
        }
        with self.lock:
            self.messages[key] = record
        self._schedule(record)
        return SimResponse(200, {"uuid": key, "statusApi": "OK", "code": 200})

    def timeline(self, key: str, phone: str) -> list[str]:
        fate = self.fraction("fate", phone, key)
        if phone.endswith("0000") or fate < 0.03:
            return ["MESSAGE QUEUED", "FAILED"]
        if fate < 0.25:
            return ["MESSAGE QUEUED", "SENT", "DELIVERED"]
        return ["MESSAGE QUEUED", "SENT", "DELIVERED", "READ"]

    def _schedule(self, record: dict[str, Any]) -> None:
        accepted = record["accepted_at"]
        for step, status in enumerate(record["timeline"][1:], start=1):
            due = accepted + step * self.step
            # as the document prints it: three string fields and a trailing comma
            event = (
                f'{{\n  "sent_at":"{_local(due, "DD/MM/YYYY HH:mm")}",\n  "status":"{status}",\n'
                f'  "uuid":"{record["uuid"]}",\n}}'
            ).encode()
            self.webhooks.schedule(due, "status", event)
        if record["timeline"][-1] == "READ" and self.fraction("reply", record["uuid"]) < float(
            self.config["reply_rate"]
        ):
            due = accepted + (len(record["timeline"]) + 1) * self.step
            text = REPLIES[int(self.fraction("text", record["uuid"]) * len(REPLIES))]
            item = {
                "whatsappKey": "",
                "uuid": self.new_uuid(),
                "accountPhone": ACCOUNT_PHONE,
                "senderPhone": record["phone"],
                "senderName": "Cliente",
                "senderType": "user",
                "content": text,
                "createdAt": int(due * 1000),
                "sendAt": int(due * 1000),
                "direction": 1,  # as in both of the document's received-message examples
                "messageType": "chat",
                "comments": "READ",
            }
            with self.lock:
                self.inbound.append(item)
            hook_body = {
                k: item[k] for k in ("uuid", "accountPhone", "senderPhone", "content", "sendAt", "messageType")
            }
            hook_body.update(caption="", url="", title="", description="", lng="", lat="", direction=1)
            self.webhooks.schedule(due, "inbound", hook_body)

    def customer_says(self, phone: str, text: str) -> dict[str, Any]:
        """A message from ``phone``: listed by ``recievedWhatsapp`` and posted to the inbound webhook."""
        now_ms = int(self.now() * 1000)
        item = {
            "whatsappKey": "",
            "uuid": self.new_uuid(),
            "accountPhone": ACCOUNT_PHONE,
            "senderPhone": phone,
            "senderName": "Cliente",
            "senderType": "user",
            "content": text,
            "createdAt": now_ms,
            "sendAt": now_ms,
            "direction": 1,
            "messageType": "chat",
            "comments": "READ",
        }
        with self.lock:
            self.inbound.append(item)
        hook_body = {k: item[k] for k in ("uuid", "accountPhone", "senderPhone", "content", "sendAt", "messageType")}
        hook_body.update(caption="", url="", title="", description="", lng="", lat="", direction=1)
        self.webhooks.schedule(self.now(), "inbound", hook_body)
        return {"id": item["uuid"]}

    # ---- statusWhatsappByKey -------------------------------------------------------------------
    @route("GET", contract.STATUS.path)
    @route("POST", contract.STATUS.path)
    def status(self, request: SimRequest) -> SimResponse:
        params = self._params(request)
        if "key" not in params:
            raise _bad(contract.MISSING_KEY_TEXT)
        key = str(params["key"] or "")
        if not key:
            raise _bad()
        with self.lock:
            record = self.messages.get(key)
        if record is None:
            raise _error(503, contract.MESSAGE_NOT_FOUND_TEXT, contract.INVALID_MESSAGE_STATUS)
        elapsed_steps = int((self.now() - record["accepted_at"]) / self.step) if self.step > 0 else 99
        timeline = record["timeline"]
        reached = timeline[: min(len(timeline), elapsed_steps + 1)]
        data: dict[str, Any] = {"status": reached[-1], "credit_usage": record["credit_usage"]}
        fmt = "YYYY-MM-DD HH:mm:ss.S"
        if "SENT" in reached:
            data["sent_at"] = _local(record["accepted_at"] + self.step, fmt)
        if "DELIVERED" in reached:
            data["delivered_at"] = _local(record["accepted_at"] + 2 * self.step, fmt)
        return SimResponse(200, {"statusApi": "OK", "code": 200, "data": data})

    # ---- creditsWhatsapp -----------------------------------------------------------------------
    @route("GET", contract.CREDITS.path)
    @route("POST", contract.CREDITS.path)
    def credits(self, request: SimRequest) -> SimResponse:
        self._params(request)
        return SimResponse(200, {"statusApi": "OK", "code": 200, "data": int(self.config["credits"])})

    # ---- recievedWhatsapp ----------------------------------------------------------------------
    @route("GET", contract.RECEIVED.path)
    @route("POST", contract.RECEIVED.path)
    def received(self, request: SimRequest) -> SimResponse:
        params = self._params(request)
        sender = str(params.get("senderPhone") or "")
        if not sender:
            raise _bad(contract.MISSING_SENDER_TEXT)
        try:
            day = parse_ddmmyyyy(str(params.get("sendAt") or ""))
        except ValueError as exc:
            raise _bad(contract.BAD_SEND_AT_TEXT) from exc
        try:
            top = int(params.get("top", 100))
        except (TypeError, ValueError) as exc:
            raise _bad() from exc
        try:
            split_country_code(sender)
        except InvalidPhoneError:
            sender = contract.DEFAULT_PREFIX + sender  # a national number: ITD assumes Chile
        start = pendulum.datetime(day.year, day.month, day.day, tz=TZ)
        window = (to_epoch_ms(start), to_epoch_ms(start.add(days=1)))
        now_ms = int(self.now() * 1000)
        with self.lock:
            found = [
                m
                for m in self.inbound
                if m["senderPhone"] == sender and window[0] <= m["sendAt"] < window[1] and m["sendAt"] <= now_ms
            ]
        if not found:
            raise _error(503, contract.NO_MESSAGES_TEXT, contract.INVALID_MESSAGE_STATUS)
        found.sort(key=lambda m: m["sendAt"], reverse=True)
        return SimResponse(200, {"statusApi": "OK", "code": 200, "data": found[: max(top, 0)]})

    # ---- /_sim/state ---------------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        state = super().state()
        state.update(
            accepted_messages=len(self.messages),
            credits=int(self.config["credits"]),
            credit_usage_total=self.credit_usage_total,
            inbound_messages=len(self.inbound),
            messages=[
                {"id": m["uuid"], "phone": m["phone"], "tracking": None, "content_type": m["content_type"]}
                for m in self.messages.values()
            ],
        )
        return state
