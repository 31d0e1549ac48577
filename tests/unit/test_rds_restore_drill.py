"""The RDS point-in-time restore drill as a drill file: a cloud-native restore scenario whose
playbooks exist, and whose restore target is the engine's (handed to recover)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from dalp_dr.errors import SpecError
from dalp_dr.spec import PhaseName, Scenario, Topology, load_drill, parse_drill

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "drills" / "examples" / "rds-pitr-restore.yaml"


def test_the_example_rds_pitr_drill_is_a_cloud_native_restore() -> None:
    loaded = load_drill(EXAMPLE)
    spec = loaded.spec
    assert (spec.topology, spec.scenario) == (Topology.CLOUD_NATIVE, Scenario.RESTORE)
    assert spec.restore is not None and spec.restore.target.latest
    assert {p.name for p in loaded.playbooks.values()} == {
        f"rds-restore-{name}.yml"
        for name in ("preflight", "inject", "recover", "verify", "steady-state")}
    assert all(p.is_file() for p in loaded.playbooks.values())
    assert loaded.inventory.is_file()
    # the restore's own time is judged as the RTT (fault -> restored instance verified)
    assert spec.objectives.rtt is not None
    verify = loaded.phase(PhaseName.VERIFY)
    assert verify is not None and verify.vars == {"dalp_rds_endpoint_check": "required"}


def test_a_restore_target_before_the_fault_is_accepted_for_cloud_native() -> None:
    text = EXAMPLE.read_text().replace("  target: latest", "  target: {before_fault: 15m}")
    spec = parse_drill(text, source="x")
    assert spec.restore is not None
    assert spec.restore.target.before_fault == timedelta(minutes=15)


def test_cloud_native_restore_still_refuses_a_restore_block_on_failover() -> None:
    text = EXAMPLE.read_text().replace("scenario: restore", "scenario: failover")
    with pytest.raises(SpecError) as caught:
        parse_drill(text, source="x")
    assert caught.value.field == "restore"


def test_the_data_loss_bound_is_what_the_backups_held_at_the_fault() -> None:
    """The source is untouched and keeps shipping its logs after the (simulated) fault: a
    restore to the latest point that starts later may hold data past the fault, which a
    real loss at the fault could not. The bound is from what the backups held at the fault."""
    from datetime import UTC, datetime

    from dalp_dr.managed.restore_models import RestoreRequest

    fault = datetime(2026, 12, 1, 3, 0, 0, tzinfo=UTC)
    latest = RestoreRequest(source="db", target="db-pitr-x", requested_at=fault, seconds=0.1,
                            latest_restorable_at_start=fault + timedelta(seconds=20),
                            restore_time=None)
    assert latest.data_loss_bound(fault) == 0.0  # what the restored instance holds
    held = fault - timedelta(minutes=4)  # RDS ships logs every 5 minutes
    assert latest.data_loss_bound(fault, held) == 240.0
    target = latest.model_copy(update={"restore_time": fault - timedelta(minutes=15)})
    assert target.data_loss_bound(fault, held) == 900.0  # a target: the target is the bound
