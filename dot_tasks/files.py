"""Small filesystem helpers: atomic writes and removals that tolerate absence."""

from __future__ import annotations

import json
import os
import shutil
import stat
import tempfile
from pathlib import Path
from typing import Any


def write_atomic(path: Path, text: str, mode: int = 0o644) -> None:
    """Write `text` to `path` so readers see the old file or the new, never half.

    The temporary file is created with `mode` from the start, so a secret-free
    but private file (a profile) is never readable by others, not even briefly.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json_atomic(path: Path, data: Any) -> None:
    """Write `data` as sorted, indented JSON, atomically (see write_atomic)."""
    write_atomic(path, json.dumps(data, indent=2, sort_keys=True) + "\n")


def read_json(path: Path) -> Any | None:
    """The JSON in `path`, or None when it is missing or was cut short."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (FileNotFoundError, NotADirectoryError, json.JSONDecodeError, UnicodeDecodeError):
        return None


def remove_tree(path: Path) -> None:
    """Remove a file or directory tree; a missing path is not an error."""
    if path.is_symlink() or path.is_file():
        path.unlink(missing_ok=True)
        return
    if not path.exists():
        return

    def make_writable_and_retry(func: Any, failed: str, _exc: Any) -> None:
        # git checks out read-only files (e.g. packed objects copied by tools);
        # rmtree cannot unlink them on some systems until they are writable.
        os.chmod(failed, stat.S_IWRITE | stat.S_IREAD | stat.S_IEXEC)
        func(failed)

    shutil.rmtree(path, onerror=make_writable_and_retry)


def tree_size(path: Path) -> int:
    """Bytes used by the files below `path`, not following symlinks."""
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_size
            except OSError:
                pass
    return total
