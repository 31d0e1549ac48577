"""A simulated fault (a managed database's restore drill: inject reports
``dalp_fault_simulated``, the clients' database is never touched): RTO and RPO are judged on
the restore's own figures, never on the clients' heartbeat, which saw nothing."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from dalp_dr.results import Basis, Outcome, Status
from dalp_dr.spec import PhaseName
from tests.fakes import Play
from tests.unit.engine.harness import DrillShape, EngineHarness

RESTORE = DrillShape(topology="cloud-native", scenario="restore")
"""the shape of a managed database's restore drill (drills/examples/rds-pitr-restore.yaml)"""


def simulated_restore(**restore: Any) -> dict[PhaseName, Play]:
    """Inject touches nothing and says so; recover takes 0.3 s and reports the restore."""
    return {PhaseName.INJECT: Play(reports_fault_instant=True,
                                   report={"dalp_fault_simulated": True}),
            PhaseName.RECOVER: Play(takes=0.3, report={"dalp_restore": restore})}


def test_the_restore_time_and_bound_are_judged_not_the_untouched_clients(
        harness: EngineHarness) -> None:
    run = harness.run(simulated_restore(data_loss_bound=1.5), replace(RESTORE, rpo="5s"))

    assert run.result.outcome is Outcome.PASSED
    m = run.result.measurements
    assert m is not None and m.basis is Basis.RESTORE
    assert m.fault_at is not None and m.verified_at is not None
    # fault -> restored database verified (recover alone took 0.3 s), not the clients' ~0
    assert m.recovery_time == round((m.verified_at - m.fault_at).total_seconds(), 6)
    assert m.recovery_time >= 0.3
    assert m.data_loss_window == 1.5 and m.lost_writes is None
    rto, rpo = run.verdict("rto"), run.verdict("rpo")
    assert rto.status is Status.MET and rto.reason.startswith("restore time")
    assert rpo.status is Status.MET and rpo.measured == 1.5 and rpo.margin == 3.5
    assert rpo.reason.startswith("data-loss bound")


def test_a_restored_point_older_than_the_rpo_is_missed(harness: EngineHarness) -> None:
    run = harness.run(simulated_restore(data_loss_bound="600.0"), replace(RESTORE, rpo="5m"))

    assert run.result.outcome is Outcome.MISSED
    rpo = run.verdict("rpo")
    assert rpo.status is Status.MISSED and rpo.measured == 600.0 and rpo.margin == -300.0


def test_no_restored_point_reported_is_not_a_pass(harness: EngineHarness) -> None:
    """The clients lost nothing (their database was never touched): that is no evidence of
    the restore's data loss."""
    run = harness.run(simulated_restore(), RESTORE)

    assert run.result.outcome is Outcome.INCONCLUSIVE
    m = run.result.measurements
    assert m is not None and m.basis is Basis.RESTORE and m.data_loss_window is None
    assert run.verdict("rpo").status is Status.UNKNOWN


def test_a_real_fault_is_still_measured_from_the_clients(harness: EngineHarness) -> None:
    plays = simulated_restore(data_loss_bound=600.0)
    plays[PhaseName.INJECT] = Play(effect=harness.endpoint.fail, reports_fault_instant=True)
    plays[PhaseName.RECOVER] = Play(effect=harness.endpoint.recover,
                                    report={"dalp_restore": {"data_loss_bound": 600.0}})
    run = harness.run(plays, DrillShape(rpo="5s"))

    m = run.result.measurements
    assert m is not None and m.basis is Basis.CLIENTS
    assert run.verdict("rpo").reason.startswith("data-loss window")


@pytest.mark.parametrize("bound", [False, True, "inf", "nan", -5.0, "soon", [1.0]])
def test_a_bound_that_is_not_a_number_of_seconds_is_no_evidence(
        harness: EngineHarness, bound: Any) -> None:
    """What a playbook published is data: a boolean, an infinity, a negative or a word is
    not a data-loss bound, and never reads as a met RPO."""
    run = harness.run(simulated_restore(data_loss_bound=bound), RESTORE)

    m = run.result.measurements
    assert m is not None and m.data_loss_window is None
    assert run.verdict("rpo").status is Status.UNKNOWN


def test_the_clients_own_recovery_stays_theirs_on_the_timeline(
        harness: EngineHarness) -> None:
    """The restore's recovery time is the restore's; no client write is claimed for it."""
    run = harness.run(simulated_restore(data_loss_bound=0.0), RESTORE)

    m = run.result.measurements
    assert m is not None and m.verified_at is not None and m.recovered_at != m.verified_at
