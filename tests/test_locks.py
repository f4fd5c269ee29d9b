"""Waiting on POSIX locks that other programs hold (Derby's, in a Spark JVM), without taking them."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from dot_tasks.errors import LockTimeout
from dot_tasks.locks import posix_lock_holder, wait_while_locked

# Holds a POSIX lock as Java's FileChannel.tryLock does, until its stdin closes.
HOLDER = """
import fcntl, sys
f = open(sys.argv[1], "a")
fcntl.lockf(f, fcntl.LOCK_EX)
print("locked", flush=True)
sys.stdin.read()
"""


def test_another_process_posix_lock_is_seen_and_waited_for(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    lock = tmp_path / "dbex.lck"
    assert posix_lock_holder(lock) is None  # no file yet
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(lock)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline() == "locked\n"
        assert posix_lock_holder(lock) == holder.pid
        assert posix_lock_holder(lock) == holder.pid  # asking twice never took it
        with pytest.raises(LockTimeout, match=rf"gave up after 0.3s waiting for the metastore \(held by pid {holder.pid}\)"):
            wait_while_locked(lock, "the metastore", timeout=0.3)
        started = time.monotonic()
        threading.Timer(0.5, holder.stdin.close).start()  # the other process lets go while we wait
        wait_while_locked(lock, "the metastore", timeout=10)
        assert 0.4 < time.monotonic() - started < 10
    finally:
        holder.kill()
        holder.wait()
    assert posix_lock_holder(lock) is None
    assert f"dot-tasks: waiting for the metastore (held by pid {holder.pid})" in capfd.readouterr().err
