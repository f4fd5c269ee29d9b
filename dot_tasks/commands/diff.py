"""`diff`: what a change does to the data, model by model, computed in the warehouse."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

from invoke import Context, Exit

from ..errors import DotError
from .common import deferred, dot_task, progress, split_words, workspace

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
    if format not in FORMATS:
        raise DotError(f"--format {format!r} is not one of {', '.join(FORMATS)}")
    if sample < 0:
        raise DotError(f"--sample {sample} is negative: give how many keys to show, e.g. --sample 5")
    if not 0 <= float_tolerance < 1:
        raise DotError(f"--float-tolerance {float_tolerance} is not a relative difference in [0, 1): e.g. 1e-9")
    if output and not Path(output).parent.is_dir():
        raise DotError(f"-o {output}: the directory {Path(output).parent} does not exist: create it first")
    render_html = None
    if format == "html":
        if not output:
            raise DotError("--format html writes a page: give the file with -o/--output, e.g. -o diff.html")
        # The HTML report is its own room (dot_tasks/report.py, render_html(diff) -> str).
        if importlib.util.find_spec("dot_tasks.report") is None:
            raise DotError("--format html needs dot_tasks/report.py, which this installation lacks: use --format markdown or --json")
        from .. import report

        render_html = report.render_html
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
    from .. import diff_output

    if json_:
        # NaN is not JSON: diff_output.finite spells it (and the infinities) as strings.
        text = json.dumps(diff_output.finite(result), indent=2, sort_keys=True, default=str, allow_nan=False) + "\n"
    elif format == "markdown":
        text = diff_output.markdown(result)
    elif render_html is not None:
        text = render_html(result)
    else:
        text = diff_output.terminal(result) + "\n"
    if output:
        from ..files import write_atomic

        write_atomic(Path(output), text)
        progress(f"diff: wrote {output}")
    else:
        sys.stdout.write(text)
        sys.stdout.flush()
    if result.get("errors"):
        raise Exit(f"dot-tasks: {result['errors']} node(s) could not be compared (see values_skipped)", code=2)
    if result["differs"] and not exit_zero:
        raise Exit(code=1)
