"""The explorer page: one self-contained HTML file — the page, its styles, its script and the data.

Imports nothing from graphc but the layout constants. The script and the styles are
files beside this module (explorer.js, explorer.css), inlined verbatim; the data is one
JSON document in a `<script type="application/json">` element, every `<` written as
`\\u003c`, so no string in it can close the element or open another. Nothing is fetched when the page is viewed.
"""

from __future__ import annotations

import html
import json
from pathlib import Path

from graphc import layered, viz

HERE = Path(__file__).resolve().parent
HELP = (
    "Each tab is the graph after one pass run (the slider moves through them). Green: nodes the pass added; "
    "orange: nodes a rewrite rule produced or a fused region; tick 'before' to see the previous graph with the "
    "nodes this pass removed in red. Click a node for its provenance, drag to pan, scroll to zoom, + to expand a "
    "fused region or a loop body."
)

_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{title}</title>
<style>
{css}</style>
</head>
<body>
<header><h1>{title}</h1><span class="summary">{summary}</span>
<input id="search" type="search" placeholder="find: op, name, file:line, #id"><span id="matches"></span></header>
<div id="stages"><div class="row"><input id="slider" type="range" min="0" value="0" step="1">
<span id="stageinfo"></span></div><div id="tabs"></div></div>
<div id="canvas"><div id="toolbar"><button id="fit">fit</button><button id="actual">100%</button>
<button id="collapse">collapse all</button><label><input id="before" type="checkbox"> before</label></div>
<svg xmlns="http://www.w3.org/2000/svg"><defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5"
markerWidth="7" markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="#999"/></marker></defs>
<g id="scene"></g></svg>
<div id="legend"><span style="background:#2e7d32"></span>added <span style="background:#ef6c00"></span>rewritten / fused
<span style="background:#c62828"></span>removed (before) <span style="background:#d81b60"></span>selected</div></div>
<aside id="details"></aside>
<details id="codepanel"><summary>{code_label}</summary><div id="code"></div></details>
<script type="application/json" id="graphc-data">{data}</script>
<script>
{js}</script>
</body>
</html>
"""


def constants() -> dict[str, float]:
    """The sizes the Python layout used, which the page needs to draw it the same way."""
    return {
        "box": viz.box_size(("", ""))[1],
        "pad": viz.PAD,
        "header": viz.HEADER,
        "dummy": layered.DUMMY_WIDTH,
        "vgap": layered.V_GAP,
        "margin": 8.0,
    }


def page(data: dict[str, object], title: str, summary: str) -> str:
    """The whole HTML document."""
    data = {**data, "constants": constants(), "help": HELP}
    text = json.dumps(data, separators=(",", ":"), ensure_ascii=True).replace("<", "\\u003c")
    code = data.get("code")
    code_label = f"Code: {code['label']}" if isinstance(code, dict) else "Code"
    return _PAGE.format(
        title=html.escape(title),
        summary=html.escape(summary),
        css=(HERE / "explorer.css").read_text(),
        js=(HERE / "explorer.js").read_text(),
        data=text,
        code_label=html.escape(code_label),
    )
