"""Typed results of the Teleprom hook."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pendulum

from latam_messaging.common.timeparse import parse_iso, parse_vendor_local
from latam_messaging.teleprom import contract
from latam_messaging.teleprom.contract import ACCEPTED_SEND_STATUSES, LINE_BREAK_STATUS, VENDOR_TIMEZONE


@dataclass(frozen=True)
class Template:
    """An HSM template (``GetTemplates``); ``account_id`` is the account it belongs to."""

    template_id: int
    name: str
    account_id: int
    status: str
    category: str | None
    language: str | None
    parameter_count: int
    structure: str | None
    example: str | None
    type: str | None
    created_at: pendulum.DateTime | None

    @property
    def accepted(self) -> bool:
        return self.status == "Accepted"

    @classmethod
    def from_api(cls, item: dict[str, Any]) -> Template:
        return cls(
            template_id=int(item["id"]),
            name=str(item["name"]),
            account_id=int(item["idRuteo"]),
            status=str(item.get("status") or ""),
            category=item.get("category"),
            language=item.get("idioma"),
            parameter_count=int(item.get("parameters") or 0),
            structure=item.get("structure"),
            example=item.get("example"),
            type=item.get("type"),
            created_at=parse_vendor_local(item["fechaCreacion"], VENDOR_TIMEZONE)
            if item.get("fechaCreacion")
            else None,
        )


@dataclass(frozen=True)
class Account:
    """A WhatsApp account ("ruteo", ``GetAllRuteos``)."""

    account_id: int
    name: str
    source_number: str

    @classmethod
    def from_api(cls, item: dict[str, Any]) -> Account:
        return cls(
            account_id=int(item["id"]), name=str(item.get("srcName") or ""), source_number=str(item.get("source") or "")
        )


@dataclass(frozen=True)
class HsmDestination:
    """One recipient of an HSM send. ``tracking_number`` is our id, echoed in webhooks."""

    tracking_number: str
    phone: str
    params: Sequence[str] = ()
    internal_params: Sequence[str] = ()
    chat_params: Sequence[str] = ()

    def to_api(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "trackingNumber": self.tracking_number,
            "dstNumber": self.phone,
            "hsmParams": list(self.params),
        }
        if self.internal_params:
            body["internalParams"] = list(self.internal_params)
        if self.chat_params:
            body["chatParams"] = list(self.chat_params)
        return body


@dataclass(frozen=True)
class HsmMessage:
    """One template from one account to many destinations: an item of a MessageWpp batch."""

    account_id: int
    template_id: int
    destinations: Sequence[HsmDestination]

    def to_api(self) -> dict[str, Any]:
        return {
            "sourceId": self.account_id,
            "hsmId": self.template_id,
            "destinations": [d.to_api() for d in self.destinations],
        }


@dataclass(frozen=True)
class FreeFormDestination:
    tracking_number: str
    phone: str
    text: str | None = None
    media_url: str | None = None

    def to_api(self) -> dict[str, Any]:
        return {
            "trackingNumber": self.tracking_number,
            "dstNumber": self.phone,
            "text": self.text,
            "mediaUrl": self.media_url,
        }


@dataclass(frozen=True)
class SendResult:
    """The vendor's answer for one destination, in request order."""

    tracking_number: str
    message_id: str | None
    status: str

    @property
    def accepted(self) -> bool:
        return self.status in ACCEPTED_SEND_STATUSES

    @property
    def line_break_stripped(self) -> bool:
        return self.status == LINE_BREAK_STATUS


@dataclass(frozen=True)
class SendBatchResult:
    results: list[SendResult]
    track_uuid: str | None


@dataclass(frozen=True)
class NumberLookupResult:
    number: str
    valid: bool
    carrier: str | None
    line_type: str | None
    ported: bool | None
    country: str | None
    raw: dict[str, Any] = field(repr=False, default_factory=dict)

    @classmethod
    def from_api(cls, item: dict[str, Any]) -> NumberLookupResult:
        return cls(
            number=str(item.get("number", "")),
            valid=bool(item.get("valid")),
            carrier=item.get("carrier"),
            line_type=item.get("lineType"),
            ported=item.get("ported"),
            country=item.get("country"),
            raw=item,
        )


@dataclass(frozen=True)
class SimSwapResult:
    number: str
    changed: bool
    last_change_at: pendulum.DateTime | None
    raw: dict[str, Any] = field(repr=False, default_factory=dict)

    @classmethod
    def from_api(cls, item: dict[str, Any]) -> SimSwapResult:
        last = item.get("lastChange")
        return cls(
            number=str(item.get("number", "")),
            changed=bool(item.get("changed")),
            last_change_at=parse_iso(last, VENDOR_TIMEZONE) if last else None,
            raw=item,
        )


@dataclass(frozen=True)
class LinkClicks:
    """One short link of ``ExportDataClicks`` and its clicks so far."""

    link_id: str | None
    long_url: str | None
    short_url: str
    clicks: int
    last_click_at: pendulum.DateTime | None
    raw: dict[str, Any] = field(repr=False, default_factory=dict)

    @classmethod
    def from_api(cls, item: dict[str, Any]) -> LinkClicks:
        last = item.get(contract.CLICK_LAST_AT)
        link_id = item.get(contract.CLICK_ID)
        return cls(
            link_id=None if link_id in (None, "") else str(link_id),
            long_url=item.get(contract.CLICK_LONG_URL),
            short_url=str(item[contract.CLICK_SHORT_URL]),
            clicks=int(item.get(contract.CLICK_COUNT) or 0),
            last_click_at=parse_iso(last, VENDOR_TIMEZONE) if last else None,
            raw=item,
        )
