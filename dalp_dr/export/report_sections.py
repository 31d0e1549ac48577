"""The report's sections as HTML: the cover (period dates, signature, chain head), the
methodology, the coverage matrix and one section per drill (targets, trends, every run's
verdicts, margins, operator, failure reason, recovery timeline and approvals as text).

Everything from the history is data: escaped, never markup. Dates are UTC and carry the
year."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from html import escape
from urllib.parse import quote

from dalp_dr.durations import format_duration
from dalp_dr.export import records
from dalp_dr.export.records import Coverage, ExportRecord, Selection
from dalp_dr.export.report_charts import phase_bar, phase_legend, trend_chart
from dalp_dr.results import ObjectiveVerdict, Outcome, PhaseStatus, RunResult, Status

MAX_EVIDENCE_LINKS = 12
"""evidence files linked per run (the rest counted)"""
MAX_TIMELINE_EVENTS = 30


def _day(moment: datetime) -> str:
    return f"{moment.astimezone(UTC):%Y-%m-%d}"


def _instant(moment: datetime | None) -> str:
    return f"{moment.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC" if moment else "-"


def period_dates(selection: Selection) -> tuple[date | None, date | None]:
    """The first and last day the report covers: the period's bounds, else its records'
    (an open end: the day it was generated)."""
    times = [r.result.started_at for r in selection.records]
    q = selection.query
    first = q.start if q.start else (min(times) if times else None)
    last = (q.end - timedelta(microseconds=1)) if q.end else selection.generated_at
    return (first.astimezone(UTC).date() if first else None, last.astimezone(UTC).date())


def cover(selection: Selection, signer: str | None) -> str:
    first, last = period_dates(selection)
    info = records.summary(selection)
    period = f"{first:%Y-%m-%d} to {last:%Y-%m-%d}" if first and last else "no records"
    if signer:
        signature = (f"<p id='signature'>Signed: this report is part of an export bundle "
                     f"signed with the Ed25519 key <code>{escape(signer)}</code>. The "
                     "signature covers <code>manifest.json</code>, which holds this file's "
                     "sha256. Check it with <code>dalp-dr export verify BUNDLE "
                     "--fingerprint</code> and the signer's fingerprint obtained out of "
                     "band.</p>")
    else:
        signature = ("<p id='signature' class='unsigned'><b>Not signed.</b> This is a "
                     "standalone export: no signature vouches for this file. For signed "
                     "evidence, export a bundle (<code>dalp-dr export --bundle</code>) and "
                     "verify it with <code>dalp-dr export verify</code>.</p>")
    verified = (f"{escape(selection.attestation.describe())}" + "".join(
        f"; {escape(n)}" for n in selection.attestation.notes)
        if selection.attestation is not None else "not verified when exported")
    filters = [f"topology {selection.query.topology.value}"] if selection.query.topology \
        else []
    filters += [f"drill {d}" for d in selection.query.drills]
    filters += [f"environment {e}" for e in selection.query.environments]
    outcomes = info["outcomes"]
    return (
        "<section id='cover'><h1>Disaster-recovery drill evidence</h1>"
        f"<p class='period'>Period: <b>{escape(period)}</b> (UTC)</p>"
        + (f"<p>Only: {escape(', '.join(filters))}</p>" if filters else "")
        + f"<p>{len(selection.records)} sealed run records of {len(info['drills'])} drills. "
        f"Outcomes: {escape(', '.join(f'{k} {v}' for k, v in outcomes.items()) or 'none')}."
        "</p>" + signature
        + "<p>Chain head (the sha256 that pins every record of this history when it was "
        f"exported): <code class='digest'>{escape(selection.head)}</code></p>"
        f"<p>History verification when exported: {verified}.</p>"
        f"<p class='muted'>Generated {escape(_instant(selection.generated_at))}.</p>"
        "<p>This evidence is relevant to the following requirements, listed as references "
        "for the reader, not as claims of compliance:</p><ul>" + "".join(
            f"<li><b>{escape(ref)}</b>: {escape(text)}</li>"
            for ref, text in records.REQUIREMENTS) + "</ul></section>")


METHODOLOGY = (
    ("Recovery time", "from the fault instant (when the drill injected the failure) to the "
     "first write the service acknowledged again, as seen by dalp-dr's client writing a "
     "heartbeat through the service endpoint. Judged against the drill's RTO."),
    ("Write outage", "from the last write acknowledged before the outage to the first "
     "acknowledged after it: how long clients could not write, whatever the cause."),
    ("RTT (return to target)", "from the fault instant until the verify checks passed and "
     "every converge probe was met: the platform back to its declared steady state."),
    ("Data-loss window", "how far back acknowledged writes were lost: from the newest "
     "acknowledged write that survived the recovery to the last acknowledged before the "
     "fault (0 when every acknowledged write survived). Judged against the drill's RPO; "
     "lost writes counts them. A write never acknowledged is never counted as lost."),
    ("Resolution", "the heartbeat interval of the run: no figure is finer than it. Figures "
     "are shown to the millisecond but mean 'within one interval'."),
    ("unknown", "the evidence was not enough to measure the figure (the service did not "
     "recover while observed, heartbeats were lost, the surviving writes could not be "
     "read). An unknown is never counted as met; where a lower bound is known it is shown "
     "('at least')."),
    ("Verdicts", "met: measured within the objective; missed: measured beyond it (or "
     "known to be beyond it from a lower bound); unknown: see above. Margin = objective "
     "minus measured: positive is headroom, negative is by how much it was missed."),
    ("Outcomes", "passed: every objective met; missed: at least one objective missed; "
     "inconclusive: the drill ran but at least one objective is unknown; failed: a phase "
     "failed after the fault was injected; preflight_failed: refused before any fault "
     "(fail closed); aborted: stopped by an operator or a signal; refused: a guardrail "
     "refused the run; missed_schedule: a scheduled run did not happen."),
    ("Integrity", "every final record is sealed in a sha256 hash chain; the chain head "
     "on the cover pins all of them. Reviewer approvals are sealed in the same chain."),
)


def methodology() -> str:
    return ("<section id='methodology'><h2>Methodology</h2><dl>" + "".join(
        f"<dt>{escape(term)}</dt><dd>{escape(text)}</dd>" for term, text in METHODOLOGY)
        + "</dl></section>")


def _cell_class(cell: records.Cell) -> str:
    return next(iter(cell)).value.replace(" ", "-")


def matrix(selection: Selection, drills: list[str] | None) -> str:
    found = records.coverage(selection, drills)
    quarters = records.quarters(selection)
    if not found or not quarters:
        return "<p>No drills in this period.</p>"
    head = "".join(f"<th>{escape(q)}</th>" for q in quarters)
    rows = "".join(
        f"<tr><th>{escape(drill)}</th>" + "".join(
            f"<td class='{_cell_class(row[q])}'>" + "<br>".join(
                escape(c.value) + (f" &times;{n}" if n > 1 else "")
                for c, n in row[q].items()) + "</td>" for q in quarters)
        + "</tr>" for drill, row in found.items())
    legend = ", ".join(escape(c.value) for c in Coverage)
    return (f"<table id='coverage-matrix'><tr><th>drill</th>{head}</tr>{rows}</table>"
            "<p class='note legend'>Each cell lists every outcome of the drill's runs in "
            f"the quarter, worst first (&times;N: N runs): {legend}.</p>")


def _verdict(v: ObjectiveVerdict | None) -> str:
    if v is None:
        return "-"
    margin = "" if v.margin is None else \
        f" ({'+' if v.margin >= 0 else ''}{format_duration(v.margin)})"
    return f"{v.status.value}{margin}"


def _verdicts(r: RunResult) -> dict[str, ObjectiveVerdict]:
    judged = r.verdicts[0].population if r.verdicts else None
    return {v.objective: v for v in r.verdicts if v.population == judged}


def failure_reason(r: RunResult) -> str | None:
    """Why a run did not pass, in words (None for a pass)."""
    if r.outcome is Outcome.PASSED:
        return None
    reasons = [r.message] if r.message else []
    reasons += [f"phase {p.phase.value} {p.status.value}" + (f": {p.message}" if p.message
                                                             else "")
                for p in r.phases if p.status not in (PhaseStatus.OK, PhaseStatus.SKIPPED)]
    reasons += [f"{v.objective.upper()} {v.status.value}: {v.reason}"
                for v in r.verdicts if v.status is not Status.MET]
    return "; ".join(reasons) or r.outcome.value


def _timeline_text(r: RunResult) -> str:
    m = r.measurements
    origin = m.fault_at if m and m.fault_at else r.started_at
    items = [f"<li>{escape(p.phase.value)}: {escape(p.status.value)}, "
             f"{escape(format_duration(p.duration))} from {escape(_instant(p.started_at))}"
             "</li>" for p in r.phases]
    for e in r.timeline[:MAX_TIMELINE_EVENTS]:
        offset = (e.at - origin).total_seconds()
        items.append(f"<li>{'+' if offset >= 0 else ''}{escape(format_duration(offset))} "
                     f"after the fault: {escape(e.name)} ({escape(e.source)})"
                     + (f": {escape(e.detail)}" if e.detail else "") + "</li>")
    if len(r.timeline) > MAX_TIMELINE_EVENTS:
        items.append(f"<li>and {len(r.timeline) - MAX_TIMELINE_EVENTS} more events in the "
                     "evidence</li>")
    return "<ul class='timeline'>" + "".join(items) + "</ul>" if items else \
        "<p class='muted'>no phases (not run)</p>"


def _evidence(record: ExportRecord, in_bundle: bool) -> str:
    names = sorted(record.chain.evidence)
    if not names:
        return "<p class='note'>Evidence: none sealed.</p>"
    if not in_bundle:
        return (f"<p class='note'>Evidence: {len(names)} files sealed in the chain (their "
                "sha256 are in the JSON export); a bundle export includes and links them."
                "</p>")
    base = f"evidence/{quote(record.result.run_id, safe='')}/"
    links = ", ".join(f"<a href='{base}{quote(n)}'>{escape(n)}</a>"
                      for n in names[:MAX_EVIDENCE_LINKS])
    more = f" and {len(names) - MAX_EVIDENCE_LINKS} more in <code>{escape(base)}</code>" \
        if len(names) > MAX_EVIDENCE_LINKS else ""
    return f"<p class='note evidence'>Evidence (in this bundle): {links}{more}.</p>"


def _approvals(selection: Selection, run_id: str) -> str:
    found = selection.approvals.get(run_id, [])
    if not found:
        return "<p class='note'>Approvals: none.</p>"
    return "<p class='approvals'><b>Approved</b>: " + "; ".join(
        f"by {escape(a.reviewer)} at {escape(_instant(a.approved_at))}: "
        f"&ldquo;{escape(a.note)}&rdquo;" for a in found) + "</p>"


def _targets(runs: list[ExportRecord]) -> str:
    latest = runs[-1].result.objectives
    if not latest:
        return "<p>Targets: none declared.</p>"
    return "<p class='targets'>Targets: " + ", ".join(
        f"<b>{escape(k.upper())} {escape(format_duration(v) if k != 'split_brain' else str(v))}"
        "</b>" for k, v in sorted(latest.items())) + " (as declared by the newest run)</p>"


def _runs_table(runs: list[ExportRecord]) -> str:
    rows = []
    for record in reversed(runs):
        r, m = record.result, record.result.measurements
        v = _verdicts(r)
        rows.append("<tr>" + "".join(f"<td>{escape(str(c))}</td>" for c in (
            _instant(r.started_at).removesuffix(" UTC"), r.outcome.value, _verdict(v.get("rto")),
            _verdict(v.get("rpo")), format_duration(m.recovery_time) if m else "-",
            format_duration(m.data_loss_window) if m else "-",
            f"{r.trigger.value} / {r.operator}"))
            + f"<td class='run-id'><code>{escape(r.run_id)}</code></td></tr>")
    return ("<table class='runs'><colgroup><col class='c-date'><col class='c-outcome'>"
            "<col class='c-verdict'><col class='c-verdict'><col class='c-figure'>"
            "<col class='c-figure'><col class='c-who'><col class='c-id'></colgroup><tr>"
            "<th>started (UTC)</th><th>outcome</th><th>RTO verdict (margin)</th>"
            "<th>RPO verdict (margin)</th><th>recovery time</th><th>data-loss window</th>"
            "<th>trigger / operator</th><th>run id</th></tr>" + "".join(rows) + "</table>")


def _run_detail(selection: Selection, record: ExportRecord, in_bundle: bool) -> str:
    r = record.result
    reason = failure_reason(r)
    return (
        f"<div class='run' id='run-{escape(r.run_id)}'><h4><code>{escape(r.run_id)}</code> "
        f"{escape(_day(r.started_at))}: {escape(r.outcome.value)}</h4>"
        f"<p>Environment {escape(r.environment)}; {escape(r.trigger.value)} by "
        f"{escape(r.operator)}; owner {escape(r.owner)}.</p>"
        + (f"<p class='reason'><b>Reason</b>: {escape(reason)}</p>" if reason else "")
        + "<p><b>Recovery timeline</b>:</p>" + _timeline_text(r) + phase_bar(record)
        + _approvals(selection, r.run_id) + _evidence(record, in_bundle) + "</div>")


def drills(selection: Selection, in_bundle: bool) -> str:
    by_drill: dict[str, list[ExportRecord]] = {}
    for record in selection.records:
        by_drill.setdefault(record.result.drill, []).append(record)
    parts = []
    for drill, runs in sorted(by_drill.items()):
        parts.append(
            f"<section class='drill'><h2>Drill {escape(drill)}</h2>" + _targets(runs)
            + trend_chart(drill, runs, "recovery_time", "rto", "Measured recovery time")
            + trend_chart(drill, runs, "data_loss_window", "rpo", "Measured data-loss window")
            + "<h3>Runs</h3>" + _runs_table(runs) + "<h3>Each run</h3>"
            + "".join(_run_detail(selection, r, in_bundle) for r in reversed(runs))
            + "</section>")
    if not parts:
        return "<p>No runs in this period.</p>"
    return f"<p class='legend note'>Phases: {phase_legend()}</p>" + "".join(parts)
