"""The one way the tests wait: :func:`wait_until` polls a condition and fails loudly when time runs out.

A wait loop that ends silently at its deadline lets a test go on in a state it did not ask for (a kill
test killing a sender that had already finished); this one raises ``AssertionError`` naming what it
waited for.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_until(
    predicate: Callable[[], T],
    *,
    timeout: float,
    what: str | Callable[[], str],
    interval: float = 0.05,
) -> T:
    """Call ``predicate`` every ``interval`` seconds until it returns something truthy, and return that.

    After ``timeout`` seconds without it: ``AssertionError`` naming ``what`` (a text, or a function that
    makes one at that moment, e.g. to show the state it found)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            described = what() if callable(what) else what
            raise AssertionError(f"waited {timeout:g}s for {described}: it did not happen")
        time.sleep(interval)
