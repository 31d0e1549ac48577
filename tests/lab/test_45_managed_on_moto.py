"""The managed-database drill playbooks (playbooks/managed/) run by Ansible against moto.

AWS RDS and Aurora cannot run here: a moto server on loopback stands in for the RDS API
(test names say so). moto's FailoverDBCluster moves the Aurora writer, so the Aurora drill
phases run end to end; moto's RebootDBInstance ignores ForceFailover, so an RDS Multi-AZ
"failover" never moves zone there, which is exactly what recover must refuse to call a
recovery.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
import yaml

from dalp_dr.adapters.ansible import AnsibleRunner
from tests.lab.helpers import ROOT, moto_server

# one lab per pytest-xdist worker at a time (see tests/conftest.py)
pytestmark = pytest.mark.xdist_group("managed")

PLAYBOOKS = ROOT / "playbooks" / "managed"
REGION = "us-east-1"


@pytest.fixture(scope="module")
def moto_rds() -> Iterator[str]:
    with moto_server() as url:
        yield url


@pytest.fixture(autouse=True)
def fake_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in (("AWS_ACCESS_KEY_ID", "testing"), ("AWS_SECRET_ACCESS_KEY", "testing"),
                        ("AWS_DEFAULT_REGION", REGION)):
        monkeypatch.setenv(name, value)


def inventory(tmp_path: Path, url: str, kind: str, identifier: str, **extra: Any) -> Path:
    path = tmp_path / f"{kind}-{identifier}.yml"
    path.write_text(yaml.safe_dump({"all": {
        "vars": {"dalp_managed_kind": kind, "dalp_managed_identifier": identifier,
                 "dalp_managed_region": REGION, "dalp_managed_endpoint_url": url,
                 "dalp_managed_poll_seconds": 1, **extra},
        "children": {"managed": {"hosts": {"controller": {
            "ansible_connection": "local",
            "ansible_python_interpreter": "{{ ansible_playbook_python }}"}}}}}}))
    return path


def run(playbook: str, inv: Path, tmp_path: Path, **extravars: Any) -> Any:
    return AnsibleRunner(workdir=tmp_path).run(PLAYBOOKS / playbook, inv, extravars=extravars,
                                              timeout=120)


def test_aurora_failover_phases_on_moto_server(moto_rds: str, tmp_path: Path) -> None:
    rds = boto3.client("rds", region_name=REGION, endpoint_url=moto_rds)
    rds.create_db_cluster(DBClusterIdentifier="dalp-aurora", Engine="aurora-postgresql",
                          MasterUsername="dalp", MasterUserPassword="not-a-real-secret-1")
    for i in range(3):
        rds.create_db_instance(DBInstanceIdentifier=f"dalp-aurora-{i}", Engine="aurora-postgresql",
                               DBClusterIdentifier="dalp-aurora", DBInstanceClass="db.r6g.large")
    inv = inventory(tmp_path, moto_rds, "aurora", "dalp-aurora",
                    dalp_managed_target="dalp-aurora-2")

    pre = run("preflight.yml", inv, tmp_path)
    assert pre.ok, pre.describe_failure()
    assert pre.artifact_data["dalp_preflight"]["writer"] == "dalp-aurora-0"

    inject = run("inject-failover.yml", inv, tmp_path)
    assert inject.ok, inject.describe_failure()
    facts = {k: v for k, v in inject.artifact_data.items() if k != "dalp_notes"}
    fault = float(facts["dalp_fault_instant"])
    assert inject.started_at.timestamp() <= fault <= inject.ended_at.timestamp()

    recover = run("recover-wait.yml", inv, tmp_path, dalp_recover_wait_seconds=20, **facts)
    assert recover.ok, recover.describe_failure()
    after = recover.artifact_data["dalp_managed_after"]
    assert after["writer"] == "dalp-aurora-2" and after["status"] == "available"
    assert any("writer dalp-aurora-2" in e["event"]
               for e in recover.artifact_data["dalp_timeline"])

    verify = run("verify.yml", inv, tmp_path, dalp_verify_settle_seconds=0,
                 dalp_managed_after=after, **facts)
    assert verify.ok, verify.describe_failure()
    steady = run("steady-state.yml", inv, tmp_path)
    assert steady.ok and steady.artifact_data["dalp_steady_state"]["status"] == "available"

    # a writer that moves back before verify is a failed drill, not a recovery
    rds.failover_db_cluster(DBClusterIdentifier="dalp-aurora",
                            TargetDBInstanceIdentifier="dalp-aurora-0")
    reverted = run("verify.yml", inv, tmp_path, dalp_verify_settle_seconds=0,
                   dalp_managed_after=after, **facts)
    assert not reverted.ok
    assert "writer dalp-aurora-0" in (reverted.failure_message or "")


def test_rds_multi_az_reboot_that_does_not_move_fails_recover_on_moto_server(
        moto_rds: str, tmp_path: Path) -> None:
    rds = boto3.client("rds", region_name=REGION, endpoint_url=moto_rds)
    rds.create_db_instance(DBInstanceIdentifier="dalp-db", Engine="postgres", MultiAZ=True,
                           DBInstanceClass="db.m6g.large", MasterUsername="dalp",
                           MasterUserPassword="not-a-real-secret-1", AllocatedStorage=20,
                           AvailabilityZone=f"{REGION}a")
    rds.create_db_instance(DBInstanceIdentifier="single", Engine="postgres", MultiAZ=False,
                           DBInstanceClass="db.m6g.large", MasterUsername="dalp",
                           MasterUserPassword="not-a-real-secret-1", AllocatedStorage=20)
    inv = inventory(tmp_path, moto_rds, "rds-multi-az", "dalp-db")
    assert run("preflight.yml", inv, tmp_path).ok

    refused = run("preflight.yml", inventory(tmp_path, moto_rds, "rds-multi-az", "single"),
                  tmp_path)
    assert not refused.ok and "not Multi-AZ" in (refused.failure_message or "")

    inject = run("inject-failover.yml", inv, tmp_path)
    assert inject.ok, inject.describe_failure()
    facts = {k: v for k, v in inject.artifact_data.items() if k != "dalp_notes"}
    recover = run("recover-wait.yml", inv, tmp_path, dalp_recover_wait_seconds=3, **facts)
    assert not recover.ok
    assert "did not fail over within 3 s" in (recover.failure_message or "")
    assert recover.artifact_data["dalp_managed_after"]["writer"] == f"{REGION}a"
