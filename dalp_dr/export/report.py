"""The HTML report: one self-contained file a non-engineer can read.

No scripts, no fonts, no images from anywhere: inline CSS and inline SVG only, and a
Content-Security-Policy that forbids every fetch, so the file shows the same offline, in an
archive, ten years from now. Sections: summary, coverage matrix (quarter x drill), per-drill
trend of measured recovery time and data-loss window against RTO/RPO, and each run's phases
on a time bar.
"""

from __future__ import annotations

import math
from datetime import UTC
from html import escape

from dalp_dr.durations import format_duration
from dalp_dr.export import records
from dalp_dr.export.records import Coverage, ExportRecord, Selection

MAX_TIMELINES = 60
"""runs whose phase bars are drawn (the newest); every run is still in the table"""

_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:2rem;color:#1d2733;
max-width:1200px}
h1{font-size:1.6rem;margin-bottom:.2rem}h2{margin-top:2.2rem;border-bottom:1px solid #d5dbe3;
padding-bottom:.3rem}
.muted{color:#5b6775}.cards{display:flex;flex-wrap:wrap;gap:1rem;margin:1rem 0}
.card{border:1px solid #d5dbe3;border-radius:8px;padding:.8rem 1.1rem;min-width:9rem}
.card b{display:block;font-size:1.5rem}
table{border-collapse:collapse;margin:.6rem 0;font-size:.9rem}
th,td{border:1px solid #d5dbe3;padding:.3rem .55rem;text-align:left;vertical-align:top}
th{background:#f2f5f8}
td.met{background:#d8f3dc}td.missed-objectives{background:#ffd6d6}td.failed{background:#ffc9a9}
td.missed-schedule{background:#ffe9a8}td.not-run{background:#eceff3;color:#5b6775}
.chart{margin:.5rem 0 1.5rem}.legend span{margin-right:1rem}
.note{font-size:.85rem;color:#5b6775}
"""

_PHASE_COLOURS = {"preflight": "#8da9c4", "baseline": "#b8c4d6", "inject": "#e07a5f",
                  "recover": "#f2cc8f", "verify": "#81b29a", "converge": "#c9e4ca",
                  "measure": "#a3c4bc",
                  "steady_state": "#6d597a"}


def _cell_class(value: Coverage) -> str:
    return value.value.replace(" ", "-")


def _summary(selection: Selection) -> str:
    info = records.summary(selection)
    outcomes = info["outcomes"]
    share = info["passed_share"]
    cards = [("records", info["records"]), ("drills", len(info["drills"])),
             ("passed", outcomes.get("passed", 0)),
             ("not passed", info["records"] - outcomes.get("passed", 0)),
             ("pass rate", f"{share:.0%}" if share is not None else "-")]
    refs = "".join(f"<li><b>{escape(ref)}</b>: {escape(text)}</li>"
                   for ref, text in records.REQUIREMENTS)
    return (
        f"<p class='muted'>Period: {escape(info['period'])}. Generated "
        f"{escape(info['generated_at'])}.</p>"
        "<div class='cards'>" + "".join(
            f"<div class='card'><span class='muted'>{escape(k)}</span><b>{escape(str(v))}</b>"
            "</div>" for k, v in cards) + "</div>"
        f"<p>Outcomes: {escape(', '.join(f'{k} {v}' for k, v in outcomes.items()) or 'none')}"
        f".</p><p class='note'>Chain head (the sha256 that pins every record in this history):"
        f" <code>{escape(selection.head)}</code></p>"
        + (f"<p class='note'>Verification when exported: "
           f"{escape(selection.attestation.describe())}"
           + "".join(f"; {escape(n)}" for n in selection.attestation.notes) + ".</p>"
           if selection.attestation is not None else
           "<p class='note'>This export was not made from a verified history.</p>") +
        "<p>This evidence is relevant to the following requirements. They are listed as "
        f"references for the reader, not as claims of compliance:</p><ul>{refs}</ul>")


def _matrix(selection: Selection, drills: list[str] | None) -> str:
    matrix = records.coverage(selection, drills)
    quarters = records.quarters(selection)
    if not matrix or not quarters:
        return "<p>No drills in this period.</p>"
    head = "".join(f"<th>{escape(q)}</th>" for q in quarters)
    rows = "".join(
        f"<tr><th>{escape(drill)}</th>" + "".join(
            f"<td class='{_cell_class(row[q])}'>{escape(row[q].value)}</td>" for q in quarters)
        + "</tr>" for drill, row in matrix.items())
    legend = " ".join(f"<span><b>{escape(c.value)}</b></span>" for c in Coverage)
    return (f"<table id='coverage-matrix'><tr><th>drill</th>{head}</tr>{rows}</table>"
            f"<p class='note legend'>Cell: the best outcome of the quarter: {legend}.</p>")


ZERO_BAND = 22.0
"""pixels under the log scale's lowest tick where measured zeros sit (log has no zero)"""


def _y(value: float, low: float, high: float, height: float) -> float:
    if value <= 0:
        return height
    span = math.log10(high) - math.log10(low)
    usable = height - ZERO_BAND
    return usable - (math.log10(max(value, low)) - math.log10(low)) / span * usable


def _trend_chart(drill: str, runs: list[ExportRecord], metric: str, objective: str,
                 title: str) -> str:
    """Measured values (points joined by a line) against the objective (dashed), on a log
    scale so one second and thirty minutes are both readable."""
    points = [(r.result.started_at, getattr(r.result.measurements, metric))
              for r in runs if r.result.measurements is not None
              and getattr(r.result.measurements, metric) is not None]
    target = runs[-1].result.objectives.get(objective)
    width, height, left, top = 640.0, 180.0, 70.0, 10.0
    if not points or target is None:
        return (f"<p class='note'>{escape(title)}: no measurements in this period.</p>")
    values = [v for _t, v in points] + [target]
    low = 10 ** math.floor(math.log10(max(min(v for v in values if v > 0) if any(
        v > 0 for v in values) else 0.001, 0.001)))
    high = 10 ** math.ceil(math.log10(max(values) * 1.05 + 1e-9))
    if high <= low:
        high = low * 10
    n = len(points)

    def x(i: int) -> float:
        return left + (width * (i + 0.5) / n)

    grid = []
    tick = low
    while tick <= high * 1.0001:
        y = top + _y(tick, low, high, height)
        grid.append(f"<line x1='{left}' x2='{left + width}' y1='{y:.1f}' y2='{y:.1f}' "
                    f"stroke='#e3e8ee'/><text x='{left - 6}' y='{y + 4:.1f}' font-size='11' "
                    f"text-anchor='end' fill='#5b6775'>{escape(format_duration(tick))}</text>")
        tick *= 10
    if any(v <= 0 for _t, v in points):
        y = top + height
        grid.append(f"<line x1='{left}' x2='{left + width}' y1='{y:.1f}' y2='{y:.1f}' "
                    f"stroke='#e3e8ee'/><text x='{left - 6}' y='{y + 4:.1f}' font-size='11' "
                    "text-anchor='end' fill='#5b6775'>0</text>")
    ty = top + _y(target, low, high, height)
    line = " ".join(f"{x(i):.1f},{top + _y(v, low, high, height):.1f}"
                    for i, (_t, v) in enumerate(points))
    dots = "".join(
        f"<circle cx='{x(i):.1f}' cy='{top + _y(v, low, high, height):.1f}' r='4' "
        f"fill='{'#2a9d8f' if v <= target else '#d62828'}'><title>{escape(f'{t:%Y-%m-%d}')}"
        f": {escape(format_duration(v))}</title></circle>" for i, (t, v) in enumerate(points))
    labels = "".join(
        f"<text x='{x(i):.1f}' y='{top + height + 16}' font-size='10' text-anchor='middle' "
        f"fill='#5b6775'>{escape(f'{t:%m-%d}')}</text>" for i, (t, _v) in enumerate(points)
        if n <= 12 or i % math.ceil(n / 12) == 0)
    return (
        f"<figure class='chart' data-chart='{escape(drill)}-{metric}'><figcaption><b>"
        f"{escape(title)}</b> <span class='muted'>({escape(objective.upper())} "
        f"{escape(format_duration(target))}, dashed)</span></figcaption>"
        f"<svg xmlns='http://www.w3.org/2000/svg' width='{left + width + 20:.0f}' "
        f"height='{top + height + 30:.0f}' role='img' aria-label='{escape(title)}'>"
        + "".join(grid)
        + f"<line x1='{left}' x2='{left + width}' y1='{ty:.1f}' y2='{ty:.1f}' "
          "stroke='#d62828' stroke-dasharray='6 4' stroke-width='2'/>"
        + f"<polyline points='{line}' fill='none' stroke='#264653' stroke-width='2'/>"
        + dots + labels + "</svg></figure>")


def _trends(selection: Selection) -> str:
    by_drill: dict[str, list[ExportRecord]] = {}
    for record in selection.records:
        by_drill.setdefault(record.result.drill, []).append(record)
    parts = []
    for drill, runs in sorted(by_drill.items()):
        parts.append(f"<h3>{escape(drill)}</h3>")
        parts.append(_trend_chart(drill, runs, "recovery_time", "rto",
                                  "Measured recovery time"))
        parts.append(_trend_chart(drill, runs, "data_loss_window", "rpo",
                                  "Measured data-loss window"))
    return "".join(parts) or "<p>No runs in this period.</p>"


def _timeline(record: ExportRecord) -> str:
    r = record.result
    if not r.phases:
        return "<span class='muted'>no phases (not run)</span>"
    start = min(p.started_at for p in r.phases)
    end = max(p.ended_at for p in r.phases)
    total = max((end - start).total_seconds(), 0.001)
    width = 520.0
    bars = []
    for p in r.phases:
        x = (p.started_at - start).total_seconds() / total * width
        w = max(p.duration / total * width, 1.5)
        colour = _PHASE_COLOURS.get(p.phase.value, "#999")
        bars.append(f"<rect x='{x:.1f}' y='2' width='{w:.1f}' height='16' fill='{colour}'>"
                    f"<title>{escape(p.phase.value)} {escape(p.status.value)} "
                    f"{escape(format_duration(p.duration))}</title></rect>")
    return (f"<svg xmlns='http://www.w3.org/2000/svg' width='{width + 80:.0f}' height='20' "
            f"class='phases'>{''.join(bars)}<text x='{width + 6}' y='15' font-size='11' "
            f"fill='#5b6775'>{escape(format_duration(total))}</text></svg>")


def _runs(selection: Selection) -> str:
    rows = []
    newest = selection.records[-MAX_TIMELINES:]
    drawn = {id(r) for r in newest}
    for record in reversed(selection.records):
        r, m = record.result, record.result.measurements
        rows.append(
            "<tr>" + "".join(f"<td>{escape(str(v))}</td>" for v in (
                f"{r.started_at.astimezone(UTC):%Y-%m-%d %H:%M}", r.drill, r.environment,
                r.trigger.value, r.outcome.value,
                format_duration(m.recovery_time) if m else "-",
                format_duration(m.data_loss_window) if m else "-",
                m.lost_writes if m and m.lost_writes is not None else "-"))
            + f"<td>{_timeline(record) if id(record) in drawn else ''}</td>"
            + f"<td><code>{escape(r.run_id)}</code></td></tr>")
    legend = "".join(f"<span><svg width='12' height='12'><rect width='12' height='12' "
                     f"fill='{c}'/></svg> {escape(n)}</span>"
                     for n, c in _PHASE_COLOURS.items())
    return ("<p class='legend note'>" + legend + "</p><table id='runs'><tr><th>started (UTC)"
            "</th><th>drill</th><th>environment</th><th>trigger</th><th>outcome</th>"
            "<th>recovery</th><th>data loss</th><th>lost writes</th><th>phases</th>"
            "<th>run id</th></tr>" + "".join(rows) + "</table>")


def to_html(selection: Selection, drills: list[str] | None = None) -> str:
    return (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        "<meta http-equiv='Content-Security-Policy' content=\"default-src 'none'; "
        "style-src 'unsafe-inline'; img-src data:\">"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        "<title>dalp-dr drill evidence</title>"
        f"<style>{_CSS}</style></head><body>"
        "<h1>Disaster-recovery drill evidence</h1>"
        "<p class='muted'>Recovery time and data-loss window measured by dalp-dr from the "
        "client's side, against each drill's declared RTO and RPO.</p>"
        f"<h2>Summary</h2>{_summary(selection)}"
        f"<h2>Coverage by quarter</h2>{_matrix(selection, drills)}"
        f"<h2>Trends against objectives</h2>{_trends(selection)}"
        f"<h2>Runs</h2>{_runs(selection)}"
        "<p class='note'>Every record is sealed in a sha256 hash chain; the bundle this "
        "report came with is signed (Ed25519). Check it with <code>dalp-dr export verify"
        "</code>.</p></body></html>")
