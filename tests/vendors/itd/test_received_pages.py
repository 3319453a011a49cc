"""ITD's ``recievedWhatsapp`` answers the newest ``top`` messages of a phone and a day: a full page is
asked again with a larger ``top`` until nothing is missed, and a day still full at the cap is polled
again next run (its watermark does not pass it) — on both databases."""

from __future__ import annotations

import logging

import pendulum
import sqlalchemy as sa

from latam_messaging.itd import contract
from latam_messaging.itd import poller as itd_poller
from latam_messaging.itd.models import ItdInbound
from latam_messaging.warehouse import schema

PHONE = "56961234567"


class DayHook:
    """Answers like ITD: the newest ``top`` of the day's messages (``per_day`` on every day)."""

    def __init__(self, per_day: int):
        self.per_day = per_day
        self.asked: list[tuple[str, int]] = []

    def received(self, phone, day, top=100):
        self.asked.append((day.isoformat(), top))
        start = pendulum.datetime(day.year, day.month, day.day, 12, tz=contract.VENDOR_TIMEZONE)
        items = [
            {
                "uuid": f"{day.isoformat()}-{n}",
                "senderPhone": phone,
                "accountPhone": "56900000000",
                "content": "hola",
                "messageType": "chat",
                "direction": 1,
                "sendAt": int(start.add(seconds=n).timestamp() * 1000),
            }
            for n in range(self.per_day)
        ]
        items.reverse()  # newest first, as ITD answers
        return [ItdInbound.from_api(item) for item in items[:top]]


def stored(warehouse) -> int:
    with warehouse.engine.connect() as conn:
        return conn.execute(sa.select(sa.func.count()).select_from(schema.inbound_messages)).scalar()


def watermark(warehouse) -> str:
    [row] = warehouse.rows(sa.select(schema.poll_watermarks.c.value).where(schema.poll_watermarks.c.item == PHONE))
    return row["value"]


def test_a_full_page_is_asked_again_with_a_larger_top_until_nothing_is_missed(warehouse, monkeypatch, caplog):
    monkeypatch.setattr(contract, "RECEIVED_TOP", 10)
    monkeypatch.setattr(contract, "RECEIVED_TOP_MAX", 160)
    hook = DayHook(per_day=25)
    with caplog.at_level(logging.WARNING, logger=itd_poller.__name__):
        stats = itd_poller.poll_itd_received(warehouse, hook, [PHONE], lookback_days=1, workers=1)
    today = pendulum.now(contract.VENDOR_TIMEZONE).date()
    days = [today.subtract(days=1).isoformat(), today.isoformat()]
    assert hook.asked == [(d, top) for d in days for top in (10, 20, 40)]  # 10 and 20 came back full
    assert stored(warehouse) == 50 and stats.new_messages == 50
    assert (stats.requests, stats.full_pages, stats.truncated_days) == (6, 4, 0)
    assert sum("a full page of" in m for m in caplog.messages) == 4
    assert all(PHONE not in m for m in caplog.messages)  # the phone is not logged whole
    assert watermark(warehouse) == days[0]  # yesterday complete; today is polled again anyway


def test_a_day_still_full_at_the_cap_is_not_passed_by_the_watermark(warehouse, monkeypatch, caplog):
    monkeypatch.setattr(contract, "RECEIVED_TOP", 10)
    monkeypatch.setattr(contract, "RECEIVED_TOP_MAX", 20)
    hook = DayHook(per_day=25)
    with caplog.at_level(logging.WARNING, logger=itd_poller.__name__):
        stats = itd_poller.poll_itd_received(warehouse, hook, [PHONE], lookback_days=3, workers=1)
    today = pendulum.now(contract.VENDOR_TIMEZONE).date()
    assert stats.truncated_days == 4 and stored(warehouse) == 4 * 20
    assert watermark(warehouse) == today.subtract(days=3).isoformat()  # the first truncated day, polled again
    assert sum("older ones may be missing" in m for m in caplog.messages) == 4


class CappedHook(DayHook):
    """ITD answering at most ``cap`` messages whatever ``top`` asks."""

    def __init__(self, per_day: int, cap: int):
        super().__init__(per_day)
        self.cap = cap

    def received(self, phone, day, top=100):
        items = super().received(phone, day, min(top, self.cap))
        self.asked[-1] = (day.isoformat(), top)  # what we asked for, not what ITD allowed
        return items


def test_a_server_side_cap_is_seen_as_a_truncated_day(warehouse, monkeypatch):
    monkeypatch.setattr(contract, "RECEIVED_TOP", 10)
    monkeypatch.setattr(contract, "RECEIVED_TOP_MAX", 160)
    hook = CappedHook(per_day=30, cap=10)
    stats = itd_poller.poll_itd_received(warehouse, hook, [PHONE], lookback_days=0, workers=1)
    assert [top for _, top in hook.asked] == [10, 20]  # a larger top brought no more: ITD caps the page
    assert stats.truncated_days == 1
    today = pendulum.now(contract.VENDOR_TIMEZONE).date()
    assert watermark(warehouse) == today.isoformat()
