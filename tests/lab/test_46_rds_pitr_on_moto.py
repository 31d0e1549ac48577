"""The RDS point-in-time restore drill (playbooks/managed/rds-restore-*.yml) end to end
through `dalp-dr drill run`, with a moto server on loopback standing in for the RDS API.

AWS RDS cannot run here. moto restores at once and has no PostgreSQL behind its endpoints,
so these drills verify the restored instance through the RDS API only
(dalp_rds_endpoint_check: off), except where a test requires the endpoint to make verify
fail. The clients' heartbeat goes to a throwaway PostgreSQL (port 55470) standing in for
the source instance's endpoint, which the drill does not touch: the fault is simulated.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
import yaml

from tests.lab.helpers import LABS, ROOT, moto_server, postgres_server, run_json

# one lab per pytest-xdist worker at a time (see tests/conftest.py)
pytestmark = pytest.mark.xdist_group("managed")

PLAYBOOKS = ROOT / "playbooks" / "managed"
REGION = "us-east-1"
SERVICE_PORT = 55470
"""the throwaway PostgreSQL the heartbeat writes to (the source instance's stand-in)"""


@pytest.fixture(scope="module")
def moto_rds() -> Iterator[str]:
    with moto_server() as url:
        yield url


@pytest.fixture(scope="module")
def service() -> Iterator[str]:
    with postgres_server(LABS / "rds-pitr-service", SERVICE_PORT, ("dalp",)):
        yield f"host=127.0.0.1 port={SERVICE_PORT} dbname=dalp user=postgres connect_timeout=2"


@pytest.fixture(autouse=True)
def fake_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in (("AWS_ACCESS_KEY_ID", "testing"), ("AWS_SECRET_ACCESS_KEY", "testing"),
                        ("AWS_DEFAULT_REGION", REGION)):
        monkeypatch.setenv(name, value)


def rds(url: str) -> Any:
    return boto3.client("rds", region_name=REGION, endpoint_url=url)


def create_source(url: str, identifier: str, *, retention: int = 7) -> None:
    rds(url).create_db_instance(
        DBInstanceIdentifier=identifier, Engine="postgres", DBInstanceClass="db.m6g.large",
        MasterUsername="dalp", MasterUserPassword="not-a-real-secret-1", AllocatedStorage=20,
        BackupRetentionPeriod=retention)


def instances(url: str) -> set[str]:
    return {d["DBInstanceIdentifier"] for d in rds(url).describe_db_instances()["DBInstances"]}


def restored(url: str) -> set[str]:
    """The instances restore drills created (and must have deleted)."""
    return {i for i in instances(url) if "-pitr-" in i}


def drill(tmp_path: Path, url: str, dsn: str, source: str, *, endpoint_check: str = "off",
          restore: str = "latest", rpo: str = "5m") -> Path:
    (tmp_path / "inventory.yml").write_text(yaml.safe_dump({"all": {
        "vars": {"dalp_lab": True, "dalp_managed_identifier": source,
                 "dalp_managed_region": REGION, "dalp_managed_endpoint_url": url,
                 "dalp_managed_poll_seconds": 1, "dalp_service_dsn": dsn},
        "children": {"managed": {"hosts": {"controller": {
            "ansible_connection": "local",
            "ansible_python_interpreter": "{{ ansible_playbook_python }}"}}}}}}))

    def phase(name: str, timeout: str = "2m", **extra: Any) -> dict[str, Any]:
        return {"playbook": str(PLAYBOOKS / f"rds-restore-{name}.yml"), "timeout": timeout,
                **({"vars": extra} if extra else {})}

    path = tmp_path / "drill.yaml"
    path.write_text(yaml.safe_dump({
        "name": f"rds-pitr-{source}", "topology": "cloud-native", "scenario": "restore",
        "environment": f"lab-rds-pitr-{source}", "owner": "lab",
        "objectives": {"rto": "30s", "rpo": rpo, "rtt": "5m"},
        "inventory": "inventory.yml", "endpoint": {"from_inventory": "dalp_service_dsn"},
        "workload": {"heartbeat_interval": "100ms", "baseline": "2s", "observe": "1s"},
        "restore": {"target": yaml.safe_load(restore)},
        "phases": {"preflight": phase("preflight"), "inject": phase("inject"),
                   "recover": phase("recover", dalp_restore_wait_seconds=60),
                   "verify": phase("verify", dalp_rds_endpoint_check=endpoint_check),
                   "steady_state": phase("steady-state", dalp_delete_wait_seconds=60)}}))
    return path


def phase_of(result: dict[str, Any], name: str) -> dict[str, Any]:
    found: dict[str, Any] = next(p for p in result["phases"] if p["phase"] == name)
    return found


def steps(result: dict[str, Any]) -> dict[str, float]:
    return {s["step"]: float(s["seconds"]) for p in result["phases"]
            for s in p["report"].get("dalp_phase_timings", [])}


def test_rds_pitr_drill_passes_end_to_end_on_moto_server(
        moto_rds: str, service: str, tmp_path: Path) -> None:
    create_source(moto_rds, "dalp-src")
    code, result, stderr = run_json(drill(tmp_path, moto_rds, service, "dalp-src"),
                                    tmp_path / "results")
    assert code == 0, stderr
    assert result["outcome"] == "passed", result["message"]
    target = f"dalp-src-pitr-{result['run_id'].lower()}"
    restore = phase_of(result, "recover")["report"]["dalp_restore"]
    assert restore["target"] == target and restore["recovery_target_time"] == "latest"
    fault = result["measurements"]["fault_at"]
    # the restored time is the source's LatestRestorableTime when the restore started (moto:
    # always "now", so after the simulated fault: nothing before it is lost)
    assert restore["restored_time"] == restore["latest_restorable_at_start"]
    assert restore["data_loss_bound"] == 0.0 and fault is not None
    # judged on the restore (the source was never touched): fault -> restored instance
    # verified, and the restored point's distance from the fault
    m = result["measurements"]
    assert m["basis"] == "restore" and m["data_loss_window"] == 0.0
    assert m["recovery_time"] > 0
    verdicts = {v["objective"]: v for v in result["verdicts"]}
    assert verdicts["rto"]["reason"].startswith("restore time")
    assert verdicts["rpo"]["reason"].startswith("data-loss bound")
    timed = steps(result)
    assert set(timed) == {"request", "wait-available", "verify", "delete"}
    assert all(seconds >= 0 for seconds in timed.values())
    assert any("verified through the RDS API only" in line
               for line in phase_of(result, "verify")["report"]["dalp_verify"])
    assert phase_of(result, "steady_state")["report"]["dalp_steady_state"] == {
        "deleted": target, "existed": True}
    assert restored(moto_rds) == set()
    assert any(e["name"] == "restored instance available" for e in result["timeline"])


def test_rds_pitr_to_a_time_before_the_fault_on_moto_server(
        moto_rds: str, service: str, tmp_path: Path) -> None:
    """A target before the fault: RestoreTime, the bound is the distance; the clients'
    markers (on the untouched source) are not judged as the restored point in time."""
    create_source(moto_rds, "dalp-src-t")
    code, result, stderr = run_json(
        drill(tmp_path, moto_rds, service, "dalp-src-t", restore="{before_fault: 1s}"),
        tmp_path / "results")
    assert code == 0, stderr
    assert result["outcome"] == "passed", result["message"]
    restore = phase_of(result, "recover")["report"]["dalp_restore"]
    assert restore["restore_time"] == restore["restored_time"] is not None
    assert abs(float(restore["data_loss_bound"]) - 1.0) < 0.01
    assert "point_in_time" not in phase_of(result, "measure")["report"]
    assert restored(moto_rds) == set()


def test_a_restored_point_older_than_the_rpo_misses_it_on_moto_server(
        moto_rds: str, service: str, tmp_path: Path) -> None:
    """The clients lost nothing (their database was never touched); the restore's point is
    10 s before the fault against an RPO of 5 s: missed, and the instance still deleted."""
    create_source(moto_rds, "dalp-src-old")
    code, result, stderr = run_json(
        drill(tmp_path, moto_rds, service, "dalp-src-old", restore="{before_fault: 10s}",
              rpo="5s"), tmp_path / "results")
    assert code == 1, stderr
    assert result["outcome"] == "missed", result["message"]
    rpo = next(v for v in result["verdicts"] if v["objective"] == "rpo")
    assert rpo["status"] == "missed" and abs(rpo["measured"] - 10.0) < 0.01
    assert next(v for v in result["verdicts"] if v["objective"] == "rto")["status"] == "met"
    assert restored(moto_rds) == set()


def test_backups_off_fails_preflight_and_creates_nothing_on_moto_server(
        moto_rds: str, service: str, tmp_path: Path) -> None:
    create_source(moto_rds, "dalp-nobackup", retention=0)
    before = instances(moto_rds)
    code, result, _ = run_json(drill(tmp_path, moto_rds, service, "dalp-nobackup"),
                               tmp_path / "results")
    assert code == 1
    assert result["outcome"] == "preflight_failed"
    pre = phase_of(result, "preflight")
    assert "BackupRetentionPeriod is 0: automated backups are off" in pre["message"]
    assert [p["phase"] for p in result["phases"]] == ["preflight", "steady_state"]
    assert phase_of(result, "steady_state")["status"] == "skipped"
    assert instances(moto_rds) == before


def test_steady_state_deletes_the_restored_instance_after_a_failed_verify_on_moto_server(
        moto_rds: str, service: str, tmp_path: Path) -> None:
    """The drill requires the endpoint to answer as PostgreSQL: moto's does not (no server
    behind it), so verify fails; steady state must delete the restored instance anyway."""
    create_source(moto_rds, "dalp-src-v")
    code, result, _ = run_json(
        drill(tmp_path, moto_rds, service, "dalp-src-v", endpoint_check="required"),
        tmp_path / "results")
    assert code == 1
    assert result["outcome"] == "failed"
    verify = phase_of(result, "verify")
    assert verify["status"] == "failed" and "did not answer" in verify["message"]
    target = f"dalp-src-v-pitr-{result['run_id'].lower()}"
    steady = phase_of(result, "steady_state")
    assert steady["status"] == "ok" and result["steady_state_restored"] is True
    assert steady["report"]["dalp_steady_state"] == {"deleted": target, "existed": True}
    assert target not in instances(moto_rds)
