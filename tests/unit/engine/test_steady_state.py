"""Once inject has started, the return to steady state runs whatever failed after it, once,
last; its own failure is recorded."""

from __future__ import annotations

from collections.abc import Callable, Mapping

import pytest

from dalp_dr.results import Outcome, PhaseStatus
from dalp_dr.spec import PhaseName
from tests.fakes import InMemoryEndpoint, Play, RunnerStatus
from tests.unit.engine.harness import EngineHarness, failover

Plays = dict[PhaseName, Play]
Hooks = dict[PhaseName, Callable[[], None]]


def inject_fails_before_the_fault(endpoint: InMemoryEndpoint) -> tuple[Plays, Hooks]:
    return {PhaseName.INJECT: Play(status=RunnerStatus.FAILED)}, {}


def inject_fails_after_the_fault(endpoint: InMemoryEndpoint) -> tuple[Plays, Hooks]:
    return {PhaseName.INJECT: Play(effect=endpoint.fail, reports_fault_instant=True,
                                   status=RunnerStatus.FAILED)}, {}


def recover_fails(endpoint: InMemoryEndpoint) -> tuple[Plays, Hooks]:
    """the standby was promoted, then a later task of the playbook failed"""
    return {PhaseName.RECOVER: Play(effect=endpoint.recover, status=RunnerStatus.FAILED)}, {}


def verify_playbook_fails(endpoint: InMemoryEndpoint) -> tuple[Plays, Hooks]:
    return {PhaseName.VERIFY: Play(status=RunnerStatus.FAILED)}, {}


def verify_sees_the_old_timeline(endpoint: InMemoryEndpoint) -> tuple[Plays, Hooks]:
    """the route reaches a server again, but not a promoted one"""
    return {PhaseName.RECOVER: Play(effect=lambda: endpoint.recover(advance_timeline=False))}, {}


def measure_cannot_read_back(endpoint: InMemoryEndpoint) -> tuple[Plays, Hooks]:
    return {}, {PhaseName.MEASURE: endpoint.fail_reads}


FAILURES: Mapping[str, tuple[Callable[[InMemoryEndpoint], tuple[Plays, Hooks]], PhaseName,
                             Outcome]] = {
    "inject fails before reporting the fault": (inject_fails_before_the_fault,
                                                PhaseName.INJECT, Outcome.FAILED),
    "inject fails after the fault": (inject_fails_after_the_fault, PhaseName.INJECT,
                                     Outcome.FAILED),
    "recover fails": (recover_fails, PhaseName.RECOVER, Outcome.FAILED),
    "verify playbook fails": (verify_playbook_fails, PhaseName.VERIFY, Outcome.FAILED),
    "verify: timeline did not advance": (verify_sees_the_old_timeline, PhaseName.VERIFY,
                                         Outcome.FAILED),
    # markers not read back: the data-loss window is not known (RPO unknown)
    "measure cannot read markers back": (measure_cannot_read_back, PhaseName.MEASURE,
                                         Outcome.INCONCLUSIVE),
}


@pytest.mark.parametrize("failure", FAILURES.values(), ids=FAILURES.keys())
def test_steady_state_runs_after_a_failure_once_inject_started(
        harness: EngineHarness,
        failure: tuple[Callable[[InMemoryEndpoint], tuple[Plays, Hooks]], PhaseName,
                       Outcome]) -> None:
    script, failing, outcome = failure
    plays, hooks = script(harness.endpoint)
    run = harness.run({**failover(harness.endpoint), **plays}, at=hooks)

    assert run.result.outcome is outcome
    assert run.phase(failing).status is PhaseStatus.FAILED
    # once, last: after the failing phase and whatever the engine still watched after it
    assert run.runner.phases.count(PhaseName.STEADY_STATE) == 1
    assert run.runner.phases[-1] is PhaseName.STEADY_STATE
    assert [p.phase for p in run.result.phases][-1] is PhaseName.STEADY_STATE
    assert run.phase(PhaseName.STEADY_STATE).status is PhaseStatus.OK
    assert run.result.steady_state_restored is True


def test_verify_failure_says_the_timeline_did_not_advance(harness: EngineHarness) -> None:
    plays, _ = verify_sees_the_old_timeline(harness.endpoint)
    run = harness.run({**failover(harness.endpoint), **plays})

    assert run.result.outcome is Outcome.FAILED
    assert "timeline did not advance (1 -> 1)" in (run.phase(PhaseName.VERIFY).message or "")


def test_a_failed_return_to_steady_state_is_recorded(harness: EngineHarness) -> None:
    run = harness.run({**failover(harness.endpoint),
                       PhaseName.STEADY_STATE: Play(status=RunnerStatus.FAILED)})

    assert run.result.steady_state_restored is False
    assert run.phase(PhaseName.STEADY_STATE).status is PhaseStatus.FAILED
    assert "return to steady state FAILED" in (run.result.message or "")
    assert run.result.outcome is Outcome.FAILED  # although every objective was met
    assert {v.status.value for v in run.result.verdicts} == {"met"}
