"""Small SVG charts for the dashboard, drawn on the server: no script, no inline style (the
page's Content-Security-Policy forbids both), only elements with classes that
static/causa.css colours.

Readable without colour: every series also has its own fill pattern (bars, defined in the
chart's <defs>) or dash (lines), drawn in its legend swatch too, and every mark has a <title>
that says what it is and its value, which browsers show on hover and screen readers read.
Every mark carries `data-value`. All text and attributes go through `el`, which escapes them
(cause names come from people)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from markupsafe import Markup, escape

WIDTH, HEIGHT = 720, 240
LEFT, RIGHT, TOP, BOTTOM = 52, 16, 14, 44
SERIES = 8  # classes s0..s7, each a colour in causa.css, and a pattern below
# The pattern over each series' colour: none, diagonal, dots, cross, horizontal, vertical,
# back-diagonal, grid.
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


def el(tag: str, *children: str, **attrs: object) -> str:
    """One element: attributes escaped (`class_` is class, `data_value` is data-value, floats
    to one decimal), children as given (escape text with `escape` or pass other elements)."""

    def shown(v: object) -> str:
        return f"{v:.1f}" if isinstance(v, float) else str(v)

    names = " ".join(
        f'{k.rstrip("_").replace("_", "-")}="{escape(shown(v))}"' for k, v in attrs.items()
    )
    opening = f"<{tag} {names}" if names else f"<{tag}"
    return f"{opening}>{''.join(children)}</{tag}>" if children else f"{opening}/>"


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

    def x(self, i: int, n: int) -> float:
        """The middle of slot i of n along the x axis."""
        return LEFT + self.plot_w * (i + 0.5) / max(n, 1)


def _nice(value: float) -> float:
    """A round top for the y axis at or above `value`."""
    if value <= 0:
        return 1.0
    step = 10 ** len(str(int(value))) / 10 if value >= 1 else 0.1
    return next(m * step for m in (1, 2, 2.5, 5, 10) if m * step >= value)


def _fmt(value: float) -> str:
    return f"{value:,.0f}" if abs(value) >= 10 or value == int(value) else f"{value:.2f}"


def _svg(chart_id: str, title: str, frame: Frame, body: list[str], series: int = 0) -> Markup:
    """The chart: its title, the patterns of `series` series, then `body`."""
    defs = [
        el(
            "pattern",
            el("rect", class_=f"s{k}", width=6, height=6),
            *([el("path", class_="hatch", d=PATTERNS[k])] if PATTERNS[k] else []),
            id=f"{chart_id}-p{k}",
            patternUnits="userSpaceOnUse",
            width=6,
            height=6,
        )
        for k in range(min(series, SERIES))
    ]
    # every text and attribute went through `el`, which escapes them
    return Markup(  # noqa: S704
        el(
            "svg",
            el("title", escape(title), id=f"{chart_id}-t"),
            *([el("defs", *defs)] if defs else []),
            *body,
            id=chart_id,
            class_="chart",
            role="img",
            viewBox=f"0 0 {frame.width} {frame.height}",
            xmlns="http://www.w3.org/2000/svg",
            aria_labelledby=f"{chart_id}-t",
        )
    )


def _fill(chart_id: str, k: int) -> str:
    return f"url(#{chart_id}-p{k % SERIES})"


def _axes(frame: Frame, labels: Sequence[str], percent: bool = False) -> list[str]:
    bottom = TOP + frame.plot_h
    out = [el("line", class_="axis", x1=LEFT, y1=bottom, x2=LEFT + frame.plot_w, y2=bottom)]
    for i in range(5):
        value = frame.top * i / 4
        y = frame.y(value)
        out.append(el("line", class_="grid", x1=LEFT, y1=y, x2=LEFT + frame.plot_w, y2=y))
        text = f"{value * 100:.0f}%" if percent else _fmt(value)
        out.append(el("text", text, class_="tick", x=LEFT - 6, y=y + 4, text_anchor="end"))
    every = max(1, len(labels) // 8)  # at most some 8 labels along the bottom
    for i, label in enumerate(labels):
        if i % every == 0:
            x = frame.x(i, len(labels))
            out.append(
                el("text", escape(label), class_="tick", x=x, y=bottom + 16, text_anchor="middle")
            )
    return out


def _legend(names: Sequence[str], frame: Frame, chart_id: str, line: bool = False) -> list[str]:
    out, x, y = [], LEFT, frame.height - 10
    for i, name in enumerate(names):
        if line:
            out.append(
                el("line", class_=f"line s{i % SERIES}", x1=x, y1=y - 4, x2=x + 18, y2=y - 4)
            )
        else:
            out.append(
                el(
                    "rect",
                    class_="swatch",
                    fill=_fill(chart_id, i),
                    x=x,
                    y=y - 10,
                    width=18,
                    height=10,
                )
            )
        out.append(el("text", escape(name), class_="legend", x=x + 22, y=y))
        x += 32 + 8 * len(name)
    return out


def _rule(
    cls: str, x1: float, y1: float, x2: float, y2: float, value: float, label: str
) -> list[str]:
    """A marked line (a threshold, a target) with its label."""
    return [
        el(
            "line",
            el("title", escape(label)),
            class_=cls,
            x1=x1,
            y1=y1,
            x2=x2,
            y2=y2,
            data_value=value,
        ),
        el("text", escape(label), class_="marker-label", x=x2 - 4, y=y1 - 4, text_anchor="end"),
    ]


def stacked_bars(
    chart_id: str,
    title: str,
    labels: Sequence[str],
    series: Mapping[str, Sequence[float]],
    *,
    percent: bool = False,
    marker: float | None = None,
    marker_label: str = "",
) -> Markup:
    """Bars along `labels`, each stacked from `series` ({name: one value per label}); with
    `percent`, each bar is the shares of its total. `marker`: a vertical line at that position
    of the x axis (0 to 1 of its width), e.g. a threshold on a histogram."""
    names = list(series)
    totals = [sum(series[s][i] for s in names) for i in range(len(labels))]
    frame = Frame(1.0 if percent else _nice(max(totals, default=0)))
    body = _axes(frame, labels, percent)
    slot = frame.plot_w / max(len(labels), 1)
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
            body.append(
                el(
                    "rect",
                    el("title", escape(f"{label} · {name}: {shown}")),
                    class_="bar",
                    fill=_fill(chart_id, k),
                    x=LEFT + slot * (i + 0.1),
                    y=y1,
                    width=slot * 0.8,
                    height=max(y0 - y1, 0.5),
                    data_series=name,
                    data_value=f"{value:g}",
                )
            )
    if marker is not None:
        x = LEFT + frame.plot_w * marker
        body += _rule("marker", x, TOP + 12, x, TOP + frame.plot_h, marker, marker_label)
    body += _legend(names, frame, chart_id)
    return _svg(chart_id, title, frame, body, len(names))


def lines(
    chart_id: str,
    title: str,
    labels: Sequence[str],
    series: Mapping[str, Sequence[float | None]],
    *,
    threshold: float | None = None,
    threshold_label: str = "",
    point_labels: Sequence[str | None] | None = None,
) -> Markup:
    """One line per series along `labels` (None: no point there), with a marker at each
    point (and `point_labels[i]` above point i when given); `threshold`: a horizontal line."""
    names = list(series)
    values = [v for s in names for v in series[s] if v is not None]
    frame = Frame(_nice(max([*values, threshold or 0], default=0)))
    body = _axes(frame, labels)
    for k, name in enumerate(names):
        cls = f"s{k % SERIES}"
        points = [
            (i, frame.x(i, len(labels)), frame.y(v), v)
            for i, v in enumerate(series[name])
            if v is not None
        ]
        if len(points) > 1:
            path = " ".join(
                f"{'L' if j else 'M'}{x:.1f},{y:.1f}" for j, (_, x, y, _) in enumerate(points)
            )
            body.append(el("path", class_=f"line {cls}", d=path))
        for i, x, y, v in points:
            note = point_labels[i] if point_labels else None
            what = f"{labels[i]} · {name}: {_fmt(v)}" + (f" · {note}" if note else "")
            body.append(
                el(
                    "circle",
                    el("title", escape(what)),
                    class_=f"point {cls}",
                    cx=x,
                    cy=y,
                    r=3.5,
                    data_series=name,
                    data_value=f"{v:g}",
                )
            )
            if note:
                body.append(
                    el(
                        "text",
                        escape(note),
                        class_="point-label",
                        x=x,
                        y=y - 8,
                        text_anchor="middle",
                    )
                )
    if threshold is not None:
        y = frame.y(threshold)
        body += _rule("threshold", LEFT, y, LEFT + frame.plot_w, y, threshold, threshold_label)
    body += _legend(names, frame, chart_id, line=True)
    return _svg(chart_id, title, frame, body)


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
    row_h, label_w = 22, 180
    frame = Frame(1.0, width=2 * WIDTH, height=TOP + row_h * max(len(rows), 1) + 30)
    plot_w = frame.width - label_w - 360
    body = []
    for i, row in enumerate(rows):
        y = TOP + row_h * i
        body.append(
            el(
                "text",
                escape(row.label),
                class_="legend",
                x=label_w - 8,
                y=y + 15,
                text_anchor="end",
            )
        )
        body.append(el("rect", class_="track", x=label_w, y=y + 4, width=plot_w, height=14))
        if row.value is not None:
            body.append(
                el(
                    "rect",
                    el("title", escape(f"{row.label}: {row.value * 100:.1f}% · {row.note}")),
                    class_="bar alarm" if row.alarm else "bar meter",
                    x=label_w,
                    y=y + 4,
                    width=plot_w * row.value,
                    height=14,
                    data_series=row.label,
                    data_value=f"{row.value:g}",
                )
            )
        if row.target is not None:
            x = label_w + plot_w * row.target
            target = el("title", escape(f"target {row.target * 100:.0f}%"))
            body.append(
                el(
                    "line",
                    target,
                    class_="target",
                    x1=x,
                    y1=y + 1,
                    x2=x,
                    y2=y + 21,
                    data_value=row.target,
                )
            )
        shown = "no reviews" if row.value is None else f"{row.value * 100:.0f}%"
        flag = " ▼ below target" if row.alarm else ""
        body.append(
            el(
                "text",
                escape(f"{shown} · {row.note}{flag}"),
                class_="note",
                x=label_w + plot_w + 8,
                y=y + 15,
            )
        )
    for i in range(5):
        x = label_w + plot_w * i / 4
        body.append(
            el("text", f"{i * 25}%", class_="tick", x=x, y=frame.height - 10, text_anchor="middle")
        )
    return _svg(chart_id, title, frame, body)
