"""A recover playbook that waits for the fault is started before inject and held at the
fault barrier: released when inject has reported the fault (the measured recovery is then
the procedure's, not Ansible's start-up), abandoned when the drill stops before a fault."""

from __future__ import annotations

from datetime import UTC, datetime

from dalp_dr.results import Outcome, PhaseStatus
from dalp_dr.spec import PhaseName
from tests.fakes import Play, RunnerStatus
from tests.unit.engine.harness import DrillShape, EngineHarness, failover

HELD = DrillShape(held_recover=True)


def test_a_held_recover_starts_before_inject_and_acts_only_after_the_fault(
        harness: EngineHarness) -> None:
    run = harness.run(failover(harness.endpoint, down_for=0.2), HELD)

    assert run.result.outcome is Outcome.PASSED, run.result.message
    inject, recover = run.runner.call(PhaseName.INJECT), run.runner.call(PhaseName.RECOVER)
    fault = datetime.fromtimestamp(inject.artifact_data["dalp_fault_instant"], UTC)
    record = run.phase(PhaseName.RECOVER)
    held_since = datetime.fromisoformat(record.report["held_since"])
    assert held_since < inject.started_at  # started ahead ...
    assert recover.released_at is not None and recover.released_at > fault  # ... held
    assert recover.status is RunnerStatus.SUCCESSFUL
    # the phase's record starts at the release
    assert record.status is PhaseStatus.OK and record.started_at >= fault
    kinds = run.journal_kinds()
    assert kinds.index("phase.held") < kinds.index("fault.injected")
    assert "phase.abandoned" not in kinds


def test_the_release_hands_over_the_fault_and_what_inject_published(
        harness: EngineHarness) -> None:
    plays = failover(harness.endpoint)
    plays[PhaseName.INJECT] = Play(effect=harness.endpoint.fail, reports_fault_instant=True,
                                   report={"dalp_old_leader": "db1"})
    run = harness.run(plays, HELD)

    recover = run.runner.call(PhaseName.RECOVER)
    # the extra vars were fixed before inject: what inject published comes at the release
    assert "dalp_old_leader" not in recover.extravars
    assert "dalp_fault_barrier" in recover.extravars
    assert run.result.outcome is Outcome.PASSED, run.result.message


def test_the_recovery_timeline_shows_when_recover_started(harness: EngineHarness) -> None:
    held = harness.run(failover(harness.endpoint), HELD)
    assert held.result.timeline is not None
    (started,) = [e for e in held.result.timeline if e.name == "recover started"]
    assert started.detail is not None and "fault barrier" in started.detail
    assert started.at == held.phase(PhaseName.RECOVER).started_at


def test_inject_failing_before_the_fault_abandons_the_held_recover(
        harness: EngineHarness) -> None:
    run = harness.run({PhaseName.INJECT: Play(status=RunnerStatus.FAILED,
                                              failure_message="could not kill"),
                       PhaseName.RECOVER: Play(effect=harness.endpoint.recover)}, HELD)

    assert run.result.outcome is Outcome.FAILED
    recover = run.runner.call(PhaseName.RECOVER)
    assert recover.status is RunnerStatus.FAILED  # its wait failed: it did nothing
    assert harness.endpoint.timeline == 1  # never promoted
    assert PhaseName.RECOVER not in [p.phase for p in run.result.phases]
    assert run.journal_kinds().count("phase.abandoned") == 1
    # and it was over before steady state began
    steady = run.runner.call(PhaseName.STEADY_STATE)
    assert recover.released_at is not None and recover.released_at <= steady.started_at
    assert run.result.steady_state_restored is True


def test_an_interrupt_during_inject_abandons_the_held_recover(harness: EngineHarness) -> None:
    run = harness.run({**failover(harness.endpoint, down_for=0.2)}, HELD,
                      at={PhaseName.INJECT: harness.interrupt})

    assert run.result.outcome is Outcome.ABORTED
    recover = run.runner.call(PhaseName.RECOVER)
    assert recover.status is RunnerStatus.FAILED and harness.endpoint.timeline == 1
    assert run.runner.phases[-1] is PhaseName.STEADY_STATE


def test_a_recover_playbook_that_does_not_wait_for_the_fault_runs_after_inject(
        harness: EngineHarness) -> None:
    run = harness.run(failover(harness.endpoint))

    inject, recover = run.runner.call(PhaseName.INJECT), run.runner.call(PhaseName.RECOVER)
    assert recover.started_at > inject.started_at and recover.released_at is None
    assert "dalp_fault_barrier" not in recover.extravars
    assert "held_since" not in run.phase(PhaseName.RECOVER).report


def test_the_release_comes_as_inject_reports_the_fault_not_when_its_playbook_ends(
        harness: EngineHarness) -> None:
    """Inject's playbook runs on 0.5 s after its set_stats event (teardown)."""
    run = harness.run(failover(harness.endpoint, down_for=0.5), HELD)

    assert run.result.outcome is Outcome.PASSED, run.result.message
    recover = run.runner.call(PhaseName.RECOVER)
    inject_record = run.phase(PhaseName.INJECT)
    assert recover.released_at is not None and recover.released_at < inject_record.ended_at
    assert run.phase(PhaseName.RECOVER).started_at < inject_record.ended_at
    assert harness.endpoint.timeline == 2  # promoted by the held recover


def test_inject_failing_after_its_fault_report_stops_the_released_recover(
        harness: EngineHarness) -> None:
    """The fault was reported (the recover already released), then inject's playbook
    failed: the drill fails as before, the recover is stopped and not recorded, steady
    state runs after it is over."""
    run = harness.run({
        PhaseName.INJECT: Play(status=RunnerStatus.FAILED, effect=harness.endpoint.fail,
                               reports_fault_instant=True, takes=0.3,
                               failure_message="a later inject task failed"),
        PhaseName.RECOVER: Play(effect=harness.endpoint.recover, takes=5.0)}, HELD)

    assert run.result.outcome is Outcome.FAILED
    recover = run.runner.call(PhaseName.RECOVER)
    assert recover.status is RunnerStatus.CANCELED
    assert PhaseName.RECOVER not in [p.phase for p in run.result.phases]
    assert run.journal_kinds().count("phase.abandoned") == 1
    assert run.runner.phases[-1] is PhaseName.STEADY_STATE
    assert run.result.steady_state_restored is True


def test_a_playbook_cannot_claim_it_was_held(harness: EngineHarness) -> None:
    plays = failover(harness.endpoint)
    plays[PhaseName.RECOVER] = Play(effect=harness.endpoint.recover,
                                    report={"held_since": "2000-01-01T00:00:00+00:00"})
    run = harness.run(plays)

    assert "held_since" not in run.phase(PhaseName.RECOVER).report
    assert run.result.timeline is not None
    (started,) = [e for e in run.result.timeline if e.name == "recover started"]
    assert started.detail is not None and "fault barrier" not in started.detail
