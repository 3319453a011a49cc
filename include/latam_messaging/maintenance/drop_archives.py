"""Old drop files pruned: ``<drop dir>/<folder>/archive/`` and ``failed/`` entries older than ``days``.

A processed drop is renamed into ``archive/`` or ``failed/`` as ``<UTC stamp>-<6 hex>-<name>``
(``drops.folder.DropFolder.finish``); its age is that stamp (a rename keeps the uploader's mtime, which
may be years old), else the later of its mtime and ctime. Only plain files and symlinks themselves are
deleted; nothing is ever followed: the folder, its ``archive/`` and ``failed/`` are opened with
``O_NOFOLLOW`` relative to the folder above (a symlinked folder is skipped, never entered), entries are
looked at with ``lstat`` and removed with ``unlink(dir_fd=…)``, so a hostile name (``../x``, newlines, a
link to ``/etc``) can only ever name an entry of that very folder. Sub-folders are left alone.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import stat
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pendulum

from latam_messaging.drops.folder import ARCHIVE, FAILED

log = logging.getLogger(__name__)

STAMP = re.compile(r"^(\d{8}T\d{6})-[0-9a-f]{6}-")
DIR_FLAGS = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_NOFOLLOW", 0)


@dataclass
class PruneStats:
    files_deleted: int = 0
    bytes_deleted: int = 0
    kept: int = 0  # younger than the limit
    skipped: int = 0  # not a file (a sub-folder, a pipe) or a folder that is a symlink

    def summary(self) -> dict[str, Any]:
        return asdict(self)


def archived_at(name: str, st: os.stat_result) -> float:
    """When a drop was archived (epoch seconds): its name's stamp, else its latest mtime/ctime."""
    match = STAMP.match(name)
    if match:
        with contextlib.suppress(ValueError):
            return pendulum.from_format(match.group(1), "YYYYMMDDTHHmmss", tz="UTC").timestamp()
    return max(st.st_mtime, st.st_ctime)


@contextlib.contextmanager
def _open_dir(name: str | Path, dir_fd: int | None = None) -> Iterator[int | None]:
    """A directory's fd, never through a symlink; ``None`` when it is absent or not a real directory."""
    try:
        fd = os.open(name, DIR_FLAGS, dir_fd=dir_fd)
    except (FileNotFoundError, NotADirectoryError):
        yield None
        return
    except OSError as exc:
        if exc.errno == 40:  # ELOOP: a symlink
            yield None
            return
        raise
    try:
        yield fd
    finally:
        os.close(fd)


def prune_drop_archives(
    drop_dir: Path, days: float, *, now: float | None = None, dry_run: bool = False
) -> PruneStats:
    """Delete (or with ``dry_run`` only count) archived and failed drops older than ``days``."""
    stats = PruneStats()
    cutoff = (time.time() if now is None else now) - days * 86400
    with _open_dir(drop_dir) as root:
        if root is None:
            return stats
        for folder in sorted(os.listdir(root)):
            with _open_dir(folder, root) as folder_fd:
                if folder_fd is None:
                    if stat.S_ISLNK(os.lstat(folder, dir_fd=root).st_mode):
                        stats.skipped += 1
                    continue
                for outcome in (ARCHIVE, FAILED):
                    with _open_dir(outcome, folder_fd) as outcome_fd:
                        if outcome_fd is not None:
                            _prune_one(outcome_fd, cutoff, stats, dry_run)
    log.info(
        "drop archives: %d file(s) %s (%d bytes), %d kept",
        stats.files_deleted,
        "due (dry run)" if dry_run else "deleted",
        stats.bytes_deleted,
        stats.kept,
    )
    return stats


def _prune_one(folder_fd: int, cutoff: float, stats: PruneStats, dry_run: bool) -> None:
    for name in sorted(os.listdir(folder_fd)):
        try:
            st = os.stat(name, dir_fd=folder_fd, follow_symlinks=False)
        except FileNotFoundError:
            continue
        if not (stat.S_ISREG(st.st_mode) or stat.S_ISLNK(st.st_mode)):
            stats.skipped += 1
            continue
        if archived_at(name, st) >= cutoff:
            stats.kept += 1
            continue
        if not dry_run:
            try:
                os.unlink(name, dir_fd=folder_fd)
            except FileNotFoundError:
                continue  # another run took it
        stats.files_deleted += 1
        stats.bytes_deleted += st.st_size if stat.S_ISREG(st.st_mode) else 0
