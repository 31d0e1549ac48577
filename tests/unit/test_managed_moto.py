"""Managed-database adapters against moto's in-process RDS API.

AWS RDS and Aurora cannot run here; moto stands in for the API, and every test name says
so. moto's RebootDBInstance ignores ForceFailover (nothing moves), which is exactly the
"reboot that did not fail over" case; where a test needs AWS's real Multi-AZ behaviour
(rebooting, then available in the other zone) it scripts that into moto's backend between
polls and says so in its name.
"""

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.config import Config
from moto import mock_aws

from dalp_dr.errors import InventoryError, ManagedDbError, TargetUnreachable
from dalp_dr.managed import open_managed, wait_for_failover

REGION = "us-east-1"


@pytest.fixture
def rds() -> Iterator[Any]:
    with mock_aws():
        yield boto3.client("rds", region_name=REGION)


def moto_instance(identifier: str) -> Any:
    from moto.core.models import DEFAULT_ACCOUNT_ID
    from moto.rds.models import rds_backends

    return rds_backends[DEFAULT_ACCOUNT_ID][REGION].databases[identifier]


def create_instance(rds: Any, identifier: str = "dalp-db", *, multi_az: bool = True) -> None:
    rds.create_db_instance(DBInstanceIdentifier=identifier, Engine="postgres",
                           DBInstanceClass="db.m6g.large", MasterUsername="dalp",
                           MasterUserPassword="not-a-real-secret-1", AllocatedStorage=20,
                           MultiAZ=multi_az, AvailabilityZone=f"{REGION}a")


def create_aurora(rds: Any, identifier: str = "dalp-aurora", readers: int = 1) -> None:
    rds.create_db_cluster(DBClusterIdentifier=identifier, Engine="aurora-postgresql",
                          MasterUsername="dalp", MasterUserPassword="not-a-real-secret-1")
    for i in range(readers + 1):
        rds.create_db_instance(DBInstanceIdentifier=f"{identifier}-{i}",
                               DBClusterIdentifier=identifier, Engine="aurora-postgresql",
                               DBInstanceClass="db.r6g.large")


class FakeClock:
    """Time that passes only when the wait sleeps."""

    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds

    def __call__(self) -> float:
        return self.now


def test_rds_multi_az_preflight_on_moto(rds: Any) -> None:
    create_instance(rds)
    create_instance(rds, "single", multi_az=False)
    db = open_managed("rds-multi-az", "dalp-db", client=rds)
    state = db.state()
    assert state.available and state.multi_az and state.writer == f"{REGION}a"
    assert db.preflight(state) == []
    single = open_managed("rds-multi-az", "single", client=rds)
    problems = single.preflight(single.state())
    assert len(problems) == 1 and "not Multi-AZ" in problems[0]


def test_rds_forced_failover_on_moto_simulating_aws_zone_swap(rds: Any) -> None:
    create_instance(rds)
    db = open_managed("rds-multi-az", "dalp-db", client=rds)
    before = db.state()
    db.failover(before)
    # what AWS does after RebootDBInstance(ForceFailover): rebooting, then the standby's zone
    script = [("rebooting", f"{REGION}a"), ("rebooting", f"{REGION}b"),
              ("available", f"{REGION}b")]

    def aws_moves_on(_seconds: float) -> None:
        status, zone = script.pop(0) if script else ("available", f"{REGION}b")
        instance = moto_instance("dalp-db")
        instance.status, instance.availability_zone = status, zone

    aws_moves_on(0)
    watch = wait_for_failover(db, before, timeout=60, poll=5, sleep=aws_moves_on)
    assert watch.completed and watch.final.writer == f"{REGION}b"
    assert [(t.status, t.writer) for t in watch.transitions] == [
        ("rebooting", f"{REGION}a"), ("rebooting", f"{REGION}b"), ("available", f"{REGION}b")]


def test_rds_reboot_that_stays_in_its_zone_is_not_a_failover_on_moto(rds: Any) -> None:
    """moto's RebootDBInstance ignores ForceFailover: the primary never leaves its zone."""
    create_instance(rds)
    db = open_managed("rds-multi-az", "dalp-db", client=rds)
    before = db.state()
    db.failover(before)
    clock = FakeClock()
    watch = wait_for_failover(db, before, timeout=30, poll=10, sleep=clock.sleep, clock=clock)
    assert not watch.completed and watch.final.writer == before.writer
    assert watch.transitions == [] and clock.slept == [10, 10, 10] and watch.waited == 30


def test_aurora_failover_on_moto_moves_the_writer(rds: Any) -> None:
    create_aurora(rds, readers=2)
    db = open_managed("aurora", "dalp-aurora", client=rds)
    before = db.state()
    assert before.writer == "dalp-aurora-0" and len(before.members) == 3
    assert db.preflight(before) == []
    db.failover(before, target="dalp-aurora-2")
    watch = wait_for_failover(db, before, target="dalp-aurora-2", timeout=10, poll=1,
                              sleep=lambda _s: None)
    assert watch.completed and watch.final.writer == "dalp-aurora-2"
    assert [t.writer for t in watch.transitions] == ["dalp-aurora-2"]
    # the same state is not a completed failover towards a different target
    assert not db.failed_over(before, watch.final, "dalp-aurora-1")


def test_aurora_without_a_reader_fails_preflight_on_moto(rds: Any) -> None:
    create_aurora(rds, readers=0)
    db = open_managed("aurora", "dalp-aurora", client=rds)
    assert any("no reader" in p for p in db.preflight(db.state()))
    with pytest.raises(ManagedDbError, match="FailoverDBCluster"):
        db.failover(db.state())


def test_unknown_database_is_a_managed_db_error_on_moto(rds: Any) -> None:
    with pytest.raises(ManagedDbError, match="DBInstanceNotFound"):
        open_managed("rds-multi-az", "nope", client=rds).state()
    with pytest.raises(ManagedDbError, match="DBClusterNotFound"):
        open_managed("aurora", "nope", client=rds).state()


def test_unreachable_api_is_target_unreachable() -> None:
    client = boto3.client("rds", region_name=REGION, endpoint_url="http://127.0.0.1:9",
                          aws_access_key_id="x", aws_secret_access_key="y",
                          config=Config(retries={"max_attempts": 1}, connect_timeout=1))
    with pytest.raises(TargetUnreachable, match="DescribeDBInstances"):
        open_managed("rds-multi-az", "dalp-db", client=client).state()


def test_unknown_kind_names_the_inventory_field() -> None:
    with pytest.raises(InventoryError, match="dalp_managed_kind"):
        open_managed("cosmos", "x")
