"""report: bench_report.py's figures (the lineage report of a generated 200-model diff with 20
changes: size, write time, time to show in headless Chromium) as rows of bench.py's table."""

from __future__ import annotations

import argparse

from harness import Env, Result


def measure_report(env: Env, args: argparse.Namespace) -> list[Result]:
    """report: size against 2 MB, the Python write time, and the time shown in Chromium against 1 s."""
    import bench_report  # imported only when asked for: it puts the repository's root on sys.path

    got = bench_report.measure(models=200, changes=20, repeat=args.repeat)
    label = "200-model diff, 20 changes"
    size = Result("report", f"{label}: size", "MB", ours=[got["bytes"] / 1e6], target_kind="abs", target=2.0)
    size.notes.append(f"{got['nodes_drawn_collapsed']} nodes and {got['groups_collapsed']} collapsed groups drawn")
    write = Result("report", f"{label}: write (Python)", "s", ours=got["write_seconds"])
    shown = Result("report", f"{label}: shown in Chromium", "s", ours=got["shown_seconds"], target_kind="abs", target=1.0)
    shown.notes.append("navigation start to the second frame after load, fresh tab each run")
    if got.get("browser_error"):
        shown.error = got["browser_error"]
    if got["console_errors"] or got["requests"]:
        shown.failed_checks.append(f"{len(got['console_errors'])} console errors, requests {got['requests']}")
    return [size, write, shown]
