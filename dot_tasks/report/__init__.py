"""The diff as a lineage picture: one self-contained HTML file.

`render_html(result)` takes the `DiffResult` of `diffing.diff_builds` (or one read back from
`--json` with `DiffResult.from_json`) and returns the whole page. It is pure: no files but its
own assets, no network, no clock. The page opens from file:// with nothing else: the graph is
inline SVG laid out here, in Python, by grandalf's Sugiyama layout (a registry package,
imported only when a report is written), and the few lines of JavaScript for pan, zoom,
filter and the detail panel are inlined. A Content-Security-Policy forbids every request and
every script but our own, so even a model name that slipped past escaping
could neither load nor run anything.

The rooms, in the order a page is made:

- `model`: what each node is (its state, badges and detail) from the `DiffResult`;
- `collapse`: which unchanged regions the collapsed picture draws as one box;
- `layout`: where each box goes (grandalf);
- `svg`: the picture as SVG text, every string escaped;
- `page`: the page itself, with `report.js` and `report.css` inlined and the CSP.
"""

from __future__ import annotations

from .model import BORDERS, COLOURS, STATES
from .page import render_html

__all__ = ["BORDERS", "COLOURS", "STATES", "render_html"]
