"""``dalp-dr scheduler run``: the long-running service that runs drills on their cadence.

Any number of service processes may share one history store; exactly one is *active*. The
active one holds the ``scheduler`` lease (see :mod:`dalp_dr.locks`) and renews it every
third of its time to live; the others poll it every ``poll`` seconds. When the active one
dies (SIGKILL, lost host) its lease expires and a standby takes over within
``lease_ttl + poll`` seconds. The jobs live in the store (JSON rows, see
:mod:`dalp_dr.schedule.store`), so the new leader finds every next run time where the old
one left it, runs what is due (within the grace period) and records what is not as
missed. Fire times are claimed once in the store, so nothing runs twice (see
:mod:`dalp_dr.schedule.runner`).

The active service re-reads the drill directory every ``sync_interval`` seconds (and on
SIGHUP), so an edited or added definition is picked up without a restart.

A run whose orchestrator died (it is recorded running, but its environment's lock expired)
is noticed on the first loop tick after its lock expired, said once, and recovered in the
background, one recovery at a time (see :mod:`dalp_dr.schedule.watch`; crash recovery:
:mod:`dalp_dr.recovery`). Those that could not be recovered yet (a busy environment, a drill
that no longer loads) are tried again every ``sync_interval``.
"""

from __future__ import annotations

import concurrent.futures
import logging
import os
import secrets
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from apscheduler.executors.base import BaseExecutor

from dalp_dr.clock import utcnow
from dalp_dr.config import Evidence
from dalp_dr.errors import DalpDrError, InvalidInput, SpecError, StoreError
from dalp_dr.history import HistoryStore, open_store
from dalp_dr.history.base import SealObserver
from dalp_dr.locks import RunningRun
from dalp_dr.schedule import jobs
from dalp_dr.schedule.runner import FireHandler
from dalp_dr.schedule.watch import InterruptWatch

log = logging.getLogger("dalp_dr.scheduler")

LEADER_LEASE = "scheduler"
DEFAULT_LEASE_TTL = 6.0
DEFAULT_POLL = 1.0
DEFAULT_GRACE = timedelta(hours=1)
DEFAULT_SYNC_INTERVAL = 30.0


class DrillExecutor(BaseExecutor):  # type: ignore[misc]
    """An APScheduler executor that hands the drill job and *every* due fire time to the
    fire handler (APScheduler's own executors only pass them to a misfire check)."""

    def __init__(self, handle: Any, max_workers: int = 4) -> None:
        super().__init__()
        self._handle = handle
        self._pool = concurrent.futures.ThreadPoolExecutor(max_workers,
                                                           thread_name_prefix="drill")
        self._stop_lock = threading.Lock()
        self._stopping = False

    def _do_submit_job(self, job: Any, run_times: list[datetime]) -> None:
        spec = jobs.DrillJob.model_validate(job.kwargs)

        def done(future: concurrent.futures.Future[None]) -> None:
            exc = future.exception()
            if exc is not None:
                log.error("%s: the scheduler's handler failed: %s", spec.drill, exc,
                          exc_info=exc)
                self._run_job_error(job.id, exc, exc.__traceback__)
            else:
                self._run_job_success(job.id, [])

        with self._stop_lock:
            if self._stopping:  # unclaimed: the next start catches it up or records it missed
                log.info("%s: stopping; the fire at %s is left for the next start", spec.drill,
                         ", ".join(f"{t:%Y-%m-%d %H:%M:%S %Z}" for t in run_times))
                return
            self._pool.submit(self._handle, spec, list(run_times)).add_done_callback(done)

    def shutdown(self, wait: bool = True) -> None:
        with self._stop_lock:
            self._stopping = True
        self._pool.shutdown(wait=wait)


@dataclass(frozen=True)
class ServiceOptions:
    drills_dir: Path
    store_url: str
    results_dir: Path
    grace: timedelta = DEFAULT_GRACE
    lease_ttl: float = DEFAULT_LEASE_TTL
    poll: float = DEFAULT_POLL
    sync_interval: float = DEFAULT_SYNC_INTERVAL
    lock_ttl: float = 60.0
    skip_invalid: bool = False
    max_parallel: int = 4
    observer: SealObserver | None = None
    """signs a checkpoint for every seal (dalp_dr.history.checkpointer)"""
    evidence: Evidence | None = None
    """where each run's evidence is copied (DALP_DR_EVIDENCE)"""


