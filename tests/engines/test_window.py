"""The send window (``sending/window.py``), promise by promise.

Part of the fast selection that ``make mutants`` runs: every expectation is written out here.
"""

from __future__ import annotations

import pendulum
import pytest

from latam_messaging.sending.window import SendWindow, may_send

# ---- the send window ----------------------------------------------------------------------------------
BA = "America/Argentina/Buenos_Aires"


def at(hour: int, minute: int = 0) -> pendulum.DateTime:
    return pendulum.datetime(2026, 3, 2, hour, minute, tz=BA).in_tz("UTC")


@pytest.mark.parametrize(
    ("moment", "open_"),
    [(at(8, 59), False), (at(9), True), (at(15), True), (at(20, 59), True), (at(21), False), (at(23), False)],
)
def test_a_daytime_window_is_open_from_its_start_until_before_its_end(moment, open_):
    window = SendWindow.parse(" 09:00 - 21:00 ", BA)
    assert (window.start, window.end, window.timezone) == (pendulum.time(9), pendulum.time(21), BA)
    assert window.contains(moment) is open_


def test_a_window_is_read_in_its_own_timezone():
    window = SendWindow.parse("09:00-10:00", "Asia/Tokyo")
    assert window.contains(pendulum.datetime(2026, 3, 2, 0, 30, tz="UTC"))  # 09:30 in Tokyo
    assert not window.contains(pendulum.datetime(2026, 3, 2, 9, 30, tz="UTC"))


@pytest.mark.parametrize("text", [None, "", "   "])
def test_no_window_means_any_time(text):
    assert SendWindow.parse(text, BA) is None
    assert may_send(None, at(3)) is True


@pytest.mark.parametrize("text", ["9-21", "09:00", "09:00-21:00-23:00", "aa:bb-cc:dd", "2026-03-02", "09:00-x"])
def test_a_malformed_window_is_refused_with_the_expected_shape(text):
    with pytest.raises(ValueError, match=r"must look like 09:00-21:00"):
        SendWindow.parse(text, BA)


def test_the_dag_param_overrides_the_environment(monkeypatch):
    monkeypatch.setenv("MESSAGING_SEND_WINDOW_WAVY", "08:00-09:00")
    assert SendWindow.for_vendor("wavy", BA) == SendWindow(pendulum.time(8), pendulum.time(9), BA)
    assert SendWindow.for_vendor("wavy", BA, override="10:00-11:00") == SendWindow(
        pendulum.time(10), pendulum.time(11), BA
    )
    assert SendWindow.for_vendor("wavy", BA, override="") is None  # an empty param: no window
    assert SendWindow.for_vendor("itd", BA) is None


def test_a_window_prints_as_the_operator_wrote_it():
    assert str(SendWindow.parse("22:00-06:30", BA)) == f"22:00-06:30 {BA}"


# ---- the window's edges ---------------------------------------------------------------------------
@pytest.mark.parametrize("text", ["09:00-20260301", "20260301-21:00"])
def test_a_window_with_a_date_on_either_side_is_refused(text):
    with pytest.raises(ValueError, match="must look like 09:00-21:00"):
        SendWindow.parse(text, BA)


@pytest.mark.parametrize("text", ["09:00-09:00", "00:00-00:00", "23:59 - 23:59"])
def test_a_window_that_starts_when_it_ends_is_refused_as_ambiguous(text):
    """Neither "never" nor "all day" is assumed: the operator is told to choose."""
    with pytest.raises(ValueError, match="starts when it ends"):
        SendWindow.parse(text, BA)
    start = pendulum.parse(text.split("-")[0].strip(), exact=True)
    with pytest.raises(ValueError) as refused:
        SendWindow(start, start, BA)
    at = text.split("-")[0].strip()
    assert str(refused.value) == (
        f"send window {at}-{at} starts when it ends: give an end other than its start, "
        "or leave the window unset to send at any time"
    )
