"""``drill run --wait-for-lock``: a run that finds its environment held waits for the lock,
up to a deadline, instead of refusing at once; two controllers share one real SQLite
history. While it waits nothing is written; past the deadline it is EnvironmentBusy as
before; an interrupt ends the wait at once."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator

import pytest

from dalp_dr.drill.run import RunReport
from dalp_dr.errors import EnvironmentBusy, EnvironmentNeedsRecovery, Interrupted
from dalp_dr.locks import environment_lock_name, lock_environment
from dalp_dr.results import Outcome
from dalp_dr.spec import PhaseName
from tests.unit.engine.harness import ENVIRONMENT, EngineHarness, NewHarness, failover
from tests.unit.engine.run_requests import Said, run

WAITING = f"waiting for environment '{ENVIRONMENT}'"


@pytest.fixture
def other(new_harness: NewHarness) -> Iterator[EngineHarness]:
    """A second controller: its own drill files, endpoint and evidence, recording in the
    first one's history (``store_of=``)."""
    made = new_harness()
    try:
        yield made
    finally:
        made.close()


def until(check: Callable[[], bool], seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


class Background:
    """A run_drill in a thread: its report, or what it raised."""

    def __init__(self, start: Callable[[], RunReport]) -> None:
        self.report: RunReport | None = None
        self.error: BaseException | None = None
        self.ended_at: float | None = None

        def target() -> None:
            try:
                self.report = start()
            except BaseException as exc:
                self.error = exc
            self.ended_at = time.monotonic()

        self.thread = threading.Thread(target=target, daemon=True)
        self.thread.start()

    def join(self, seconds: float = 60.0) -> None:
        self.thread.join(seconds)
        assert not self.thread.is_alive(), "the run did not end"


def test_a_second_run_waits_for_the_first_then_runs(harness: EngineHarness,
                                                    other: EngineHarness) -> None:
    first_said, second_said = Said(), Said()
    second: list[Background] = []

    def start_second() -> None:  # while the first holds the environment, in its inject
        second.append(Background(lambda: run(other, second_said, store_of=harness,
                                              lock_wait=60.0)))
        until(lambda: second_said.has(WAITING))
        assert harness.store.list_runs(outcome=Outcome.RUNNING) and \
            len(harness.store.list_runs()) == 1  # waiting wrote nothing

    first = run(harness, first_said, at={PhaseName.INJECT: start_second})
    (waiter,) = second
    waiter.join()
    assert waiter.error is None, waiter.error
    assert waiter.report is not None
    a, b = first.result, waiter.report.result
    assert first.recorded and waiter.report.recorded
    assert a.outcome is Outcome.PASSED and b.outcome is Outcome.PASSED, (a.message, b.message)
    assert a.ended_at is not None and b.started_at >= a.ended_at  # never drilled twice at once
    assert b.run_id.startswith(f"{b.started_at:%Y%m%dT%H%M%SZ}-")  # named when it started
    (told,) = [m for m in second_said.progress if WAITING in m]
    assert f"run {a.run_id}" in told and "held by drill engine-test" in told
    assert sorted(r.run_id for r in harness.store.list_runs()) == sorted([a.run_id, b.run_id])
    assert other.store.list_runs() == []  # recorded once, in the shared history


def test_past_the_deadline_the_environment_is_busy_with_nothing_written(
        harness: EngineHarness) -> None:
    held = lock_environment(harness.store, ENVIRONMENT, holder="controller-2",
                            info="drill engine-test run X on controller-2")
    try:
        said = Said()
        began = time.monotonic()
        with pytest.raises(EnvironmentBusy) as busy:
            run(harness, said, lock_wait=1.2)
        waited = time.monotonic() - began
    finally:
        held.release()
    assert 1.2 <= waited < 5.0
    assert "controller-2" in str(busy.value) and "; waited 1.2" in str(busy.value)
    assert len([m for m in said.progress if WAITING in m]) == 1  # said once
    assert harness.store.list_runs() == []
    assert not harness.results.exists() or not any(
        p.is_dir() for p in harness.results.iterdir())


def test_without_a_wait_a_busy_environment_is_refused_at_once(harness: EngineHarness) -> None:
    held = lock_environment(harness.store, ENVIRONMENT, holder="controller-2",
                            info="drill engine-test run X on controller-2")
    try:
        said = Said()
        with pytest.raises(EnvironmentBusy) as busy:
            run(harness, said)
        assert not said.has(WAITING) and "waited" not in str(busy.value)
    finally:
        held.release()


def test_an_interrupt_ends_the_wait_at_once(harness: EngineHarness) -> None:
    held = lock_environment(harness.store, ENVIRONMENT, holder="controller-2",
                            info="drill engine-test run X on controller-2")
    try:
        said = Said()
        waiter = Background(lambda: run(harness, said, lock_wait=600.0))
        until(lambda: said.has(WAITING))
        asked = time.monotonic()
        harness.interrupt()
        waiter.join(10.0)
    finally:
        held.release()
    assert isinstance(waiter.error, Interrupted), waiter.error
    assert "while waiting for environment" in str(waiter.error)
    assert waiter.ended_at is not None and waiter.ended_at - asked < 2.0
    assert harness.store.list_runs() == []


def test_eight_runs_two_per_environment_started_at_once(harness: EngineHarness,
                                                        new_harness: NewHarness) -> None:
    """The issue's check: eight controllers, two drills of each of four environments
    started together, one shared history: every run recorded once, passed, and no
    environment drilled by two runs at the same time."""
    controllers = [new_harness() for _ in range(8)]
    gate = threading.Barrier(8)
    said = [Said() for _ in controllers]

    def start(i: int) -> Callable[[], RunReport]:
        def go() -> RunReport:
            gate.wait(10)
            return run(controllers[i], said[i], store_of=harness, lock_wait=120.0,
                       environment=f"env-{i % 4}")
        return go

    try:
        runs = [Background(start(i)) for i in range(8)]
        for waiter in runs:
            waiter.join(120.0)
    finally:
        for made in controllers:
            made.close()
    assert [w.error for w in runs] == [None] * 8
    reports = [w.report for w in runs if w.report is not None]
    assert all(r.recorded and r.result.outcome is Outcome.PASSED for r in reports), [
        r.result.message for r in reports]
    stored = harness.store.list_runs()
    assert sorted(r.run_id for r in stored) == sorted(r.result.run_id for r in reports)
    assert len({r.run_id for r in stored}) == 8
    for env in range(4):
        a, b = sorted((r.result for r in reports if r.result.environment == f"env-{env}"),
                      key=lambda r: r.started_at)
        assert a.ended_at is not None and b.started_at >= a.ended_at, env
    assert any(s.has("waiting for environment 'env-") for s in said)


def test_a_holder_that_dies_while_another_waits_is_recovered_before_the_waiter_drills(
        harness: EngineHarness) -> None:
    """The holder's orchestrator dies mid-drill (an execution node's container removed): its
    lease expires and the waiter gets the lock. That run's fault may still be in place: it is
    recovered first, then the waiter drills; never on top of it."""
    dead = harness.unrecorded(failover(harness.endpoint))  # recorded running, never ended
    lease = harness.store.acquire_lease(environment_lock_name(ENVIRONMENT), dead.run_id,
                                        f"drill engine-test run {dead.run_id} (dead)", 1.5)
    assert lease.holder == dead.run_id  # held by the run itself, never renewed again
    said = Said()

    report = run(harness, said, lock_wait=30.0)

    assert report.recorded and report.result.outcome is Outcome.PASSED, report.result.message
    assert said.has(f"run(s) {dead.run_id} ended without being recorded (their holder "
                    "died before this run took the lock)")
    recovered = harness.store.get(dead.run_id)
    assert recovered.outcome is not Outcome.RUNNING  # put back and recorded first
    assert report.result.started_at >= lease.expires_at
    assert sorted(r.run_id for r in harness.store.list_runs()) == sorted(
        [dead.run_id, report.result.run_id])


def test_a_holder_dead_before_the_lock_was_taken_is_recovered_without_any_wait(
        harness: EngineHarness) -> None:
    """A run recorded as running whose holder's lease is already gone when this run takes the
    lock (it expired after the recovery this run made first): found with the lock held, with
    no wait at all, and recovered before the drill."""
    dead = harness.unrecorded(failover(harness.endpoint))  # recorded running, lease gone
    said = Said()

    with pytest.raises(EnvironmentNeedsRecovery) as found:  # the engine alone: no recovery
        harness.run(failover(harness.endpoint))
    assert found.value.run_ids == (dead.run_id,)
    assert harness.store.get_lease(environment_lock_name(ENVIRONMENT)) is None  # let go
    report = run(harness, said, lock_wait=0.0)  # the use case recovers it, then drills
    assert report.recorded and report.result.outcome is Outcome.PASSED
    assert harness.store.get(dead.run_id).outcome is not Outcome.RUNNING
