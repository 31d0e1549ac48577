"""The control check of a period (``dalp-dr report``): per drill, did it run on cadence and
meet its RTO and RPO in every run?

Read from a history that verifies (:func:`dalp_dr.export.records.verified_selection`): a
history that does not verify raises TamperedHistory and never passes the check.

Per drill defined in the drill directory (and per drill found in the period's history but
missing from the directory, which is a finding by itself):

* **cadence**: every fire of the drill's schedule inside the period opens a window that
  closes at the next fire (or at the end of the period). A window that has closed must hold
  a finished run (any trigger: scheduled or on demand; not a missed schedule or a refusal).
  A window still open now, without a run yet, is *pending*: not (yet) a miss.
* **worst outcome** of the period's records, worst first as :data:`WORST_FIRST`.
* **RTO and RPO**: the worst verdict over the runs that ran (missed, then unknown, then met;
  among equals the smallest margin). A run that ran without a verdict for the objective (it
  failed before measuring) counts as unknown.

The history must be pinned by a signed checkpoint (``dalp-dr keys init``): a history anyone
with write access to the store could have rewritten proves nothing, so it fails the check
unless the operator allows it (``--allow-unsigned``, said in the result).

A drill passes when it is defined, no window of the period closed without a run, it ran
in the period if a window opened in it (a window still open is not a miss, but a drill with
no run in the period has not run: exit 0 says every drill ran), and every run that ran met
both objectives. The period passes when every drill passes.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Any, ClassVar
from zoneinfo import ZoneInfo

from pydantic import BaseModel

from dalp_dr.export.records import Attestation, Selection
from dalp_dr.results import Outcome, RunResult, Status
from dalp_dr.spec import LoadedDrill

OBJECTIVES = ("rto", "rpo")

WORST_FIRST = (Outcome.MISSED, Outcome.FAILED, Outcome.ABORTED, Outcome.INCONCLUSIVE,
               Outcome.PREFLIGHT_FAILED, Outcome.MISSED_SCHEDULE, Outcome.REFUSED,
               Outcome.RUNNING, Outcome.PASSED)
"""the order 'worst outcome' uses: a missed objective first (it is a finding on evidence),
then the runs that gave no evidence, then the runs that did not happen, then a pass"""

_DID_NOT_RUN = (Outcome.MISSED_SCHEDULE, Outcome.REFUSED, Outcome.RUNNING)
_STATUS_ORDER = (Status.MISSED, Status.UNKNOWN, Status.MET)
_TICK = timedelta(microseconds=1)


class Cadence(StrEnum):
    ON_CADENCE = "on_cadence"
    """every window of the period that has closed had a finished run"""
    OFF_CADENCE = "off_cadence"
    """at least one window closed without a finished run"""
    NO_WINDOW = "no_window"
    """the schedule does not fire inside the period (up to now)"""
    NOT_DEFINED = "not_defined"
    """the drill is in the history but not in the drill directory"""
    INVALID = "invalid"
    """the drill file does not load: its schedule is unknown"""


class Window(BaseModel, frozen=True):
    """One fire of the schedule in the period and the runs inside its window."""

    opens: datetime
    closes: datetime
    """the next fire, or the end of the period, whichever comes first"""
    runs: tuple[str, ...]
    """finished runs started in the window"""
    pending: bool
    """still open now, no run yet"""

    @property
    def missed(self) -> bool:
        return not self.runs and not self.pending


class ObjectiveCheck(BaseModel, frozen=True):
    """The worst verdict of the period's runs for one objective."""

    objective: str
    status: Status
    target_s: float | None = None
    measured_s: float | None = None
    margin_s: float | None = None
    run_id: str | None = None
    """the run that gave the worst verdict (None: no run ran)"""


class DrillCheck(BaseModel, frozen=True):
    drill: str
    period: Period
    """the period as this drill's zone reads it (quarters and days start at its midnight)"""
    file: str | None
    """the drill's definition (None: not in the drill directory)"""
    schedule: str | None
    cadence: Cadence
    windows: tuple[Window, ...]
    worst_outcome: Outcome | None
    """None: no record in the period"""
    rto: ObjectiveCheck
    rpo: ObjectiveCheck
    run_ids: tuple[str, ...]
    """every record of the drill in the period, oldest first"""
    findings: tuple[str, ...]
    """why the drill does not pass (empty: it passes)"""

    @property
    def passed(self) -> bool:
        return not self.findings

    @property
    def missed_windows(self) -> tuple[Window, ...]:
        return tuple(w for w in self.windows if w.missed)

    def row(self) -> dict[str, Any]:
        """The drill as one flat row (JSON, CSV)."""
        def objective(check: ObjectiveCheck) -> dict[str, Any]:
            return {"status": check.status.value, "target_s": check.target_s,
                    "measured_s": check.measured_s, "margin_s": check.margin_s,
                    "run_id": check.run_id}

        return {"drill": self.drill, "passed": self.passed, "file": self.file,
                "period": {"from": self.period.start.isoformat(),
                           "to": self.period.end.isoformat()},
                "schedule": self.schedule, "cadence": self.cadence.value,
                "windows": len(self.windows),
                "windows_with_run": sum(1 for w in self.windows if w.runs),
                "windows_pending": sum(1 for w in self.windows if w.pending),
                "missed_windows": [w.opens.isoformat() for w in self.missed_windows],
                "worst_outcome": self.worst_outcome.value if self.worst_outcome else None,
                "rto": objective(self.rto), "rpo": objective(self.rpo),
                "run_ids": list(self.run_ids), "findings": list(self.findings)}


