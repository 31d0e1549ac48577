"""Verdicts from what the client saw, and which outcome wins when several apply:
interrupted > deadline > preflight_failed > phase failure > verdicts."""

from __future__ import annotations

from dalp_dr.results import Outcome, Status
from dalp_dr.spec import PhaseName
from tests.fakes import Play, RunnerStatus
from tests.unit.engine.harness import DrillShape, EngineHarness, Run, failover


def test_objectives_met_pass(passed_run: Run) -> None:
    run = passed_run
    assert run.result.outcome is Outcome.PASSED
    assert [(v.objective, v.status) for v in run.result.verdicts] == [
        ("rto", Status.MET), ("rpo", Status.MET)]
    m = run.result.measurements
    assert m is not None and m.lost_writes == 0 and m.data_loss_window == 0.0
    assert m.recovery_time is not None and 0 < m.recovery_time < 30


def test_rto_missed_when_the_service_is_down_longer(harness: EngineHarness) -> None:
    run = harness.run(failover(harness.endpoint, down_for=0.15), DrillShape(rto="100ms"))

    assert run.result.outcome is Outcome.MISSED
    rto = run.verdict("rto")
    assert rto.status is Status.MISSED
    assert rto.measured is not None and rto.measured >= 0.15
    assert rto.margin is not None and rto.margin < 0
    assert run.verdict("rpo").status is Status.MET


def test_rpo_missed_when_acknowledged_writes_are_lost(harness: EngineHarness) -> None:
    run = harness.run(failover(harness.endpoint, lose_last=2), DrillShape(rpo="0s"))

    assert run.result.outcome is Outcome.MISSED
    assert run.verdict("rpo").status is Status.MISSED
    assert run.verdict("rto").status is Status.MET
    m = run.result.measurements
    # the last two acknowledged (fewer only if the baseline saw fewer writes)
    assert m is not None and m.lost_writes == len(harness.endpoint.lost_markers) > 0
    assert m.newest_surviving_ack is None or (m.data_loss_window is not None \
        and m.data_loss_window > 0)


def test_missing_evidence_is_inconclusive_never_a_pass(harness: EngineHarness) -> None:
    run = harness.run(failover(harness.endpoint),
                      at={PhaseName.MEASURE: harness.endpoint.fail_reads})

    assert run.result.outcome is Outcome.INCONCLUSIVE
    assert run.verdict("rpo").status is Status.UNKNOWN


def test_a_failed_phase_beats_met_objectives(harness: EngineHarness) -> None:
    run = harness.run({**failover(harness.endpoint),
                       PhaseName.RECOVER: Play(effect=harness.endpoint.recover,
                                               status=RunnerStatus.FAILED)})

    assert {v.status for v in run.result.verdicts} == {Status.MET}
    assert run.result.outcome is Outcome.FAILED
    assert run.result.message == "recover phase failed"


def test_an_interrupt_beats_a_failed_preflight(harness: EngineHarness) -> None:
    def endpoint_lost_and_operator_interrupts() -> None:
        harness.endpoint.fail()
        harness.interrupt()

    run = harness.run(failover(harness.endpoint),
                      at={PhaseName.BASELINE: endpoint_lost_and_operator_interrupts})

    assert run.result.outcome is Outcome.ABORTED
    assert PhaseName.INJECT not in run.runner.phases


def test_an_interrupt_beats_a_deadline_that_passes_while_stopping(
        harness: EngineHarness) -> None:
    run = harness.run({PhaseName.INJECT: Play(effect=harness.endpoint.fail,
                                              reports_fault_instant=True),
                       # the deadline (1 s from the fault) passes while recover stops
                       # (1.5 s): what the interrupt at recover's start races, with room for
                       # a loaded machine between the fault and recover's start
                       PhaseName.RECOVER: Play(blocks_until_canceled=True, stops_after=1.5)},
                      DrillShape(deadline="1s"),
                      at={PhaseName.RECOVER: harness.interrupt})

    assert run.result.outcome is Outcome.ABORTED
    assert run.result.message == "interrupted (SIGINT)"
