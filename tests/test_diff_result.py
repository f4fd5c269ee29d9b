"""`DiffResult` and `NodeDiff`: the typed diff keeps `diff --json` byte for byte.

`tests/data/diff/` holds what `dot-tasks diff` printed before the result was typed (the
code of 580d1af), for the projects of test_diff.py and test_diff_values.py, same database
and two databases, as JSON, markdown and text. The commits, the schemas named after them
and the seconds vary from run to run; `normalised` replaces them in both the saved and
the fresh output. Regenerate with `python tests/test_diff_result.py --regenerate` (and
look at the change of the files before committing it).
"""

from __future__ import annotations

import dataclasses
import re
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import Project, make_hermetic

DATA = Path(__file__).parent / "data" / "diff"
BASE_COMMIT, HEAD_COMMIT = "b" * 40, "e" * 40
#: Each saved output: the project it comes from, the sides and flags of its diff, and its formats
#: (the markdown and text of two databases are those of one, from the same code).
CASES = {
    "shop_same": ("shop", ("dev@{first}", "dev@{second}"), ("json", "md", "txt")),
    "shop_apart": ("shop", ("dev@{first}", "other@{second}"), ("json",)),
    "traps_same": ("traps", ("dev@{first}", "dev@{second}", "--sample", "20"), ("json", "md", "txt")),
    "traps_apart": ("traps", ("dev@{first}", "other@{second}", "--sample", "20"), ("json",)),
}
FORMATS = {"json": ("--json",), "md": ("--format", "markdown"), "txt": ()}


def normalised(text: str, project: Project) -> str:
    """`text` with the run's commits (and the short hashes in schema names) and its duration fixed."""
    for commit, fixed in ((project.first, BASE_COMMIT), (project.second, HEAD_COMMIT)):
        text = text.replace(commit, fixed).replace(commit[:8], fixed[:8])
    return re.sub(r'"seconds": [0-9.e+-]+', '"seconds": 1.5', text)


def make_projects(root: Path) -> dict[str, Project]:
    """Both test projects, on DuckDB, with a second database file named `other`."""
    from test_diff import DUCKDB_PROFILE as SHOP_PROFILE
    from test_diff import make_diff_project
    from test_diff_values import DUCKDB_PROFILE as TRAPS_PROFILE
    from test_diff_values import make_trap_project

    return {"shop": make_diff_project(root / "shop", SHOP_PROFILE), "traps": make_trap_project(root / "traps", TRAPS_PROFILE)}


def produce(projects: dict[str, Project]) -> Iterator[tuple[str, str]]:
    """(file name, normalised output) of every case in every format, from the real `dot-tasks diff`."""
    for case, (name, sides, formats) in CASES.items():
        project = projects[name]
        args = [a.format(first=project.first, second=project.second) for a in sides]
        for suffix in formats:
            result = project.run("diff", *args, *FORMATS[suffix])
            assert result.code == 1, result.stderr
            yield f"{case}.{suffix}", normalised(result.stdout, project)


def saved(name: str) -> str:
    return (DATA / name).read_text(encoding="utf-8")


@pytest.mark.parametrize("case", sorted(CASES))
def test_to_json_reproduces_the_saved_output(case: str) -> None:
    from dot_tasks.diffing import DiffResult

    text = saved(f"{case}.json")
    result = DiffResult.from_json(text)
    assert result.to_json() == text
    # The derived fields are properties, not copies of the saved ones.
    assert result.differs is True and any(n.data_differs for n in result.nodes)


@pytest.mark.parametrize("case", sorted(c for c, (_, _, formats) in CASES.items() if "md" in formats))
def test_markdown_and_text_read_the_typed_result(case: str) -> None:
    """The summaries match; the whole text is compared from a real run (JSON sorts the columns of a sample)."""
    from dot_tasks import diff_output
    from dot_tasks.diffing import DiffResult

    result = DiffResult.from_json(saved(f"{case}.json"))
    assert diff_output.markdown(result).splitlines()[0] == saved(f"{case}.md").splitlines()[0]
    assert diff_output.terminal(result).splitlines()[-1] == saved(f"{case}.txt").splitlines()[-1]
    assert [line.split()[:3] for line in diff_output.terminal(result).splitlines()[:-1]] == [
        line.split()[:3] for line in saved(f"{case}.txt").splitlines()[:-1]
    ]


