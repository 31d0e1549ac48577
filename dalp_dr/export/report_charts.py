"""The report's inline SVG: trend charts of a measured figure against its objective, and
a run's phases on a time bar.

Charts scale to their container (``viewBox``, ``max-width:100%``) so they fit an A4 page;
axes are dated with the year; the log scale says that it is one; the objective is a dashed,
labelled line. Every value is also in the report as text: on paper, nothing depends on a
hover tooltip.
"""

from __future__ import annotations

import math
from html import escape

from dalp_dr.durations import format_duration
from dalp_dr.export.records import ExportRecord

PHASE_COLOURS = {"preflight": "#8da9c4", "baseline": "#b8c4d6", "inject": "#e07a5f",
                 "recover": "#f2cc8f", "verify": "#81b29a", "converge": "#c9e4ca",
                 "measure": "#a3c4bc", "steady_state": "#6d597a"}

ZERO_BAND = 22.0
"""pixels under the log scale's lowest tick where measured zeros sit (log has no zero)"""

MAX_DATE_LABELS = 6


def _y(value: float, low: float, high: float, height: float) -> float:
    if value <= 0:
        return height
    span = math.log10(high) - math.log10(low)
    usable = height - ZERO_BAND
    return usable - (math.log10(max(value, low)) - math.log10(low)) / span * usable


def _svg(width: float, height: float, label: str, body: str, css: str = "chart-svg") -> str:
    return (f"<svg xmlns='http://www.w3.org/2000/svg' viewBox='0 0 {width:.0f} {height:.0f}' "
            f"class='{css}' role='img' aria-label='{escape(label)}'>{body}</svg>")


def trend_chart(drill: str, runs: list[ExportRecord], metric: str, objective: str,
                title: str) -> str:
    """Measured values (points joined by a line) against the objective (dashed), on a log
    scale so one second and thirty minutes are both readable; dated x axis."""
    points = [(r.result.started_at, getattr(r.result.measurements, metric))
              for r in runs if r.result.measurements is not None
              and getattr(r.result.measurements, metric) is not None]
    target = runs[-1].result.objectives.get(objective)
    width, height, left, top = 640.0, 180.0, 78.0, 10.0
    if not points or target is None:
        return f"<p class='note'>{escape(title)}: no measurements in this period.</p>"
    values = [v for _t, v in points] + [target]
    positive = [v for v in values if v > 0]
    low = 10 ** math.floor(math.log10(max(min(positive) if positive else 0.001, 0.001)))
    high = 10 ** math.ceil(math.log10(max(values) * 1.05 + 1e-9))
    if high <= low:
        high = low * 10
    n = len(points)

    def x(i: int) -> float:
        return left + (width * (i + 0.5) / n)

    parts = []
    tick = low
    while tick <= high * 1.0001:
        y = top + _y(tick, low, high, height)
        parts.append(f"<line x1='{left}' x2='{left + width}' y1='{y:.1f}' y2='{y:.1f}' "
                     f"stroke='#e3e8ee'/><text x='{left - 6}' y='{y + 4:.1f}' font-size='11' "
                     f"text-anchor='end' fill='#5b6775'>{escape(format_duration(tick))}</text>")
        tick *= 10
    if any(v <= 0 for _t, v in points):
        y = top + height
        parts.append(f"<line x1='{left}' x2='{left + width}' y1='{y:.1f}' y2='{y:.1f}' "
                     f"stroke='#e3e8ee'/><text x='{left - 6}' y='{y + 4:.1f}' font-size='11' "
                     "text-anchor='end' fill='#5b6775'>0</text>")
    parts.append(f"<text x='12' y='{top + height / 2:.1f}' font-size='11' fill='#5b6775' "
                 f"text-anchor='middle' transform='rotate(-90 12 {top + height / 2:.1f})'>"
                 "log scale</text>")
    ty = top + _y(target, low, high, height)
    parts.append(f"<line x1='{left}' x2='{left + width}' y1='{ty:.1f}' y2='{ty:.1f}' "
                 "stroke='#d62828' stroke-dasharray='6 4' stroke-width='2'/>"
                 f"<text x='{left + width - 4}' y='{ty - 5:.1f}' font-size='11' fill='#d62828' "
                 f"text-anchor='end'>{escape(objective.upper())} "
                 f"{escape(format_duration(target))}</text>")
    line = " ".join(f"{x(i):.1f},{top + _y(v, low, high, height):.1f}"
                    for i, (_t, v) in enumerate(points))
    parts.append(f"<polyline points='{line}' fill='none' stroke='#264653' stroke-width='2'/>")
    parts.extend(
        f"<circle cx='{x(i):.1f}' cy='{top + _y(v, low, high, height):.1f}' r='4' "
        f"fill='{'#2a9d8f' if v <= target else '#d62828'}'><title>{escape(f'{t:%Y-%m-%d}')}"
        f": {escape(format_duration(v))}</title></circle>" for i, (t, v) in enumerate(points))
    step = max(1, math.ceil(n / MAX_DATE_LABELS))
    parts.extend(
        f"<text x='{x(i):.1f}' y='{top + height + 16}' font-size='10' text-anchor='middle' "
        f"fill='#5b6775'>{escape(f'{t:%Y-%m-%d}')}</text>" for i, (t, _v) in enumerate(points)
        if i % step == 0)
    parts.append(f"<text x='{left + width / 2:.0f}' y='{top + height + 32}' font-size='10' "
                 "text-anchor='middle' fill='#5b6775'>run start date (UTC), one point per "
                 "run</text>")
    return (
        f"<figure class='chart' data-chart='{escape(drill)}-{metric}'><figcaption><b>"
        f"{escape(title)}</b> <span class='muted'>(log scale; {escape(objective.upper())} "
        f"{escape(format_duration(target))} dashed; red points missed it)</span></figcaption>"
        + _svg(left + width + 20, top + height + 38, f"{title}, log scale", "".join(parts))
        + "</figure>")


def phase_bar(record: ExportRecord) -> str:
    """The run's phases on one time bar (the same phases are listed as text beside it)."""
    r = record.result
    if not r.phases:
        return ""
    start = min(p.started_at for p in r.phases)
    end = max(p.ended_at for p in r.phases)
    total = max((end - start).total_seconds(), 0.001)
    width = 520.0
    bars = []
    for p in r.phases:
        x = (p.started_at - start).total_seconds() / total * width
        w = max(p.duration / total * width, 1.5)
        colour = PHASE_COLOURS.get(p.phase.value, "#999")
        bars.append(f"<rect x='{x:.1f}' y='2' width='{w:.1f}' height='16' fill='{colour}'>"
                    f"<title>{escape(p.phase.value)} {escape(p.status.value)} "
                    f"{escape(format_duration(p.duration))}</title></rect>")
    bars.append(f"<text x='{width + 6}' y='15' font-size='11' fill='#5b6775'>"
                f"{escape(format_duration(total))}</text>")
    return _svg(width + 80, 20, "phases", "".join(bars), css="phases")


def phase_legend() -> str:
    return "".join(f"<span><svg width='12' height='12'><rect width='12' height='12' "
                   f"fill='{c}'/></svg> {escape(n)}</span>" for n, c in PHASE_COLOURS.items())
