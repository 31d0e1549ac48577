"""What every phase playbook receives, and what the engine takes from inject's report."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from dalp_dr.spec import PhaseName
from tests.fakes import Play
from tests.unit.engine.harness import EngineHarness, Run, failover


def test_facts_a_phase_publishes_reach_the_later_phases(passed_run: Run) -> None:
    """inject published dalp_lost_leader, dalp_notes (a report about itself) and other"""
    for later in (PhaseName.RECOVER, PhaseName.VERIFY, PhaseName.STEADY_STATE):
        extravars = passed_run.runner.call(later).extravars
        assert extravars["dalp_lost_leader"] == "db1"
        assert "dalp_notes" not in extravars and "other" not in extravars
    assert "dalp_lost_leader" not in passed_run.runner.call(PhaseName.PREFLIGHT).extravars
    assert passed_run.phase(PhaseName.INJECT).report["dalp_notes"] == "only about inject"


def test_every_phase_gets_the_run_and_its_objectives(passed_run: Run) -> None:
    assert passed_run.runner.phases == [PhaseName.PREFLIGHT, PhaseName.INJECT,
                                        PhaseName.RECOVER, PhaseName.VERIFY,
                                        PhaseName.STEADY_STATE]
    for call in passed_run.runner.calls:
        assert call.extravars["dalp_run_id"] == passed_run.result.run_id
        assert call.extravars["dalp_phase"] == call.phase.value
        assert call.extravars["dalp_rto_seconds"] == 30.0
        assert call.extravars["dalp_evidence_dir"] == str(
            (passed_run.evidence / "files" / call.phase.value).resolve())
        assert call.cancellable is (call.phase is not PhaseName.STEADY_STATE)


def test_the_fault_instant_is_the_one_inject_reported(passed_run: Run) -> None:
    reported = passed_run.runner.call(PhaseName.INJECT).artifact_data["dalp_fault_instant"]
    assert passed_run.result.measurements is not None
    assert passed_run.result.measurements.fault_at == datetime.fromtimestamp(reported, UTC)


def test_without_a_report_the_fault_is_at_the_inject_playbook_start(
        harness: EngineHarness) -> None:
    run = harness.run({**failover(harness.endpoint),
                       PhaseName.INJECT: Play(effect=harness.endpoint.fail, takes=0.02)})

    m, inject = run.result.measurements, run.phase(PhaseName.INJECT)
    assert m is not None and m.fault_at is not None
    # the playbook's start on the run's timeline: the earliest the fault can have been
    assert inject.started_at <= m.fault_at <= inject.started_at + timedelta(seconds=0.01)
