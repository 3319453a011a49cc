"""Send windows: the local hours in which a vendor's messages may go out (e.g. 09:00-21:00)."""

from __future__ import annotations

from dataclasses import dataclass

import pendulum


@dataclass(frozen=True)
class SendWindow:
    """Messages may go out from ``start`` until before ``end``, local time; ``end`` before ``start``
    is a window across midnight. A window whose start is its end is refused: it could mean "never"
    or "all day", and an operator who wants no limit leaves the window unset."""

    start: pendulum.Time
    end: pendulum.Time
    timezone: str

    def __post_init__(self) -> None:
        if self.start == self.end:
            raise ValueError(
                f"send window {self.start:%H:%M}-{self.end:%H:%M} starts when it ends: give an end other than "
                "its start, or leave the window unset to send at any time"
            )

    @classmethod
    def parse(cls, text: str | None, timezone: str) -> SendWindow | None:
        """``"09:00-21:00"`` → a window; empty → no window (any time)."""
        if not text or not text.strip():
            return None
        try:
            start_text, end_text = (part.strip() for part in text.split("-"))
            start = pendulum.parse(start_text, exact=True)
            end = pendulum.parse(end_text, exact=True)
        except (ValueError, pendulum.parsing.exceptions.ParserError) as exc:
            raise ValueError(f"send window {text!r} must look like 09:00-21:00") from exc
        if not isinstance(start, pendulum.Time) or not isinstance(end, pendulum.Time):
            raise ValueError(f"send window {text!r} must look like 09:00-21:00")
        return cls(start, end, timezone)

    @classmethod
    def for_vendor(cls, vendor: str, timezone: str, override: str | None = None) -> SendWindow | None:
        """The DAG param if given, else ``MESSAGING_SEND_WINDOW_<VENDOR>``."""
        from latam_messaging.settings import current

        text = override if override is not None else current().send_windows.get(vendor.lower())
        return cls.parse(text, timezone)

    def contains(self, moment: pendulum.DateTime) -> bool:
        local = moment.in_tz(self.timezone).time()
        if self.start <= self.end:
            return self.start <= local < self.end
        return local >= self.start or local < self.end  # a window across midnight

    def __str__(self) -> str:
        return f"{self.start:%H:%M}-{self.end:%H:%M} {self.timezone}"


def may_send(window: SendWindow | None, moment: pendulum.DateTime) -> bool:
    return window is None or window.contains(moment)
