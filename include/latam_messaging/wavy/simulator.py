"""Wavy simulator: ``vendor-apis.md`` §3 on 127.0.0.1:8083.

Credentials (headers ``UserName`` / ``AuthenticationToken``, names matched case-insensitively):
``demo@wavy.global`` / ``wavy-demo-token``. Sends above ``send_rate_limit`` requests/s and status
queries above ``status_rate_limit``/s get 429. Destinations ending in ``0000`` fail with 202
INVALID_DESTINATION_NUMBER; a seeded few get 201 NO_CREDIT or 103 REJECTED_BY_CARRIER.
"""

from __future__ import annotations

import collections
import heapq
import itertools
import time
from typing import Any

import pendulum

from latam_messaging.simulators.framework import HttpError, SimRequest, SimResponse, Simulator, route
from latam_messaging.wavy import contract

TZ = "America/Sao_Paulo"
CARRIERS = ((1, "VIVO"), (2, "CLARO"), (3, "TIM"), (5, "PERSONAL"))
EXPIRY_FIELDS = ("expiresAt", "expiresInMinutes", "expiresDate")
SCHEDULE_FIELDS = ("scheduledDate", "scheduledAt", "delayedInMinutes")
MAX_SEARCH_DAYS = 5


def _error(status: int, message: str) -> HttpError:
    return HttpError(status, {"errorCode": status, "errorMessage": message})


def _iso(epoch_s: float) -> str:
    return pendulum.from_timestamp(epoch_s, tz=TZ).isoformat()


class _Window:
    """Requests in the last second, to answer 429 above a rate like the vendor."""

    def __init__(self) -> None:
        self.stamps: collections.deque[float] = collections.deque()

    def allow(self, rate: float) -> bool:
        now = time.monotonic()
        while self.stamps and now - self.stamps[0] >= 1.0:
            self.stamps.popleft()
        if len(self.stamps) >= rate:
            return False
        self.stamps.append(now)
        return True


