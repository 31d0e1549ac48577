"""Finding 1, the drill-file half: a phase's ``vars`` tune a playbook; they never say where
or as whom it connects. Ansible connection variables, the inventory contract's hosts, ports,
paths and credentials, and the variables dalp-dr itself passes are refused at validate
(exit 2, naming the file and the variable), so a drill file cannot point a playbook at
another host, port, data directory or binary."""

from __future__ import annotations

import io
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import pytest

from dalp_dr.commands import main
from dalp_dr.errors import SpecError
from dalp_dr.spec import parse_drill
from tests.factories import MINIMAL_DRILL

ROOT = Path(__file__).resolve().parents[2]

DRILL = MINIMAL_DRILL.replace(
    "inject: {playbook: p.yml}",
    "inject: {playbook: p.yml, vars: {dalp_walsender_freeze_ms: 500, VAR: VALUE}}")

README_CONTRACT = {
    "dalp_pg_host", "dalp_pg_port", "dalp_pg_data", "dalp_pg_bin", "dalp_pg_socket_dir",
    "dalp_as_pg", "dalp_db_name", "dalp_app_user", "dalp_app_password",
    "dalp_replication_user", "dalp_route_kind", "dalp_route_host", "dalp_route_port",
    "dalp_route_dir", "dalp_service_dsn", "dalp_lab", "dalp_lab_root", "dalp_production",
}
PASSED_BY_DALP_DR = {
    "dalp_run_id", "dalp_phase", "dalp_rto_seconds", "dalp_rpo_seconds",
    "dalp_baseline_seconds", "dalp_heartbeat_interval_seconds", "dalp_evidence_dir",
    "dalp_recovery_target_time",
}
SHAPED_LIKE_CONNECTION = [
    "ansible_host", "ansible_port", "ansible_user", "ansible_connection",
    "ansible_ssh_common_args", "ansible_become_password", "ansible_python_interpreter",
    "Ansible_Host", "dalp_s3_endpoint_url", "my_port", "backup_host", "wal_dir",
    "pg_data", "dalp_pg_bin", "replica_dsn", "dalp_lab_root", "dalp_managed_endpoint_url",
    "dalp_canary_password", "monitor_user", "dalp_lab_extra_hba", "dalp_max_replay_lag_bytes",
]


def with_var(name: str, value: str = "'x'") -> str:
    return DRILL.replace("VAR: VALUE", f"{name}: {value}")


@pytest.mark.parametrize("name", sorted(README_CONTRACT | PASSED_BY_DALP_DR)
                         + SHAPED_LIKE_CONNECTION + ["hostvars", "groups", "omit"])
def test_reserved_variables_are_refused_at_validate(name: str) -> None:
    with pytest.raises(SpecError) as info:
        parse_drill(with_var(name), source="drills/x.yaml")
    error = info.value
    assert error.source == "drills/x.yaml"
    assert error.field == f"phases.inject.vars.{name}", error
    assert f"'{name}'" in str(error) and "cannot override" in str(error), error


@pytest.mark.parametrize("name", ["bad name", "{{ lookup('pipe', 'id') }}", "1st", "a-b"])
def test_variable_names_are_identifiers(name: str) -> None:
    with pytest.raises(SpecError, match="letters, digits and underscores"):
        parse_drill(with_var(f'"{name}"'), source="drills/x.yaml")


def test_the_reserved_sets_cover_the_documented_contract() -> None:
    from dalp_dr.spec import ENGINE_VARS, INVENTORY_CONTRACT

    assert README_CONTRACT <= INVENTORY_CONTRACT
    assert PASSED_BY_DALP_DR <= ENGINE_VARS


def test_tuning_variables_still_pass() -> None:
    for name, value in (("dalp_lost_site", "site-a"), ("dalp_recover_wait_seconds", "8"),
                        ("dalp_rebuild_derived", "true"), ("dalp_apply_pause_ms", "2000")):
        spec = parse_drill(with_var(name, value), source="drills/x.yaml")
        assert name in spec.phases.inject.vars


def every_drill_file() -> list[Path]:
    return sorted([*ROOT.glob("drills/*.yaml"), *ROOT.glob("drills/examples/*.yaml"),
                   *ROOT.glob("tests/lab/drills/*.yaml")])


@pytest.mark.parametrize("path", every_drill_file(), ids=lambda p: p.name)
def test_no_shipped_drill_uses_a_reserved_variable(path: Path) -> None:
    parse_drill(path.read_text(), source=str(path))


def test_the_cli_refuses_with_exit_2_naming_file_and_variable(tmp_path: Path) -> None:
    drill = tmp_path / "drill.yaml"
    drill.write_text(with_var("ansible_host", "attacker.example"))
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = main(["--results-dir", str(tmp_path / "results"), "drill", "validate",
                     str(drill)])
    assert code == 2, err.getvalue()
    assert str(drill) in err.getvalue() and "phases.inject.vars.ansible_host" in err.getvalue()
    assert not (tmp_path / "results").exists()
