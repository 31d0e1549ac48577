"""The recovery deadline: a service not verified back within the drill's ``deadline`` after
the fault stops the running phase, records the RTO missed and restores steady state."""

from __future__ import annotations

import pytest

from dalp_dr.results import Outcome, PhaseStatus, Status
from dalp_dr.spec import PhaseName
from tests.fakes import Play, RunnerStatus
from tests.unit.engine.harness import DrillShape, EngineHarness

DEADLINE = DrillShape(deadline="150ms")

STUCK = {
    # the recover playbook hangs: the deadline stops it
    "recover never ends": (Play(blocks_until_canceled=True), PhaseStatus.CANCELED),
    # recover fails fast; verify's client side waits for a write acknowledged again (up to
    # the verify timeout, 5s): the deadline stops the wait
    "recover fails, nothing comes back": (Play(status=RunnerStatus.FAILED),
                                          PhaseStatus.FAILED),
}


@pytest.mark.parametrize("stuck", STUCK.values(), ids=STUCK.keys())
def test_service_never_back_misses_the_rto_at_the_deadline(
        harness: EngineHarness, stuck: tuple[Play, PhaseStatus]) -> None:
    recover, recover_status = stuck
    run = harness.run({PhaseName.INJECT: Play(effect=harness.endpoint.fail,
                                              reports_fault_instant=True),
                       PhaseName.RECOVER: recover}, DEADLINE)

    # deadline beats the failed phase: missed, not failed
    assert run.result.outcome is Outcome.MISSED
    rto = run.verdict("rto")
    assert rto.status is Status.MISSED
    assert "deadline of 0.150s" in rto.reason
    assert rto.measured == pytest.approx(0.15)
    assert run.result.message is not None and "deadline" in run.result.message
    assert "run.deadline" in run.journal_kinds()
    assert run.phase(PhaseName.RECOVER).status is recover_status
    fault_at = run.runner.call(PhaseName.INJECT).artifact_data["dalp_fault_instant"]
    assert run.result.ended_at is not None
    assert run.result.ended_at.timestamp() - fault_at < 3.0  # stopped, not timed out
    assert PhaseName.MEASURE not in [p.phase for p in run.result.phases]
    assert run.runner.phases[-1] is PhaseName.STEADY_STATE
    assert run.result.steady_state_restored is True


def test_the_deadline_is_disarmed_once_verified(harness: EngineHarness) -> None:
    """Observing for longer than the deadline after verify passed is no miss."""
    run = harness.run({PhaseName.INJECT: Play(effect=harness.endpoint.fail,
                                              reports_fault_instant=True),
                       PhaseName.RECOVER: Play(effect=harness.endpoint.recover)},
                      DrillShape(deadline="400ms", observe="450ms"))

    assert run.result.outcome is Outcome.PASSED
    assert "run.deadline" not in run.journal_kinds()
