"""The RDS point-in-time restore drill's library (dalp_dr.managed.rds_restore) against moto's
in-process RDS API.

AWS RDS cannot run here; moto stands in for the API (test names say so). moto restores any
instance at once, backups on or off (AWS refuses one without automated backups: the drill's
preflight must), and has no PostgreSQL behind its endpoints. Where a test needs AWS's real
pace (an instance that is still being created), it scripts moto's backend between polls and
says so.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from botocore.config import Config
from moto import mock_aws

from dalp_dr.errors import ManagedDbError, TargetUnreachable
from dalp_dr.managed.rds_restore import (
    RdsRestore,
    delete_and_wait,
    endpoint_answers,
    restored_identifier,
    verify,
    wait_for,
)
from dalp_dr.managed.restore_models import RUN_TAG, EndpointCheck, SourceBackups

REGION = "us-east-1"
RUN = "20261203T180000Z-a1b2c3"


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


def moto_instance(identifier: str) -> Any:
    """moto's own record of an instance (to script what AWS does between polls)."""
    from moto.core.models import DEFAULT_ACCOUNT_ID
    from moto.rds.models import rds_backends

    return rds_backends[DEFAULT_ACCOUNT_ID][REGION].databases[identifier]


@pytest.fixture
def rds() -> Iterator[Any]:
    with mock_aws():
        yield boto3.client("rds", region_name=REGION)


def create_source(rds: Any, identifier: str = "dalp-db", *, retention: int = 7) -> None:
    rds.create_db_instance(DBInstanceIdentifier=identifier, Engine="postgres",
                           DBInstanceClass="db.m6g.large", MasterUsername="dalp",
                           MasterUserPassword="not-a-real-secret-1", AllocatedStorage=20,
                           BackupRetentionPeriod=retention)


def instances(rds: Any) -> set[str]:
    return {d["DBInstanceIdentifier"] for d in rds.describe_db_instances()["DBInstances"]}


def test_restored_identifier_is_derived_from_the_run_and_keeps_rds_rules() -> None:
    assert restored_identifier("dalp-prod", RUN) == "dalp-prod-pitr-20261203t180000z-a1b2c3"
    assert restored_identifier("dalp-prod", RUN) != restored_identifier(
        "dalp-prod", "20261203T180001Z-a1b2c3")
    long = restored_identifier("a-" + "x" * 70, RUN)
    assert len(long) <= 63 and long.endswith("-pitr-20261203t180000z-a1b2c3")
    assert "--" not in restored_identifier("db-" + "-" * 40, RUN)
    with pytest.raises(ManagedDbError):
        restored_identifier("db", "---")


def test_preflight_on_moto_passes_a_source_with_backups(rds: Any) -> None:
    create_source(rds)
    api = RdsRestore("dalp-db", client=rds)
    source = api.source()
    assert source.backup_retention_days == 7 and source.latest_restorable is not None
    assert api.problems(source, rpo_seconds=300,
                        target=restored_identifier("dalp-db", RUN)) == []


def test_preflight_on_moto_refuses_backups_off_naming_the_field(rds: Any) -> None:
    create_source(rds, retention=0)
    api = RdsRestore("dalp-db", client=rds)
    problems = api.problems(api.source(), rpo_seconds=300)
    assert [p.field for p in problems] == ["BackupRetentionPeriod"]
    assert "automated backups are off" in str(problems[0])


def test_preflight_refuses_backups_older_than_the_rpo() -> None:
    now = datetime(2026, 12, 3, 18, 0, tzinfo=UTC)
    source = SourceBackups(identifier="dalp-db", status="available", engine="postgres",
                           backup_retention_days=7,
                           latest_restorable=now - timedelta(seconds=700), observed_at=now)
    api = RdsRestore("dalp-db", client=object())
    problems = api.problems(source, rpo_seconds=600)
    assert [p.field for p in problems] == ["LatestRestorableTime"]
    assert "700 s before now, beyond the RPO of 600 s" in problems[0].message
    assert api.problems(source, rpo_seconds=701) == []
    unavailable = source.model_copy(update={"status": "storage-full",
                                            "latest_restorable": None})
    assert [p.field for p in api.problems(unavailable, rpo_seconds=701)] == [
        "DBInstanceStatus", "LatestRestorableTime"]


def test_restore_on_moto_refuses_an_existing_target(rds: Any) -> None:
    create_source(rds)
    target = restored_identifier("dalp-db", RUN)
    create_source(rds, target)
    api = RdsRestore("dalp-db", client=rds)
    assert [p.field for p in api.problems(api.source(), rpo_seconds=300, target=target)] == [
        "TargetDBInstanceIdentifier"]
    with pytest.raises(ManagedDbError, match="already exists: refusing"):
        api.restore(target, RUN)
    assert moto_instance(target).tags == []  # untouched: not tagged as ours


