"""`diff`: what a change does to the data, model by model, computed in the warehouse."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from invoke import Context, Exit

from ..errors import DotError
from .common import deferred, dot_task, progress, split_words, workspace

if TYPE_CHECKING:  # the diff room loads on first use, so that --help starts fast
    from ..diffing import DiffResult

FORMATS = ("text", "markdown", "html")


@dot_task(
    iterable=["key"],
    help={
        "base": "The side to compare from, CTX@REF, @REF or REF (dot-tasks also takes it positionally; default: "
        "the head build's deferred_to).",
        "head": "The side to compare to, CTX@REF, @REF or REF (default: HEAD in the default context).",
        "select": "dbt selection against the head build (state:modified+ compares with the base build as state).",
        "exclude": "dbt exclusion against the head build.",
        "key": "MODEL=COL[,COL]: the columns that match a model's rows (repeatable); default: primary_key "
        "constraint, meta.primary_key, or a column with unique and not_null tests.",
        "sample": "How many keys of each kind (added, removed, changed) to show per model (default 5).",
        "float_tolerance": "Floats whose relative difference is at most this count as equal, e.g. 1e-9 (default 0: exactly equal).",
        "build": "Build a side that has no successful build, as `run` would (--no-build: fail instead).",
        "format": "text (default), markdown (a pull-request comment) or html (needs -o).",
        "output": "Write the result to this file instead of stdout.",
        "exit_zero": "Exit 0 when the builds differ (2 still means trouble).",
    },
)
def diff(
    c: Context,
    base: str | None = None,
    head: str = "HEAD",
    select: str | None = None,
    exclude: str | None = None,
    key: list[str] | None = None,
    sample: int = 5,
    float_tolerance: float = 0.0,
    build: bool = True,
    json_: bool = False,
    format: str = "text",
    output: str | None = None,
    exit_zero: bool = False,
    project_dir: str | None = None,
    profiles_dir: str | None = None,
) -> None:
    """Compare two builds model by model: code, columns, rows and values (exit 1 when they differ)."""
    diffing = deferred("dot_tasks.diffing")
    render_html = _checked_flags(format, sample, float_tolerance, output)
    ws = workspace(c, project_dir, profiles_dir)
    options = diffing.DiffOptions(
        base=base,
        head=head,
        select=split_words("--select", select) if select else [],
        exclude=split_words("--exclude", exclude) if exclude else [],
        keys=diffing.parse_keys(key or []),
        sample=sample,
        float_tolerance=float_tolerance,
        build=build,
        progress=progress,
    )
    try:
        result = diffing.diff_builds(ws, options)
    except DotError as exc:
        exc.exit_code = 2  # diff(1): 2 is trouble; 1 would read as "the builds differ"
        raise
    _deliver(_rendered(result, json_, format, render_html), output)
    if result.errors:
        raise Exit(f"dot-tasks: {result.errors} node(s) could not be compared (see values_skipped)", code=2)
    if result.differs and not exit_zero:
        raise Exit(code=1)


def _checked_flags(format: str, sample: int, float_tolerance: float, output: str | None) -> Callable[[DiffResult], str] | None:
    """Refuse bad flags before anything is built; the HTML renderer, when --format html asks for it."""
    if format not in FORMATS:
        raise DotError(f"--format {format!r} is not one of {', '.join(FORMATS)}")
    if sample < 0:
        raise DotError(f"--sample {sample} is negative: give how many keys to show, e.g. --sample 5")
    if not 0 <= float_tolerance < 1:
        raise DotError(f"--float-tolerance {float_tolerance} is not a relative difference in [0, 1): e.g. 1e-9")
    if output and not Path(output).parent.is_dir():
        raise DotError(f"-o {output}: the directory {Path(output).parent} does not exist: create it first")
    if format != "html":
        return None
    if not output:
        raise DotError("--format html writes a page: give the file with -o/--output, e.g. -o diff.html")
    # The HTML report is its own room (dot_tasks/report/, render_html(result) -> str).
    if importlib.util.find_spec("dot_tasks.report") is None:
        raise DotError("--format html needs the dot_tasks.report package, which this installation lacks: use --format markdown or --json")
    from .. import report

    return report.render_html


def _rendered(result: DiffResult, json_: bool, format: str, render_html: Callable[[DiffResult], str] | None) -> str:
    """The result as --json, --format markdown, html or text print it."""
    from .. import diff_output

    if json_:
        return result.to_json()
    if format == "markdown":
        return diff_output.markdown(result)
    if render_html is not None:
        return render_html(result)
    return diff_output.terminal(result) + "\n"


def _deliver(text: str, output: str | None) -> None:
    """`text` into the -o file (atomically), or on stdout."""
    if output:
        from ..files import write_atomic

        write_atomic(Path(output), text)
        progress(f"diff: wrote {output}")
    else:
        sys.stdout.write(text)
        sys.stdout.flush()
