"""A first `run` on a real project: nothing made for a bad context, submodule packages, one DuckDB file."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from conftest import Project, dot, git, make_project, write

from dot_tasks.builds import Settings, Workspace, read_generated_profile, warehouse_locks, write_profile
from dot_tasks.errors import LockTimeout


def _nothing_made(project: Project) -> None:
    builds = project.project_dir / ".dot" / "isolated_builds"
    assert not builds.exists() or not any(builds.iterdir()), list(builds.rglob("*"))[:5]
    assert not (project.repo_dir / ".git" / "worktrees").exists()


def test_an_unknown_context_makes_nothing(project: Project) -> None:
    result = project.run("run", "staging@HEAD~1")
    assert result.code == 2 and "'staging'" in result.stderr and "dev, prod" in result.stderr, result.stderr
    _nothing_made(project)
    listed = project.run("list", "--json")
    assert listed.code == 0 and listed.stdout == "", listed


def test_a_missing_adapter_makes_nothing(project: Project) -> None:
    write(project.project_dir / "profiles.yml", "shop:\n  target: dev\n  outputs:\n    dev: {type: nosuchdb, schema: s}\n")
    result = project.run("run")
    assert result.code == 2 and "pip install dbt-nosuchdb" in result.stderr, result.stderr
    _nothing_made(project)


def _util_package(root: Path) -> Path:
    util = root / "util"
    util.mkdir()
    git("init", "-q", "-b", "main", cwd=util)
    write(util / "dbt_project.yml", "name: util\nversion: '1.0'\nconfig-version: 2\n")
    write(util / "macros" / "double.sql", "{% macro double(x) %}({{ x }} * 2){% endmacro %}\n")
    git("add", "-A", cwd=util)
    git("commit", "-q", "-m", "util", cwd=util)
    return util


@pytest.mark.parametrize("subdir", ["", "analytics"])
def test_a_local_package_in_a_submodule_is_checked_out(tmp_path: Path, subdir: str) -> None:
    project = make_project(tmp_path, subdir=subdir)
    util = _util_package(tmp_path)
    git("-c", "protocol.file.allow=always", "submodule", "add", "-q", str(util), "pkgs/util", cwd=project.repo_dir)
    up = "../" if subdir else ""
    write(project.project_dir / "packages.yml", f"packages:\n  - local: {up}pkgs/util\n")
    commit = project.commit("a local package from a submodule")

    def submodule_config() -> list[str]:
        return [
            line
            for line in (project.repo_dir / ".git" / "config").read_text().splitlines()
            if "submodule" in line or "url" in line or "active" in line
        ]

    config_before = submodule_config()
    result = project.run("worktree")
    assert result.code == 0, result.stderr
    checked_out = project.build_dir(commit) / "worktree" / "pkgs" / "util"
    assert (checked_out / "macros" / "double.sql").is_file()
    assert submodule_config() == config_before  # the user's submodule config untouched
    assert project.run("worktree").code == 0  # reused: the submodule's files are not changes
    # A clone that never initialised the submodule: one line naming the package, nothing made.
    clone = tmp_path / "clone"
    git("clone", "-q", str(project.repo_dir), str(clone), cwd=tmp_path)
    result = dot("worktree", cwd=clone / subdir if subdir else clone)
    lines = [line for line in result.stderr.splitlines() if line.startswith("dot-tasks: ")]
    assert result.code == 2 and len(lines) == 1, result.stderr
    assert "pkgs/util" in lines[0] and "git submodule update --init pkgs/util" in lines[0], lines[0]
    assert not (clone / subdir / ".dot" / "isolated_builds" / commit / "worktree").exists()


def _workspace(project: Project, timeout: float = 600.0) -> Workspace:
    return Workspace.open(Settings(lock_timeout=timeout), cwd=project.project_dir)


def test_one_duckdb_file_named_two_ways_is_one_file(project: Project, tmp_path: Path) -> None:
    """A symlink, and an absolute beside a relative path: diff sees one database, builds wait for each other."""
    data = tmp_path / "data"
    data.mkdir()
    (project.project_dir / "link.duckdb").symlink_to(project.project_dir / "warehouse.duckdb")
    os.symlink(project.project_dir, data / "project")
    write(
        project.project_dir / "profiles.yml",
        f"""
        shop:
          target: dev
          outputs:
            dev: {{type: duckdb, path: warehouse.duckdb, schema: dev}}
            link: {{type: duckdb, path: link.duckdb, schema: dev}}
            absolute: {{type: duckdb, path: "{data / "project" / "warehouse.duckdb"}", schema: dev}}
        """,
    )
    ws = _workspace(project, timeout=0.3)
    outputs = {}
    for context in ("dev", "link", "absolute"):
        ctx = write_profile(ws, project.second, context)
        outputs[context] = read_generated_profile(ctx.profiles_dir / "profiles.yml")[2]
    from dot_tasks.diffing import _connection

    assert _connection(outputs["dev"]) == _connection(outputs["link"]) == _connection(outputs["absolute"])
    assert _connection(outputs["dev"]) != _connection({**outputs["dev"], "path": str(tmp_path / "other.duckdb")})
    for other in ("link", "absolute"):
        with warehouse_locks(ws, [outputs["dev"]]):
            failed: list[BaseException] = []

            def second(other: str = other, failed: list[BaseException] = failed) -> None:
                try:
                    with warehouse_locks(ws, [outputs[other]]):
                        pass
                except LockTimeout as exc:
                    failed.append(exc)

            thread = threading.Thread(target=second)
            thread.start()
            thread.join(10)
        assert failed and "waiting for the DuckDB file" in str(failed[0]), other


HOLD_DUCKDB = """
import sys, duckdb
connection = duckdb.connect(sys.argv[1])
print("open", flush=True)
sys.stdin.read()
"""


def test_a_duckdb_file_open_elsewhere_is_named_and_the_good_record_kept(project: Project) -> None:
    first = subprocess.Popen(
        [sys.executable, "-m", "dot_tasks", "run", "--json"],
        cwd=project.project_dir,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    # One progress line at once: before dbt, which takes seconds to start, says anything.
    progress = []
    assert first.stderr is not None
    for line in first.stderr:
        progress.append(line)
        if "Running with dbt" in line:
            break
    out, rest = first.communicate(timeout=300)
    assert first.returncode == 0, "".join(progress) + rest
    starting = next(i for i, line in enumerate(progress) if line.startswith("dot-tasks: build    starting dbt build"))
    assert starting == len(progress) - 2 and progress[0].startswith("dot-tasks: resolve"), progress
    record_path = project.build_dir(project.second) / "dev" / "build.json"
    good = record_path.read_text()
    assert json.loads(good)["status"] == "success"

    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_DUCKDB, str(project.project_dir / "warehouse.duckdb")],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "open\n"
        started = time.monotonic()
        result = project.run("run", env={"INVOKE_DOT_LOCK_TIMEOUT": "1"})
        assert time.monotonic() - started < 30
    finally:
        holder.communicate("")
    assert result.code == 2, result.stderr
    ours = [line for line in result.stderr.splitlines() if line.startswith("dot-tasks: ")]
    assert (
        f"waiting for the DuckDB file {project.project_dir / 'warehouse.duckdb'}, open in another process "
        f"(held by pid {holder.pid}: {sys.executable} -c" in result.stderr
    ), result.stderr
    assert ours[-1].startswith("dot-tasks: gave up after 1s") and f"pid {holder.pid}" in ours[-1], ours
    assert "Traceback" not in result.stderr and "Running with dbt" not in result.stderr
    assert record_path.read_text() == good  # the build that never started left the good record alone
    _taken_after_the_check_keeps_the_good_record(project, record_path, good)


HOLD_WHEN_RUNNING = """
import json, sys, time, duckdb
record, database = sys.argv[1:3]
deadline = time.monotonic() + 120
while time.monotonic() < deadline:  # the build wrote 'running': it passed its check, dbt is starting
    try:
        if json.load(open(record))["status"] == "running":
            break
    except (OSError, ValueError):
        pass
    time.sleep(0.01)
connection = duckdb.connect(database)
print("open", flush=True)
sys.stdin.read()
"""


def _taken_after_the_check_keeps_the_good_record(project: Project, record_path: Path, good: str) -> None:
    """The race: the file is taken between dot-tasks' check and dbt's connection."""
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_WHEN_RUNNING, str(record_path), str(project.project_dir / "warehouse.duckdb")],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        result = project.run("run")
        assert holder.stdout is not None and holder.stdout.readline() == "open\n"  # the race really happened
    finally:
        holder.communicate("")
    assert result.code == 2
    last = [line for line in result.stderr.splitlines() if line.startswith("dot-tasks: ")][-1]
    assert f"is open in another process (pid {holder.pid}" in last and "record is kept" in last, result.stderr
    assert record_path.read_text() == good


def test_a_holder_is_named_as_well_as_can_be() -> None:
    from dot_tasks.locks import describe_process

    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    assert describe_process(int(gone.stdout)) == f"pid {int(gone.stdout)}"  # it ended: the pid is what is left
    assert describe_process(os.getpid(), limit=20).endswith("...") and len(describe_process(os.getpid(), 20)) < 40
