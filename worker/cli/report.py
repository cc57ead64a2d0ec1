"""`causa backtest --html`: one page a person opens in a browser (no script, no external
file): per cause, precision against coverage over the threshold sweep, the rules in force
marked, and the tables."""

from __future__ import annotations

from html import escape
from typing import Any

SIZE, PAD = 260, 36  # a plot's side and margin, in pixels


def page(result: dict[str, Any]) -> str:
    blocks = [("all causes", result["overall"]), *result["causes"].items()]
    plots = "".join(_figure(name, b) for name, b in blocks)
    title = f"causa backtest of model {escape(result['model_version'])}"
    never = ", ".join(map(escape, result["never_auto"])) or "none"
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>body{{font-family:sans-serif;margin:2em}}
figure{{display:inline-block;margin:0 1em 1em 0}} table{{border-collapse:collapse}}
td,th{{border:1px solid #999;padding:2px 6px;text-align:right}}</style>
</head><body><h1>{title}</h1>
<p>{result["tickets"]} labelled tickets it never trained on ({escape(result["unseen"])}), of
{result["labelled"]} given. Global threshold {result["threshold"]}; never applied automatically:
{never}. Each plot: precision (up) against coverage (right: the share of the cause's
predictions applied automatically) as the threshold goes from 0.95 (left) to 0 (right); the
square is the rule in force.</p>
{plots}
{_table(blocks)}
</body></html>
"""


def _figure(name: str, block: dict[str, Any]) -> str:
    def xy(point: dict[str, Any]) -> tuple[float, float]:
        x = PAD + (point["coverage"] or 0) * (SIZE - 2 * PAD)
        y = SIZE - PAD - (point["precision"] or 0) * (SIZE - 2 * PAD)
        return round(x, 1), round(y, 1)

    points = [xy(p) for p in block["sweep"] if p["applied"]]
    line = " ".join(f"{x},{y}" for x, y in points)
    dots = "".join(f'<circle cx="{x}" cy="{y}" r="2"/>' for x, y in points)
    mark = ""
    if block["in_force"]["applied"]:
        x, y = xy(block["in_force"])
        mark = f'<rect x="{x - 4}" y="{y - 4}" width="8" height="8" fill="none" stroke="black"/>'
    side = SIZE - 2 * PAD
    return f"""<figure><svg width="{SIZE}" height="{SIZE}" role="img"
aria-label="precision against coverage for {escape(name)}">
<rect x="{PAD}" y="{PAD}" width="{side}" height="{side}" fill="none" stroke="#999"/>
<text x="{PAD}" y="{SIZE - 8}" font-size="11">coverage 0 … 1</text>
<text x="4" y="{PAD - 6}" font-size="11">precision 1</text>
<polyline points="{line}" fill="none" stroke="black"/>{dots}{mark}</svg>
<figcaption>{escape(name)}: {block["tickets"]} tickets</figcaption></figure>"""


def _table(blocks: list[tuple[str, dict[str, Any]]]) -> str:
    head = "<tr><th>cause</th><th>tickets</th><th>applied</th><th>wrong</th><th>precision</th>"
    head += "<th>review</th></tr>"
    rows = "".join(
        f"<tr><td>{escape(name)}</td><td>{b['tickets']}</td><td>{b['in_force']['applied']}</td>"
        f"<td>{b['in_force']['wrong']}</td><td>{b['in_force']['precision']}</td>"
        f"<td>{b['in_force']['review']}</td></tr>"
        for name, b in blocks
    )
    return f"<h2>With the rules in force</h2><table>{head}{rows}</table>"
