"""What an export contains: the sealed records in a period, filtered, with the content
auditors ask for (flat per-run rows, the quarter x drill coverage matrix, a summary).

Only sealed (final) records are exported; runs still in progress are not evidence yet.
"""

from __future__ import annotations

import re
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from dalp_dr.checkpoints import Checkpointer
from dalp_dr.clock import utcnow
from dalp_dr.errors import Flag, HintKey, InvalidInput, TamperedHistory
from dalp_dr.history.approvals import Approval, approvals_of, is_approval
from dalp_dr.history.base import HistoryStore
from dalp_dr.integrity import ChainEntry
from dalp_dr.results import Outcome, RunResult, Status
from dalp_dr.spec import Topology
from dalp_dr.verdict import SPLIT_BRAIN

REQUIREMENTS = (
    ("DALP quarterly DR drill", "SettleMint DALP high-availability guidance: DR drills are "
     "scheduled quarterly per deployment pattern, with evidence of measured RTO/RPO"),
    ("SOC 2 A1.3", "AICPA Trust Services Criteria A1.3: recovery plan procedures supporting "
     "system recovery are tested"),
    ("ISO/IEC 27001:2022 A.5.30", "Annex A control 5.30: ICT readiness for business "
     "continuity is planned, implemented, maintained and tested"),
)
"""requirements this evidence supports, as references for the reader: not claims of
compliance"""

_QUARTER = re.compile(r"^(\d{4})[-_ ]?[Qq]([1-4])$")


def quarter_of(moment: datetime) -> str:
    return f"{moment.year}Q{(moment.month - 1) // 3 + 1}"


def quarter_start(year: int, quarter: int) -> datetime:
    return datetime(year, 3 * (quarter - 1) + 1, 1, tzinfo=UTC)


