"""(c): the latency of the commands that never build (resolve, worktree reused, profile, list, --help),
and whether starting them imports dbt."""

from __future__ import annotations

import argparse
from pathlib import Path

from harness import DOT, PY, BenchError, Env, Result, interleave
from projects import make_small_repo

#: The commands whose latency is measured, and their arguments.
COMMANDS = {
    "resolve": ["resolve", "--ref", "HEAD"],
    "worktree (reused)": ["worktree", "--ref", "HEAD"],
    "profile": ["profile", "--ref", "HEAD", "--context", "dev"],
    "list": ["list"],
    "--help": ["--help"],
}
FORBIDDEN_PREFIXES = ("dbt.cli", "dbt.task", "dbt.config")
FORBIDDEN_MODULES = ("dbt.version", "dbt.adapters.factory")


def import_report(stderr: str) -> tuple[list[str], bool, list[tuple[str, int]]]:
    """(forbidden dbt modules imported, whether `dbt` itself was, slowest package imports in µs)."""
    forbidden, top = [], []
    saw_dbt = False
    for line in stderr.splitlines():
        if not line.startswith("import time:") or "|" not in line:
            continue
        parts = line[len("import time:") :].split("|")
        if len(parts) != 3 or not parts[1].strip().isdigit():
            continue
        raw = parts[2]
        module = raw.strip()
        if module == "dbt" or module.startswith("dbt."):
            saw_dbt = True
        if module.startswith(FORBIDDEN_PREFIXES) or module in FORBIDDEN_MODULES:
            forbidden.append(module)
        # Third-party and stdlib packages (not submodules, not our own), wherever first imported.
        if "." not in module and module not in ("dot_tasks", "site", "runpy", "encodings"):
            top.append((module, int(parts[1].strip())))
    top.sort(key=lambda item: -item[1])
    return forbidden, saw_dbt, top[:5]


def _latency(env: Env, repo: Path, label: str, args: list[str], repeat: int) -> Result:
    """One command against the interpreter's own start, then one run under `-X importtime`."""
    result = Result("c", f"latency `{label}`", "s", baseline_label="`python -c pass` (interpreter start)", target_kind="abs", target=0.3)
    try:
        interleave(repeat, lambda: env.run([*DOT, *args], repo)[0], lambda: env.run([PY, "-c", "pass"], repo)[0], result)
        _, proc = env.run([PY, "-X", "importtime", "-m", "dot_tasks", *args], repo)
        forbidden, saw_dbt, top = import_report(proc.stderr)
        shown = ", ".join(sorted(set(forbidden))[:6]) + (" ..." if len(set(forbidden)) > 6 else "")
        result.notes.append(
            f"imports dbt: {'yes (' + shown + ')' if forbidden else 'no'}"
            + ("" if forbidden else f" (the `dbt` namespace itself: {'yes' if saw_dbt else 'no'})")
        )
        result.notes.append("slowest package imports (cumulative): " + ", ".join(f"{name} {micro / 1000:.0f} ms" for name, micro in top))
        if forbidden:
            result.failed_checks.append("imports dbt")
    except BenchError as exc:
        result.error = str(exc)
    return result


def measure_c(env: Env, args: argparse.Namespace) -> list[Result]:
    """(c): each command in COMMANDS, in a small repository whose worktree of HEAD already exists."""
    repo = make_small_repo(env)
    env.run([*DOT, "worktree", "--ref", "HEAD"], repo)  # so that `worktree` below is the reused case
    return [_latency(env, repo, label, command, args.repeat) for label, command in COMMANDS.items()]
