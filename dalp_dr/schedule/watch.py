"""When the active scheduler looks for interrupted runs, and which it has already said.

A *look* is ``dalp_dr.locks.running_runs``: one query for the runs recorded running, then one
lease read per environment they run in. The scheduler's loop asks ``due()`` on every tick
(every third of the leader lease, 2 s by default), which reads a clock and nothing else; a
look is due

* at once after ``reset`` (taking over the leadership),
* when the environment lock of a running run seen alive (or being recovered) expires: the
  moment it becomes interrupted if its holder died, so it is noticed on the next tick,
* and at least every ``every`` seconds (the environment lock's renewal period: a run begun
  since the last look holds its lock longer than that, so the next look sees it alive and
  watches its lock from then on).

A run is said once, when a look first finds it interrupted; again only if it stopped being
interrupted (a recovery took its lock) and became so again (that recovery died too).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime

from dalp_dr.clock import utcnow
from dalp_dr.history.base import HistoryStore
from dalp_dr.locks import RunningRun, RunState, running_runs

LOOK_MARGIN = 0.05
"""seconds after a lock's expiry that its look is due (the lease compares 'expires < now')"""


class InterruptWatch:
    """``clock``: seconds, monotonic (injectable, so tests drive time)."""

    def __init__(self, every: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.every = every
        self._clock = clock
        self._next: float | None = None
        self._said: set[str] = set()

    @property
    def interrupted(self) -> frozenset[str]:
        """The runs the latest look found interrupted."""
        return frozenset(self._said)

    @property
    def next_look_in(self) -> float:
        """Seconds until a look is due (0: now)."""
        return 0.0 if self._next is None else max(0.0, self._next - self._clock())

    def reset(self) -> None:
        """Look at once and say every interrupted run again (a scheduler taking over)."""
        self._next = None
        self._said = set()

    def due(self) -> bool:
        return self._next is None or self._clock() >= self._next

    def look(self, store: HistoryStore, now: datetime | None = None) -> list[RunningRun]:
        """Look (StoreError: the look is still due); the runs found interrupted that were
        not the look before. ``now``: the instant leases are held against (the store's
        clock; default this machine's)."""
        started = self._clock()
        moment = now or utcnow()
        runs = running_runs(store, moment)
        interrupted = [r for r in runs if r.state is RunState.INTERRUPTED]
        new = [r for r in interrupted if r.run.run_id not in self._said]
        self._said = {r.run.run_id for r in interrupted}
        wait = self.every
        for watched in runs:
            if watched.state is not RunState.INTERRUPTED and watched.lease is not None:
                left = (watched.lease.expires_at - moment).total_seconds() + LOOK_MARGIN
                wait = min(wait, max(0.0, left))
        self._next = started + wait
        return new