def next_quarter(moment: datetime) -> datetime:
    year, quarter = moment.year, (moment.month - 1) // 3 + 1
    return quarter_start(year + quarter // 4, quarter % 4 + 1)


_DAY = re.compile(r"\d{4}-\d{2}-\d{2}")


def is_quarter(text: str) -> bool:
    return bool(_QUARTER.match(text.strip()))


def is_calendar_bound(text: str) -> bool:
    """A quarter or a day (not one instant): what :func:`parse_bound` reads as midnight."""
    return is_quarter(text) or bool(_DAY.fullmatch(text.strip()))


def parse_bound(text: str, *, end: bool, field: str) -> datetime:
    """``2026Q3``, ``2026-07-01`` or an ISO 8601 time (UTC unless it says otherwise). An end
    bound that names a quarter or a day includes all of it."""
    value = text.strip()
    match = _QUARTER.match(value)
    if match:
        start = quarter_start(int(match.group(1)), int(match.group(2)))
        return next_quarter(start) if end else start
    try:
        if _DAY.fullmatch(value):
            day = date.fromisoformat(value)
            start = datetime(day.year, day.month, day.day, tzinfo=UTC)
            return start + timedelta(days=1) if end else start
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise InvalidInput(f"'{text}' is not a quarter, date or time", field=field,
                           hint="use 2026Q3, 2026-07-01 or 2026-07-01T03:00:00Z") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


class Query(BaseModel, frozen=True):
    start: datetime | None = None
    end: datetime | None = None
    """exclusive"""
    topology: Topology | None = None
    drills: tuple[str, ...] = ()
    environments: tuple[str, ...] = ()

    def describe(self) -> str:
        parts = [f"from {self.start:%Y-%m-%d %H:%M} UTC" if self.start else "from the start",
                 f"until {self.end:%Y-%m-%d %H:%M} UTC" if self.end else "until now"]
        if self.topology:
            parts.append(f"topology {self.topology.value}")
        if self.drills:
            parts.append("drill " + ", ".join(self.drills))
        if self.environments:
            parts.append("environment " + ", ".join(self.environments))
        return "; ".join(parts)


class ExportRecord(BaseModel, frozen=True):
    result: RunResult
    result_json: str
    """the record exactly as sealed (its digest is computed from this)"""
    spec_json: str
    chain: ChainEntry


class Attestation(BaseModel, frozen=True):
    """What the exported history's verification rested on (carried in every export)."""

    records: int
    head: str
    head_seq: int
    signed_checkpoints: int
    latest_checkpoint_seq: int | None
    notes: list[str]

    @property
    def pinned(self) -> bool:
        return self.latest_checkpoint_seq is not None

    def describe(self) -> str:
        pinned = (f"pinned by a signed checkpoint at #{self.latest_checkpoint_seq}"
                  if self.pinned else "NOT pinned by any signed checkpoint")
        return f"history of {self.records} sealed records, head #{self.head_seq}, {pinned}"


class Selection(BaseModel, frozen=True):
    query: Query
    records: list[ExportRecord]
    """the matching records, oldest first"""
    segment: list[ChainEntry]
    """every chain entry from the first matching record's to the head (digests only for the
    records not exported), so the links can be checked without the others' content"""
    head: str
    generated_at: datetime
    results_dir: Path | None = None
    """where the records' evidence is (the configured results directory)"""
    attestation: Attestation | None = None
    """how the history verified when it was selected (None: not verified)"""
    approvals: dict[str, list[Approval]] = {}
    """run id -> reviewers' sealed approvals of it (``dalp-dr history approve``)"""


def verified_selection(store: HistoryStore, checkpointer: Checkpointer | None, query: Query,
                       now: datetime | None = None, copies_evidence: bool = False
                       ) -> Selection:
    """The selection, from a history that verifies as ``history verify`` verifies it
    (``dalp_dr.history.views.audit``: every record, evidence file and signed checkpoint).
    Raises TamperedHistory: a history that does not verify is not exported, let alone
    signed. ``copies_evidence``: the caller (the bundle writer) hashes the selected
    records' evidence against their seals as it copies it, so it is read once."""
    from dalp_dr.history.views import audit

    selection = select(store, query, now)
    report = audit(store, checkpointer, evidence_checked_elsewhere={
        r.result.run_id for r in selection.records} if copies_evidence else ())
    if report.problems:
        from dalp_dr.integrity import ProblemKind

        first = report.problems[0]
        raise TamperedHistory(f"history does not verify, not exported: {first}",
                              hint_key=HintKey.PIN_HISTORY if first.kind is ProblemKind.UNPINNED
                              else HintKey.VERIFY_HISTORY)
    return selection.model_copy(update={
        "results_dir": store.results_dir,
        "attestation": Attestation(records=report.records, head=report.head,
                                   head_seq=report.head_seq,
                                   signed_checkpoints=report.checkpoints,
                                   latest_checkpoint_seq=report.latest_checkpoint_seq,
                                   notes=report.notes)})


def select(store: HistoryStore, query: Query, now: datetime | None = None) -> Selection:
    """The sealed records matching the query. Unknown drills or environments (not in the
    history at all) are invalid input: a typo must not produce an empty, clean-looking
    export."""
    if query.start and query.end and query.start >= query.end:
        raise InvalidInput(f"the period is empty or inverted ({query.describe()})",
                           flag=Flag.PERIOD, hint_key=HintKey.PERIOD_ORDER)
    entries: list[ChainEntry] = []
    matched: list[ExportRecord] = []
    drills_seen: set[str] = set()
    environments_seen: set[str] = set()
    first_index: int | None = None
    approval_records = []
    for sealed in store.sealed_records():
        entries.append(sealed.entry)
        if is_approval(sealed.entry.run_id):
            approval_records.append(sealed)  # in the chain segment; shown with its run
            continue
        if sealed.result_json is None or sealed.spec_json is None:
            continue  # history verify reports it; the export carries the entry only
        try:
            result = RunResult.model_validate_json(sealed.result_json)
        except ValueError:
            raise TamperedHistory(f"run {sealed.entry.run_id}: its record cannot be read; "
                                  "history does not verify, not exported",
                                  hint_key=HintKey.VERIFY_HISTORY) from None
        drills_seen.add(result.drill)
        environments_seen.add(result.environment)
        if query.start and result.started_at < query.start:
            continue
        if query.end and result.started_at >= query.end:
            continue
        if query.topology and result.topology is not query.topology:
            continue
        if query.drills and result.drill not in query.drills:
            continue
        if query.environments and result.environment not in query.environments:
            continue
        if first_index is None:
            first_index = len(entries) - 1
        matched.append(ExportRecord(result=result, result_json=sealed.result_json,
                                    spec_json=sealed.spec_json, chain=sealed.entry))
    for flag, asked, seen in ((Flag.DRILL, query.drills, drills_seen),
                              (Flag.ENVIRONMENT, query.environments, environments_seen)):
        unknown = sorted(set(asked) - seen)
        if unknown:
            raise InvalidInput(f"{', '.join(unknown)}: not in the history", flag=flag,
                               hint_key=HintKey.KNOWN_VALUES,
                               hint_params={"known": ", ".join(sorted(seen)) or "none"})
    segment = entries[first_index:] if first_index is not None else []
    exported = {r.result.run_id for r in matched}
    approvals = {run_id: found for run_id, found in approvals_of(approval_records).items()
                 if run_id in exported}
    return Selection(query=query, records=matched, segment=segment, approvals=approvals,
                     head=entries[-1].digest if entries else "0" * 64,
                     generated_at=now or utcnow())


# --- per-run rows ------------------------------------------------------------------------

CSV_COLUMNS = (
    "run_id", "drill", "topology", "scenario", "environment", "owner", "trigger", "operator",
    "planned_at", "started_at", "ended_at", "outcome", "rto_s", "rpo_s", "recovery_time_s",
    "recovery_time_lower_bound_s", "write_outage_s", "rtt_s", "data_loss_window_s",
    "lost_writes", "rto_status", "rto_margin_s", "rpo_status", "rpo_margin_s",
    "split_brain_max", "split_brain_writes", "split_brain_status", "rtt_objective_s",
    "rtt_status", "rtt_margin_s", "phase_timings",
    "spec_sha256", "record_sha256", "evidence_sha256", "chain_digest",
    "evidence_files", "message",
)


def _iso(value: datetime | None) -> str:
    return value.astimezone(UTC).isoformat() if value else ""


_WORST_FIRST = (Status.MISSED, Status.UNKNOWN, Status.MET)


def _split_brain_columns(r: RunResult) -> dict[str, Any]:
    """Split brain over every population (each is judged on it): the worst status and the
    most split-brain writes any population measured; blank without the objective."""
    found = [v for v in r.verdicts if v.objective == SPLIT_BRAIN]
    status = next((s.value for s in _WORST_FIRST if any(v.status is s for v in found)), "")
    writes = [v.measured for v in found if v.measured is not None]
    target = r.objectives.get(SPLIT_BRAIN)
    return {"split_brain_max": int(target) if target is not None else None,  # write counts
            "split_brain_writes": int(max(writes)) if writes else None,
            "split_brain_status": status}


def run_row(record: ExportRecord) -> dict[str, Any]:
    r = record.result
    m = r.measurements
    judged = r.verdicts[0].population if r.verdicts else None  # the first judged population
    verdicts = {v.objective: v for v in r.verdicts if v.population == judged}
    row: dict[str, Any] = {
        "run_id": r.run_id, "drill": r.drill, "topology": r.topology.value,
        "scenario": r.scenario.value, "environment": r.environment, "owner": r.owner,
        "trigger": r.trigger.value, "operator": r.operator, "planned_at": _iso(r.planned_at),
        "started_at": _iso(r.started_at), "ended_at": _iso(r.ended_at),
        "outcome": r.outcome.value, "rto_s": r.objectives.get("rto"),
        "rpo_s": r.objectives.get("rpo"),
        "recovery_time_s": m.recovery_time if m else None,
        "recovery_time_lower_bound_s": m.recovery_time_lower_bound if m else None,
        "write_outage_s": m.write_outage if m else None, "rtt_s": m.rtt if m else None,
        "data_loss_window_s": m.data_loss_window if m else None,
        "lost_writes": m.lost_writes if m else None,
        "rto_status": verdicts["rto"].status.value if "rto" in verdicts else "",
        "rto_margin_s": verdicts["rto"].margin if "rto" in verdicts else None,
        "rpo_status": verdicts["rpo"].status.value if "rpo" in verdicts else "",
        "rpo_margin_s": verdicts["rpo"].margin if "rpo" in verdicts else None,
        **_split_brain_columns(r),
        "rtt_objective_s": r.objectives.get("rtt"),
        "rtt_status": verdicts["rtt"].status.value if "rtt" in verdicts else "",
        "rtt_margin_s": verdicts["rtt"].margin if "rtt" in verdicts else None,
        "phase_timings": ";".join(f"{p.phase.value}={p.duration:.3f}" for p in r.phases),
        "spec_sha256": r.spec_hash, "record_sha256": record.chain.record_digest,
        "evidence_sha256": record.chain.evidence_digest, "chain_digest": record.chain.digest,
        "evidence_files": len(record.chain.evidence), "message": r.message or "",
    }
    return row


# --- coverage ------------------------------------------------------------------------------


class Coverage(StrEnum):
    """What a drill's run in a quarter came to, worst first (the order cells list them)."""

    FAILED = "failed"
    MISSED_OBJECTIVES = "missed objectives"
    INCONCLUSIVE = "inconclusive"
    ABORTED = "aborted"
    PREFLIGHT_FAILED = "preflight failed"
    MISSED_SCHEDULE = "missed schedule"
    REFUSED = "refused"
    MET = "met"
    NOT_RUN = "not run"


_COVERAGE = {Outcome.PASSED: Coverage.MET, Outcome.MISSED: Coverage.MISSED_OBJECTIVES,
             Outcome.INCONCLUSIVE: Coverage.INCONCLUSIVE, Outcome.FAILED: Coverage.FAILED,
             Outcome.PREFLIGHT_FAILED: Coverage.PREFLIGHT_FAILED,
             Outcome.ABORTED: Coverage.ABORTED, Outcome.REFUSED: Coverage.REFUSED,
             Outcome.MISSED_SCHEDULE: Coverage.MISSED_SCHEDULE}

Cell = dict[Coverage, int]
"""every state of a (drill, quarter), worst first, with how many runs came to it;
``{NOT_RUN: 0}`` when nothing happened"""


def quarters(selection: Selection) -> list[str]:
    """Every quarter of the period (bounded by the records when the period is open)."""
    times = [r.result.started_at for r in selection.records]
    start = selection.query.start or (min(times) if times else None)
    end = selection.query.end or max([*times, selection.generated_at])
    if start is None:
        return []
    found: list[str] = []
    moment = quarter_start(start.year, (start.month - 1) // 3 + 1)
    while moment < end and len(found) < 200:
        found.append(quarter_of(moment))
        moment = next_quarter(moment)
    return found


def coverage(selection: Selection, drills: list[str] | None = None
             ) -> dict[str, dict[str, Cell]]:
    """drill -> quarter -> every state its runs came to, worst first (Coverage's order),
    each with its count: a met run never hides a failed or inconclusive one."""
    names = sorted(set(drills or []) | {r.result.drill for r in selection.records})
    counts: dict[str, dict[str, Counter[Coverage]]] = {
        name: {q: Counter() for q in quarters(selection)} for name in names}
    for record in selection.records:
        r = record.result
        row = counts[r.drill]
        quarter = quarter_of(r.started_at)
        if quarter in row:
            row[quarter][_COVERAGE.get(r.outcome, Coverage.FAILED)] += 1
    order = list(Coverage)
    return {name: {q: {c: found[c] for c in sorted(found, key=order.index)} if found
                   else {Coverage.NOT_RUN: 0} for q, found in row.items()}
            for name, row in counts.items()}


def coverage_json(matrix: dict[str, dict[str, Cell]]) -> dict[str, dict[str, list[Any]]]:
    """The matrix as JSON: each cell a list of ``{"state", "runs"}``, worst first."""
    return {d: {q: [{"state": c.value, "runs": n} for c, n in cell.items()]
                for q, cell in row.items()} for d, row in matrix.items()}


NOT_RUNS = frozenset({Outcome.MISSED_SCHEDULE.value, Outcome.REFUSED.value,
                      Outcome.RUNNING.value})
"""outcomes of runs that did not run: left out of the pass rate (they are counted apart)"""


def summary(selection: Selection) -> dict[str, Any]:
    outcomes = Counter(r.result.outcome.value for r in selection.records)
    ran = sum(n for outcome, n in outcomes.items() if outcome not in NOT_RUNS)
    drills = sorted({r.result.drill for r in selection.records})
    latest = {}
    for record in selection.records:
        latest[record.result.drill] = record.result
    return {
        "period": selection.query.describe(),
        "generated_at": _iso(selection.generated_at),
        "records": len(selection.records),
        "drills": drills,
        "outcomes": dict(sorted(outcomes.items())),
        "passed_share": round(outcomes.get("passed", 0) / ran, 4) if ran else None,
        "passed_share_basis": "passed runs / runs that ran; missed schedules, refusals and "
                              "runs still running are not runs that ran and are not counted",
        "latest": {name: {"run_id": r.run_id, "outcome": r.outcome.value,
                          "started_at": _iso(r.started_at)} for name, r in latest.items()},
        "chain_head": selection.head,
        "requirements": [{"reference": ref, "text": text} for ref, text in REQUIREMENTS],
    }
