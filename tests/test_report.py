"""The lineage report: a self-contained page, escaped text, and what a reviewer sees in a real browser.

The browser tests open the report of the bundled example committed twice (a copy of
examples/shop on `main`, and a branch where a returned order keeps no payment: `orders`
is modified in one column, `customers` impacted). Where `dot_tasks.diffing` exists the
diff is computed by `diff_builds` over real DuckDB builds (test ids end in `[diffing]`);
otherwise from tests/data/report_example_diff.json, which that same code produced on the
diff branch (ids end in `[fixture-json]`).
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import importlib.util
import json
import os
import re
import shutil
import sys
from pathlib import Path
from typing import Any

import pytest

from dot_tasks import report
from dot_tasks.diffing.result import ColumnChanges, DiffResult, DiffSide, Lineage, LineageNode, NodeDiff, RowCounts, Sample, ValueDiff
from dot_tasks.report import model
from dot_tasks.report.svg import short_name

ROOT = Path(__file__).resolve().parent.parent
FIXTURE = ROOT / "tests" / "data" / "report_example_diff.json"
sys.path.insert(0, str(ROOT / "benchmarks"))
import report_diffs  # noqa: E402 (a generator module of the benchmarks, not an installed package)
from bench_report import CHROMIUM_FLAGS  # noqa: E402 (one list of flags for the benchmark and the tests)

SOURCE = "diffing" if importlib.util.find_spec("dot_tasks.diffing") is not None else "fixture-json"
HOSTILE_NAME = '</script><script>window.__pwned=1</script><img src=x onerror="window.__pwned=2">'
HOSTILE_VALUE = "<img src=y onerror=window.__pwned=3>\u2028'\"&amp;"


def _synthetic(**sizes: int) -> DiffResult:
    return DiffResult.from_dict(report_diffs.synthetic_diff(**sizes))


def _empty() -> DiffResult:
    """A diff of no nodes between sides that name nothing."""
    side = DiffSide(ref="", commit="", context="", schema=None)
    return DiffResult(side, side, errors=0, same_database=True, adapter_type="duckdb", seconds=0.0, nodes=(), lineage=Lineage({}, ()))


def _compared(name: str, code: str = "unchanged", **fields: Any) -> NodeDiff:
    """A compared node named `name` (its unique id too), unchanged in everything `fields` does not give."""
    defaults: dict[str, Any] = {
        "resource_type": "model",
        "impacted": False,
        "columns": ColumnChanges(),
        "rows": RowCounts(),
        "values": None,
        "values_skipped": None,
        "key_source": None,
        "base_relation": None,
        "head_relation": None,
    }
    return NodeDiff(name=name, unique_id=fields.pop("unique_id", name), code=code, **(defaults | fields))


def _hostile_diff() -> DiffResult:
    diff = report_diffs.synthetic_diff(models=16, changes=6, seed=3)
    node = next(n for n in diff["nodes"] if n["code"] == "modified")
    old = node["unique_id"]
    node["name"], node["unique_id"] = HOSTILE_NAME, "model.shop." + HOSTILE_NAME
    lineage = diff["lineage"]
    lineage["nodes"][node["unique_id"]] = {**lineage["nodes"].pop(old), "name": HOSTILE_NAME}
    lineage["edges"] = [[node["unique_id"] if u == old else u for u in edge] for edge in lineage["edges"]]
    node["columns"]["added"] = [HOSTILE_VALUE]
    node["values"]["sample"] = [
        {
            "kind": "changed",
            "key": {"id": HOSTILE_VALUE},
            "base": {c: HOSTILE_VALUE for c in node["values"]["columns"]},
            "head": {c: "</script>" for c in node["values"]["columns"]},
        }
    ]
    diff["base"]["ref"] = HOSTILE_VALUE
    return DiffResult.from_dict(diff)


# --- the page itself, no browser needed ---------------------------------------------------


def test_hostile_names_and_values_are_escaped() -> None:
    page = report.render_html(_hostile_diff())
    for raw in (HOSTILE_NAME, HOSTILE_VALUE, "<img", "</script><script>"):
        assert raw not in page, raw
    # Exactly our two script elements: the data (JSON) and the code, and the code is the one the CSP allows.
    assert page.count("<script") == 2
    script = re.search(r"<script>(.*?)</script>", page, re.DOTALL).group(1)
    digest = base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()
    assert f"script-src 'sha256-{digest}'" in page
    data = re.search(r'<script type="application/json" id="report-data">(.*?)</script>', page, re.DOTALL).group(1)
    assert "\u2028" not in data  # a line separator ends a JavaScript string in older engines
    assert any(n["name"] == HOSTILE_NAME for n in json.loads(data)["nodes"])


def test_page_names_no_other_resource() -> None:
    page = report.render_html(_synthetic())
    assert "://" not in page  # no http(s), no file, no protocol-relative load of anything
    assert not re.search(r"""\b(src|href)\s*=\s*["'][^"'#]""", page)
    assert "default-src 'none'" in page


def test_200_models_with_20_changes_stay_under_2_mb_and_unchanged_regions_collapse() -> None:
    diff = _synthetic(models=200, changes=20)
    page = report.render_html(diff)
    assert len(page.encode()) < 2_000_000
    collapsed = re.search(r'<svg class="graph" id="graph-collapsed".*?</svg>', page, re.DOTALL).group(0)
    full = re.search(r'<svg class="graph" id="graph-full".*?</svg>', page, re.DOTALL).group(0)
    assert full.count('class="box node') == 200
    assert collapsed.count('class="box node') < 200 and 'class="box group"' in collapsed
    # Every node that changed is still drawn on its own in the collapsed picture.
    changed = [n for n in diff.nodes if n.state != "unchanged"]
    assert len(changed) >= 20
    shown = {n.name.lower() for n in diff.nodes if f'data-name="{n.name.lower()}"' in collapsed}
    assert {n.name.lower() for n in changed} <= shown


# --- the page stays the page: a reference rendered before the report became a package ---------
#
# grandalf keeps a part's edges in a set of objects hashed by address, so the order of the
# <path class="edge"> elements changes from run to run, and in a large graph so do the
# coordinates. The references hold what does not: the example page whole with its edges
# sorted, and, for the larger pages, everything but the geometry. After an intended change
# to the page, regenerate them with `_reference_page` and `_structure_digest` below.

REFERENCE_PAGE = ROOT / "tests" / "data" / "report_example.html"
STRUCTURE_DIGESTS = {
    "synthetic-200": "1e695642883dcc06c5d4aff35b23eec0f1e0d2b3410d54b80ebd010e35b44fb2",
    "hostile": "533485d0ddaaa3a8fd73fae847589cfd5102574e320d6e91f7eb5225f0b54ec5",
    "empty": "9facf6383997e2bcfe980a52b5d8009278162bb895630772d3c32e66755ddec2",
}


def _edges_sorted(page: str) -> str:
    def sort_edges(group: re.Match[str]) -> str:
        return '<g class="edges">' + "".join(sorted(re.findall(r"<path [^>]*/>", group.group(1)))) + "</g>"

    return re.sub(r'<g class="edges">(.*?)</g>', sort_edges, page, flags=re.DOTALL)


def _reference_page(diff: DiffResult) -> str:
    return _edges_sorted(report.render_html(diff))


def _structure_digest(diff: DiffResult) -> str:
    """sha256 of the page without its geometry: every byte of text, data, script and style stays in."""
    page = re.sub(r' (d|transform|data-width|data-height)="[^"]*"', "", report.render_html(diff))
    return hashlib.sha256(_edges_sorted(page).encode()).hexdigest()


def test_example_page_is_the_reference_page() -> None:
    page = _reference_page(DiffResult.from_json(FIXTURE.read_text()))
    assert page == REFERENCE_PAGE.read_text(encoding="utf-8")


@pytest.mark.parametrize("name", sorted(STRUCTURE_DIGESTS))
def test_larger_pages_keep_their_reference_structure(name: str) -> None:
    diffs = {
        "synthetic-200": lambda: _synthetic(models=200, changes=20),
        "hostile": _hostile_diff,
        "empty": _empty,
    }
    assert _structure_digest(diffs[name]()) == STRUCTURE_DIGESTS[name]


# --- in Chromium ------------------------------------------------------------------------------


def _chromium() -> str | None:
    path = os.environ.get("DOT_TASKS_TEST_CHROMIUM") or "/usr/bin/chromium"
    return path if Path(path).exists() else shutil.which("chromium")


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory):
    """Debian's Chromium driven by Playwright, with a fresh profile and every background request off."""
    executable = _chromium()
    missing = "no Chromium (apt-get install chromium)" if executable is None else None
    if missing is None and importlib.util.find_spec("playwright") is None:
        missing = "no playwright (pip install -e '.[dev]')"
    if missing:
        if os.environ.get("CI"):
            pytest.fail(f"{missing}: the browser tests must run under CI")
        pytest.skip(missing)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            str(tmp_path_factory.mktemp("chromium-profile")),
            executable_path=executable,
            headless=True,
            args=CHROMIUM_FLAGS,
            viewport={"width": 1400, "height": 900},
        )
        context.set_default_timeout(5_000)
        yield context
        context.close()


