"""Evidence never stops a drill (issue 18): when the evidence directory cannot be written,
no fault is injected; once one is, steady state still runs, and the run is not passed."""

from __future__ import annotations

import shutil
from pathlib import Path

from dalp_dr.results import Outcome, PhaseStatus
from dalp_dr.spec import PhaseName
from tests.unit.engine.harness import EngineHarness, failover


def break_the_journal(results: Path) -> None:
    """The run's journal directory becomes a file: every later record fails to write (as on
    a full or read-only results filesystem)."""
    (run,) = [p for p in results.iterdir() if p.is_dir()]
    shutil.rmtree(run / "journal")
    (run / "journal").write_text("")


def test_evidence_lost_after_the_fault_still_restores_and_fails_the_run(
        harness: EngineHarness) -> None:
    run = harness.run(failover(harness.endpoint),
                      at={PhaseName.VERIFY: lambda: break_the_journal(harness.results)})

    assert run.runner.phases[-1] is PhaseName.STEADY_STATE
    assert run.phase(PhaseName.STEADY_STATE).status is PhaseStatus.OK
    assert run.result.steady_state_restored is True
    assert run.result.outcome is Outcome.FAILED  # every objective met, but unproven
    assert "evidence not written to" in (run.result.message or "")
    assert "lost" in (run.result.message or "")
    assert run.stored.outcome is Outcome.FAILED


def test_evidence_that_cannot_be_written_before_the_fault_injects_nothing(
        harness: EngineHarness) -> None:
    run = harness.run(failover(harness.endpoint),
                      at={PhaseName.BASELINE: lambda: break_the_journal(harness.results)})

    assert run.result.outcome is Outcome.PREFLIGHT_FAILED
    assert PhaseName.INJECT not in run.runner.phases
    assert PhaseName.STEADY_STATE not in run.runner.phases
    assert "no fault injected: evidence not written to" in (run.result.message or "")
