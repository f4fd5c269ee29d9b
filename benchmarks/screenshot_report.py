#!/usr/bin/env python3
"""Regenerate docs/report.png, the README's picture of the lineage report.

    python benchmarks/screenshot_report.py [--out docs/report.png] [--html report.html]

The report is that of the bundled example committed twice (examples/shop on `main`, and a
branch where a returned order keeps no payment), with the modified model's detail open.
With `dot_tasks.diffing` installed, both commits are built into a temporary DuckDB file
and compared by `diff_builds`; without it, the diff stored in tests/data is used. The page
is shown in Debian's headless Chromium (/usr/bin/chromium) through Playwright.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import shutil
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT))

import report_diffs  # noqa: E402 (a sibling script, importable once its folder is on the path)
from bench_report import CHROMIUM_FLAGS, chromium  # noqa: E402

from dot_tasks.diffing.result import DiffResult  # noqa: E402


def example_diff(tmp: Path) -> tuple[DiffResult, str]:
    if importlib.util.find_spec("dot_tasks.diffing") is None:
        return DiffResult.from_json((ROOT / "tests" / "data" / "report_example_diff.json").read_text()), "tests/data fixture"
    env = {
        "HOME": str(tmp),
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_GLOBAL": os.devnull,
        "GIT_AUTHOR_NAME": "Example",
        "GIT_AUTHOR_EMAIL": "example@example.com",
        "GIT_COMMITTER_NAME": "Example",
        "GIT_COMMITTER_EMAIL": "example@example.com",
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
    }
    os.environ.update(env)
    project, first, second = report_diffs.make_example_project(tmp)
    return report_diffs.example_diff(project, first, second), "diff_builds over fresh DuckDB builds"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=str(ROOT / "docs" / "report.png"))
    parser.add_argument("--html", default=None, help="also keep the report page here")
    args = parser.parse_args(argv)
    executable = chromium()
    if executable is None:
        print("screenshot_report: no Chromium: apt-get install chromium", file=sys.stderr)
        return 1
    from playwright.sync_api import sync_playwright

    from dot_tasks.report import render_html

    tmp = Path(tempfile.mkdtemp(prefix="dot-report-shot-"))
    try:
        diff, source = example_diff(tmp)
        page_path = tmp / "report.html"
        page_path.write_text(render_html(diff), encoding="utf-8")
        if args.html:
            shutil.copyfile(page_path, args.html)
        with sync_playwright() as pw:
            context = pw.chromium.launch_persistent_context(
                str(tmp / "profile"),
                executable_path=executable,
                headless=True,
                args=CHROMIUM_FLAGS,
                viewport={"width": 1400, "height": 760},
            )
            page = context.new_page()
            page.goto(page_path.as_uri())
            page.locator(f'.node[data-name="{report_diffs.CHANGED_MODEL}"]').click()
            Path(args.out).parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=args.out)
            context.close()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"wrote {args.out} from the example's diff ({source})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
