"""Where purged raw bodies go: a local folder, or an object store through Airflow's ObjectStoragePath.

:meth:`ArchiveStore.write` returns only once a part is durably whole at its final name, so a caller may
then delete what the part holds:

* a local folder (a plain path or ``file://``; no network): written to a unique temporary name beside
  the part, flushed and ``fsync``-ed, closed, renamed over the final name (atomic), and the folder
  ``fsync``-ed so the rename itself survives a power cut;
* any other URL (``s3://bucket/prefix``, ``gs://…``; the provider that knows the scheme must be
  installed): one upload through :class:`airflow.sdk.ObjectStoragePath` (an object appears whole or not
  at all), then its size is read back and compared.

Writing the same part again replaces it with the same bytes: parts are deterministic (see
``raw_retention``), so a retry after a kill overwrites, never duplicates.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from pathlib import Path, PurePosixPath
from urllib.parse import urlparse


class ArchiveWriteError(OSError):
    """A part did not land whole: nothing it holds may be purged."""


class ArchiveStore:
    def __init__(self, url: str):
        self.url = url.strip()
        parsed = urlparse(self.url)
        self.local = parsed.scheme in ("", "file") or (len(parsed.scheme) == 1 and os.name == "nt")
        self.root = Path(parsed.path if parsed.scheme == "file" else self.url) if self.local else None

    def location(self, relative: str) -> str:
        """The full path (local) or URL (object store) of a part."""
        relative = _safe_relative(relative)
        if self.local:
            return str(self.root / relative)
        return f"{self.url.rstrip('/')}/{relative}"

    def write(self, relative: str, data: bytes) -> str:
        """Store ``data`` at ``relative`` durably; returns :meth:`location`."""
        return self._write_local(relative, data) if self.local else self._write_object(relative, data)

    def read(self, relative: str) -> bytes:
        if self.local:
            return Path(self.location(relative)).read_bytes()
        from airflow.sdk import ObjectStoragePath

        return ObjectStoragePath(self.location(relative)).read_bytes()

    def _write_local(self, relative: str, data: bytes) -> str:
        final = Path(self.location(relative))
        final.parent.mkdir(parents=True, exist_ok=True)
        temporary = final.with_name(f".{final.name}.{uuid.uuid4().hex}.tmp")
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o640)
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(data)
                out.flush()
                os.fsync(out.fileno())
            os.replace(temporary, final)
        except BaseException:
            with contextlib.suppress(OSError):
                temporary.unlink()
            raise
        _fsync_dir(final.parent)
        return str(final)

    def _write_object(self, relative: str, data: bytes) -> str:
        from airflow.sdk import ObjectStoragePath

        target = ObjectStoragePath(self.location(relative))
        with contextlib.suppress(FileExistsError, NotImplementedError):
            target.parent.mkdir(parents=True, exist_ok=True)  # object stores have no folders: often a no-op
        with target.open("wb") as out:
            out.write(data)
        size = target.stat().get("size")
        if size != len(data):
            raise ArchiveWriteError(f"archive part {relative} reads back {size} bytes, {len(data)} written")
        return str(target)


def _safe_relative(relative: str) -> str:
    parts = PurePosixPath(relative).parts
    if not parts or any(p in ("", ".", "..") or p.startswith("/") for p in parts):
        raise ValueError(f"not a relative archive path: {relative!r}")
    return "/".join(parts)


def _fsync_dir(folder: Path) -> None:
    with contextlib.suppress(OSError):  # some filesystems cannot fsync a directory: the rename stands
        fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
