"""Fakes of dalp-dr's own seams (the Protocols in ``dalp_dr/adapters/base.py``), for fast
tests of the drill engine. Never fakes of PostgreSQL or Ansible: they stand in for dalp-dr's
``PlaybookRunner`` and ``ServiceEndpoint``/``EndpointSession`` contracts, in process.

* ``InMemoryEndpoint``: the service endpoint clients write through. It is scripted by what
  the fake playbooks do to it: ``fail`` (the primary is lost: every connection breaks, new
  ones are refused, optionally losing the last acknowledged writes that had not reached the
  standby) and ``recover`` (the route reaches a promoted server: the timeline advances).
* ``FakePlaybookRunner``: runs no playbook file. Each phase (``dalp_phase`` in the extra
  vars) plays a ``Play``: what it does to the endpoint, how long it takes, what it reports
  with ``set_stats`` (e.g. ``dalp_fault_instant``), how it ends, whether it blocks until
  canceled. It calls ``on_event`` like ansible-runner and honours ``cancel`` and
  ``timeout`` as the Protocol says.
* ``StoreThatCannotFinish``: a real history store whose ``finish`` fails as an unreachable
  store's does (the run ends; the store does not take its result).
* ``FakeDisks``: the filesystems free space is read from (``dalp_dr.reserve.Disks``), as
  full as the test says.
"""

from __future__ import annotations

import subprocess
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

from dalp_dr.adapters.base import (
    CancelCheck,
    EventSink,
    PlaybookResult,
    ServerIdentity,
    WriteAck,
)
from dalp_dr.errors import EndpointError, StoreError
from dalp_dr.reserve import GiB
from dalp_dr.results import RunResult
from dalp_dr.spec import PhaseName

POLL = 0.005
"""how often a fake playbook looks at its cancel check while it runs"""


def _now() -> datetime:
    return datetime.now(UTC)


# --- the service endpoint -----------------------------------------------------------------

class InMemoryEndpoint:
    """A database reached through a route, in memory: markers per run, a timeline, a
    primary that can be lost and a standby that can be promoted."""

    display = "in-memory endpoint"

    def __init__(self, *, timeline: int = 1) -> None:
        self._lock = threading.Lock()
        self._up = True
        self._generation = 0
        """bumped when the server is lost: sessions from before it are broken"""
        self._markers: dict[str, list[int]] = {}
        self._timeline = timeline
        self._in_recovery = False
        self._reads_fail = False
        self.lost_markers: list[int] = []
        """what ``fail`` dropped (acknowledged, never replicated)"""

    # -- what fake playbooks (and tests) do to it ------------------------------------------

    def fail(self, *, lose_last: int = 0) -> None:
        """The server behind the route is lost: open sessions break, new ones are refused.
        ``lose_last`` acknowledged markers of every run never reached the standby."""
        with self._lock:
            self._up = False
            self._generation += 1
            for markers in self._markers.values():
                if lose_last:
                    self.lost_markers.extend(markers[-lose_last:])
                    del markers[-lose_last:]

    def recover(self, *, advance_timeline: bool = True, in_recovery: bool = False) -> None:
        """The route reaches a server again: a promoted standby (timeline advanced, out of
        recovery) unless told otherwise."""
        with self._lock:
            self._up = True
            if advance_timeline:
                self._timeline += 1
            self._in_recovery = in_recovery

    def fail_reads(self) -> None:
        """Reads of the markers fail from now on (writes still work)."""
        with self._lock:
            self._reads_fail = True

    @property
    def up(self) -> bool:
        with self._lock:
            return self._up

    @property
    def timeline(self) -> int:
        with self._lock:
            return self._timeline

    def markers(self, run_id: str) -> list[int]:
        with self._lock:
            return list(self._markers.get(run_id, []))

    # -- ServiceEndpoint --------------------------------------------------------------------

    def connect(self, *, timeout: float) -> InMemorySession:
        with self._lock:
            if not self._up:
                raise EndpointError(f"{self.display}: connection refused")
            return InMemorySession(self, self._generation)

    def ensure_schema(self) -> None:
        with self._lock:
            if not self._up:
                raise EndpointError(f"{self.display}: connection refused")

    # -- what sessions call -----------------------------------------------------------------

    def _usable(self, generation: int) -> None:
        if not self._up or generation != self._generation:
            raise EndpointError("server closed the connection unexpectedly")

    def _write(self, generation: int, run_id: str, seq: int) -> WriteAck:
        with self._lock:
            self._usable(generation)
            self._markers.setdefault(run_id, []).append(seq)
            return WriteAck(timeline=self._timeline, server="in-memory:5432")

    def _read(self, generation: int, run_id: str) -> set[int]:
        with self._lock:
            self._usable(generation)
            if self._reads_fail:
                raise EndpointError("could not read the marker table")
            return set(self._markers.get(run_id, []))

    def _identity(self, generation: int) -> ServerIdentity:
        with self._lock:
            self._usable(generation)
            return ServerIdentity(port=5432, timeline=self._timeline,
                                  in_recovery=self._in_recovery)


