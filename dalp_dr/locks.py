"""Leases held in the history store: one drill per environment, one active scheduler.

A lease is a row with a holder token and an expiry (see ``HistoryStore.acquire_lease``).
The holder renews it from a background thread every third of its time to live; a holder
that dies (SIGKILL, lost host) stops renewing, and the lease can be taken over once it
expired. So a lock whose holder died is recovered after at most ``ttl`` seconds, and a
live holder never loses it unless it cannot reach the store for ``ttl`` seconds.

A run recorded ``running`` is alive while its environment's lock is held, unexpired, by
the run itself (``running_runs``); held by a crash recovery of it, it is being recovered;
otherwise its orchestrator is gone and the run is *interrupted* (``dalp_dr.recovery``).
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from dalp_dr.cancel import CancelToken
from dalp_dr.clock import utcnow
from dalp_dr.durations import format_duration
from dalp_dr.errors import EnvironmentBusy, Interrupted, StoreError
from dalp_dr.history.base import HistoryStore, Lease, RunSummary
from dalp_dr.results import Outcome

DEFAULT_LOCK_TTL = 60.0
"""seconds an environment lock outlives its holder's last renewal"""
RENEW_RETRY = 1.0
"""seconds between renewal attempts after one failed (the store away): a holder cut off
from the store for longer than its lease renews within this of the store coming back, so
another process takes its lease for expired only in that second"""
LOCK_POLL = 0.5
"""seconds between attempts to take a busy environment's lock while waiting for it"""


def environment_lock_name(environment: str) -> str:
    return f"environment:{environment}"


def process_label() -> str:
    """``host pid N``: where a lease holder runs, for the humans reading a refusal."""
    return f"{socket.gethostname()} pid {os.getpid()}"


def _clock(at: datetime) -> str:
    return f"{at:%Y-%m-%d %H:%M:%S} UTC"


class LeaseKeeper:
    """Holds one lease and renews it in a daemon thread until ``release``.

    ``on_problem`` hears about renewals that failed (store unreachable) or found the lease
    taken over; the keeper keeps trying, because the work it protects (a drill with a fault
    injected) must run to its end either way.
    """

    def __init__(self, store: HistoryStore, name: str, holder: str, info: str, ttl: float,
                 on_problem: Callable[[str], None] | None = None) -> None:
        self._store, self.name, self.holder, self.info, self.ttl = store, name, holder, info, ttl
        self._on_problem = on_problem or (lambda _msg: None)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.lost = False
        self.waited = 0.0
        """seconds ``lock_environment`` waited for the lease to be free (0: it was free)"""

    def try_acquire(self, replacing: str | None = None) -> Lease:
        """Take the lease if it is free (or held by ``replacing``, a holder known to be
        dead); the lease as it stands either way."""
        lease = self._store.acquire_lease(self.name, self.holder, self.info, self.ttl,
                                          replacing=replacing)
        if lease.holder == self.holder and self._thread is None:
            self._thread = threading.Thread(target=self._renew, daemon=True,
                                            name=f"lease {self.name}")
            self._thread.start()
        return lease

    def _renew(self) -> None:
        failed = 0  # renewals failed in a row: the first is said, then the one that works
        while not self._stop.wait(min(RENEW_RETRY, self.ttl / 3) if failed else self.ttl / 3):
            try:
                if not self._store.renew_lease(self.name, self.holder, self.ttl):
                    self.lost = True
                    self._on_problem(f"lease {self.name} was taken over by another holder "
                                     "(this process could not renew it in time)")
                    return
            except StoreError as exc:
                if not failed:
                    self._on_problem(f"cannot renew lease {self.name} (trying again every "
                                     f"{min(RENEW_RETRY, self.ttl / 3):g}s; it expires "
                                     f"{self.ttl:g}s after the last renewal): {exc}")
                failed += 1
                continue
            if failed:
                self._on_problem(f"lease {self.name} renewed again after {failed} failed "
                                 "renewal(s)")
                failed = 0

    def stop_renewing(self) -> bool:
        """Stop the renewals (the lease stays as it is); whether they were running."""
        self._stop.set()
        if self._thread is None:
            return False
        self._thread.join(timeout=10)
        self._thread = None
        return True

    def release(self) -> None:
        if self.stop_renewing() and not self.lost:
            try:
                self._store.release_lease(self.name, self.holder)
            except StoreError as exc:  # it expires by itself within ttl
                self._on_problem(f"cannot release lease {self.name} (it expires within "
                                 f"{format_duration(self.ttl)}): {exc}")