class WavySimulator(Simulator):
    name = "wavy"
    default_port = 8083
    extra_config = {
        "users": {"demo@wavy.global": "wavy-demo-token"},
        "send_rate_limit": contract.SEND_REQUESTS_PER_S,
        "status_rate_limit": contract.STATUS_QUERIES_PER_S,
        "reply_rate": 0.2,
    }

    def reset_state(self) -> None:
        self.messages: dict[str, dict[str, Any]] = {}
        self.by_correlation: dict[str, list[str]] = {}
        self.status_queue: list[tuple[float, int, str, int]] = []  # (due, seq, message id, level)
        self.mo_queue: list[tuple[float, int, dict]] = []
        self.mo_all: list[dict[str, Any]] = []
        self._seq = itertools.count()
        self._windows = {"send": _Window(), "status": _Window()}

    # ---- plumbing ------------------------------------------------------------------------------
    def _authorise(self, request: SimRequest, kind: str) -> None:
        user = request.header(contract.USER_HEADER)
        token = request.header(contract.TOKEN_HEADER)
        if not user or self.config["users"].get(user) != token:
            raise _error(401, "Authentication Error: invalid UserName or AuthenticationToken")
        limit = float(self.config[f"{kind}_rate_limit"])
        with self.lock:
            allowed = self._windows[kind].allow(limit)
        if not allowed:
            raise HttpError(429, {"errorCode": 429, "errorMessage": "Too Many Requests"}, {"Retry-After": "1"})

    def _check_message(self, item: Any, where: str = "") -> dict[str, Any]:
        if not isinstance(item, dict):
            raise _error(400, f"{where}message must be an object")
        destination = item.get("destination")
        if not isinstance(destination, str) or not destination.isdigit() or not 10 <= len(destination) <= 15:
            raise _error(400, f"{where}destination must be 10 to 15 digits with country code")
        text = item.get("messageText")
        if not isinstance(text, str) or not text:
            raise _error(400, f"{where}messageText is required")
        if len(text) > contract.MAX_TEXT:
            raise _error(400, f"{where}messageText longer than {contract.MAX_TEXT} characters")
        if len(str(item.get("correlationId") or "")) > contract.MAX_CORRELATION_ID:
            raise _error(400, f"{where}correlationId longer than {contract.MAX_CORRELATION_ID} characters")
        if len(str(item.get("extraInfo") or "")) > contract.MAX_EXTRA_INFO:
            raise _error(400, f"{where}extraInfo longer than {contract.MAX_EXTRA_INFO} characters")
        if sum(f in item for f in EXPIRY_FIELDS) > 1:
            raise _error(400, f"{where}use only one of {', '.join(EXPIRY_FIELDS)}")
        if sum(f in item for f in SCHEDULE_FIELDS) > 1:
            raise _error(400, f"{where}use only one of {', '.join(SCHEDULE_FIELDS)}")
        return item

    # ---- sends ---------------------------------------------------------------------------------
    @route("POST", contract.SEND.path)
    def send(self, request: SimRequest) -> SimResponse:
        self._authorise(request, "send")
        message = self._check_message(request.json())
        return SimResponse(200, self._accept(message))

    @route("POST", contract.SEND_BULK.path)
    def send_bulk(self, request: SimRequest) -> SimResponse:
        self._authorise(request, "send")
        body = request.json()
        items = body.get("messages") if isinstance(body, dict) else None
        if not isinstance(items, list) or not items:
            raise _error(400, "messages is required")
        if len(items) > contract.MAX_BULK:
            raise _error(400, f"at most {contract.MAX_BULK} messages per request")
        defaults = body.get("defaultValues") or {}
        shared = {k: body[k] for k in ("timeZone", "scheduledDate", "timeWindow", "campaignAlias") if k in body}
        merged = [
            self._check_message({**shared, **defaults, **(item if isinstance(item, dict) else {})}, f"messages[{i}]: ")
            for i, item in enumerate(items)
        ]
        receipts = [self._accept(m) for m in merged]
        return SimResponse(200, {"id": self.new_uuid(), "messages": receipts})

    def _accept(self, message: dict[str, Any]) -> dict[str, Any]:
        message_id = self.new_uuid()
        correlation = message.get("correlationId")
        destination = message["destination"]
        fate = self.fraction("fate", destination, correlation or message_id)
        if destination.endswith("0000"):
            sent_code = 202
        elif self.opted_out(destination):
            sent_code = 204  # DESTINATION_BLOCKED_BY_OPTOUT
        elif fate < 0.01:
            sent_code = 201
        elif fate < 0.03:
            sent_code = 103
        else:
            sent_code = contract.SENT_SUCCESS
        delivered_code = None
        if sent_code == contract.SENT_SUCCESS:
            delivered_code = 104 if fate > 0.95 else contract.DELIVERED_SUCCESS
        carrier = CARRIERS[int(self.fraction("carrier", destination) * len(CARRIERS))]
        now = self.now()
        record = {
            "id": message_id,
            "correlationId": correlation,
            "destination": destination,
            "extraInfo": message.get("extraInfo"),
            "campaignAlias": message.get("campaignAlias"),
            "accepted_at": now,
            "sent_code": sent_code,
            "delivered_code": delivered_code,
            "carrier": carrier,
            "dlr_spelling": "sentStatusAt" if self.fraction("spelling", message_id) < 0.5 else "sentAt",
        }
        with self.lock:
            self.messages[message_id] = record
            if correlation:
                self.by_correlation.setdefault(correlation, []).append(message_id)
            heapq.heappush(self.status_queue, (now + self.step, next(self._seq), message_id, 1))
            if delivered_code is not None:
                heapq.heappush(self.status_queue, (now + 2 * self.step, next(self._seq), message_id, 2))
        self._schedule_webhooks(record)
        return {"id": message_id, "correlationId": correlation}

    # ---- status records ------------------------------------------------------------------------
    def _level(self, record: dict[str, Any]) -> int:
        if self.step <= 0:
            return 2
        return min(2, int((self.now() - record["accepted_at"]) / self.step))

    def status_record(self, record: dict[str, Any], level: int, sent_key: str = "sentStatusAt") -> dict[str, Any]:
        sent_at = record["accepted_at"] + self.step
        carrier_id, carrier_name = record["carrier"]
        item: dict[str, Any] = {
            "id": record["id"],
            "correlationId": record["correlationId"],
            "carrierId": carrier_id,
            "carrierName": carrier_name,
            "destination": record["destination"],
            "campaignId": None,
            "extraInfo": record["extraInfo"],
        }
        if level >= 1:
            date_key = "sentStatusDate" if sent_key == "sentStatusAt" else "sentDate"
            item.update(
                {
                    "sentStatusCode": record["sent_code"],
                    "sentStatus": contract.SENT_STATUSES[record["sent_code"]],
                    sent_key: int(sent_at * 1000),
                    date_key: _iso(sent_at),
                }
            )
        if level >= 2 and record["delivered_code"] is not None:
            delivered_at = record["accepted_at"] + 2 * self.step
            item.update(
                {
                    "deliveredStatusCode": record["delivered_code"],
                    "deliveredStatus": contract.DELIVERED_STATUSES[record["delivered_code"]],
                    "deliveredAt": int(delivered_at * 1000),
                    "deliveredDate": _iso(delivered_at),
                }
            )
        return item

    def _schedule_webhooks(self, record: dict[str, Any]) -> None:
        accepted = record["accepted_at"]
        self.webhooks.schedule(accepted + self.step, "callback", ("status", record["id"], 1))
        if record["delivered_code"] is not None:
            self.webhooks.schedule(accepted + 2 * self.step, "dlr", ("status", record["id"], 2))
            if self.fraction("reply", record["id"]) < float(self.config["reply_rate"]):
                due = accepted + 3 * self.step
                mo = {
                    "id": self.new_uuid(),
                    "subAccount": "demo",
                    "campaignAlias": record["campaignAlias"],
                    "carrierId": record["carrier"][0],
                    "carrierName": record["carrier"][1],
                    "source": record["destination"],
                    "shortCode": "28080",
                    "messageText": "SI",
                    "receivedAt": int(due * 1000),
                    "receivedDate": _iso(due),
                    "mt": {
                        "id": record["id"],
                        "correlationId": record["correlationId"],
                        "username": "demo",
                        "email": "demo@wavy.global",
                    },
                }
                with self.lock:
                    heapq.heappush(self.mo_queue, (due, next(self._seq), mo))
                    self.mo_all.append(mo)
                self.webhooks.schedule(due, "mo", ("mo", mo))

    def customer_says(self, phone: str, text: str) -> dict[str, Any]:
        """An MO from ``phone``: in the receive queue and search, and posted to the MO webhook."""
        now = self.now()
        with self.lock:
            last = next((r for r in reversed(list(self.messages.values())) if r["destination"] == phone), None)
        mo: dict[str, Any] = {
            "id": self.new_uuid(),
            "subAccount": "demo",
            "source": phone,
            "shortCode": "28080",
            "messageText": text,
            "receivedAt": int(now * 1000),
            "receivedDate": _iso(now),
        }
        if last is not None:
            mo.update(campaignAlias=last["campaignAlias"], carrierId=last["carrier"][0], carrierName=last["carrier"][1])
            mo["mt"] = {"id": last["id"], "correlationId": last["correlationId"], "username": "demo", "email": "demo@wavy.global"}
        with self.lock:
            heapq.heappush(self.mo_queue, (now, next(self._seq), mo))
            self.mo_all.append(mo)
        self.webhooks.schedule(now, "mo", ("mo", mo))
        return {"id": mo["id"]}

    def webhook_posts(self, channel: str, events: list[Any]):
        for event in events:
            if event[0] == "mo":
                body = event[1]
            else:
                record = self.messages[event[1]]
                sent_key = "sentAt" if channel == "callback" else record["dlr_spelling"]
                body = self.status_record(record, event[2], sent_key)
            yield self.channel_url(channel), body, [event]

    def channel_url(self, channel: str) -> str:
        return f"{self.config['webhook_url'].rstrip('/')}/{channel}"

    @route("POST", contract.STATUS_SEARCH.path)
    def status_search(self, request: SimRequest) -> SimResponse:
        self._authorise(request, "status")
        body = request.json()
        if not isinstance(body, dict):
            raise _error(400, "ids or correlationIds are required")
        ids = list(body.get("ids") or [])
        with self.lock:
            for correlation in body.get("correlationIds") or []:
                ids.extend(self.by_correlation.get(correlation, []))
            records = [self.messages[i] for i in dict.fromkeys(ids) if i in self.messages]
        return SimResponse(200, {contract.STATUS_ENVELOPE: [self.status_record(r, self._level(r)) for r in records]})

    @route("GET", contract.STATUS_LIST.path)
    def status_list(self, request: SimRequest) -> SimResponse:
        """A consume-once queue: each status is returned by one call only."""
        self._authorise(request, "status")
        now = self.now()
        out = []
        with self.lock:
            while self.status_queue and self.status_queue[0][0] <= now and len(out) < contract.MAX_BULK:
                _, _, message_id, level = heapq.heappop(self.status_queue)
                out.append(self.status_record(self.messages[message_id], level))
        return SimResponse(200, {contract.STATUS_ENVELOPE: out})

    # ---- inbound (MO) --------------------------------------------------------------------------
    @route("GET", contract.RECEIVE_LIST.path)
    def receive_list(self, request: SimRequest) -> SimResponse:
        self._authorise(request, "status")
        now = self.now()
        out = []
        with self.lock:
            while self.mo_queue and self.mo_queue[0][0] <= now and len(out) < contract.MAX_BULK:
                out.append(heapq.heappop(self.mo_queue)[2])
        return SimResponse(200, {"total": len(out), "start": None, "end": None, "messages": out})

    @route("GET", contract.RECEIVE_SEARCH.path)
    def receive_search(self, request: SimRequest) -> SimResponse:
        self._authorise(request, "status")
        try:
            start = pendulum.parse(request.query["start"], tz=contract.SEARCH_TIMEZONE)
            end = pendulum.parse(request.query["end"], tz=contract.SEARCH_TIMEZONE)
        except (KeyError, ValueError) as exc:
            raise _error(400, "start and end are required (yyyy-MM-ddTHH:mm:ss)") from exc
        if end < start or (end - start).total_days() > MAX_SEARCH_DAYS:
            raise _error(400, f"the search window must be at most {MAX_SEARCH_DAYS} days")
        window = (start.timestamp() * 1000, end.timestamp() * 1000)
        now_ms = self.now() * 1000
        with self.lock:
            found = [m for m in self.mo_all if window[0] <= m["receivedAt"] <= window[1] and m["receivedAt"] <= now_ms]
        return SimResponse(
            200, {"total": len(found), "start": request.query["start"], "end": request.query["end"], "messages": found}
        )

    # ---- /_sim/state ---------------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        state = super().state()
        state.update(
            accepted_messages=len(self.messages),
            duplicate_trackings=sorted(c for c, ids in self.by_correlation.items() if len(ids) > 1),
            messages=[
                {
                    "id": m["id"],
                    "phone": m["destination"],
                    "tracking": m["correlationId"],
                    "sent_status_code": m["sent_code"],
                }
                for m in self.messages.values()
            ],
        )
        return state
