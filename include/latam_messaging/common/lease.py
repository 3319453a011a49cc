"""What every lease in the project shares: an owner name and a heartbeat.

A run that claims work (drop files, ledger rows) names itself with :func:`new_owner` and proves it is
alive by renewing a lease — a file's mtime for drop folders, a ``send_leases`` row for dispatchers —
from a :class:`Heartbeat` thread, every quarter of the lease. When the process dies the beats stop, the
lease runs out, and other runs may take over what it held. A renewal that fails (disk or warehouse
away for a moment) is logged and tried again at the next beat; the lease lapses only if that lasts.
"""

from __future__ import annotations

import logging
import os
import re
import socket
import threading
import uuid
from collections.abc import Callable
from types import TracebackType

log = logging.getLogger(__name__)

#: Shortest pause between two beats, whatever the lease (tests use leases of a fraction of a second).
MIN_INTERVAL_S = 0.05


def new_owner(prefix: str | None = None) -> str:
    """A name for one run's claims, unique across hosts and processes, safe as a file name and
    short enough for ``claimed_by`` (80): ``[prefix-]host-pid-random`` (host: 32 characters at most)."""
    host = re.sub(r"[^A-Za-z0-9_.-]", "_", socket.gethostname())[:32]
    name = f"{host}-{os.getpid()}-{uuid.uuid4().hex[:12]}"
    return f"{prefix}-{name}" if prefix else name


class Heartbeat:
    """Calls ``renew`` every ``lease_s / 4`` seconds in a daemon thread while the ``with`` body runs.

    ``errors``: the exception types a failed renewal may raise; they are logged (``could not renew the
    <what>``, on ``logger``), never raised: the next beat tries again. The thread is stopped and joined
    on exit, before the caller releases what it held."""

    def __init__(
        self,
        renew: Callable[[], None],
        lease_s: float,
        *,
        name: str,
        errors: tuple[type[BaseException], ...] = (OSError,),
        logger: logging.Logger = log,
        what: str = "lease",
    ):
        self.renew = renew
        self.interval = max(lease_s / 4, MIN_INTERVAL_S)
        self.name = name
        self.errors = errors
        self.logger = logger
        self.what = what
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _beat(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.renew()
            except self.errors as exc:
                self.logger.warning("could not renew the %s: %s", self.what, type(exc).__name__)

    @property
    def thread(self) -> threading.Thread | None:
        return self._thread

    def __enter__(self) -> Heartbeat:
        self._thread = threading.Thread(target=self._beat, name=self.name, daemon=True)
        self._thread.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
