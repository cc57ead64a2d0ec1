"""Small SVG charts for the dashboard, drawn on the server: no script, no inline style (the
page's Content-Security-Policy forbids both), only elements with classes that
static/causa.css colours.

Readable without colour: every series also has its own fill pattern (bars) or dash and
marker (lines), drawn in its legend swatch too, and every mark has a <title> that says what
it is and its value, which browsers show on hover and screen readers read. Every mark carries
`data-value`. Labels are escaped (markupsafe): they may come from ticket data (cause names)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from markupsafe import Markup, escape

WIDTH, HEIGHT = 720, 240
LEFT, RIGHT, TOP, BOTTOM = 52, 16, 14, 44
SERIES = 8  # classes s0..s7, each a colour and a pattern in causa.css


@dataclass(frozen=True)
class Frame:
    """The plot area and the y scale: y values from 0 to `top`."""

    top: float
    width: int = WIDTH
    height: int = HEIGHT

    @property
    def plot_w(self) -> float:
        return self.width - LEFT - RIGHT

    @property
    def plot_h(self) -> float:
        return self.height - TOP - BOTTOM

    def y(self, value: float) -> float:
        return TOP + self.plot_h * (1 - (value / self.top if self.top else 0))


def _nice(value: float) -> float:
    """A round top for the y axis at or above `value`."""
    if value <= 0:
        return 1.0
    step = 10 ** len(str(int(value))) / 10 if value >= 1 else 0.1
    for m in (1, 2, 2.5, 5, 10):
        if m * step >= value:
            return m * step
    return 10 * step


def _fmt(value: float) -> str:
    return f"{value:,.0f}" if abs(value) >= 10 or value == int(value) else f"{value:.2f}"


# The pattern over each series' colour (bars and swatches): none, diagonal, dots, cross,
# horizontal, vertical, back-diagonal, grid.
PATTERNS = (
    "",
    "M-1,1 l2,-2 M0,6 l6,-6 M5,7 l2,-2",
    "M2,2 h1.5 v1.5 h-1.5 z",
    "M0,0 l6,6 M6,0 l-6,6",
    "M0,3 h6",
    "M3,0 v6",
    "M-1,5 l2,2 M0,0 l6,6 M5,-1 l2,2",
    "M0,3 h6 M3,0 v6",
)


def _open(chart_id: str, title: str, frame: Frame, series: int = 0) -> list[str]:
    cid = escape(chart_id)
    out = [
        f'<svg id="{cid}" class="chart" role="img" viewBox="0 0 {frame.width} {frame.height}"'
        f' xmlns="http://www.w3.org/2000/svg" aria-labelledby="{cid}-t">',
        f'<title id="{cid}-t">{escape(title)}</title>',
    ]
    if series:
        out.append("<defs>")
        for k in range(min(series, SERIES)):
            out.append(
                f'<pattern id="{cid}-p{k}" patternUnits="userSpaceOnUse" width="6" height="6">'
                f'<rect class="s{k}" width="6" height="6"/>'
                + (f'<path class="hatch" d="{PATTERNS[k]}"/>' if PATTERNS[k] else "")
                + "</pattern>"
            )
        out.append("</defs>")
    return out


def _fill(chart_id: str, k: int) -> str:
    return f'fill="url(#{escape(chart_id)}-p{k % SERIES})"'


def _axes(frame: Frame, labels: Sequence[str], percent: bool = False) -> list[str]:
    out = [
        f'<line class="axis" x1="{LEFT}" y1="{TOP + frame.plot_h}" x2="{LEFT + frame.plot_w}"'
        f' y2="{TOP + frame.plot_h}"/>'
    ]
    for i in range(5):
        value = frame.top * i / 4
        y = frame.y(value)
        out.append(f'<line class="grid" x1="{LEFT}" y1="{y:.1f}" x2="{LEFT + frame.plot_w}" y2="{y:.1f}"/>')
        text = f"{value * 100:.0f}%" if percent else _fmt(value)
        out.append(f'<text class="tick" x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">{text}</text>')
    n = max(len(labels), 1)
    every = max(1, n // 8)  # at most some 8 labels along the bottom
    for i, label in enumerate(labels):
        if i % every == 0:
            x = LEFT + frame.plot_w * (i + 0.5) / n
            out.append(
                f'<text class="tick" x="{x:.1f}" y="{TOP + frame.plot_h + 16}"'
                f' text-anchor="middle">{escape(label)}</text>'
            )
    return out


def _legend(names: Sequence[str], frame: Frame, line: bool = False, chart_id: str = "") -> list[str]:
    out, x = [], LEFT
    y = frame.height - 10
    for i, name in enumerate(names):
        cls = f"s{i % SERIES}"
        if line:
            out.append(f'<line class="line {cls}" x1="{x}" y1="{y - 4}" x2="{x + 18}" y2="{y - 4}"/>')
        else:
            out.append(
                f'<rect class="swatch" {_fill(chart_id, i)} x="{x}" y="{y - 10}" width="18" height="10"/>'
            )
        out.append(f'<text class="legend" x="{x + 22}" y="{y}">{escape(name)}</text>')
        x += 30 + 7 * len(name)
    return out


def stacked_bars(
    chart_id: str,
    title: str,
    labels: Sequence[str],
    series: Mapping[str, Sequence[float]],
    *,
    percent: bool = False,
    unit: str = "",
    marker: float | None = None,
    marker_label: str = "",
) -> Markup:
    """Bars along `labels`, each stacked from `series` ({name: one value per label}); with
    `percent`, each bar is the shares of its total. `marker`: a vertical line at that position
    of the x axis (0 to 1 of its width), e.g. a threshold on a histogram."""
    names = list(series)
    totals = [sum(series[s][i] for s in names) for i in range(len(labels))]
    frame = Frame(1.0 if percent else _nice(max(totals, default=0)))
    out = _open(chart_id, title, frame, len(names)) + _axes(frame, labels, percent)
    n = max(len(labels), 1)
    slot = frame.plot_w / n
    for i, label in enumerate(labels):
        base = 0.0
        for k, name in enumerate(names):
            value = series[name][i]
            if not value:
                continue
            share = value / totals[i] if percent else value
            y0, y1 = frame.y(base), frame.y(base + share)
            base += share
            shown = f"{share * 100:.1f}% ({_fmt(value)})" if percent else _fmt(value)
            out.append(
                f'<rect class="bar" {_fill(chart_id, k)} x="{LEFT + slot * i + slot * 0.1:.1f}"'
                f' y="{y1:.1f}" width="{slot * 0.8:.1f}" height="{max(y0 - y1, 0.5):.1f}"'
                f' data-series="{escape(name)}" data-value="{value:g}">'
                f"<title>{escape(label)} · {escape(name)}: {shown}{escape(unit)}</title></rect>"
            )
    if marker is not None:
        x = LEFT + frame.plot_w * marker
        out.append(
            f'<line class="marker" x1="{x:.1f}" y1="{TOP}" x2="{x:.1f}" y2="{TOP + frame.plot_h}"'
            f' data-value="{marker:g}"><title>{escape(marker_label)}</title></line>'
        )
        out.append(f'<text class="marker-label" x="{x + 4:.1f}" y="{TOP + 10}">{escape(marker_label)}</text>')
    out += _legend(names, frame, chart_id=chart_id)
    out.append("</svg>")
    return Markup("".join(out))


def lines(
    chart_id: str,
    title: str,
    labels: Sequence[str],
    series: Mapping[str, Sequence[float | None]],
    *,
    threshold: float | None = None,
    threshold_label: str = "",
    point_labels: Sequence[str] | None = None,
) -> Markup:
    """One line per series along `labels` (None: no point there), with a marker at each
    point; `threshold`: a horizontal line at that value."""
    names = list(series)
    values = [v for s in names for v in series[s] if v is not None]
    frame = Frame(_nice(max([*values, threshold or 0], default=0)))
    out = _open(chart_id, title, frame) + _axes(frame, labels)
    n = max(len(labels), 1)
    for k, name in enumerate(names):
        cls = f"s{k % SERIES}"
        points = [
            (LEFT + frame.plot_w * (i + 0.5) / n, frame.y(v), v, labels[i])
            for i, v in enumerate(series[name])
            if v is not None
        ]
        if len(points) > 1:
            path = " ".join(f"{'M' if j == 0 else 'L'}{x:.1f},{y:.1f}" for j, (x, y, _, _) in enumerate(points))
            out.append(f'<path class="line {cls}" d="{path}"/>')
        for j, (x, y, v, label) in enumerate(points):
            note = f" · {point_labels[j]}" if point_labels and j < len(point_labels) else ""
            out.append(
                f'<circle class="point {cls}" cx="{x:.1f}" cy="{y:.1f}" r="3.5"'
                f' data-series="{escape(name)}" data-value="{v:g}">'
                f"<title>{escape(label)} · {escape(name)}: {_fmt(v)}{escape(note)}</title></circle>"
            )
            if point_labels and j < len(point_labels):
                out.append(f'<text class="point-label" x="{x:.1f}" y="{y - 8:.1f}" text-anchor="middle">{escape(point_labels[j])}</text>')
    if threshold is not None:
        y = frame.y(threshold)
        out.append(
            f'<line class="threshold" x1="{LEFT}" y1="{y:.1f}" x2="{LEFT + frame.plot_w}" y2="{y:.1f}"'
            f' data-value="{threshold:g}"><title>{escape(threshold_label)}</title></line>'
        )
        out.append(f'<text class="marker-label" x="{LEFT + frame.plot_w - 4}" y="{y - 4:.1f}" text-anchor="end">{escape(threshold_label)}</text>')
    out += _legend(names, frame, line=True)
    out.append("</svg>")
    return Markup("".join(out))


@dataclass(frozen=True)
class Meter:
    """One horizontal bar: a share (0 to 1, or None: no data), its target, and a note."""

    label: str
    value: float | None
    target: float | None
    note: str
    alarm: bool = False


def meters(chart_id: str, title: str, rows: Sequence[Meter]) -> Markup:
    """Horizontal bars from 0 to 100 %, one per row, each with its target as a tick
    (line.target) and a note; a row below its target says so in words, not only in colour."""
    row_h = 26
    frame = Frame(1.0, height=TOP + row_h * max(len(rows), 1) + 30)
    label_w = 150
    plot_w = frame.width - label_w - 220
    out = _open(chart_id, title, frame)
    for i, row in enumerate(rows):
        y = TOP + row_h * i
        out.append(f'<text class="legend" x="{label_w - 8}" y="{y + 15}" text-anchor="end">{escape(row.label)}</text>')
        out.append(f'<rect class="track" x="{label_w}" y="{y + 4}" width="{plot_w}" height="14"/>')
        if row.value is not None:
            cls = "bar alarm" if row.alarm else "bar meter"
            out.append(
                f'<rect class="{cls}" x="{label_w}" y="{y + 4}" width="{plot_w * row.value:.1f}"'
                f' height="14" data-series="{escape(row.label)}" data-value="{row.value:g}">'
                f"<title>{escape(row.label)}: {row.value * 100:.1f}% · {escape(row.note)}</title></rect>"
            )
        if row.target is not None:
            x = label_w + plot_w * row.target
            out.append(
                f'<line class="target" x1="{x:.1f}" y1="{y + 1}" x2="{x:.1f}" y2="{y + 21}"'
                f' data-value="{row.target:g}"><title>target {row.target * 100:.0f}%</title></line>'
            )
        shown = "no reviews" if row.value is None else f"{row.value * 100:.0f}%"
        flag = " ▼ below target" if row.alarm else ""
        out.append(
            f'<text class="note" x="{label_w + plot_w + 8}" y="{y + 15}">'
            f"{escape(shown)} · {escape(row.note)}{escape(flag)}</text>"
        )
    for i in range(5):
        x = label_w + plot_w * i / 4
        out.append(f'<text class="tick" x="{x:.1f}" y="{frame.height - 10}" text-anchor="middle">{i * 25}%</text>')
    out.append("</svg>")
    return Markup("".join(out))
