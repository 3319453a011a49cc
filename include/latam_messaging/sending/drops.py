"""CSV drop folders: atomic claim, content fingerprint, archive or failed.

A writer uploads ``name.csv.part`` and renames it to ``name.csv`` when complete; only ``*.csv`` is
ready. A run claims a file by renaming it into ``.claimed/`` (atomic on one filesystem: two workers
can never both get it). A file left in ``.claimed/`` by a crashed run is taken up again by the next
one; that is safe because every later step is idempotent on the file's SHA-256.
"""

from __future__ import annotations

import codecs
import hashlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pendulum

CLAIMED = ".claimed"
ARCHIVE = "archive"
FAILED = "failed"
READ_BLOCK = 1 << 20


@dataclass(frozen=True)
class Fingerprint:
    sha256: str
    size_bytes: int
    encoding: str  # utf-8-sig or cp1252


class DropFolder:
    def __init__(self, root: Path, name: str):
        self.name = name
        self.path = Path(root) / name
        self.claimed = self.path / CLAIMED

    def ensure(self) -> None:
        for folder in (self.path, self.claimed, self.path / ARCHIVE, self.path / FAILED):
            folder.mkdir(parents=True, exist_ok=True)

    def claim_ready(self) -> Iterator[Path]:
        """Leftovers of a crashed run first, then every ready ``*.csv``, each claimed atomically."""
        self.ensure()
        yield from sorted(self.claimed.glob("*.csv"))
        for candidate in sorted(self.path.glob("*.csv")):
            target = self.claimed / candidate.name
            if target.exists():  # same name still being processed: take it on a later run
                continue
            try:
                os.rename(candidate, target)
            except FileNotFoundError:  # another worker claimed it first
                continue
            yield target

    def finish(self, claimed: Path, outcome: str) -> Path:
        """Move a claimed file to ``archive/`` or ``failed/``, stamped so names never collide."""
        stamp = pendulum.now("UTC").format("YYYYMMDDTHHmmss")
        target = self.path / outcome / f"{stamp}-{claimed.name}"
        os.replace(claimed, target)
        return target


def fingerprint(path: Path) -> Fingerprint:
    """SHA-256 and encoding in one streaming pass: UTF-8 (with or without BOM), else Windows-1252."""
    digest = hashlib.sha256()
    decoder = codecs.getincrementaldecoder("utf-8")()
    utf8 = True
    size = 0
    with open(path, "rb") as handle:
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
