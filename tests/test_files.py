"""Atomic writes: a failed write leaves the old file whole and no temporary file behind."""

from __future__ import annotations

import errno
import os
import subprocess
import uuid
from pathlib import Path

import pytest

from dot_tasks import files
from dot_tasks.files import write_atomic, write_json_atomic


def _leftovers(directory: Path, keep: str) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name != keep)


def test_write_replaces_the_file_with_the_asked_mode(tmp_path) -> None:
    target = tmp_path / "sub" / "profiles.yml"
    write_atomic(target, "old\n", mode=0o600)
    write_atomic(target, "new\n", mode=0o600)
    assert target.read_text() == "new\n" and (target.stat().st_mode & 0o777) == 0o600
    assert _leftovers(target.parent, "profiles.yml") == []


def test_a_failed_rename_keeps_the_old_file_and_leaves_no_temporary(tmp_path, monkeypatch) -> None:
    target = tmp_path / "build.json"
    write_json_atomic(target, {"status": "success"})
    before = target.read_bytes()

    def failing_replace(src, dst):
        # What cannot be produced otherwise: the rename itself failing (EXDEV, EIO, ...).
        assert Path(src).exists()
        raise OSError(errno.EIO, "injected: rename failed")

    monkeypatch.setattr(files.os, "replace", failing_replace)
    with pytest.raises(OSError, match="rename failed"):
        write_json_atomic(target, {"status": "running"})
    assert target.read_bytes() == before
    assert _leftovers(tmp_path, "build.json") == []


@pytest.fixture
def small_disk(tmp_path):
    """A 64 KiB tmpfs (mounting needs root; otherwise, the same error injected on write)."""
    mount_point = tmp_path / "disk"
    mount_point.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mount_point)], capture_output=True).returncode == 0
    yield mount_point, mounted
    if mounted:
        subprocess.run(["umount", str(mount_point)], check=True)


def test_a_full_disk_keeps_the_old_file_and_leaves_no_temporary(small_disk, monkeypatch) -> None:
    disk, mounted = small_disk
    target = disk / "profiles.yml"
    write_atomic(target, "old: profile\n", mode=0o600)
    big = "x" * (256 * 1024)  # four times the disk
    if not mounted:

        def full(fd):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

        monkeypatch.setattr(files.os, "fsync", full)
    with pytest.raises(OSError) as raised:
        write_atomic(target, big + uuid.uuid4().hex, mode=0o600)
    assert raised.value.errno == errno.ENOSPC
    assert target.read_text() == "old: profile\n"
    assert _leftovers(disk, "profiles.yml") == []
