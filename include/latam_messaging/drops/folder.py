"""CSV drop folders: atomic claim with an owner and a lease, safe opening, content fingerprint.

A writer uploads ``name.csv.part`` and renames it to ``name.csv`` when complete; only ``*.csv`` is
ready (a folder may accept more names: registry exports are often ``*.txt``). A run claims a file by
renaming it into its own ``.claimed/<owner>/`` folder (atomic on one filesystem: two workers can never
both get it) and keeps the lease file ``.claimed/<owner>.lease`` fresh while it works. Files left by a
run that died (its lease older than ``lease_s``) are taken over the same way, file by file, by rename;
files of a live run are never touched.

Only regular files are read: a symlink, directory or FIFO named ``*.csv`` is moved to ``failed/``
unopened (``lstat``), and every open uses ``O_NOFOLLOW`` and checks ``fstat``, so a file swapped for
a link after the claim is not followed either.
"""

from __future__ import annotations

import codecs
import contextlib
import hashlib
import io
import logging
import os
import stat
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pendulum

from latam_messaging.common.lease import Heartbeat, new_owner

log = logging.getLogger(__name__)

CLAIMED = ".claimed"
ARCHIVE = "archive"
FAILED = "failed"
READ_BLOCK = 1 << 20
#: Seconds after its last heartbeat when a claim's owner is taken to be gone.
DEFAULT_LEASE_S = 300.0


class NotARegularFileError(OSError):
    """A drop that is not a plain file (symlink, directory, FIFO, device): never read."""


@dataclass(frozen=True)
class Fingerprint:
    sha256: str
    size_bytes: int
    encoding: str  # utf-8-sig or cp1252


def open_regular(path: Path) -> io.BufferedReader:
    """Open ``path`` for reading only if it is a regular file, without following a symlink."""
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        if exc.errno in (40, 20, 21):  # ELOOP (a symlink), ENOTDIR, EISDIR
            raise NotARegularFileError(f"{path.name} is not a regular file") from None
        raise
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise NotARegularFileError(f"{path.name} is not a regular file")
    return os.fdopen(fd, "rb")


def is_regular(path: Path) -> bool:
    try:
        return stat.S_ISREG(os.lstat(path).st_mode)
    except FileNotFoundError:
        return False


