"""Writes that overlap the work preparing the next one: the database (or its driver, waiting on the
socket) works on one write while Python reads and checks the next batch.

``WriteBehind`` runs the writes handed to it one at a time, in the order handed, on one thread: at
most one write is in flight and one batch prepared beside it, so memory stays two batches and a
kill loses at most what a serial loop would plus the batch prepared ahead (never written, so read
again by the next run). A write's failure is raised to the caller at its next ``submit`` or when the
block ends — also when the caller's own code failed meanwhile (the write's failure came first, as it
would have in a serial loop; the caller's error is its ``__context__``). ``failure`` is the write's
exception once raised, so a caller can tell which batch failed.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from types import TracebackType
from typing import Any


class WriteBehind:
    def __init__(self, name: str) -> None:
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix=name)
        self._writing: Future[Any] | None = None
        self.failure: BaseException | None = None

    def submit(self, write: Callable[..., Any], *args: Any) -> None:
        """Wait for the write before (raising its failure), then start ``write(*args)``."""
        self.wait()
        self._writing = self._pool.submit(write, *args)

    def wait(self) -> None:
        """Wait for the write in flight, if any; its failure is raised here."""
        writing, self._writing = self._writing, None
        if writing is not None:
            try:
                writing.result()
            except BaseException as exc:
                self.failure = exc
                raise

    def __enter__(self) -> WriteBehind:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        try:
            self.wait()  # the write in flight; its failure wins over the caller's, which came after it
        finally:
            self._pool.shutdown(wait=True)