class SchedulerService:
    """``watch``: when to look for interrupted runs (default: every third of the lock TTL
    and at each watched lock's expiry, on the monotonic clock); ``recover``: the crash
    recovery of every interrupted run, given a store of its own (default: ``recover_all``
    with Ansible)."""

    def __init__(self, options: ServiceOptions, *, watch: InterruptWatch | None = None,
                 recover: Callable[[HistoryStore], object] | None = None) -> None:
        self.options = options
        self.watch = watch or InterruptWatch(every=options.lock_ttl / 3)
        self._recover = recover or self._recover_all
        self._recover_pending = False
        self._look_failed = False
        self.holder = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"
        self.info = f"dalp-dr scheduler on {socket.gethostname()} pid {os.getpid()}"
        self.stopping = threading.Event()
        self.resync = threading.Event()
        self.active = False
        self._scheduler: Any = None
        self._jobstore: Any = None
        self._synced_files: tuple[tuple[str, int, int], ...] | None = None
        self._recovering: threading.Thread | None = None
        self._handler = FireHandler(store_url=options.store_url,
                                    results_dir=options.results_dir, grace=options.grace,
                                    holder=self.holder, lock_ttl=options.lock_ttl,
                                    stopping=self.stopping, observer=options.observer,
                                    drills_dir=options.drills_dir,
                                    evidence=options.evidence)

    def _open_store(self) -> HistoryStore:
        return open_store(self.options.store_url, results_dir=self.options.results_dir,
                          observer=self.options.observer)

    # -- start-up checks: fail before anything runs ------------------------------------------

    def check(self) -> tuple[HistoryStore, jobs.Definitions]:
        """Open the store (StoreError: exit 1) and load the definitions (SpecError for the
        first broken one unless skip_invalid: exit 2)."""
        definitions = jobs.load_definitions(self.options.drills_dir)
        if definitions.invalid and not self.options.skip_invalid:
            first = next(iter(definitions.invalid.values()))
            raise SpecError(first.detail, source=first.source, field=first.field,
                            hint="fix the definition, or start with --skip-invalid to run "
                                 "the others and report this one in 'schedule status'")
        for path, exc in definitions.invalid.items():
            log.error("SKIPPED broken drill definition %s: %s", path, exc)
        store = self._open_store()
        return store, definitions

    # -- the service loop ------------------------------------------------------------------

    def run(self, store: HistoryStore, definitions: jobs.Definitions) -> None:
        from apscheduler.schedulers.background import BackgroundScheduler

        self._scheduler = BackgroundScheduler(
            timezone=UTC, executors={jobs.EXECUTOR: DrillExecutor(
                self._handler.handle, self.options.max_parallel)},
            job_defaults={"misfire_grace_time": None, "coalesce": False, "max_instances": 1})
        self._jobstore = jobs.open_jobstore(self.options.store_url, self._scheduler)
        self._scheduler.add_jobstore(self._jobstore, "default")
        log.info("scheduler %s: %d drills in %s, store %s; standing by for the leader lease",
                 self.holder, len(definitions.valid), self.options.drills_dir,
                 store.describe())
        last_renewed = time.monotonic()
        next_sync = 0.0
        seen_leader: str | None = None
        try:
            while not self.stopping.is_set():
                try:
                    lease = store.acquire_lease(LEADER_LEASE, self.holder, self.info,
                                                self.options.lease_ttl)
                except StoreError as exc:
                    log.error("cannot reach the store for the leader lease: %s", exc)
                    if self.active and time.monotonic() - last_renewed > self.options.lease_ttl:
                        self._stand_down("the leader lease could not be renewed in time")
                    self.stopping.wait(self.options.poll)
                    continue
                if lease.holder == self.holder:
                    last_renewed = time.monotonic()
                    if not self.active:
                        self._take_over(store, seen_leader)
                        next_sync = time.monotonic() + self.options.sync_interval
                    elif self.resync.is_set() or time.monotonic() >= next_sync:
                        self._sync(force=self.resync.is_set())
                        self.resync.clear()
                        if self.watch.interrupted:  # not recovered yet: try again
                            self._recover_interrupted()
                        self._settle_unrecorded(store)
                        next_sync = time.monotonic() + self.options.sync_interval
                    self.watch_interrupted(store)
                else:
                    if self.active:
                        self._stand_down(f"{lease.info} holds the leader lease")
                    if lease.info != seen_leader:
                        log.info("standby: %s is active (since %s UTC)", lease.info,
                                 f"{lease.acquired_at:%H:%M:%S}")
                        seen_leader = lease.info
                self.stopping.wait(self.options.lease_ttl / 3 if self.active
                                   else self.options.poll)
        finally:
            self._shutdown(store)

    def _take_over(self, store: HistoryStore, previous: str | None) -> None:
        log.info("ACTIVE: this scheduler holds the leader lease%s",
                 f" (took over from {previous})" if previous else "")
        self._sync(force=True)
        self.watch.reset()
        self.watch_interrupted(store)
        self._settle_unrecorded(store)
        if self._scheduler.state == 0:  # STATE_STOPPED: first time active
            self._scheduler.start()
        else:
            self._scheduler.resume()
        self.active = True

    def watch_interrupted(self, store: HistoryStore, now: datetime | None = None
                          ) -> list[RunningRun]:
        """Every loop tick while active: start a recovery left pending; when a look is due,
        look for runs whose orchestrator died, say each once and recover them. The runs
        newly found interrupted. ``now``: as ``InterruptWatch.look``."""
        if self._recover_pending:
            self._recover_interrupted()
        if not self.watch.due():
            return []
        try:
            found = self.watch.look(store, now)
        except DalpDrError as exc:  # the store, or a running row it holds, unreadable
            if not self._look_failed:  # tried again every tick, said once
                log.error("cannot look for interrupted runs (tried again every tick): %s",
                          exc)
            self._look_failed = True
            return []
        self._look_failed = False
        if found:
            busy = self.recovery_running()
            for each in found:
                log.warning("INTERRUPTED: run %s (%s, environment %s) is recorded running but "
                            "%s: crash recovery %s", each.run.run_id, each.run.drill,
                            each.run.environment, _why(each, now),
                            "follows the one in progress" if busy else "starts")
            self._recover_interrupted()
        return found

    def _settle_unrecorded(self, store: HistoryStore) -> None:
        """Fires whose claimer recorded nothing (``FireHandler.settle_unrecorded``): a live
        claimer records its run's start well within a drill lock's TTL, and the previous
        leader lost its lease at least a lease TTL ago."""
        try:
            scheduled = {name: stored.job
                         for name, stored in jobs.stored_jobs(self._jobstore).items()}
            self._handler.settle_unrecorded(
                store, scheduled, older_than=self.options.lease_ttl + self.options.lock_ttl)
        except StoreError as exc:
            log.error("cannot look for claimed fires nobody recorded (tried again at the "
                      "next sync): %s", exc)

    def recovery_running(self) -> bool:
        return self._recovering is not None and self._recovering.is_alive()

    def _recover_interrupted(self) -> None:
        """Crash recovery of runs whose orchestrator died, in the background (a steady state
        takes longer than a lease renewal may wait); never two at once: asked while one
        runs, the next starts on the first tick after it ended."""
        if self.recovery_running():
            self._recover_pending = True
            return
        self._recover_pending = False

        def work() -> None:
            try:
                store = self._open_store()
            except StoreError as exc:
                log.error("crash recovery: cannot open the store: %s", exc)
                return
            try:
                self._recover(store)
            except StoreError as exc:
                log.error("crash recovery: %s", exc)
            finally:
                store.close()

        self._recovering = threading.Thread(target=work, daemon=True, name="recovery")
        self._recovering.start()

    def _recover_all(self, store: HistoryStore) -> None:
        from dalp_dr.adapters.ansible import AnsibleRunner
        from dalp_dr.recovery import recover_all

        recover_all(store, AnsibleRunner(), progress=lambda m: log.info("%s", m),
                    lock_ttl=self.options.lock_ttl)

    def _stand_down(self, why: str) -> None:
        log.error("STANDBY: %s; no new drills start here (running ones finish)", why)
        self._scheduler.pause()
        self.active = False

    def _files(self) -> tuple[tuple[str, int, int], ...]:
        """The drill files as (name, mtime, size): cheap to compare between syncs."""
        found = []
        for path in sorted(self.options.drills_dir.glob("*.y*ml")):
            try:
                stat = path.stat()
            except OSError:
                continue
            found.append((path.name, stat.st_mtime_ns, stat.st_size))
        return tuple(found)

    def _sync(self, force: bool = False) -> None:
        files = self._files()
        if not force and files == self._synced_files:  # nothing changed on disk
            if self._scheduler.state != 0:
                self._scheduler.wakeup()  # 'dalp-dr schedule sync' may have changed the store
            return
        try:
            definitions = jobs.load_definitions(self.options.drills_dir)
        except InvalidInput as exc:
            log.error("cannot read the drill directory: %s", exc)
            return
        for path, problem in definitions.invalid.items():
            log.error("BROKEN drill definition %s (its job is kept; a fire records the "
                      "failure): %s", path, problem)
        try:
            report = jobs.sync(self._jobstore, definitions,
                               broken_names=jobs.broken_drill_names(definitions))
        except StoreError as exc:
            log.error("cannot sync the job store: %s", exc)
            return
        self._synced_files = files
        for verb, names in (("added", report.added), ("changed", report.changed),
                            ("removed", report.removed)):
            for name in names:
                log.info("schedule %s: %s", verb, name)
        if self._scheduler.state != 0:
            self._scheduler.wakeup()  # a sync by 'dalp-dr schedule sync' counts too

    def _shutdown(self, store: HistoryStore) -> None:
        self._handler.cancel_all("scheduler stopping")
        if self._scheduler is not None and self._scheduler.state != 0:
            log.info("stopping: interrupting running drills (their steady state is restored)")
            self._scheduler.shutdown(wait=True)
        try:
            store.release_lease(LEADER_LEASE, self.holder)
        except StoreError as exc:
            log.error("cannot release the leader lease (it expires by itself): %s", exc)
        store.close()
        log.info("scheduler stopped")


def _why(found: RunningRun, now: datetime | None) -> str:
    lease = found.lease
    if lease is None:
        return "nobody holds its environment's drill lock"
    if lease.holder == found.run.run_id or lease.expires_at <= (now or utcnow()):
        return f"its environment's drill lock expired at {lease.expires_at:%H:%M:%S} UTC"
    return f"{lease.info} holds its environment's drill lock"
