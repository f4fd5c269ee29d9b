#!/usr/bin/env python3
"""The lineage report of a generated 200-model diff with 20 changes: its size, and how long it takes
to write (Python) and to show (Chromium).

    python benchmarks/bench_report.py [--models 200] [--changes 20] [--repeat 5] [--json]
    python benchmarks/bench.py --only report        # the same, in bench.py's table

Chromium is Debian's (/usr/bin/chromium, or DOT_TASKS_TEST_CHROMIUM), driven by Playwright,
headless, each load in a fresh tab. "Shown" is the time from the start of navigation to the
second animation frame after the load event: parsed, scripts run, laid out and painted once.
A plain script: it prints figures and asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from report_diffs import synthetic_diff

CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SHOWN_JS = """() => new Promise(done => {
  const go = () => requestAnimationFrame(() => requestAnimationFrame(() => done(performance.now())));
  if (document.readyState === "complete") go(); else addEventListener("load", go);
})"""


def chromium() -> str | None:
    path = os.environ.get("DOT_TASKS_TEST_CHROMIUM") or "/usr/bin/chromium"
    return path if Path(path).exists() else shutil.which("chromium")


def measure(models: int = 200, changes: int = 20, repeat: int = 5) -> dict[str, Any]:
    from dot_tasks.diffing.result import DiffResult
    from dot_tasks.report import render_html

    diff = DiffResult.from_dict(synthetic_diff(models=models, changes=changes))
    writes, page = [], ""
    for _ in range(repeat):
        t0 = time.perf_counter()
        page = render_html(diff)
        writes.append(time.perf_counter() - t0)
    out: dict[str, Any] = {
        "models": models,
        "changes": changes,
        "bytes": len(page.encode()),
        "write_seconds": writes,
        "nodes_drawn_collapsed": page.split('id="graph-full"')[0].count('class="box node'),
        "groups_collapsed": page.count('class="box group"'),
        "shown_seconds": [],
        "console_errors": [],
        "requests": [],
    }
    executable = chromium()
    if executable is None:
        out["browser_error"] = "no Chromium: apt-get install chromium"
        return out
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory(prefix="dot-bench-report-") as tmp:
        path = Path(tmp) / "report.html"
        path.write_text(page, encoding="utf-8")
        with sync_playwright() as pw:
            context = pw.chromium.launch_persistent_context(
                str(Path(tmp) / "profile"),
                executable_path=executable,
                headless=True,
                args=CHROMIUM_FLAGS,
                viewport={"width": 1400, "height": 900},
            )
            for n in range(repeat + 1):  # the first load warms the browser up and is not counted
                tab = context.new_page()
                tab.on("console", lambda m: out["console_errors"].append(m.text) if m.type == "error" else None)
                tab.on("request", lambda r: out["requests"].append(r.url))
                tab.goto(path.as_uri(), wait_until="commit")
                shown = tab.evaluate(SHOWN_JS) / 1000
                if n:
                    out["shown_seconds"].append(shown)
                tab.close()
            out["chromium"] = context.browser.version if context.browser else executable
            context.close()
        out["requests"] = sorted(set(out["requests"]) - {path.as_uri()})
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", type=int, default=200)
    parser.add_argument("--changes", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    got = measure(args.models, args.changes, args.repeat)
    if args.json:
        print(json.dumps(got, indent=2))
        return 1 if got.get("browser_error") else 0
    print(
        f"report of a {got['models']}-model diff with {got['changes']} changes "
        f"(load average {os.getloadavg()[0]:.1f} at the end; other work on the machine slows both figures)"
    )
    print(f"  size:           {got['bytes'] / 1e6:.2f} MB (target < 2 MB)")
    print(
        f"  drawn:          {got['nodes_drawn_collapsed']} nodes and {got['groups_collapsed']} collapsed groups "
        f"(all {got['models']} behind 'Show all')"
    )
    print(f"  write (Python): median {statistics.median(got['write_seconds']):.3f} s of {len(got['write_seconds'])}")
    if got.get("browser_error"):
        print(f"  shown:          not measured: {got['browser_error']}")
        return 1
    print(
        f"  shown (Chromium {got.get('chromium')}): median {statistics.median(got['shown_seconds']):.3f} s, "
        f"max {max(got['shown_seconds']):.3f} s of {len(got['shown_seconds'])} (target < 1 s)"
    )
    print(f"  console errors: {len(got['console_errors'])}; requests besides the file: {len(got['requests'])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
