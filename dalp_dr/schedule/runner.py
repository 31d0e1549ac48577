"""What the scheduler does when a drill's fire times come due.

Given every fire time APScheduler found due for a drill (one, or several after downtime):

* each fire time older than the grace period becomes a ``missed_schedule`` record with its
  planned time;
* the newest fire time within the grace period becomes one run (coalesced: never a burst);
  older ones within the grace period are covered by that run.

Every fire time is claimed in the store first (``claim_fire``): whichever scheduler process
claims it handles it, nobody else, so a fire is never handled twice even across a leader
change. A run the drill lock refuses (the environment is busy) is recorded as a missed
schedule naming the holder. A result the store cannot take right now stays on disk
(``result.json``) and is recorded with backoff, or by the next scheduler start.

A claim that no record follows (its scheduler was killed, or lost the store, between the
claim and the run's first record) is found by the active scheduler once the claim is older
than any live claimer takes to record (``settle_unrecorded``) and recorded as a
``missed_schedule`` naming the claimer: every fire time ends up in the history.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import TypeVar

from dalp_dr.cancel import CancelToken
from dalp_dr.clock import utcnow
from dalp_dr.config import Evidence
from dalp_dr.drill.outcome import RunHead, new_record, new_run_id
from dalp_dr.drill.run import RunRequest, run_drill
from dalp_dr.errors import (
    EnvironmentBusy,
    GuardrailRefused,
    InvalidInput,
    StoreError,
)
from dalp_dr.history import HistoryStore, open_store
from dalp_dr.history.base import FireClaim, SealObserver, record_final
from dalp_dr.provenance import OperatorSource, controller_provenance
from dalp_dr.results import Outcome, RunResult, Trigger
from dalp_dr.schedule.jobs import DrillJob
from dalp_dr.spec import Scenario, Topology, discover_drills, load_drill

log = logging.getLogger("dalp_dr.scheduler")
_T = TypeVar("_T")

MAX_MISSED_RECORDS = 100
"""missed fire times recorded one by one per wakeup (the newest); a seconds-level test cron
left down for days would otherwise write thousands"""


def not_run(job: DrillJob, planned_at: datetime, outcome: Outcome, message: str,
            trigger: Trigger = Trigger.SCHEDULE) -> RunResult:
    """The record of a planned run that did not happen (or could not start)."""
    head = RunHead(drill=job.drill, topology=Topology(job.topology),
                   scenario=Scenario(job.scenario), environment=job.environment,
                   owner=job.owner, spec_hash=job.spec_hash, rto=job.rto, rpo=job.rpo)
    return new_record(head, run_id=new_run_id(planned_at), trigger=trigger,
                      operator="scheduler", started_at=planned_at, ended_at=utcnow(),
                      outcome=outcome, message=message, planned_at=planned_at,
                      provenance=controller_provenance("scheduler", OperatorSource.SCHEDULER))


@dataclass
class FireHandler:
    """Handles due fire times for the scheduler service (one call per drill and wakeup)."""

    store_url: str
    results_dir: Path
    grace: timedelta
    holder: str
    """this scheduler process (host, pid, token): recorded with every claim"""
    lock_ttl: float
    stopping: threading.Event
    observer: SealObserver | None = None
    drills_dir: Path | None = None
    """the service's drill directory: a job runs a drill file found there and nothing else,
    whatever path its row names (rows live in a shared table; the files are the truth)"""
    evidence: Evidence | None = None
    """where each run's evidence is copied (DALP_DR_EVIDENCE)"""
    _cancels: dict[str, CancelToken] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _handling: set[tuple[str, datetime]] = field(default_factory=set)
    """fires this process claimed and has not finished handling"""

    def _open_store(self) -> HistoryStore:
        return open_store(self.store_url, results_dir=self.results_dir, observer=self.observer)

    def cancel_all(self, reason: str) -> None:
        with self._lock:
            for token in self._cancels.values():
                token.request(reason)

    def handle(self, job: DrillJob, run_times: list[datetime]) -> None:
        now = utcnow()
        due = sorted(run_times)
        late = [t for t in due if now - t > self.grace]
        timely = [t for t in due if now - t <= self.grace]
        store = self._retry(f"open the history for {job.drill}", self._open_store)
        if store is None:
            return
        if len(late) > MAX_MISSED_RECORDS:
            log.error("%s: %d fire times missed; recording the newest %d one by one (the "
                      "oldest missed one was planned for %s UTC)", job.drill, len(late),
                      MAX_MISSED_RECORDS, f"{late[0]:%Y-%m-%d %H:%M:%S}")
            late = late[-MAX_MISSED_RECORDS:]
        try:
            for planned in late:
                self._missed(store, job, planned,
                             f"not run: the scheduler was not running at the planned time "
                             f"(noticed {_age(now - planned)} late, grace {_age(self.grace)})")
            if timely:
                if len(timely) > 1:
                    log.warning("%s: %d fire times due at once; one catch-up run for %s",
                                job.drill, len(timely), f"{timely[-1]:%Y-%m-%d %H:%M:%S}")
                self._run(store, job, timely[-1])
        finally:
            store.close()

    # -- one planned fire ------------------------------------------------------------------

    def _claim(self, store: HistoryStore, job: DrillJob, planned: datetime) -> bool:
        claimed = self._retry(f"claim {job.drill} at {planned:%Y-%m-%d %H:%M:%S}",
                              lambda: store.claim_fire(job.drill, planned, self.holder),
                              until=planned + self.grace)
        if claimed is None:
            log.error("%s: could not claim the fire at %s before its grace period ended; "
                      "'dalp-dr schedule status' will show the drill overdue", job.drill,
                      f"{planned:%Y-%m-%d %H:%M:%S}")
            return False
        if not claimed:
            log.info("%s at %s: already handled by another scheduler process", job.drill,
                     f"{planned:%Y-%m-%d %H:%M:%S}")
        else:
            with self._lock:
                self._handling.add((job.drill, planned))
        return claimed

    def _handled(self, job: DrillJob, planned: datetime) -> None:
        with self._lock:
            self._handling.discard((job.drill, planned))

    def settle_unrecorded(self, store: HistoryStore, scheduled: dict[str, DrillJob],
                          older_than: float) -> list[FireClaim]:
        """Record each fire claimed more than ``older_than`` seconds ago that no run record
        names (and this process is not handling) as a missed schedule naming its claimer.
        Fires of drills no longer scheduled are left alone (nothing to record them with).
        The claims recorded (StoreError: the store could not be read)."""
        settled = []
        for claim in store.unrecorded_fires(older_than):
            job = scheduled.get(claim.drill)
            with self._lock:
                ours = (claim.drill, claim.planned_at) in self._handling
            if job is None or ours:
                continue
            message = (f"not run: the fire was claimed at {claim.claimed_at:%Y-%m-%d %H:%M:%S}"
                       f" UTC by scheduler {claim.claimed_by}, which recorded no run for it "
                       f"(it stopped, or lost the store, before the run began)")
            log.error("%s: MISSED the run planned at %s UTC: %s", claim.drill,
                      f"{claim.planned_at:%Y-%m-%d %H:%M:%S}", message)
            missed = not_run(job, claim.planned_at, Outcome.MISSED_SCHEDULE, message)
            if self._record(store, missed):
                _notify(missed)
                settled.append(claim)
        return settled

    def _missed(self, store: HistoryStore, job: DrillJob, planned: datetime,
                message: str) -> None:
        if not self._claim(store, job, planned):
            return
        log.error("%s: MISSED the run planned at %s UTC: %s", job.drill,
                  f"{planned:%Y-%m-%d %H:%M:%S}", message)
        try:
            missed = not_run(job, planned, Outcome.MISSED_SCHEDULE, message)
            if self._record(store, missed):
                _notify(missed)
        finally:
            self._handled(job, planned)

    def _run(self, store: HistoryStore, job: DrillJob, planned: datetime) -> None:
        if not self._claim(store, job, planned):
            return
        try:
            self._run_claimed(store, job, planned)
        finally:
            self._handled(job, planned)

    def _run_claimed(self, store: HistoryStore, job: DrillJob, planned: datetime) -> None:
        foreign = self._foreign_file(job)
        if foreign is not None:
            log.error("%s: not run: %s", job.drill, foreign)
            self._record(store, not_run(job, planned, Outcome.PREFLIGHT_FAILED,
                                        f"not run: {foreign}"))
            return
        try:
            loaded = load_drill(job.path)
        except InvalidInput as exc:
            log.error("%s: the drill file no longer loads, not run: %s", job.drill, exc)
            self._record(store, not_run(job, planned, Outcome.PREFLIGHT_FAILED,
                                        f"not run: drill definition invalid: {exc}"))
            return
        def progress(message: str) -> None:
            log.info("%s: %s", job.drill, message)

        def warn(message: str) -> None:
            log.warning("%s: %s", job.drill, message)

        token = CancelToken()
        with self._lock:
            self._cancels[job.drill] = token
        request = RunRequest(drill=loaded, results_dir=self.results_dir,
                             open_store=self._open_store, lock_ttl=self.lock_ttl,
                             trigger=Trigger.SCHEDULE, operator="scheduler",
                             evidence=self.evidence,
                             planned_at=planned, cancel=token, progress=progress, warn=warn)
        try:
            log.info("%s: scheduled run for %s UTC starting", job.drill,
                     f"{planned:%Y-%m-%d %H:%M:%S}")
            report = run_drill(request)
        except GuardrailRefused as exc:  # recorded by the engine as 'refused'
            log.error("%s: REFUSED by a guardrail: %s", job.drill, exc)
        except EnvironmentBusy as exc:
            log.error("%s: not run: %s", job.drill, exc)
            busy = not_run(job, planned, Outcome.MISSED_SCHEDULE, f"not run: {exc}")
            if self._record(store, busy):
                _notify(busy)
        except InvalidInput as exc:  # prepare: nothing was written
            log.error("%s: not run, target unreachable: %s", job.drill, exc)
            self._record(store, not_run(job, planned, Outcome.PREFLIGHT_FAILED,
                                        f"not run: {exc}"))
        except StoreError as exc:  # the run's own connection to the store: nothing ran
            log.error("%s: not run, the history store is unavailable: %s", job.drill, exc)
            self._record(store, not_run(job, planned, Outcome.MISSED_SCHEDULE,
                                        f"not run: the history store was unavailable: {exc}"))
        else:
            result = report.result
            if report.recorded:
                log.info("%s: %s (run %s)", job.drill, result.outcome.value.upper(),
                         result.run_id)
            else:
                log.error("%s: %s", job.drill, report.problem)
                if self._record(store, result) is not None:
                    log.info("%s: run %s recorded now", job.drill, result.run_id)
                    _notify(result)
        finally:
            with self._lock:
                self._cancels.pop(job.drill, None)

    def _foreign_file(self, job: DrillJob) -> str | None:
        """Why the job's file is not one of the drill directory's files (None if it is)."""
        if self.drills_dir is None:
            return None
        try:
            if Path(job.path).resolve() in {p.resolve()
                                            for p in discover_drills(self.drills_dir)}:
                return None
        except (OSError, ValueError):  # an unreadable directory, a NUL in the path
            pass
        return f"the job names {job.path!r}, not a drill file in {self.drills_dir}"

    # -- the store may be away for a while -------------------------------------------------

    def _record(self, store: HistoryStore, result: RunResult) -> bool | None:
        def write() -> bool:
            stored = _stored_outcome(store, result.run_id)
            if stored is None:
                record_final(store, result)
            elif stored is Outcome.RUNNING:
                store.finish(result)
            # else: already final (crash recovery recorded its kept result first)
            return True

        return self._retry(f"record {result.run_id}", write)

    def _retry(self, what: str, op: Callable[[], _T], until: datetime | None = None
               ) -> _T | None:
        """Run ``op`` until it works, backing off from 1 s to 60 s, while the service runs
        (and until ``until``). None when it gave up."""
        delay = 1.0
        while True:
            try:
                return op()
            except StoreError as exc:
                log.error("cannot %s (retrying in %.0fs): %s", what, delay, exc)
            if until is not None and utcnow() + timedelta(seconds=delay) > until:
                return None
            if self.stopping.wait(delay):
                return None
            delay = min(delay * 2, 60.0)


def _notify(result: RunResult) -> None:
    """Webhooks after the record is stored (dalp_dr.notify); failures are logged only."""
    from dalp_dr.notify import notify

    notify(result, report=lambda message: log.warning("%s", message))


def _stored_outcome(store: HistoryStore, run_id: str) -> Outcome | None:
    """The run's outcome in the store, None if it is not there."""
    from dalp_dr.errors import UnknownRun

    try:
        return store.get(run_id).outcome
    except UnknownRun:
        return None


def _age(delta: timedelta) -> str:
    from dalp_dr.durations import format_duration

    return format_duration(delta.total_seconds())
