"""Old drop files pruned (``maintenance/drop_archives.py``): by the age their archive stamp gives, only in
``archive/`` and ``failed/``, never through a symlink, hostile names harmless, counted."""

from __future__ import annotations

import os
import time

import pendulum

from latam_messaging.maintenance.drop_archives import prune_drop_archives

NOW = time.time()
DAY = 86400


def stamped(days_ago: float, name: str) -> str:
    at = pendulum.from_timestamp(NOW - days_ago * DAY, tz="UTC")
    return f"{at.format('YYYYMMDDTHHmmss')}-abc123-{name}"


def make(path, content=b"phone\n", age_days: float | None = None):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    if age_days is not None:
        os.utime(path, (NOW - age_days * DAY, NOW - age_days * DAY))
    return path


def test_archived_and_failed_drops_older_than_the_limit_are_deleted(tmp_path):
    root = tmp_path / "drops"
    old_archive = make(root / "wavy_sms" / "archive" / stamped(91, "a.csv"), b"12345")
    old_failed = make(root / "teleprom_hsm" / "failed" / stamped(200, "b.csv"), b"123")
    young = make(root / "wavy_sms" / "archive" / stamped(89, "c.csv"))
    # an uploader's preserved mtime is years old, the stamp says archived yesterday: kept
    preserved = make(root / "wavy_sms" / "archive" / stamped(1, "d.csv"), age_days=2000)
    ready = make(root / "wavy_sms" / "e.csv", age_days=2000)  # not processed yet: never touched
    claimed = make(root / "wavy_sms" / ".claimed" / "owner" / "f.csv", age_days=2000)
    unstamped_old = make(root / "wavy_sms" / "archive" / "legacy.csv", age_days=100)

    dry = prune_drop_archives(root, 90, now=NOW, dry_run=True)
    assert dry.files_deleted == 2 and old_archive.exists() and old_failed.exists()

    stats = prune_drop_archives(root, 90, now=NOW)

    assert (stats.files_deleted, stats.bytes_deleted) == (2, 8)
    assert not old_archive.exists() and not old_failed.exists()
    assert young.exists() and preserved.exists() and ready.exists() and claimed.exists()
    assert unstamped_old.exists()  # its ctime is now (a rename sets it): it was archived just now
    assert stats.kept == 3
    assert prune_drop_archives(root, 90, now=NOW).files_deleted == 0  # a re-run: nothing left


def test_symlinks_are_removed_never_followed_and_hostile_names_stay_inside(tmp_path):
    root = tmp_path / "drops"
    outside = tmp_path / "outside"
    victim = make(outside / stamped(500, "victim.csv"), b"precious")
    victim_dir_file = make(outside / "archive" / stamped(500, "deep.csv"), b"precious")
    archive = root / "wavy_sms" / "archive"
    archive.mkdir(parents=True)
    link = archive / stamped(500, "link.csv")
    link.symlink_to(victim)  # an old link in archive/: the link goes, its target stays
    os.utime(link, (NOW - 500 * DAY, NOW - 500 * DAY), follow_symlinks=False)
    (root / "evil_folder").symlink_to(outside, target_is_directory=True)  # a folder that is a link: skipped
    (root / "other").mkdir()
    (root / "other" / "archive").symlink_to(outside / "archive", target_is_directory=True)  # archive/ a link
    hostile = make(archive / stamped(500, "..\n;rm -rf ~;.csv"))
    subfolder = archive / stamped(500, "folder")
    make(subfolder / stamped(500, "inner.csv"))

    stats = prune_drop_archives(root, 90, now=NOW)

    assert not link.is_symlink() and not link.exists()
    assert victim.read_bytes() == b"precious" and victim_dir_file.read_bytes() == b"precious"
    assert not hostile.exists()
    assert subfolder.is_dir() and (subfolder / stamped(500, "inner.csv")).exists()  # sub-folders left alone
    assert stats.files_deleted == 2 and stats.skipped >= 2


def test_a_missing_drop_dir_prunes_nothing(tmp_path):
    stats = prune_drop_archives(tmp_path / "absent", 90, now=NOW)
    assert stats.summary() == {"files_deleted": 0, "bytes_deleted": 0, "kept": 0, "skipped": 0}
