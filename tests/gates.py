"""Gates: places inside a real run where it stops until the test lets it go on.

A test that kills a run, or looks at it while it works, must know where the run
is. Sleeping and hoping does not tell it; a gate does. The run touches
`<gate>.entered` when it reaches the gate, then waits for `<gate>.open`.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

from conftest import Project, write

# A dbt Python model (dbt-duckdb runs it in the dbt process) that waits at the gate
# named by DOT_TEST_GATE, so a run can be held in the middle of its SQL.
GATE_MODEL = """
import os
import time


def model(dbt, session):
    dbt.config(materialized="table")
    gate = os.environ.get("DOT_TEST_GATE")
    if gate:
        open(gate + ".entered", "w").close()
        # Bounded, so a test that fails before opening the gate leaves no process behind for long.
        deadline = time.monotonic() + 300
        while not os.path.exists(gate + ".open") and time.monotonic() < deadline:
            time.sleep(0.05)
    return session.sql("select 1 as x")
"""

# A `git` that waits at the gate after the real git has done `clone` (dbt deps of a
# git package) or `worktree add` (the checkout), before it returns.
GIT_WRAPPER = """#!/bin/sh
"{real}" "$@"
code=$?
case " $* " in
  *" {word} "*)
    touch "$DOT_TEST_GATE.entered"
    n=0  # bounded, as the gate model is: a failed test leaves nothing waiting for long
    while [ ! -e "$DOT_TEST_GATE.open" ] && [ $n -lt 6000 ]; do sleep 0.05; n=$((n + 1)); done ;;
esac
exit $code
"""


def add_gate_model(project: Project) -> str:
    """Commit a model that waits at the gate; returns the new commit."""
    write(project.project_dir / "models" / "gate.py", GATE_MODEL)
    return project.commit("a model that waits at the test's gate")


def git_wrapper(directory: Path, word: str) -> Path:
    """A directory holding a `git` that stops at the gate after `git ... <word> ...`."""
    real = subprocess.run(["sh", "-c", "command -v git"], capture_output=True, text=True, check=True).stdout.strip()
    directory.mkdir(parents=True, exist_ok=True)
    script = directory / "git"
    script.write_text(GIT_WRAPPER.format(real=real, word=word))
    script.chmod(0o755)
    return directory


class Gate:
    def __init__(self, path: Path) -> None:
        self.path = path

    @property
    def env(self) -> dict[str, str]:
        return {"DOT_TEST_GATE": str(self.path)}

    def entered(self) -> bool:
        return Path(f"{self.path}.entered").exists()

    def wait_entered(self, proc: subprocess.Popen | None = None, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while not self.entered():
            if proc is not None and proc.poll() is not None:
                raise AssertionError(f"the run ended (exit {proc.returncode}) before reaching the gate")
            if time.monotonic() > deadline:
                raise AssertionError("the run never reached the gate")
            time.sleep(0.05)

    def open(self) -> None:
        Path(f"{self.path}.open").touch()


class Run:
    """A `dot-tasks` process in its own session, its stderr collected as it comes."""

    def __init__(self, project: Project, *args: str, env: dict[str, str] | None = None) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "dot_tasks", *args],
            cwd=project.project_dir,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
            env={**os.environ, **(env or {})},
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.append(line)

    @property
    def stderr(self) -> str:
        return "".join(self.lines)

    def wait_for_line(self, needle: str, timeout: float = 120) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in list(self.lines):
                if needle in line:
                    return line
            if self.proc.poll() is not None and not self._reader.is_alive():
                break
            time.sleep(0.02)
        raise AssertionError(f"the run never printed {needle!r}:\n{self.stderr}")

    def wait(self, timeout: float = 300) -> int:
        code = self.proc.wait(timeout=timeout)
        self._reader.join(timeout=10)
        return code

    def kill_group(self) -> int:
        """SIGKILL the run and every process it started; returns the run's wait status."""
        os.killpg(self.proc.pid, 9)
        code = self.wait()
        wait_group_gone(self.proc.pid)
        return code


def wait_group_gone(pgid: int, timeout: float = 30) -> None:
    """Wait until no process of the group is left (dbt lets go of the DuckDB file)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)
    raise AssertionError(f"process group {pgid} is still alive")


def children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # The command name (in parentheses) may hold spaces: the fields after the last ')' are fixed.
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[1]) == pid:
            found.append(int(entry.name))
    return found


def dbt_child(pid: int, timeout: float = 120) -> int:
    """The pid of the `dot_tasks.dbt.child` child of `pid`, once it exists."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for child in children(pid):
            try:
                cmdline = Path(f"/proc/{child}/cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if b"dot_tasks.dbt.child" in cmdline:
                return child
        time.sleep(0.02)
    raise AssertionError(f"no dbt child of {pid} appeared")


def alive(pid: int) -> bool:
    """Whether `pid` runs (a zombie waiting to be reaped does not count)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"
