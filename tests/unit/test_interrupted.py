"""Runs whose orchestrator died: what says a running run is interrupted (its environment's
lock), and how soon the active scheduler notices one and recovers it (dalp_dr.schedule.watch,
SchedulerService.watch_interrupted), on a real SQLite history."""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from dalp_dr.adapters.ansible import AnsibleRunner
from dalp_dr.clock import utcnow
from dalp_dr.errors import InvalidInput
from dalp_dr.history import HistoryStore
from dalp_dr.history.base import Lease
from dalp_dr.locks import RunState, environment_lock_name, recovery_holder, running_runs
from dalp_dr.recovery import interrupted_runs, recover
from dalp_dr.results import Outcome
from dalp_dr.schedule.service import SchedulerService, ServiceOptions
from dalp_dr.schedule.watch import LOOK_MARGIN, InterruptWatch
from tests.factories import make_run

ENV = "lab-hot-warm"  # make_run's environment


class FakeClock:
    """Monotonic seconds the test moves on."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def store(sqlite_store: HistoryStore) -> HistoryStore:
    return sqlite_store


def begin(store: HistoryStore, tmp_path: Path, run_id: str, environment: str = ENV) -> str:
    """A run recorded running (as the engine begins one), its evidence on disk."""
    run = make_run(tmp_path, run_id, "hot-warm-failover", datetime(2026, 5, 1, 3, tzinfo=UTC),
                   Outcome.RUNNING, None)
    store.begin(run.model_copy(update={"ended_at": None, "steady_state_restored": None,
                                       "environment": environment}),
                json.dumps({"name": run.drill}))
    return run_id


def lock(store: HistoryStore, holder: str, ttl: float, environment: str = ENV,
         replacing: str | None = None) -> Lease:
    lease = store.acquire_lease(environment_lock_name(environment), holder, f"held by {holder}",
                                ttl, replacing=replacing)
    assert lease.holder == holder
    return lease


def test_who_holds_the_lock_says_whether_a_running_run_is_interrupted(
        store: HistoryStore, tmp_path: Path) -> None:
    run = begin(store, tmp_path, "20260501T030000Z-aaaaaa")

    def state(now: datetime | None = None) -> RunState:
        [found] = running_runs(store, now)
        return found.state

    assert state() is RunState.INTERRUPTED  # nobody holds the lock
    lease = lock(store, run, ttl=60)
    assert state() is RunState.ALIVE and interrupted_runs(store) == []
    after = lease.expires_at + timedelta(seconds=1)
    assert state(after) is RunState.INTERRUPTED  # its holder stopped renewing
    # a crash recovery of the run holds the lock: being recovered, not interrupted again
    lock(store, recovery_holder(run), ttl=60, replacing=run)
    assert state() is RunState.RECOVERING and interrupted_runs(store) == []
    with pytest.raises(InvalidInput, match="is being recovered: held by recover-"):
        recover(store, run, AnsibleRunner(), progress=lambda _m: None)
    # another run holds the environment: this one's orchestrator let it go (or died)
    store.release_lease(environment_lock_name(ENV), recovery_holder(run))
    lock(store, "20260501T040000Z-bbbbbb", ttl=60)
    assert state() is RunState.INTERRUPTED and interrupted_runs(store) == [run]


def test_a_look_is_due_when_a_watched_lock_expires_and_says_each_run_once(
        store: HistoryStore, tmp_path: Path) -> None:
    clock = FakeClock()
    watch = InterruptWatch(every=20.0, clock=clock)
    assert watch.due()  # never looked
    assert watch.look(store) == [] and not watch.due()
    assert watch.next_look_in == 20.0  # nothing running: the periodic look
    run = begin(store, tmp_path, "20260501T030000Z-aaaaaa")
    lease = lock(store, run, ttl=5)
    clock.now += 20.0
    assert watch.due()
    assert watch.look(store, now=lease.acquired_at) == []  # alive: its lock is watched
    assert watch.next_look_in == pytest.approx(5.0 + LOOK_MARGIN)
    clock.now += 5.0
    assert not watch.due()  # the lock has not expired yet
    clock.now += LOOK_MARGIN
    assert watch.due()
    expired = lease.expires_at + timedelta(seconds=LOOK_MARGIN)
    [found] = watch.look(store, now=expired)
    assert found.run.run_id == run and found.lease == lease
    assert watch.interrupted == {run}
    clock.now += 20.0
    assert watch.look(store, now=expired + timedelta(seconds=20)) == []  # said once
    assert watch.interrupted == {run}
    # its recovery takes the lock: no longer interrupted, and its lock is watched in turn
    recovery = lock(store, recovery_holder(run), ttl=60, replacing=run)
    clock.now += 20.0
    assert watch.look(store, now=expired + timedelta(seconds=40)) == []
    assert watch.interrupted == frozenset()
    # the recovery dies too: the run is interrupted again, and said again
    clock.now += 20.0
    [again] = watch.look(store, now=recovery.expires_at + timedelta(seconds=1))
    assert again.run.run_id == run
    watch.reset()  # a scheduler taking over says it once more, at once
    assert watch.due()
    [taken_over] = watch.look(store, now=recovery.expires_at + timedelta(seconds=2))
    assert taken_over.run.run_id == run


def options(tmp_path: Path) -> ServiceOptions:
    return ServiceOptions(drills_dir=tmp_path / "drills",
                          store_url=f"sqlite:///{tmp_path / 'results' / 'history.sqlite'}",
                          results_dir=tmp_path / "results", lock_ttl=60.0)


def said(caplog: pytest.LogCaptureFixture, run_id: str) -> list[str]:
    return [r.getMessage() for r in caplog.records
            if r.getMessage().startswith(f"INTERRUPTED: run {run_id} ")]


def test_the_scheduler_notices_a_run_as_its_lock_expires_and_recovers_it(
        store: HistoryStore, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="dalp_dr.scheduler")
    service = SchedulerService(options(tmp_path))
    assert service.watch.every == 20.0  # a third of the lock TTL: the periodic look
    run = begin(store, tmp_path, "20260501T030000Z-aaaaaa")
    lease = lock(store, run, ttl=0.3)  # then its orchestrator dies: nobody renews it
    assert service.watch_interrupted(store) == []  # alive
    assert not service.recovery_running()
    deadline = time.monotonic() + 5.0  # far less than the periodic look's 20 s
    while not (found := service.watch_interrupted(store)):  # the loop's ticks, faster
        assert time.monotonic() < deadline, "the expired lock was not noticed"
        service.stopping.wait(0.01)
    noticed = utcnow()
    assert [f.run.run_id for f in found] == [run]
    assert lease.expires_at <= noticed < lease.expires_at + timedelta(seconds=2)  # (+CI)
    [message] = said(caplog, run)
    assert "drill lock expired at" in message and message.endswith("crash recovery starts")
    while service.recovery_running():
        assert time.monotonic() < deadline + 30, "the recovery did not end"
        assert service.watch_interrupted(store) == []  # a look meanwhile starts none
        service.stopping.wait(0.01)
    recorded = store.get(run)
    assert recorded.outcome is Outcome.ABORTED
    assert "no fault had been injected" in (recorded.message or "")
    assert len(said(caplog, run)) == 1


def recoveries() -> int:
    """The recovery threads alive (the service names each 'recovery')."""
    return sum(1 for t in threading.enumerate() if t.name == "recovery")


def test_a_second_recovery_waits_for_the_one_in_progress(
        store: HistoryStore, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="dalp_dr.scheduler")
    entered: queue.Queue[int] = queue.Queue()
    release = threading.Event()
    calls: list[int] = []

    def slow_recovery(_store: HistoryStore) -> None:
        calls.append(len(calls) + 1)
        entered.put(calls[-1])
        assert release.wait(timeout=30)

    clock = FakeClock()
    service = SchedulerService(options(tmp_path), watch=InterruptWatch(20.0, clock),
                               recover=slow_recovery)
    first = begin(store, tmp_path, "20260501T030000Z-aaaaaa", environment="a")
    second = begin(store, tmp_path, "20260501T040000Z-bbbbbb", environment="b")
    lease = lock(store, second, ttl=10, environment="b")
    try:
        assert [f.run.run_id for f in service.watch_interrupted(store)] == [first]
        assert entered.get(timeout=5) == 1
        clock.now += 10 + LOOK_MARGIN
        expired = lease.expires_at + timedelta(seconds=LOOK_MARGIN)
        assert [f.run.run_id for f in service.watch_interrupted(store, now=expired)] == [second]
        [message] = said(caplog, second)
        assert message.endswith("crash recovery follows the one in progress")
        assert service.watch_interrupted(store, now=expired) == []  # not due
        assert recoveries() == 1 and calls == [1]  # none started beside the first
        release.set()
        deadline = time.monotonic() + 5
        while service.recovery_running():
            assert time.monotonic() < deadline, "the first recovery did not end"
            service.stopping.wait(0.01)
        service.watch_interrupted(store, now=expired)  # the next tick starts the pending one
        assert entered.get(timeout=5) == 2
    finally:
        release.set()  # never leave a recovery thread blocked
    assert len(said(caplog, first)) == 1 and len(said(caplog, second)) == 1
