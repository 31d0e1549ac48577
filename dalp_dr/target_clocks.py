"""The targets' clocks against the run's timeline, and the fault instant a target reports.

A target stamps the fault with its own clock (``date +%s.%N`` in the inject playbook); the
controller measures everything else on its run's timeline (``clock.RunClock``). On a lab they
share one clock; on a real estate they do not, and a target clock 0.9 s ahead would make a
1.2 s recovery read 0.3 s. So the engine estimates every target's offset at preflight and
again after verify, the NTP way, and maps the reported instant through it:

* ``playbooks/clock.yml`` reads each host's clock (``date +%s.%N``, a raw task: no Python
  start on the target) a few times. ansible-runner reports each task's start and end on the
  controller (the callback's wall clock, turned into the timeline with the wall clock's step
  since the run began, measured as the event arrives). offset = reading - midpoint,
  uncertainty = half the task; the read with the smallest uncertainty is kept.
* The reported instant - the reporting host's offset is the fault instant, kept within the
  inject playbook's own window on the timeline (the controller's bound: a fault cannot have
  happened before the playbook started or after it ended).
* When the uncertainty (or the drift between the two estimates) exceeds the heartbeat
  interval, the earliest instant it allows is taken - a recovery never looks faster than the
  controller can vouch for - and the result says so next to the figures.

What the targets print is data: a reading that is not a number is no reading.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from dalp_dr.results import ClockOffset

READ_TASK = "Clock: read"
"""the name every read task of playbooks/clock.yml starts with"""
PLAYBOOK = "clock.yml"
TIMEOUT = 60.0
PREFLIGHT, AFTER_VERIFY = "preflight", "after verify"
CONTROLLER = "controller"
"""the ``dalp_fault_host`` of an instant stamped on the controller itself (a play with
``connection: local``): its wall clock, turned into the run's timeline"""


@dataclass
class Reads:
    """Collects the clock playbook's reads from its events as they arrive."""

    wall_ahead: Callable[[], float]
    """seconds the wall clock is ahead of the run's timeline, now"""
    found: dict[str, list[tuple[float, float]]] = field(default_factory=dict)
    """host -> (offset, uncertainty) of each read"""

    def event(self, event: Mapping[str, Any]) -> None:
        if event.get("event") != "runner_on_ok":
            return
        data = event.get("event_data") or {}
        if not str(data.get("task") or "").startswith(READ_TASK):
            return
        read = _read(data, self.wall_ahead())
        if read is not None:
            self.found.setdefault(str(data.get("host") or "?"), []).append(read)

    def offsets(self, when: str) -> list[ClockOffset]:
        out = []
        for host, reads in sorted(self.found.items()):
            offset, uncertainty = min(reads, key=lambda r: r[1])
            out.append(ClockOffset(host=host, when=when, offset=round(offset, 6),
                                   uncertainty=round(uncertainty, 6)))
        return out


def _read(data: Mapping[str, Any], wall_ahead: float) -> tuple[float, float] | None:
    """(offset, uncertainty) of one read: the target's reading against the task's midpoint
    on the timeline; None when the event does not hold one."""
    try:
        start = datetime.fromisoformat(str(data["start"])).timestamp()
        end = datetime.fromisoformat(str(data["end"])).timestamp()
        reading = float(str((data.get("res") or {}).get("stdout", "")).strip())
    except (KeyError, TypeError, ValueError, OverflowError):
        return None
    if not (math.isfinite(reading) and end >= start):
        return None
    middle = (start + end) / 2 - wall_ahead
    return reading - middle, (end - start) / 2


def playbook(project: Path) -> Path | None:
    """The clock playbook: the project's, else the one shipped beside this package."""
    for root in (project, Path(__file__).resolve().parent.parent):
        candidate = root / "playbooks" / PLAYBOOK
        if candidate.is_file():
            return candidate
    return None


@dataclass(frozen=True)
class Mapped:
    at: datetime
    source: str
    note: str | None = None
    offset: float = 0.0
    """the reporting host's offset the instant was mapped through"""
    fits: bool = True
    """False: the mapped instant lay outside the playbook's run (``at`` is its start)"""


def _combined(host: str, offsets: Iterable[ClockOffset]) -> tuple[float, float] | None:
    """The host's offset and its uncertainty: the first estimate (the one the run mapped its
    fault instant with as it happened), widened to how far the estimates disagree when they
    disagree by more than their uncertainties (a clock that moved during the run)."""
    mine = [o for o in offsets if o.host == host]
    if not mine:
        return None
    first = mine[0]
    spread = max(o.offset for o in mine) - min(o.offset for o in mine)
    uncertainty = first.uncertainty
    if spread > sum(sorted(o.uncertainty for o in mine)[-2:]):
        uncertainty = max(uncertainty, spread)
    return first.offset, uncertainty


def map_instant(reported: Any, host: Any, offsets: list[ClockOffset], *, earliest: datetime,
                latest: datetime, interval: float) -> Mapped | None:
    """The fault instant on the timeline from what inject reported (epoch seconds on
    ``host``'s clock); None when the report is not a number, or no offset of the host is
    known (the caller then judges it as before: within the playbook's window or not)."""
    if not isinstance(host, str):
        return None
    known = _combined(host, offsets)
    if known is None or isinstance(reported, bool):
        return None
    try:
        seconds = float(reported)
        raw = datetime.fromtimestamp(seconds, UTC)
    except (TypeError, ValueError, OverflowError, OSError):
        return None
    offset, uncertainty = known
    if abs(offset) <= uncertainty:
        # no offset it can tell from none (a host on the controller's own clock, read
        # through a task that takes milliseconds): the instant stands as reported
        offset = 0.0
    at = raw - timedelta(seconds=offset)
    window = timedelta(seconds=uncertainty)
    source = (f"reported by {host}, its clock {known[0]:+.3f} s +/- {uncertainty:.3f} s from "
              "the controller's" + ("" if offset else " (no offset it can tell)")
              if host != CONTROLLER else
              f"reported on the controller by the inject playbook (its wall clock "
              f"{offset:+.3f} s from the run's timeline)")
    if not (earliest - window - timedelta(seconds=0.005) <= at
            <= latest + window + timedelta(seconds=0.005)):
        return Mapped(earliest, "controller: inject playbook start (conservative): the "
                      f"instant {host} reported, mapped through its clock offset "
                      f"{offset:+.3f} s, lies outside the playbook's run",
                      note=f"{host}'s reported fault instant did not fit its clock offset",
                      offset=offset, fits=False)
    note = None
    if offset and uncertainty > interval:
        at -= window  # the earliest it can have been: a recovery never looks faster
        note = (f"{host}'s clock offset is uncertain by {uncertainty:.3f} s, more than the "
                f"heartbeat interval ({interval:.3f} s): the fault instant is the earliest "
                "it allows, so the recovery time is an upper bound")
        source += "; the earliest instant it allows"
    return Mapped(min(max(at, earliest), latest), source, note, offset)
