"""The one clock: ``utcnow()`` for code that reads the time, ``Clock`` where it is injected
(the drill engine takes one, so fast tests can drive time).

A drill measures on a ``RunClock``: the wall clock is read once, when the run starts, and
every later instant is that reading plus the controller's monotonic clock's progress. So
every interval the drill reports (recovery time, write outage, data-loss window) is a
difference of monotonic readings: an NTP step of the controller's wall clock during the
outage moves none of them. Wall time is only for display (and it is the run's start that is
shown as the machine said it)."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Protocol


def utcnow() -> datetime:
    """Now, timezone-aware, in UTC."""
    return datetime.now(UTC)


class Clock(Protocol):
    def now(self) -> datetime:
        """Now, timezone-aware, in UTC."""
        ...


class SystemClock:
    """The machine's clock."""

    def now(self) -> datetime:
        return utcnow()


SYSTEM_CLOCK: Clock = SystemClock()


class RunClock:
    """One run's timeline: the wall clock at its start plus monotonic time since."""

    def __init__(self) -> None:
        self._wall = utcnow()
        self._mono = time.monotonic()

    def now(self) -> datetime:
        return self._wall + timedelta(seconds=time.monotonic() - self._mono)

    def wall_ahead(self) -> float:
        """Seconds the machine's wall clock is ahead of this timeline now (0 until something
        steps it): what turns a wall-clock reading taken now into the timeline."""
        return (utcnow() - self.now()).total_seconds()


def wall_ahead(clock: Clock) -> float:
    """``RunClock.wall_ahead`` for any clock (0 for one that is the wall clock itself, or a
    test's)."""
    return clock.wall_ahead() if isinstance(clock, RunClock) else 0.0
