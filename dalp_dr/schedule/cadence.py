"""Cadence: did each drill run, and meet its objectives, within its current window?

A drill's current cadence window opens at its schedule's latest fire time at or before now
and closes at the next one (a quarter, for ``quarterly``). Any run in the window counts,
scheduled or on demand. Per drill the status is one of :class:`Cadence`; the ones in
``PROBLEMS`` are what ``dalp-dr schedule status`` exits 1 for (the missed-drill alert).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from pydantic import BaseModel

from dalp_dr.history.base import HistoryStore, RunSummary
from dalp_dr.results import Outcome
from dalp_dr.schedule.jobs import (
    Definitions,
    DrillJobStore,
    broken_drill_names,
    current_jobs,
)


class Cadence(StrEnum):
    MET = "met"
    """a run in the current window met every objective (and it is the latest run)"""
    RUNNING = "running"
    """a run in the current window is in progress"""
    DUE = "due"
    """the window opened less than the grace period ago; the scheduled run is pending"""
    NEW = "new"
    """scheduled after the current window opened: its first window is the next one"""
    OVERDUE = "overdue"
    """no run in the current window, and its grace period is over"""
    FAILING = "failing"
    """the latest run missed its objectives, failed or was aborted"""
    NOT_SCHEDULED = "not_scheduled"
    """the drill file is not in the job store ('dalp-dr schedule sync')"""
    INVALID = "invalid"
    """the drill file does not load"""
    NOT_DEFINED = "not_defined"
    """the history has runs of the drill but the drill directory has no file for it (a
    removed drill, or the wrong directory)"""


PROBLEMS = frozenset({Cadence.OVERDUE, Cadence.FAILING, Cadence.NOT_SCHEDULED, Cadence.INVALID,
                      Cadence.NOT_DEFINED})


class DrillCadence(BaseModel, frozen=True):
    drill: str
    file: str
    status: Cadence
    window_start: datetime | None
    next_run: datetime | None
    last_run: RunSummary | None
    detail: str

    @property
    def problem(self) -> bool:
        return self.status in PROBLEMS


def previous_fire(trigger: Any, now: datetime) -> datetime | None:
    """The trigger's latest fire time at or before ``now`` (None if it never fired in the
    last ten years). CronTrigger has no 'previous', so look back in doubling steps and walk
    forward from there: a few trigger evaluations whatever the cadence."""
    step = timedelta(seconds=1)
    horizon = timedelta(days=3660)
    while step <= horizon:
        candidate = trigger.get_next_fire_time(None, now - step)
        if candidate is not None and candidate <= now:
            while True:
                later = trigger.get_next_fire_time(candidate, candidate + timedelta(
                    microseconds=1))
                if later is None or later > now:
                    return candidate  # type: ignore[no-any-return]
                candidate = later
        step *= 2
    return None


def fires_between(trigger: Any, start: datetime, end: datetime, limit: int = 1000
                  ) -> list[datetime]:
    """Fire times in (start, end], oldest first, at most ``limit`` (the newest kept)."""
    found: list[datetime] = []
    moment = trigger.get_next_fire_time(None, start + timedelta(microseconds=1))
    while moment is not None and moment <= end:
        found.append(moment)
        moment = trigger.get_next_fire_time(moment, moment + timedelta(microseconds=1))
    return found[-limit:]


def assess(drill: str, file: str, trigger: Any, since: datetime | None,
           runs: list[RunSummary], now: datetime, grace: timedelta) -> DrillCadence:
    """The cadence status of one scheduled drill from its recent runs (newest first)."""
    start = previous_fire(trigger, now)
    upcoming = trigger.get_next_fire_time(None, now)
    finished = [r for r in runs if r.outcome not in (Outcome.RUNNING, Outcome.MISSED_SCHEDULE,
                                                     Outcome.REFUSED)]
    last = finished[0] if finished else None

    def status(value: Cadence, detail: str) -> DrillCadence:
        return DrillCadence(drill=drill, file=file, status=value, window_start=start,
                            next_run=upcoming, last_run=last, detail=detail)

    if last is not None and last.outcome is not Outcome.PASSED:
        return status(Cadence.FAILING, f"latest run {last.run_id}: {last.outcome.value}")
    in_window = [r for r in runs if start is not None and r.started_at >= start]
    passed = [r for r in in_window if r.outcome is Outcome.PASSED]
    if passed:  # any run in the window counts, whenever the job was (re)scheduled
        return status(Cadence.MET, f"passed {passed[0].started_at:%Y-%m-%d %H:%M} UTC "
                                   f"({passed[0].run_id})")
    running = [r for r in in_window if r.outcome is Outcome.RUNNING]
    if running:
        return status(Cadence.RUNNING, f"run {running[0].run_id} since "
                                       f"{running[0].started_at:%H:%M:%S} UTC")
    # new: its first window has not opened yet (scheduled after the current one opened)
    # and it never ran; a drill with runs before is judged on the current window
    if start is None or (since is not None and since > start and last is None):
        first = upcoming if upcoming is not None else None
        return status(Cadence.NEW, "first window opens "
                      + (f"{first:%Y-%m-%d %H:%M %Z}" if first else "at the next run"))
    late = now - start
    if late <= grace:
        return status(Cadence.DUE, f"window opened {_ago(late)} ago (grace {_ago(grace)})")
    missed = [r for r in in_window if r.outcome is Outcome.MISSED_SCHEDULE]
    why = f"; {missed[0].run_id}: missed schedule" if missed else ""
    never = "never ran; " if last is None else ""
    return status(Cadence.OVERDUE,
                  f"{never}no run since the window opened {_ago(late)} ago{why}")


def _ago(delta: timedelta) -> str:
    from dalp_dr.durations import format_duration

    return format_duration(delta.total_seconds())


def report(store: HistoryStore, jobstore: DrillJobStore, definitions: Definitions,
           now: datetime, grace: timedelta) -> list[DrillCadence]:
    """The cadence status of every drill: the valid definitions (with their job), then the
    broken files."""
    scheduled = current_jobs(jobstore, definitions, now)
    out: list[DrillCadence] = []
    for name, loaded in sorted(definitions.valid.items()):
        trigger = loaded.spec.schedule.trigger()
        stored = scheduled.get(name)
        runs = store.list_runs(drill=name, limit=50)
        if stored is None:
            finished = [r for r in runs if r.outcome is not Outcome.RUNNING]
            out.append(DrillCadence(
                drill=name, file=str(loaded.path), status=Cadence.NOT_SCHEDULED,
                window_start=previous_fire(trigger, now),
                next_run=trigger.get_next_fire_time(None, now),
                last_run=finished[0] if finished else None,
                detail="not in the job store: run 'dalp-dr schedule sync'"))
            continue
        out.append(assess(name, str(loaded.path), trigger, stored.job.since, runs, now, grace))
    broken = broken_drill_names(definitions)
    for path, exc in sorted(definitions.invalid.items()):
        out.append(DrillCadence(drill=path.stem, file=str(path), status=Cadence.INVALID,
                                window_start=None, next_run=None, last_run=None,
                                detail=exc.detail if exc.field is None
                                else f"{exc.field}: {exc.detail}"))
    latest: dict[str, RunSummary] = {}
    for run in store.list_runs(limit=HISTORY_LIMIT):  # newest first
        latest.setdefault(run.drill, run)
    for name in sorted(set(latest) | set(scheduled)):
        if name in definitions.valid or name in broken:
            continue
        job, found = scheduled.get(name), latest.get(name)
        seen = f"in the history (latest {found.run_id})" if found else "never ran"
        out.append(DrillCadence(
            drill=name, file=job.job.path if job else "", status=Cadence.NOT_DEFINED,
            window_start=None, next_run=job.next_run if job else None, last_run=found,
            detail=f"{seen} but no drill file defines it"
                   + ("; its job is still scheduled: restore the file, or remove the job "
                      "with 'dalp-dr schedule sync --prune'" if job else "")))
    return out


HISTORY_LIMIT = 100_000
"""runs read to find the drills the history knows"""