class DropFolder:
    def __init__(
        self,
        root: Path,
        name: str,
        *,
        owner: str | None = None,
        lease_s: float = DEFAULT_LEASE_S,
        patterns: tuple[str, ...] = ("*.csv",),
    ):
        self.name = name
        #: The names of ready files (``glob`` patterns); a ``.part`` upload never matches.
        self.patterns = patterns
        self.path = Path(root) / name
        self.claimed = self.path / CLAIMED
        self.owner = owner or new_owner()
        self.mine = self.claimed / self.owner
        self.lease_file = self.claimed / f"{self.owner}.lease"
        self.lease_s = lease_s
        #: Entries named ``*.csv`` that were not regular files, moved to ``failed/`` unread.
        self.not_regular = 0

    def ensure(self) -> None:
        for folder in (self.path, self.claimed, self.path / ARCHIVE, self.path / FAILED):
            folder.mkdir(parents=True, exist_ok=True)

    # ---- the lease --------------------------------------------------------------------------------
    def _renew(self) -> None:
        self.lease_file.touch()

    @contextlib.contextmanager
    def leased(self) -> Iterator[DropFolder]:
        """Hold this run's lease (a heartbeat renewing the lease file) while the body runs; release it after."""
        self.ensure()
        self.mine.mkdir(exist_ok=True)
        self._renew()
        try:
            with Heartbeat(
                self._renew, self.lease_s, name=f"lease-{self.name}", logger=log, what=f"drop lease {self.owner}"
            ):
                yield self
        finally:
            with contextlib.suppress(OSError):
                self.mine.rmdir()  # only when empty: a file left here is taken over after the lease
            with contextlib.suppress(OSError):
                self.lease_file.unlink()

    def _owner_gone(self, owner: str) -> bool:
        try:
            age = time.time() - (self.claimed / f"{owner}.lease").stat().st_mtime
        except FileNotFoundError:
            return True
        return age > self.lease_s

    # ---- claiming ---------------------------------------------------------------------------------
    def _take(self, source: Path) -> Path | None:
        target = self.mine / source.name
        if target.exists():  # same name already claimed by this run: take it on a later run
            return None
        try:
            os.rename(source, target)
        except FileNotFoundError:  # another worker took it first
            return None
        return target

    def _gone_owner_dirs(self) -> list[Path]:
        return [
            entry
            for entry in sorted(self.claimed.iterdir())
            if entry != self.mine and entry.is_dir() and not entry.is_symlink() and self._owner_gone(entry.name)
        ]

    def _leftovers(self) -> list[Path]:
        """Claimed files whose owner is gone (lease expired), and files of the old flat layout."""
        found = [inner for entry in self._gone_owner_dirs() for inner in sorted(entry.iterdir())]
        flat = self._ready(self.claimed)
        return found + [p for p in flat if not p.is_dir() or p.is_symlink()]

    def _ready(self, folder: Path) -> list[Path]:
        return sorted({path for pattern in self.patterns for path in folder.glob(pattern)})

    def _sweep(self) -> None:
        """Forget dead owners whose files have all been taken over."""
        for entry in self._gone_owner_dirs():
            with contextlib.suppress(OSError):
                entry.rmdir()
                (self.claimed / f"{entry.name}.lease").unlink(missing_ok=True)

    def claim_ready(self) -> Iterator[Path]:
        """Leftovers of dead runs first, then every ready ``*.csv`` (or :attr:`patterns`), each claimed
        atomically.

        Anything named ``*.csv`` that is not a regular file is moved to ``failed/`` unread.
        """
        self.ensure()
        self.mine.mkdir(exist_ok=True)
        candidates = self._leftovers() + self._ready(self.path)
        for candidate in candidates:
            if not is_regular(candidate):
                if candidate.exists() or candidate.is_symlink():
                    with contextlib.suppress(OSError):
                        moved = self.finish(candidate, FAILED)
                        self.not_regular += 1
                        log.error(
                            "%s is not a regular file (symlink, folder or pipe): moved unread to %s",
                            candidate.name,
                            moved,
                        )
                continue
            claimed = self._take(candidate)
            if claimed is not None:
                yield claimed
        self._sweep()

    def is_claim(self, path: str) -> bool:
        """Whether ``path`` names a file in a run's claim folder of this drop folder
        (``<folder>/.claimed/<owner>/name``, however the drop root was spelled): not yet moved to
        ``archive/`` or ``failed/``."""
        claims = Path(path).parent.parent
        return claims.name == CLAIMED and claims.parent.name == self.name

    def finish(self, claimed: Path, outcome: str) -> Path:
        """Move a claimed file to ``archive/`` or ``failed/``, stamped so names never collide."""
        stamp = pendulum.now("UTC").format("YYYYMMDDTHHmmss")
        target = self.path / outcome / f"{stamp}-{uuid.uuid4().hex[:6]}-{claimed.name}"
        os.rename(claimed, target)
        return target


def fingerprint(path: Path) -> Fingerprint:
    """SHA-256 and encoding in one streaming pass: UTF-8 (with or without BOM), else Windows-1252."""
    digest = hashlib.sha256()
    decoder = codecs.getincrementaldecoder("utf-8")()
    utf8 = True
    size = 0
    with open_regular(path) as handle:
        while block := handle.read(READ_BLOCK):
            digest.update(block)
            size += len(block)
            if utf8:
                try:
                    decoder.decode(block)
                except UnicodeDecodeError:
                    utf8 = False
    if utf8:
        try:
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            utf8 = False
    return Fingerprint(digest.hexdigest(), size, "utf-8-sig" if utf8 else "cp1252")
