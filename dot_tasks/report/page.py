"""The one HTML page: the pictures, the diff as data, and report.js and report.css inlined.

The script and the style are files beside this module, read once per process with
`importlib.resources`, so that an installed wheel finds them as a checkout does. The page's
Content-Security-Policy allows exactly that script, by its sha256, and no request at all.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import json
from dataclasses import dataclass
from importlib import resources
from typing import Any

from ..diffing.result import DiffResult, DiffSide
from .collapse import collapse
from .layout import drawing_of
from .model import BORDERS, COLOURS, STATES, Node, nodes_and_edges
from .svg import escape, svg_of


@dataclass(frozen=True)
class Assets:
    """What every page inlines the same: the script, the style, and the policy that allows the script."""

    script: str
    style: str
    csp: str


def _asset_text(name: str) -> str:
    # Each inline block has always begun on a line of its own; the CSP hash covers that newline.
    return "\n" + resources.files("dot_tasks.report").joinpath(name).read_text(encoding="utf-8")


@functools.cache
def assets() -> Assets:
    """report.js and report.css as the page inlines them, and the CSP that names the script's hash; once per process."""
    script = _asset_text("report.js")
    digest = base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()
    colours = "".join(f"--{s}:{COLOURS[s]};--{s}-border:{BORDERS[s]};" for s in STATES)
    return Assets(
        script=script,
        style=f":root{{{colours}}}" + _asset_text("report.css"),
        csp=f"default-src 'none'; style-src 'unsafe-inline'; img-src data:; script-src 'sha256-{digest}'",
    )


def _json_for_script(data: Any) -> str:
    """JSON that cannot end its <script> element or open a comment, whatever the strings hold."""
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"), default=str)
    for char, escaped in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"), ("\u2028", "\\u2028"), ("\u2029", "\\u2029")):
        text = text.replace(char, escaped)
    return text


def _side(side: DiffSide) -> dict[str, str]:
    return {k: "" if v is None else str(v) for k, v in side.to_dict().items()}


def _page_data(result: DiffResult, nodes: list[Node], groups: list[list[int]]) -> dict[str, Any]:
    """What report.js reads from the page's JSON: both sides, the counts, every node's detail, the groups."""
    return {
        "base": _side(result.base),
        "head": _side(result.head),
        "differs": result.differs,
        "counts": {s: sum(1 for n in nodes if n.state == s and n.detail["compared"]) for s in STATES},
        "data_differs": sum(1 for n in result.nodes if n.data_differs),
        "nodes": [n.detail | {"state": n.state} for n in nodes],
        "groups": groups,
    }


def _side_html(label: str, side: dict[str, str]) -> str:
    return (
        f'<div class="side"><span class="label">{label}</span> <b>{escape(side["ref"] or side["commit"][:8])}</b> '
        f'<code title="{escape(side["commit"])}">{escape(side["commit"][:12])}</code> '
        f'<span class="muted">{escape(side["context"])} \u00b7 {escape(side["schema"])}</span></div>'
    )


def _header_html(data: dict[str, Any], toggle: str) -> str:
    """The sides, the verdict, the legend with its counts, and the tools."""
    legend = "".join(
        f'<span class="legend-item"><span class="swatch" style="background:var(--{s});border-color:var(--{s}-border)"></span>'
        f'{s} <b class="count" data-count="{s}">{data["counts"][s]}</b></span>'
        for s in STATES
    )
    verdict = "differs" if data["differs"] else "no differences"
    return f"""<header>
  <div class="sides">{_side_html("base", data["base"])}<span class="arrow">\u2192</span>{_side_html("head", data["head"])}
    <span class="verdict {"yes" if data["differs"] else "no"}">{verdict}</span></div>
  <div class="bar"><div class="legend">{legend}<span class="legend-item muted">data differs in <b>{data["data_differs"]}</b></span></div>
    <div class="tools"><input id="filter" type="search" placeholder="Filter by name" aria-label="Filter nodes by name" autocomplete="off">
    <span id="matches" class="muted"></span>{toggle}<button id="fit" type="button" title="Fit to window">Fit</button>
    <button id="zoom-in" type="button" title="Zoom in">+</button><button id="zoom-out" type="button" title="Zoom out">\u2212</button></div></div>
</header>"""


def render_html(result: DiffResult) -> str:
    """The whole report page for one diff (a saved `--json` file: `DiffResult.from_json(text)`)."""
    nodes, edges = nodes_and_edges(result)
    groups = collapse(nodes, edges)
    full = drawing_of(nodes, edges, [])
    collapsed = drawing_of(nodes, edges, groups) if groups else None
    data = _page_data(result, nodes, groups)
    base, head = data["base"], data["head"]
    title = f"dot-tasks diff {base['ref'] or base['commit'][:8]} \u2192 {head['ref'] or head['commit'][:8]}"
    svgs = (collapsed and svg_of(collapsed, nodes, groups, "collapsed") or "") + svg_of(full, nodes, groups, "full")
    toggle = f'<button id="toggle" type="button">Show all {len(nodes)} nodes</button>' if collapsed else ""
    inlined = assets()
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{inlined.csp}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{escape(title)}</title>
<style>{inlined.style}</style></head>
<body>
{_header_html(data, toggle)}
<main><div id="canvas">{svgs}</div>
<aside id="detail" hidden><button id="close" type="button" aria-label="Close">\u00d7</button><div id="detail-body"></div></aside></main>
<script type="application/json" id="report-data">{_json_for_script(data)}</script>
<script>{inlined.script}</script>
</body></html>
"""
