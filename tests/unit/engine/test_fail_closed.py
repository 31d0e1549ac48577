"""Preflight fails closed: when the preflight playbook, or the baseline, cannot prove it is
safe to inject the fault, nothing is injected and there is nothing to restore."""

from __future__ import annotations

from collections.abc import Callable, Mapping

import pytest

from dalp_dr.results import Outcome, PhaseStatus
from dalp_dr.spec import PhaseName
from tests.fakes import Play, RunnerStatus
from tests.unit.engine.harness import DrillShape, EngineHarness, failover

Case = tuple[Mapping[PhaseName, Play], DrillShape, bool]
"""the plays, the drill, whether the endpoint refuses writes once baseline starts"""

CASES: dict[str, Case] = {
    "preflight playbook fails": (
        {PhaseName.PREFLIGHT: Play(status=RunnerStatus.FAILED,
                                   failure_message="B is not streaming from A")},
        DrillShape(), False),
    "preflight times out": (
        {PhaseName.PREFLIGHT: Play(blocks_until_canceled=True)},
        DrillShape(timeout="50ms"), False),
    "baseline playbook fails": (
        {PhaseName.BASELINE: Play(status=RunnerStatus.FAILED)},
        DrillShape(baseline_playbook=True), False),
    "endpoint takes no writes at baseline": ({}, DrillShape(), True),
}


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_nothing_is_injected_when_preflight_or_baseline_fails(harness: EngineHarness,
                                                              case: Case) -> None:
    plays, shape, endpoint_down = case
    hooks: dict[PhaseName, Callable[[], None]] = (
        {PhaseName.BASELINE: harness.endpoint.fail} if endpoint_down else {})
    run = harness.run({**failover(harness.endpoint), **plays}, shape, at=hooks)

    assert run.result.outcome is Outcome.PREFLIGHT_FAILED
    assert PhaseName.INJECT not in run.runner.phases
    assert PhaseName.STEADY_STATE not in run.runner.phases
    assert run.runner.phases[-1] in (PhaseName.PREFLIGHT, PhaseName.BASELINE)
    steady = run.phase(PhaseName.STEADY_STATE)
    assert steady.status is PhaseStatus.SKIPPED
    assert run.result.steady_state_restored is None
    assert "fault.injected" not in run.journal_kinds()
    assert run.result.measurements is None and run.result.verdicts == []


def test_unreachable_preflight_hosts_are_named(harness: EngineHarness) -> None:
    run = harness.run({PhaseName.PREFLIGHT: Play(status=RunnerStatus.FAILED,
                                                 unreachable=("db1", "db2"))})

    assert run.result.outcome is Outcome.PREFLIGHT_FAILED
    assert run.runner.phases == [PhaseName.PREFLIGHT]
    assert run.result.message is not None and "db1, db2" in run.result.message