class Opened:
    """A report open in a tab, with everything the page said and asked for."""

    def __init__(self, context: Any, path: Path) -> None:
        self.url = path.as_uri()
        self.page = context.new_page()
        self.errors: list[str] = []
        self.requests: list[str] = []
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.on("request", lambda r: self.requests.append(r.url))
        self.page.goto(self.url)

    def fill_of(self, selector: str) -> str:
        return self.page.locator(selector).first.locator(".shape").evaluate("e => getComputedStyle(e).fill")


def _rgb(hex_colour: str) -> str:
    r, g, b = (int(hex_colour[i : i + 2], 16) for i in (1, 3, 5))
    return f"rgb({r}, {g}, {b})"


@pytest.fixture(scope="module", params=[SOURCE])
def example_diff(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> DiffResult:
    if request.param == "fixture-json":
        return DiffResult.from_json(FIXTURE.read_text())
    home = tmp_path_factory.mktemp("home")
    with pytest.MonkeyPatch.context() as mp:  # what conftest's hermetic_git does, for a module's worth of tests
        for name in list(os.environ):
            if name.startswith(("DBT_", "INVOKE_", "GIT_")):
                mp.delenv(name)
        mp.setenv("HOME", str(home))
        mp.setenv("GIT_CONFIG_NOSYSTEM", "1")
        mp.setenv("GIT_CONFIG_GLOBAL", str(home / ".gitconfig"))
        for who in ("AUTHOR", "COMMITTER"):
            mp.setenv(f"GIT_{who}_NAME", "Test")
            mp.setenv(f"GIT_{who}_EMAIL", "test@example.com")
        mp.setenv("DBT_SEND_ANONYMOUS_USAGE_STATS", "false")
        project, first, second = report_diffs.make_example_project(tmp_path_factory.mktemp("example"))
        return report_diffs.example_diff(project, first, second)


@pytest.fixture(scope="module")
def opened_example(browser, example_diff: DiffResult, tmp_path_factory: pytest.TempPathFactory) -> Opened:
    path = tmp_path_factory.mktemp("report") / "report.html"
    path.write_text(report.render_html(example_diff), encoding="utf-8")
    return Opened(browser, path)


def _node(diff: DiffResult, name: str) -> NodeDiff:
    return next(n for n in diff.nodes if n.name == name)


@pytest.mark.browser
def test_modified_node_is_drawn_in_the_modified_colour(opened_example: Opened, example_diff: DiffResult) -> None:
    assert _node(example_diff, report_diffs.CHANGED_MODEL).code == "modified"
    assert _node(example_diff, "customers").impacted is True
    selector = f'.node[data-name="{report_diffs.CHANGED_MODEL}"]'
    assert opened_example.page.locator(selector).count() == 1
    assert opened_example.fill_of(selector) == _rgb(report.COLOURS["modified"])
    assert opened_example.fill_of('.node[data-name="customers"]') == _rgb(report.COLOURS["impacted"])
    assert opened_example.fill_of('.node[data-name="stg_orders"]') == _rgb(report.COLOURS["unchanged"])


@pytest.mark.browser
def test_clicking_the_modified_node_shows_its_changed_column_count(opened_example: Opened, example_diff: DiffResult) -> None:
    values = _node(example_diff, report_diffs.CHANGED_MODEL).values
    assert values is not None
    changed = sorted(c for c, n in values.columns.items() if n)
    assert changed == ["amount"], "the example's change touches one column"
    page = opened_example.page
    assert page.locator("#detail").is_hidden()
    page.locator(f'.node[data-name="{report_diffs.CHANGED_MODEL}"]').click()
    assert page.locator("#detail").is_visible()
    assert page.locator("#detail h2").inner_text() == report_diffs.CHANGED_MODEL
    assert page.locator("#changed-columns").inner_text().startswith(f"{len(changed)} column changed")
    rows = page.locator("table.per-column tr")
    assert rows.nth(1).locator("td").nth(0).inner_text() == "amount"
    assert rows.nth(1).locator("td").nth(1).inner_text() == str(values.columns["amount"])
    # Samples side by side: in each changed row, exactly the amount's base and head cells are marked.
    marked = page.locator("table.samples tr.kind-changed").first.locator("td.differs")
    assert marked.count() == 2


@pytest.mark.browser
def test_no_console_error_and_no_request_leaves_the_file(opened_example: Opened) -> None:
    page = opened_example.page
    page.locator(f'.node[data-name="{report_diffs.CHANGED_MODEL}"]').click()
    page.locator("#filter").fill("stg_")
    assert page.locator("#matches").inner_text() == "3 matches"
    page.mouse.move(600, 500)
    page.mouse.wheel(0, -300)
    assert opened_example.errors == []
    assert opened_example.requests == [opened_example.url]


@pytest.mark.browser
def test_hostile_names_are_shown_as_text_and_never_run(browser, tmp_path: Path) -> None:
    path = tmp_path / "hostile.html"
    path.write_text(report.render_html(_hostile_diff()), encoding="utf-8")
    opened = Opened(browser, path)
    page = opened.page
    # The markup in the names and values became text: no element was made of it.
    assert page.evaluate("document.querySelectorAll('script').length") == 2
    assert page.evaluate("document.querySelectorAll('img, iframe, object, embed').length") == 0
    labels = page.locator(".node.state-modified .name").evaluate_all("els => els.map(e => e.textContent)")
    assert short_name(HOSTILE_NAME) in labels
    box = page.locator(".node.state-modified").filter(has_text="</script>")
    box.first.click()
    assert page.locator("#detail h2").inner_text() == HOSTILE_NAME
    assert HOSTILE_VALUE.replace("\u2028", "") in page.locator("table.samples").inner_text().replace("\u2028", "")
    assert page.evaluate("window.__pwned") is None
    assert opened.errors == []  # a CSP refusal would be a console error
    assert opened.requests == [opened.url]
    page.close()


@pytest.mark.browser
def test_collapsed_regions_open_into_the_whole_graph_and_zoom_moves_it(browser, tmp_path: Path) -> None:
    path = tmp_path / "big.html"
    path.write_text(report.render_html(_synthetic(models=200, changes=20)), encoding="utf-8")
    opened = Opened(browser, path)
    page = opened.page
    collapsed, full = page.locator("#graph-collapsed"), page.locator("#graph-full")
    assert collapsed.is_visible() and full.is_hidden()
    assert 0 < collapsed.locator(".box.node").count() < 200
    page.locator("#graph-collapsed .box.group").first.click()
    assert "unchanged nodes" in page.locator("#detail h2").inner_text()
    page.locator("#toggle").click()
    assert full.is_visible() and collapsed.is_hidden()
    assert full.locator(".box.node").count() == 200
    before = full.locator(".viewport").get_attribute("transform")
    page.locator("#zoom-in").click()
    assert full.locator(".viewport").get_attribute("transform") != before
    assert opened.errors == []
    page.close()


def test_sparse_odd_and_looping_diffs_still_render() -> None:
    assert "no differences" in report.render_html(_empty())
    keyed = ValueDiff(0, 0, 1, 2, {"c": 1}, ("a", "b"), (Sample("changed", {"a": 1, "b": 2}, {"c": 5}, {"c": 6}),))
    odd = dataclasses.replace(
        _empty(),
        base=DiffSide(ref="", commit="a" * 40, context="", schema=None),
        nodes=(
            _compared("x", "removed", unique_id="model.p.x", rows=RowCounts(3, None), values_skipped="only in base"),
            _compared("y", unique_id="model.p.y", impacted=True, rows=RowCounts(3, 3), values=keyed),
        ),
        # One hop outside the selection, a self-loop, an edge to a node nobody described.
        lineage=Lineage(
            {"model.p.z": LineageNode("z", "model", "unchanged", impacted=False, in_selection=False)},
            (("model.p.z", "model.p.y"), ("model.p.y", "model.p.y"), ("model.p.q", "model.p.y")),
        ),
    )
    page = report.render_html(odd)
    assert page.count('class="box node') == 3 and 'class="box node state-unchanged context"' in page
    # Base's and head's edges together may loop: every node is drawn, nothing collapses.
    looping = dataclasses.replace(
        _empty(),
        nodes=tuple(_compared(n) for n in "abcdef"),
        lineage=Lineage({}, (("a", "b"), ("b", "c"), ("c", "a"), ("d", "e"), ("e", "f"))),
    )
    assert report.render_html(looping).count('class="box node') == 6


def test_sample_columns_lead_with_the_most_changed_and_keep_the_result_order_among_equals() -> None:
    sample = Sample("changed", {"id": 1}, {"z": 1, "a": 2, "m": 3, "extra": 4}, {"z": 1, "a": 2, "m": 0})
    values = ValueDiff(0, 0, 1, 0, {"z": 0, "a": 0, "m": 1}, ("id",), (sample,))
    node = next(n for n in model.nodes_and_edges(dataclasses.replace(_empty(), nodes=(_compared("t", values=values),)))[0])
    assert node.detail["samples"]["columns"] == ["m", "z", "a", "extra"]
    assert node.detail["samples"]["rows"] == [{"kind": "changed", "key": [1], "base": [3, 1, 2, 4], "head": [0, 1, 2, None]}]


def test_the_page_inlines_the_package_files_and_reads_them_once() -> None:
    from dot_tasks.report import page

    folder = ROOT / "dot_tasks" / "report"
    rendered = report.render_html(_empty())
    assert "<script>\n" + (folder / "report.js").read_text(encoding="utf-8") + "</script>" in rendered
    assert (folder / "report.css").read_text(encoding="utf-8") + "</style>" in rendered
    assert page.assets() is page.assets()  # the files are read, and the CSP hashed, once per process