def lock_environment(store: HistoryStore, environment: str, holder: str, info: str,
                     ttl: float = DEFAULT_LOCK_TTL,
                     on_problem: Callable[[str], None] | None = None,
                     replacing: str | None = None, *, wait: float = 0.0,
                     cancel: CancelToken | None = None,
                     waiting: Callable[[str], None] | None = None,
                     monotonic: Callable[[], float] = time.monotonic,
                     poll: float = LOCK_POLL) -> LeaseKeeper:
    """Take the environment's drill lock or raise EnvironmentBusy naming who holds it and
    since when. ``replacing``: a holder the caller knows is dead (its lease is taken over
    before it expires).

    ``wait``: seconds to keep trying while another holder has it (a deadline on
    ``monotonic``, tried every ``poll`` seconds; 0: refuse at once). ``waiting`` hears once
    that the lock is busy and who holds it; a ``cancel`` requested meanwhile ends the wait
    at once (Interrupted). Nothing is written while waiting: an attempt on a lease another
    holds changes no row."""
    keeper = LeaseKeeper(store, environment_lock_name(environment), holder, info, ttl,
                         on_problem)
    began = monotonic()
    deadline = began + max(wait, 0.0)
    told = False
    while True:
        lease = keeper.try_acquire(replacing)
        if lease.holder == holder:
            keeper.waited = monotonic() - began if told else 0.0
            return keeper
        left = deadline - monotonic()
        if left <= 0:
            raise EnvironmentBusy(
                f"environment '{environment}' is busy: {lease.info} holds its drill lock since "
                f"{_clock(lease.acquired_at)} (lease until {_clock(lease.expires_at)})"
                + (f"; waited {format_duration(wait)} for it" if wait > 0 else "")
                + ". Wait for that drill to finish; if its holder died, the lock is free once "
                "the lease expires", holder=lease)
        if not told and waiting is not None:
            waiting(f"waiting for environment '{environment}' (up to "
                    f"{format_duration(left)}): held by {lease.info} since "
                    f"{_clock(lease.acquired_at)}")
        told = True
        if cancel is not None and cancel.wait(min(poll, left)):
            raise Interrupted(f"interrupted ({cancel.reason}) while waiting for environment "
                              f"'{environment}': nothing was started or recorded")
        if cancel is None:
            time.sleep(min(poll, left))


def handed_over(keeper: LeaseKeeper, holder: str, info: str) -> LeaseKeeper:
    """``keeper``'s lease taken over, in one step, by ``holder`` (a run that got a new id
    after waiting for the lock); the old keeper stops renewing. EnvironmentBusy if the lease
    was no longer ``keeper``'s."""
    new = LeaseKeeper(keeper._store, keeper.name, holder, info, keeper.ttl, keeper._on_problem)
    keeper.stop_renewing()  # not released: nobody else may take it in between
    try:
        lease = new.try_acquire(replacing=keeper.holder)
    except StoreError:
        # the hand-over did not happen: the old holder's lease is let go now (not left to
        # expire: the environment would stay locked for its time to live)
        with contextlib.suppress(StoreError):
            keeper._store.release_lease(keeper.name, keeper.holder)
        raise
    if lease.holder != holder:
        raise EnvironmentBusy(f"lease {keeper.name} was taken by {lease.info} before this "
                              "run started", holder=lease)
    new.waited = keeper.waited
    return new


def recovery_holder(run_id: str) -> str:
    """The environment lock's holder while a crash recovery of run ``run_id`` runs."""
    return f"recover-{run_id}"


class RunState(StrEnum):
    ALIVE = "alive"
    """its orchestrator holds the environment's lock (renewed, unexpired)"""
    RECOVERING = "recovering"
    """a crash recovery of it holds the lock (if that recovery dies, the lock expires)"""
    INTERRUPTED = "interrupted"
    """nobody holds the lock for it: expired, released, or taken by another run"""


@dataclass(frozen=True)
class RunningRun:
    run: RunSummary
    lease: Lease | None
    """its environment's drill lock as it stands (whoever holds it, expired or not)"""
    state: RunState


def running_runs(store: HistoryStore, now: datetime | None = None,
                 limit: int = 1000) -> list[RunningRun]:
    """Every run recorded as running, newest first, with its environment's lock and what
    that says: one query, then one lease read per environment. A run whose environment's
    lock another run holds is interrupted: only the run itself, or its recovery, keeps it
    from being one."""
    moment = now or utcnow()
    leases: dict[str, Lease | None] = {}
    found = []
    for row in store.list_runs(outcome=Outcome.RUNNING, limit=limit):
        if row.environment not in leases:
            leases[row.environment] = store.get_lease(environment_lock_name(row.environment))
        lease = leases[row.environment]
        holder = lease.holder if lease is not None and lease.expires_at > moment else None
        state = RunState.ALIVE if holder == row.run_id else \
            RunState.RECOVERING if holder == recovery_holder(row.run_id) else \
            RunState.INTERRUPTED
        found.append(RunningRun(run=row, lease=lease, state=state))
    return found