def test_properties_say_what_the_report_derived() -> None:
    from dot_tasks.diffing.result import DiffResult, RowCounts

    by_name = {n.name: n for n in DiffResult.from_json(saved("shop_same.json")).nodes}
    assert by_name["order_totals"].state == "impacted" and by_name["orders"].state == "modified"
    assert by_name["old_model"].state == "removed" and by_name["old_model"].rows.delta is None
    widened = by_name["widened"].values
    assert by_name["widened"].data_differs and widened is not None and not widened.differs  # its columns differ
    assert by_name["customers"].data_differs is False and by_name["customers"].values is not None
    totals = by_name["order_totals"].values
    assert totals is not None and totals.share_changed == 3 / 5
    assert totals.columns_by_changes() == ["total", "n"]
    assert by_name["dupes"].key_problems is not None and by_name["dupes"].differs is False
    # A row count alone makes an unchanged node differ, as it did in the JSON's `differs`.
    grown = dataclasses.replace(by_name["customers"], rows=RowCounts(5, 6))
    assert grown.data_differs and grown.differs and grown.rows.delta == 1
    # Code alone makes a node differ, and the whole diff with it (so `diff` exits 1), though every
    # count is equal: a rewritten model that returns the same rows is still a change to review.
    rewritten = dataclasses.replace(by_name["customers"], code="modified")
    assert not rewritten.data_differs and rewritten.differs
    result = DiffResult.from_json(saved("shop_same.json"))
    only_rewritten = dataclasses.replace(
        result,
        nodes=[
            dataclasses.replace(
                n,
                code="unchanged",
                impacted=False,
                rows=RowCounts(1, 1),
                columns=by_name["customers"].columns,
                values=None,
                key_problems=None,
            )
            if n.name != "customers"
            else rewritten
            for n in result.nodes
        ],
    )
    assert only_rewritten.differs


def test_a_side_is_parsed_by_the_one_spec_parser_with_diffs_own_message() -> None:
    from dot_tasks.diffing import DiffError, parse_side

    assert parse_side("main") == (None, "main") and parse_side("@HEAD~1") == (None, "HEAD~1")
    assert parse_side("dev@main@{1}") == ("dev", "main@{1}")  # only the first @ splits, as naming.parse_spec does
    with pytest.raises(DiffError, match=r"^'prod@' is not of the form CTX@REF, @REF or REF \(e.g. prod@main, @HEAD~1, main\)$"):
        parse_side("prod@")


def test_a_real_diff_prints_what_was_saved(tmp_path: Path) -> None:
    """Both projects built and diffed now: every output equals the saved one, byte for byte."""
    with pytest.MonkeyPatch.context() as mp:
        make_hermetic(mp, tmp_path / "home")
        for name, text in produce(make_projects(tmp_path)):
            assert text == saved(name), name


def regenerate() -> None:  # pragma: no cover
    import tempfile

    with tempfile.TemporaryDirectory() as tmp, pytest.MonkeyPatch.context() as mp:
        make_hermetic(mp, Path(tmp) / "home")
        DATA.mkdir(parents=True, exist_ok=True)
        for name, text in produce(make_projects(Path(tmp))):
            (DATA / name).write_text(text, encoding="utf-8")
            print(f"wrote {DATA / name}")


if __name__ == "__main__":  # pragma: no cover
    if "--regenerate" in sys.argv:
        sys.path.insert(0, str(Path(__file__).parent))
        regenerate()
    else:
        sys.exit(pytest.main([__file__, "-q"]))