class Period(BaseModel, frozen=True):
    start: datetime
    end: datetime
    """exclusive"""
    start_is_calendar: bool = False
    end_is_calendar: bool = False
    """the bound was a quarter or a day (``2026Q3``, ``2026-07-01``): midnight in each drill's
    own time zone (a quarterly drill at 03:00 Asia/Tokyo on the 1st belongs to that quarter),
    where ``start``/``end`` hold it in UTC; an ISO time or now is the same instant for all"""

    ZONE_SLACK: ClassVar[timedelta] = timedelta(hours=14)
    """the furthest any zone's midnight is from UTC's: what the history read is widened by"""

    def in_zone(self, zone: str | None) -> Period:
        """The period for a drill scheduled in ``zone`` (None: UTC)."""
        if zone is None or not (self.start_is_calendar or self.end_is_calendar):
            return self
        tz = ZoneInfo(zone)

        def local(moment: datetime, calendar: bool) -> datetime:
            if not calendar:
                return moment
            return moment.astimezone(UTC).replace(tzinfo=None).replace(tzinfo=tz)

        return self.model_copy(update={"start": local(self.start, self.start_is_calendar),
                                       "end": local(self.end, self.end_is_calendar)})

    def widened(self) -> tuple[datetime, datetime]:
        """What to read from the history to hold every drill's own period."""
        return (self.start - self.ZONE_SLACK if self.start_is_calendar else self.start,
                self.end + self.ZONE_SLACK if self.end_is_calendar else self.end)

    def holds(self, moment: datetime) -> bool:
        return self.start <= moment < self.end


class ControlReport(BaseModel, frozen=True):
    period: Period
    generated_at: datetime
    drills: tuple[DrillCheck, ...]
    attestation: Attestation | None
    chain_head: str
    unsigned_allowed: bool = False
    """pass on a history no signed checkpoint pins (the operator said so: --allow-unsigned)"""

    @property
    def history_pinned(self) -> bool:
        """a signed checkpoint pins the history read: someone who can write the store but
        does not hold the key cannot have rewritten it unseen"""
        return self.attestation is not None and self.attestation.pinned

    @property
    def history_finding(self) -> str | None:
        if self.history_pinned or self.unsigned_allowed:
            return None
        return ("the history is not pinned by any signed checkpoint: whoever can write the "
                "store could have rewritten it, so it proves nothing by itself")

    @property
    def passed(self) -> bool:
        return (bool(self.drills) and all(d.passed for d in self.drills)
                and self.history_finding is None)

    def document(self) -> dict[str, Any]:
        failing = [d.drill for d in self.drills if not d.passed]
        return {"period": {"from": self.period.start.isoformat(),
                           "to": self.period.end.isoformat()},
                "generated_at": self.generated_at.isoformat(),
                "passed": self.passed, "drills_checked": len(self.drills),
                "drills_failing": failing,
                "history": self.attestation.describe() if self.attestation else None,
                "history_pinned": self.history_pinned,
                "unsigned_allowed": self.unsigned_allowed,
                "history_finding": self.history_finding,
                "chain_head": self.chain_head,
                "drills": [d.row() for d in self.drills]}


def windows(trigger: Any, period: Period, now: datetime, runs: Sequence[RunResult]
            ) -> tuple[Window, ...]:
    """The schedule's fire windows inside the period (fires up to now) and their runs."""
    from dalp_dr.schedule.cadence import fires_between

    last = period.end - _TICK if period.end <= now else now  # fires in [start, end), so far
    fires = fires_between(trigger, period.start - _TICK, last, limit=10_000)
    finished = [r for r in runs if r.outcome not in _DID_NOT_RUN]
    found = []
    for i, opens in enumerate(fires):
        later = fires[i + 1] if i + 1 < len(fires) else trigger.get_next_fire_time(
            opens, opens + _TICK)
        closes = min(later, period.end) if later is not None else period.end
        inside = tuple(r.run_id for r in finished if opens <= r.started_at < closes)
        # a period that runs until now (no --to) cuts the current window at now: it is
        # still open until the next fire, not closed without a run
        still_open = closes > now or (period.end >= now and (later is None or later > now))
        found.append(Window(opens=opens, closes=closes, runs=inside,
                            pending=not inside and still_open))
    return tuple(found)


