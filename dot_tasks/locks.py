"""OS-level locks that die with their process.

`flock` is released by the kernel when the holder exits, however it exits, so
a run killed with `kill -9` never leaves a lock that blocks the next one.
"""

from __future__ import annotations

import fcntl
import os
import struct
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .errors import LockTimeout

_POLL_SECONDS = 0.1


@contextmanager
def hold(path: Path, what: str, timeout: float, shared: bool = False) -> Iterator[int]:
    """Hold the exclusive (or `shared`) lock at `path`, waiting up to `timeout` seconds for it.

    While it waits, it says once on stderr what it waits for and who holds it.
    Yields the lock's descriptor, for a child process that must keep holding it.
    Shared holders coexist; an exclusive holder excludes them all.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        deadline = time.monotonic() + timeout
        said = False
        while True:
            try:
                fcntl.flock(fd, (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise LockTimeout(
                        f"gave up after {timeout:g}s waiting for {what} ({_holder(fd)}): let that run finish, or raise dot.lock_timeout"
                    ) from None
                if not said:
                    print(f"dot-tasks: waiting for {what} ({_holder(fd)})", file=sys.stderr, flush=True)
                    said = True
                time.sleep(_POLL_SECONDS)
        if not shared:  # a shared holder leaves the exclusive holder's pid for the next waiter to name
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield fd
    finally:
        os.close(fd)  # closing releases the lock


def _holder(fd: int) -> str:
    try:
        pid = os.pread(fd, 32, 0).decode().strip()
    except OSError:
        pid = ""
    return f"held by pid {pid}" if pid else "held by another run"


def posix_lock_holder(path: Path) -> int | None:
    """The pid holding a POSIX (fcntl) lock on `path`, without taking it; None if free.

    Java's FileChannel locks are POSIX locks. Asking with F_GETLK never takes
    the lock, so it cannot make the owner's own locking fail.
    """
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        query = struct.pack(_FLOCK, fcntl.F_WRLCK, os.SEEK_SET, 0, 0, 0)
        answer = struct.unpack(_FLOCK, fcntl.fcntl(fd, fcntl.F_GETLK, query))
    except OSError:
        return None
    finally:
        os.close(fd)
    return None if answer[0] == fcntl.F_UNLCK else int(answer[4])


# struct flock: l_type, l_whence, l_start, l_len, l_pid (Linux's layout).
_FLOCK = "hhqqi4x"


def describe_process(pid: int, limit: int = 80) -> str:
    """`pid 123: python notebook.py`: enough for a user to find the process and close it."""
    try:
        words = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:  # not Linux, or the process just ended
        return f"pid {pid}"
    # One line whatever the arguments hold (a `python -c` script has newlines).
    command = " ".join(" ".join(w.decode(errors="replace") for w in words).split())
    if len(command) > limit:
        command = command[: limit - 3] + "..."
    return f"pid {pid}: {command}" if command else f"pid {pid}"


def is_held(path: Path) -> bool:
    """Whether another process holds our lock on `path` now (a build running, say)."""
    try:
        with hold(path, "", timeout=0):
            return False
    except LockTimeout:
        return True


def wait_while_locked(path: Path, what: str, timeout: float) -> None:
    """Wait, up to `timeout` seconds, until no process holds a POSIX lock on `path`.

    For locks taken by programs that know nothing of ours, such as Derby's,
    or DuckDB's in a notebook. Both messages name the holding process.
    """
    deadline = time.monotonic() + timeout
    said = False
    while (pid := posix_lock_holder(path)) is not None:
        if time.monotonic() >= deadline:
            raise LockTimeout(
                f"gave up after {timeout:g}s waiting for {what} (held by {describe_process(pid)}): "
                "close it there or let that process finish, or raise dot.lock_timeout"
            )
        if not said:
            print(f"dot-tasks: waiting for {what} (held by {describe_process(pid)})", file=sys.stderr, flush=True)
            said = True
        time.sleep(_POLL_SECONDS)