class InMemorySession:
    """One client connection to an ``InMemoryEndpoint``; broken once its server is lost."""

    def __init__(self, endpoint: InMemoryEndpoint, generation: int) -> None:
        self._endpoint = endpoint
        self._generation = generation
        self._closed = False

    def _check_open(self) -> None:
        if self._closed:
            raise EndpointError("session is closed")

    def write_marker(self, run_id: str, seq: int, sent_at: datetime) -> WriteAck:
        self._check_open()
        return self._endpoint._write(self._generation, run_id, seq)

    def surviving_markers(self, run_id: str) -> set[int]:
        self._check_open()
        return self._endpoint._read(self._generation, run_id)

    def identity(self) -> ServerIdentity:
        self._check_open()
        return self._endpoint._identity(self._generation)

    def query_value(self, sql: str, *, timeout: float | None = None,
                    params: tuple[Any, ...] = ()) -> Any:
        raise EndpointError("the in-memory endpoint runs no SQL")

    def close(self) -> None:
        self._closed = True


# --- the playbook runner ------------------------------------------------------------------

def _wait_at_barrier(command: str, cancel: CancelCheck | None) -> str | None:
    """What a held playbook's first task does: run the barrier command (dalp_dr.barrier,
    through a shell, as Ansible's pipe lookup does). None when released, else why not."""
    proc = subprocess.Popen(command, shell=True, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    while proc.poll() is None:
        if cancel is not None and cancel():
            proc.kill()
            proc.wait()
            return "canceled at the fault barrier"
        time.sleep(POLL)
    _out, err = proc.communicate()
    return None if proc.returncode == 0 else (err.strip() or f"barrier exit {proc.returncode}")


class RunnerStatus(StrEnum):
    """ansible-runner's final statuses."""

    SUCCESSFUL = "successful"
    FAILED = "failed"
    TIMEOUT = "timeout"
    CANCELED = "canceled"


@dataclass(frozen=True)
class Play:
    """What one fake phase playbook does."""

    status: RunnerStatus = RunnerStatus.SUCCESSFUL
    effect: Callable[[], None] | None = None
    """what it does to the environment (e.g. ``endpoint.fail``), first thing when it runs"""
    takes: float = 0.0
    """seconds it runs after its effect (a cancel stops it early)"""
    reports_fault_instant: bool = False
    """publish ``dalp_fault_instant`` (the moment its effect ran) with set_stats"""
    report: Mapping[str, Any] = field(default_factory=dict)
    """anything else it publishes with set_stats"""
    failure_message: str | None = None
    unreachable: tuple[str, ...] = ()
    blocks_until_canceled: bool = False
    """never finishes by itself: stopped by cancel, or by its timeout"""
    stops_after: float = 0.0
    """how long it takes to stop once canceled"""
    event_text: str = "ok"
    """the ``stdout`` of the task event it emits"""


@dataclass(frozen=True)
class Call:
    """One playbook run the engine asked for."""

    phase: PhaseName
    playbook: Path
    extravars: Mapping[str, Any]
    timeout: float
    cancellable: bool
    check: bool
    status: RunnerStatus
    started_at: datetime
    artifact_data: Mapping[str, Any]
    """what it published with set_stats"""
    released_at: datetime | None = None
    """a held playbook: when its wait at the fault barrier ended (released or abandoned)"""


class FakePlaybookRunner:
    """A ``PlaybookRunner`` that plays scripted ``Play``s by phase (default: succeed and
    do nothing). ``calls`` lists every run in order, with how it ended."""

    def __init__(self, plays: Mapping[PhaseName, Play] | None = None,
                 clocks: Mapping[str, float] | None = None) -> None:
        """``clocks``: the targets' clocks, host -> seconds ahead of the controller's; the
        clock playbook reads them, and an instant a play reports with ``dalp_fault_host``
        is stamped with that host's clock."""
        self.plays: dict[PhaseName, Play] = dict(plays or {})
        self.calls: list[Call] = []
        self.clocks: dict[str, float] = dict(clocks or {})
        self.clock_reads: list[str] = []
        """the clock playbook's runs, by the phase name the engine gave them"""
        self._lock = threading.Lock()

    def _read_clocks(self, playbook: Path, phase: str, emit: EventSink) -> PlaybookResult:
        """The clock playbook: one read of each host's clock (a 2 ms task)."""
        started = _now()
        for host, ahead in self.clocks.items():
            start = _now()
            time.sleep(0.001)
            reading = time.time() + ahead
            time.sleep(0.001)
            emit({"event": "runner_on_ok", "created": _now().isoformat(),
                  "event_data": {"task": "Clock: read 1", "host": host,
                                 "start": start.isoformat(), "end": _now().isoformat(),
                                 "res": {"stdout": f"{reading:.6f}\n"}}})
        with self._lock:
            self.clock_reads.append(phase)
        return PlaybookResult(playbook=playbook.name, status="successful", rc=0,
                              started_at=started, ended_at=_now(), artifact_data={})

    def _stamped(self, published: dict[str, Any]) -> dict[str, Any]:
        """A reported fault instant as its host's clock reads it."""
        host = published.get("dalp_fault_host")
        if "dalp_fault_instant" in published and isinstance(host, str) and host in self.clocks:
            return {**published, "dalp_fault_instant":
                    published["dalp_fault_instant"] + self.clocks[host]}
        return published

    @property
    def phases(self) -> list[PhaseName]:
        with self._lock:
            return [c.phase for c in self.calls]

    def call(self, phase: PhaseName) -> Call:
        """The one run of ``phase`` (AssertionError when it ran not exactly once)."""
        with self._lock:
            found = [c for c in self.calls if c.phase is phase]
        assert len(found) == 1, f"{phase} ran {len(found)} times: {self.phases}"
        return found[0]

    def run(self, playbook: Path, inventory: Path, *, extravars: Mapping[str, Any],
            timeout: float, on_event: EventSink | None = None,
            cancel: CancelCheck | None = None, check: bool = False) -> PlaybookResult:
        emit = on_event or (lambda _event: None)
        if str(extravars["dalp_phase"]).startswith("clock-"):
            return self._read_clocks(playbook, str(extravars["dalp_phase"]), emit)
        phase = PhaseName(extravars["dalp_phase"])
        play = self.plays.get(phase, Play())
        started = _now()
        released_at, barrier_error = None, None
        if "dalp_fault_barrier" in extravars:  # a held playbook's first task: the real wait
            barrier_error = _wait_at_barrier(str(extravars["dalp_fault_barrier"]), cancel)
            released_at = _now()
        if barrier_error is not None:
            status, fault_at = RunnerStatus.FAILED, None
            play = Play(status=status, failure_message=barrier_error)
        else:
            def stats(published: dict[str, Any]) -> None:  # a set_stats task's event
                emit({"event": "runner_on_ok", "created": _now().isoformat(),
                      "event_data": {"task": f"fake {phase.value}: report", "host": "db1",
                                     "res": {"ansible_stats": {
                                         "data": self._stamped(published)}}}})

            status, fault_at = self._play(play, timeout, cancel, stats)
        emit({"event": "runner_on_failed" if status is RunnerStatus.FAILED else "runner_on_ok",
              "created": _now().isoformat(),
              "event_data": {"task": f"fake {phase.value}", "host": "db1",
                             "res": {"stdout": play.event_text}}})
        data: dict[str, Any] = dict(play.report)
        if play.reports_fault_instant and fault_at is not None:
            data["dalp_fault_instant"] = fault_at.timestamp()
            data = self._stamped(data)
        ended = _now()
        with self._lock:
            self.calls.append(Call(phase=phase, playbook=playbook, extravars=dict(extravars),
                                   timeout=timeout, cancellable=cancel is not None,
                                   check=check, status=status, started_at=started,
                                   artifact_data=dict(data), released_at=released_at))
        ok = status is RunnerStatus.SUCCESSFUL
        return PlaybookResult(
            playbook=playbook.name, status=status.value, rc=0 if ok else 2,
            started_at=started, ended_at=ended, artifact_data=data,
            failed_task=None if ok else f"fake {phase.value}",
            failure_message=None if ok else play.failure_message,
            unreachable_hosts=play.unreachable)

    def _play(self, play: Play, timeout: float, cancel: CancelCheck | None,
              stats: Callable[[dict[str, Any]], None]) -> tuple[RunnerStatus, datetime | None]:
        """Run ``play``: its status and when its effect happened (None: canceled first).
        A play that reports its fault instant does so in an event right after its effect,
        then runs on (``takes``), as a playbook's set_stats task does."""
        canceled = cancel or (lambda: False)
        if canceled():
            time.sleep(play.stops_after)
            return RunnerStatus.CANCELED, None
        fault_at = _now()
        if play.effect is not None:
            play.effect()
        if play.reports_fault_instant:
            stats({**play.report, "dalp_fault_instant": fault_at.timestamp()})
        limit = time.monotonic() + (timeout if play.blocks_until_canceled
                                    else min(play.takes, timeout))
        while time.monotonic() < limit:
            if canceled():
                time.sleep(play.stops_after)
                return RunnerStatus.CANCELED, fault_at
            time.sleep(POLL)
        if play.blocks_until_canceled or play.takes > timeout:
            return RunnerStatus.TIMEOUT, fault_at
        return play.status, fault_at


class StoreThatCannotFinish:
    """Fake over a real history store: everything passes through to it but ``finish``,
    which raises StoreError as a store that went away does."""

    def __init__(self, store: Any) -> None:
        self._store = store

    def finish(self, result: RunResult) -> None:
        raise StoreError("fake: the history store did not answer")

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)


# --- the filesystems ----------------------------------------------------------------------

class FakeDisks:
    """A ``Disks``: ``free`` bytes by directory and ``devices`` (which filesystem) by
    directory; a path takes the values of the nearest of them it is in (itself included),
    else ``default_free`` on filesystem 0. ``broken``: directories whose filesystem cannot
    be read (OSError). ``asked`` lists the directories whose free space was read."""

    def __init__(self, free: Mapping[Path, int] | None = None, *,
                 devices: Mapping[Path, int] | None = None, default_free: int = 100 * GiB,
                 broken: tuple[Path, ...] = ()) -> None:
        self._free, self._devices = dict(free or {}), dict(devices or {})
        self._default_free, self._broken = default_free, broken
        self.asked: list[Path] = []

    @staticmethod
    def _nearest(path: Path, table: Mapping[Path, int], default: int) -> int:
        for place in (path, *path.parents):
            if place in table:
                return table[place]
        return default

    def free(self, directory: Path) -> int:
        self.asked.append(directory)
        if any(directory == b or b in directory.parents for b in self._broken):
            raise OSError(5, "Input/output error")
        return self._nearest(directory, self._free, self._default_free)

    def device(self, directory: Path) -> int:
        return self._nearest(directory, self._devices, 0)