def test_restore_wait_verify_delete_on_moto(rds: Any) -> None:
    create_source(rds)
    api = RdsRestore("dalp-db", client=rds)
    target = restored_identifier("dalp-db", RUN)
    request = api.restore(target, RUN)
    assert request.restore_time is None and request.latest_restorable_at_start is not None
    assert request.restored_time == request.latest_restorable_at_start
    fault = request.latest_restorable_at_start + timedelta(seconds=42)
    assert request.data_loss_bound(fault) == 42.0
    assert request.data_loss_bound(fault - timedelta(seconds=60)) == 0.0

    clock = FakeClock()
    watch = wait_for(lambda: api.restored(target),
                     lambda now: now is not None and now.status == "available",
                     timeout=60, poll=5, sleep=clock.sleep, clock=clock)
    assert watch.reached and watch.final is not None and watch.final.tags[RUN_TAG] == RUN

    checked, problems = verify(api, target, RUN, endpoint=EndpointCheck.OFF)
    assert problems == [] and checked[0] == "status available"
    assert any("verified through the RDS API only" in c for c in checked)
    # moto has no PostgreSQL behind the endpoint: required, it fails; reported, it passes
    _, required = verify(api, target, RUN, endpoint=EndpointCheck.REQUIRED, timeout=1)
    assert len(required) == 1 and "did not answer" in required[0]
    assert verify(api, target, RUN, endpoint=EndpointCheck.REPORT, timeout=1)[1] == []

    gone = delete_and_wait(api, target, RUN, timeout=60, poll=5, sleep=clock.sleep,
                           clock=clock)
    assert gone.reached and [t.status for t in gone.transitions] == ["available", "gone"]
    assert instances(rds) == {"dalp-db"}
    # nothing restored (again): nothing to delete, no error
    again = delete_and_wait(api, target, RUN, timeout=60, poll=5, sleep=clock.sleep,
                            clock=clock)
    assert again.reached and [t.status for t in again.transitions] == ["gone"]


def test_restore_to_a_target_time_on_moto(rds: Any) -> None:
    create_source(rds)
    api = RdsRestore("dalp-db", client=rds)
    when = datetime.now(UTC) - timedelta(seconds=30)
    request = api.restore(restored_identifier("dalp-db", RUN), RUN, when)
    assert request.restored_time == when
    assert request.data_loss_bound(when + timedelta(seconds=90)) == 90.0


def test_delete_refuses_an_instance_this_run_did_not_create_on_moto(rds: Any) -> None:
    create_source(rds)
    api = RdsRestore("dalp-db", client=rds)
    target = restored_identifier("dalp-db", RUN)
    api.restore(target, "another-run")
    with pytest.raises(ManagedDbError, match=f"does not carry the tag {RUN_TAG}={RUN}"):
        api.delete(target, RUN)
    assert target in instances(rds)


def test_delete_waits_for_an_instance_still_being_created_on_moto_simulating_aws(
        rds: Any) -> None:
    """moto creates at once; AWS takes minutes, and refuses to delete meanwhile."""
    create_source(rds)
    api = RdsRestore("dalp-db", client=rds)
    target = restored_identifier("dalp-db", RUN)
    api.restore(target, RUN)
    moto_instance(target).status = "creating"
    clock = FakeClock()

    def aws_moves_on(seconds: float) -> None:
        clock.sleep(seconds)
        if clock.now >= 20 and target in instances(rds):
            moto_instance(target).status = "available"

    gone = delete_and_wait(api, target, RUN, timeout=120, poll=10, sleep=aws_moves_on,
                           clock=clock)
    # deleted only once available (at 20 s), not while being created
    assert gone.reached and [t.status for t in gone.transitions] == [
        "creating", "available", "gone"]
    assert clock.now == 30


def test_wait_is_a_deadline_not_a_count_of_tries(rds: Any) -> None:
    clock = FakeClock()
    watch = wait_for(lambda: None, lambda now: now is not None, timeout=25, poll=10,
                     sleep=clock.sleep, clock=clock)
    assert not watch.reached and watch.waited == 25 and clock.slept == [10, 10, 5]


def test_endpoint_answers_only_when_postgresql_replies() -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        port = server.getsockname()[1]

        def reply_like_postgres() -> None:
            conn, _ = server.accept()
            with conn:
                conn.recv(8)
                conn.sendall(b"N")

        thread = threading.Thread(target=reply_like_postgres)
        thread.start()
        answered, seen = endpoint_answers("127.0.0.1", port, timeout=5)
        thread.join()
    assert answered and "answered as PostgreSQL" in seen
    answered, seen = endpoint_answers("127.0.0.1", port, timeout=1)  # closed now
    assert not answered and "did not answer" in seen
    assert endpoint_answers(None, None) == (False, "the instance reports no endpoint")


def test_unreachable_api_is_target_unreachable() -> None:
    client = boto3.client("rds", region_name=REGION, endpoint_url="http://127.0.0.1:9",
                          aws_access_key_id="x", aws_secret_access_key="y",
                          config=Config(retries={"max_attempts": 1}, connect_timeout=1))
    api = RdsRestore("dalp-db", client=client)
    with pytest.raises(TargetUnreachable, match="DescribeDBInstances dalp-db"):
        api.source()
    with pytest.raises(TargetUnreachable, match="DescribeDBInstances dalp-db-pitr"):
        api.restored("dalp-db-pitr-x")


def test_a_missing_source_is_a_managed_db_error_on_moto(rds: Any) -> None:
    with pytest.raises(ManagedDbError, match="DBInstanceNotFound"):
        RdsRestore("nothing", client=rds).source()
