"""Files dropped into a drop folder the way writers must."""

from __future__ import annotations

from pathlib import Path


def drop_csv(root: Path, folder: str, name: str, text: str, encoding: str = "utf-8") -> Path:
    """Drop a file the way writers must: upload as ``.part``, then rename."""
    target = root / folder
    target.mkdir(parents=True, exist_ok=True)
    part = target / f"{name}.part"
    part.write_bytes(text.encode(encoding))
    return part.rename(target / name)