def objective_check(objective: str, runs: Iterable[RunResult]) -> ObjectiveCheck:
    """The worst verdict for ``objective`` over the runs that ran (any population)."""
    worst: ObjectiveCheck | None = None
    for run in runs:
        if run.outcome in _DID_NOT_RUN:
            continue
        verdicts = [v for v in run.verdicts if v.objective == objective]
        candidates = [ObjectiveCheck(objective=objective, status=v.status, target_s=v.target,
                                     measured_s=v.measured, margin_s=v.margin,
                                     run_id=run.run_id) for v in verdicts] or [
            ObjectiveCheck(objective=objective, status=Status.UNKNOWN,
                           target_s=run.objectives.get(objective), run_id=run.run_id)]
        for candidate in candidates:
            if worst is None or _rank(candidate) < _rank(worst):
                worst = candidate
    return worst or ObjectiveCheck(objective=objective, status=Status.UNKNOWN)


def _rank(check: ObjectiveCheck) -> tuple[int, float]:
    margin = check.margin_s if check.margin_s is not None else float("inf")
    return (_STATUS_ORDER.index(check.status), margin)


def check_drill(name: str, loaded: LoadedDrill | None, runs: Sequence[RunResult],
                period: Period, now: datetime) -> DrillCheck:
    """The control check of one drill over its records in the period (oldest first)."""
    findings: list[str] = []
    spans: tuple[Window, ...] = ()
    schedule: str | None = None
    if loaded is None:
        cadence = Cadence.NOT_DEFINED
        findings.append("in the history of the period but not in the drill directory")
    else:
        schedule = f"{loaded.spec.schedule.cron} {loaded.spec.schedule.timezone}"
        spans = windows(loaded.spec.schedule.trigger(), period, now, runs)
        missed = [w for w in spans if w.missed]
        cadence = (Cadence.NO_WINDOW if not spans else
                   Cadence.OFF_CADENCE if missed else Cadence.ON_CADENCE)
        if missed:
            findings.append(f"{len(missed)} of {len(spans)} window(s) closed without a run "
                            "(from " + ", ".join(f"{w.opens:%Y-%m-%d %H:%M %Z}"
                                                for w in missed) + ")")
        elif spans and not any(w.runs for w in spans):  # every window still open, none ran
            findings.append("no run in the period yet (its window opened "
                            f"{spans[0].opens:%Y-%m-%d %H:%M %Z} and is still open)")
    worst = min((r.outcome for r in runs), key=WORST_FIRST.index, default=None)
    checks = [objective_check(o, runs) for o in OBJECTIVES]
    for check in checks:
        if check.run_id is not None and check.status is not Status.MET:
            findings.append(f"{check.objective} {check.status.value} in {check.run_id}")
    return DrillCheck(drill=name, period=period, file=str(loaded.path) if loaded else None,
                      schedule=schedule, cadence=cadence, windows=spans, worst_outcome=worst,
                      rto=checks[0], rpo=checks[1], run_ids=tuple(r.run_id for r in runs),
                      findings=tuple(findings))


def invalid_drill(name: str, file: Path, problem: str, runs: Sequence[RunResult],
                  period: Period) -> DrillCheck:
    """A drill file that does not load: its cadence cannot be checked, which is a finding."""
    checks = [objective_check(o, runs) for o in OBJECTIVES]
    return DrillCheck(drill=name, period=period, file=str(file), schedule=None,
                      cadence=Cadence.INVALID,
                      windows=(), worst_outcome=min((r.outcome for r in runs),
                                                    key=WORST_FIRST.index, default=None),
                      rto=checks[0], rpo=checks[1], run_ids=tuple(r.run_id for r in runs),
                      findings=(f"the drill file does not load: {problem}",))


def control_report(selection: Selection, drills: dict[str, LoadedDrill],
                   invalid: dict[str, tuple[Path, str]], period: Period, now: datetime,
                   unsigned_allowed: bool = False) -> ControlReport:
    """The check of every drill: those defined (``drills`` by name, ``invalid``: name ->
    (file, problem)) and those only in the selection's records."""
    by_drill: dict[str, list[RunResult]] = {}
    for record in selection.records:
        by_drill.setdefault(record.result.drill, []).append(record.result)
    checks = []
    for name in sorted(set(drills) | set(invalid) | set(by_drill)):
        # quarters and days are the drill's own: midnight in its schedule's zone
        own = period.in_zone(drills[name].spec.schedule.timezone if name in drills else None)
        runs = [r for r in by_drill.get(name, []) if own.holds(r.started_at)]
        if name in drills:
            checks.append(check_drill(name, drills[name], runs, own, now))
        elif name in invalid:
            checks.append(invalid_drill(name, *invalid[name], runs, own))
        elif runs:
            checks.append(check_drill(name, None, runs, own, now))
    return ControlReport(period=period, generated_at=now, drills=tuple(checks),
                         attestation=selection.attestation, chain_head=selection.head,
                         unsigned_allowed=unsigned_allowed)

