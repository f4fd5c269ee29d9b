"""Pure naming and layout rules."""

from __future__ import annotations

from pathlib import Path

import pytest

from dot_tasks.errors import ContextError, DotError
from dot_tasks.layout import BuildPaths
from dot_tasks.naming import check_context_name, check_identifier_length, parse_spec, short_hash


def test_spec_shorthand() -> None:
    assert parse_spec("dev@main") == ("dev", "main")
    assert parse_spec("@HEAD~2") == (None, "HEAD~2")
    assert parse_spec("prod@main@{1}") == ("prod", "main@{1}")
    for bad in ("main", "dev@"):
        with pytest.raises(DotError, match="CTX@REF"):
            parse_spec(bad)


def test_context_names() -> None:
    for good in ("dev", "prod-eu", "ci_2", "v1.2"):
        assert check_context_name(good) == good
    for bad in ("", "../x", "a/b", "a\\b", "..", ".dev", "worktree", "x" * 101, "dev..x"):
        with pytest.raises(ContextError):
            check_context_name(bad)


def test_short_hash_bounds() -> None:
    commit = "0123456789abcdef0123456789abcdef01234567"
    assert short_hash(commit) == "01234567" and short_hash(commit, 12) == "0123456789ab"
    for bad in (3, 41):
        with pytest.raises(DotError, match="short-hash length"):
            short_hash(commit, bad)


def test_identifier_limits_count_bytes() -> None:
    check_identifier_length("s" * 63, "postgres")
    check_identifier_length("s" * 200, "duckdb")
    with pytest.raises(DotError, match="cuts names at 63"):
        check_identifier_length("é" * 32, "postgres")


def test_paths_derive_from_project_commit_and_context(tmp_path: Path) -> None:
    commit = "f" * 40
    paths = BuildPaths(tmp_path, commit, "sub/dir")
    assert paths.worktree_dir == tmp_path / ".dot" / "isolated_builds" / commit / "worktree"
    assert paths.worktree_project_dir == paths.worktree_dir / "sub" / "dir"
    ctx = paths.context("dev")
    assert ctx.profiles_yml == paths.build_dir / "dev" / "profiles.yml"
    assert (ctx.target_dir, ctx.logs_dir) == (paths.build_dir / "dev" / "target", paths.build_dir / "dev" / "logs")
    assert BuildPaths(tmp_path, commit) == BuildPaths(tmp_path, commit)  # same inputs, same paths
