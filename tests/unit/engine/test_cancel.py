"""An interrupt (SIGINT/SIGTERM through the cancel token) during any phase stops the running
playbook and records ``aborted``; steady state runs if and only if inject had started, and
is never canceled itself."""

from __future__ import annotations

import pytest

from dalp_dr.results import Outcome, PhaseStatus
from dalp_dr.spec import PhaseName
from tests.fakes import Play, RunnerStatus
from tests.unit.engine.harness import DrillShape, EngineHarness, failover

PHASES = [PhaseName.PREFLIGHT, PhaseName.BASELINE, PhaseName.INJECT, PhaseName.RECOVER,
          PhaseName.VERIFY, PhaseName.MEASURE]
WITH_PLAYBOOK = {PhaseName.PREFLIGHT, PhaseName.BASELINE, PhaseName.INJECT,
                 PhaseName.RECOVER, PhaseName.VERIFY}
ORDER = list(PhaseName)


@pytest.mark.parametrize("phase", PHASES, ids=[p.value for p in PHASES])
def test_interrupt_during_a_phase_aborts_and_restores_iff_injected(
        harness: EngineHarness, phase: PhaseName) -> None:
    # the interrupted phase's playbook would run until canceled: only the interrupt ends it
    plays = failover(harness.endpoint)
    if phase in WITH_PLAYBOOK:
        plays[phase] = Play(blocks_until_canceled=True)
    run = harness.run(plays, DrillShape(baseline_playbook=True),
                      at={phase: harness.interrupt})

    assert run.result.outcome is Outcome.ABORTED
    assert run.result.message == "interrupted (SIGINT)"
    assert "run.interrupted" in run.journal_kinds()
    if phase in WITH_PLAYBOOK:  # the running playbook was stopped
        assert run.runner.call(phase).status is RunnerStatus.CANCELED
    # nothing after the interrupted phase started (steady state aside)
    started = [p for p in run.runner.phases if p is not PhaseName.STEADY_STATE]
    assert all(ORDER.index(p) <= ORDER.index(phase) for p in started)
    injected = ORDER.index(phase) >= ORDER.index(PhaseName.INJECT)
    if injected:
        assert run.runner.phases[-1] is PhaseName.STEADY_STATE
        assert run.phase(PhaseName.STEADY_STATE).status is PhaseStatus.OK
        assert run.result.steady_state_restored is True
    else:
        assert PhaseName.STEADY_STATE not in run.runner.phases
        assert run.phase(PhaseName.STEADY_STATE).status is PhaseStatus.SKIPPED
        assert run.result.steady_state_restored is None


def test_an_interrupt_never_cancels_the_return_to_steady_state(harness: EngineHarness) -> None:
    run = harness.run({**failover(harness.endpoint),
                       PhaseName.STEADY_STATE: Play(takes=0.1)},
                      at={PhaseName.STEADY_STATE: harness.interrupt})

    assert harness.cancel.is_set()
    assert run.runner.call(PhaseName.STEADY_STATE).cancellable is False
    assert run.phase(PhaseName.STEADY_STATE).status is PhaseStatus.OK
    assert run.result.steady_state_restored is True


def test_an_interrupted_baseline_playbook_is_recorded_canceled(harness: EngineHarness) -> None:
    run = harness.run({**failover(harness.endpoint),
                       PhaseName.BASELINE: Play(blocks_until_canceled=True)},
                      DrillShape(baseline_playbook=True),
                      at={PhaseName.BASELINE: harness.interrupt})

    assert run.phase(PhaseName.BASELINE).status is PhaseStatus.CANCELED
