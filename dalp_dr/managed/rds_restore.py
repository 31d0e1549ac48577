"""AWS RDS point-in-time restore drill: restore the source instance's automated backups to a
NEW instance, wait until it is available, verify it, delete it.

The fault the drill stands for is "the instance is lost". The drill does NOT touch the
source: losing a production database to prove its backups restore would be the disaster
itself. What it proves is that the provider's backups restore, how long that takes, and how
far back the restored data reaches (the data-loss bound: the fault instant minus the
restored time, the source's LatestRestorableTime when the restore started, or the target
time the drill asked for).

Safety: the restored instance's identifier is derived from the run id (never an existing
instance: the restore refuses one that exists) and tagged ``dalp-dr:run-id``; delete refuses
an instance that does not carry this run's tag.

IAM: ``rds:DescribeDBInstances``, ``rds:RestoreDBInstanceToPointInTime``,
``rds:AddTagsToResource``, ``rds:DeleteDBInstance`` (on ``*-pitr-*`` instances),
``rds:DescribeEvents``.
"""

from __future__ import annotations

import re
import socket
import struct
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

from botocore.exceptions import ClientError

from dalp_dr.adapters.aws_errors import BOTO_ERRORS, error_code
from dalp_dr.clock import utcnow
from dalp_dr.errors import ManagedDbError
from dalp_dr.managed.base import RdsApi, Transition, translate
from dalp_dr.managed.restore_models import (
    DELETABLE,
    RUN_TAG,
    EndpointCheck,
    RestoredInstance,
    RestoreProblem,
    RestoreRequest,
    SourceBackups,
    WaitOutcome,
)

_IDENTIFIER = re.compile(r"^[a-z][a-z0-9]*(-[a-z0-9]+)*$")
PG_SSL_REQUEST = struct.pack("!ii", 8, 80877103)
"""PostgreSQL's SSLRequest: any PostgreSQL server answers it with one byte, S or N, before
any credentials are asked for"""


def restored_identifier(source: str, run_id: str) -> str:
    """``<source>-pitr-<run id>``, lower-case, at most 63 characters (RDS's rules: a letter
    first, letters, digits and single hyphens, no hyphen last)."""
    run = re.sub(r"[^a-z0-9]+", "-", run_id.lower()).strip("-")
    if not run:
        raise ManagedDbError(f"run id {run_id!r} gives no instance identifier")
    room = 63 - len(run) - len("-pitr-")
    head = re.sub(r"-+", "-", source.lower()[:max(room, 0)]).strip("-")
    name = f"{head}-pitr-{run}" if head else f"pitr-{run}"
    if len(name) > 63 or not _IDENTIFIER.match(name):
        raise ManagedDbError(f"cannot derive an RDS identifier from {source!r} and run "
                             f"{run_id!r} (got {name!r})")
    return name


def _tags(found: dict[str, Any]) -> dict[str, str]:
    return {t["Key"]: t.get("Value", "") for t in found.get("TagList") or []}


class RdsRestore(RdsApi):
    """The restore drill's calls on one source instance (``identifier``)."""

    kind = "rds-pitr"
    event_source_type = "db-instance"

    def _find(self, identifier: str) -> dict[str, Any] | None:
        """DescribeDBInstances of one instance; None when there is no such instance."""
        try:
            found: dict[str, Any] = self._client.describe_db_instances(
                DBInstanceIdentifier=identifier)["DBInstances"][0]
            return found
        except ClientError as exc:
            if error_code(exc) in ("DBInstanceNotFound", "DBInstanceNotFoundFault"):
                return None
            raise translate(exc, f"DescribeDBInstances {identifier}") from exc
        except BOTO_ERRORS as exc:
            raise translate(exc, f"DescribeDBInstances {identifier}") from exc

    def source(self) -> SourceBackups:
        db = self._instance()
        return SourceBackups(
            identifier=self.identifier, status=db.get("DBInstanceStatus", "?"),
            engine=db.get("Engine", "?"), engine_version=db.get("EngineVersion"),
            backup_retention_days=int(db.get("BackupRetentionPeriod") or 0),
            latest_restorable=db.get("LatestRestorableTime"), observed_at=utcnow())

    def problems(self, source: SourceBackups, *, rpo_seconds: float,
                 target: str | None = None) -> list[RestoreProblem]:
        """Why a restore drill now would prove nothing or be unsafe (empty: go ahead)."""
        out: list[RestoreProblem] = []
        if source.status != "available":
            out.append(RestoreProblem(field="DBInstanceStatus", message=(
                f"is {source.status}, not available")))
        if source.backup_retention_days <= 0:
            out.append(RestoreProblem(field="BackupRetentionPeriod", message=(
                "is 0: automated backups are off, there is nothing to restore from (set a "
                "backup retention period of 1 day or more)")))
        if source.latest_restorable is None:
            out.append(RestoreProblem(field="LatestRestorableTime", message=(
                "is not reported: no point in time can be restored yet")))
        else:
            age = source.latest_restorable_age
            if age is not None and age > rpo_seconds:
                out.append(RestoreProblem(field="LatestRestorableTime", message=(
                    f"{source.latest_restorable.isoformat()} is {age:.0f} s before now, "
                    f"beyond the RPO of {rpo_seconds:g} s: transaction logs are not reaching "
                    "the backups")))
        if target is not None and self._find(target) is not None:
            out.append(RestoreProblem(field="TargetDBInstanceIdentifier", message=(
                f"{target} already exists: a restore drill never reuses an instance")))
        return out

    def restore(self, target: str, run_id: str, restore_time: datetime | None = None
                ) -> RestoreRequest:
        """RestoreDBInstanceToPointInTime to ``target`` (which must not exist), at
        ``restore_time`` or the latest restorable time; returns once the request is taken."""
        if self._find(target) is not None:
            raise ManagedDbError(f"{target} already exists: refusing to restore over it "
                                 "(a restore drill never reuses an instance)")
        before = self.source()
        requested = utcnow()
        started = time.monotonic()
        args: dict[str, Any] = {"SourceDBInstanceIdentifier": self.identifier,
                                "TargetDBInstanceIdentifier": target,
                                "Tags": [{"Key": RUN_TAG, "Value": run_id}]}
        if restore_time is None:
            args["UseLatestRestorableTime"] = True
        else:
            args["RestoreTime"] = restore_time
        self._call("restore_db_instance_to_point_in_time", **args)
        return RestoreRequest(source=self.identifier, target=target, requested_at=requested,
                              seconds=round(time.monotonic() - started, 3),
                              latest_restorable_at_start=before.latest_restorable,
                              restore_time=restore_time)

    def restored(self, target: str) -> RestoredInstance | None:
        db = self._find(target)
        if db is None:
            return None
        endpoint = db.get("Endpoint") or {}
        return RestoredInstance(identifier=target, status=db.get("DBInstanceStatus", "?"),
                                engine=db.get("Engine", "?"),
                                engine_version=db.get("EngineVersion"),
                                address=endpoint.get("Address"), port=endpoint.get("Port"),
                                tags=_tags(db), observed_at=utcnow())

    def delete(self, target: str, run_id: str) -> bool:
        """DeleteDBInstance (no final snapshot) of this run's restored instance, if it is
        there; False when there was nothing to delete. Refuses an instance without this
        run's tag: the drill deletes only what it created."""
        found = self.restored(target)
        if found is None:
            return False
        if found.tags.get(RUN_TAG) != run_id:
            raise ManagedDbError(f"{target} does not carry the tag {RUN_TAG}={run_id}: it "
                                 "was not created by this run, refusing to delete it")
        if found.status == "deleting":
            return True
        self._call("delete_db_instance", DBInstanceIdentifier=target, SkipFinalSnapshot=True,
                   DeleteAutomatedBackups=True)
        return True


def wait_for(read: Callable[[], RestoredInstance | None],
             done: Callable[[RestoredInstance | None], bool], *, timeout: float,
             poll: float = 5.0, sleep: Callable[[float], None] = time.sleep,
             clock: Callable[[], float] = time.monotonic) -> WaitOutcome:
    """Poll ``read()`` until ``done`` or ``timeout`` seconds have passed (a deadline, never
    a count of tries); every change of status on the way is recorded."""
    started = clock()
    transitions: list[Transition] = []
    last: str | None = "?"
    while True:
        now = read()
        status = now.status if now is not None else "gone"
        if status != last:
            transitions.append(Transition(at=now.observed_at if now else utcnow(),
                                          status=status, writer=None))
            last = status
        waited = clock() - started
        if done(now) or waited >= timeout:
            return WaitOutcome(reached=done(now), waited=round(waited, 3), final=now,
                               transitions=transitions)
        sleep(min(poll, max(0.0, timeout - waited)))


def delete_and_wait(api: RdsRestore, target: str, run_id: str, *, timeout: float,
                    poll: float = 5.0, sleep: Callable[[float], None] = time.sleep,
                    clock: Callable[[], float] = time.monotonic) -> WaitOutcome:
    """Delete this run's restored instance and wait until it is gone, within ``timeout``.
    An instance still being created cannot be deleted yet: it is waited for (on the same
    deadline) until RDS takes the deletion."""
    requested = False

    def read() -> RestoredInstance | None:
        nonlocal requested
        now = api.restored(target)
        if now is not None and not requested and now.status in DELETABLE | {"deleting"}:
            api.delete(target, run_id)  # what was seen is returned: the next poll shows it go
            requested = True
        return now

    return wait_for(read, lambda now: now is None, timeout=timeout, poll=poll, sleep=sleep,
                    clock=clock)


def endpoint_answers(address: str | None, port: int | None, *, timeout: float = 5.0
                     ) -> tuple[bool, str]:
    """Whether a PostgreSQL server answers at ``address:port`` (its reply to SSLRequest,
    before any credentials), and what was seen."""
    if not address or not port:
        return False, "the instance reports no endpoint"
    try:
        with socket.create_connection((address, int(port)), timeout=timeout) as conn:
            conn.settimeout(timeout)
            conn.sendall(PG_SSL_REQUEST)
            reply = conn.recv(1)
    except OSError as exc:
        return False, f"{address}:{port} did not answer: {exc}"
    if reply in (b"S", b"N"):
        return True, f"{address}:{port} answered as PostgreSQL (SSLRequest: {reply.decode()})"
    return False, f"{address}:{port} answered, but not as PostgreSQL ({reply!r})"


def verify(api: RdsRestore, target: str, run_id: str, *, endpoint: EndpointCheck,
           timeout: float = 5.0) -> tuple[list[str], list[str]]:
    """What was verified of the restored instance, and the problems found."""
    source = api.source()
    found = api.restored(target)
    if found is None:
        return [], [f"{target} does not exist"]
    checked: list[str] = []
    problems: list[str] = []
    (checked if found.status == "available" else problems).append(
        f"status {found.status}" + ("" if found.status == "available" else ", not available"))
    same = found.engine == source.engine
    (checked if same else problems).append(
        f"engine {found.engine} {found.engine_version or ''}".rstrip()
        + (" as the source's" if same else f", the source runs {source.engine}"))
    tagged = found.tags.get(RUN_TAG) == run_id
    (checked if tagged else problems).append(
        f"tag {RUN_TAG}={found.tags.get(RUN_TAG)}" + ("" if tagged else f", not {run_id}"))
    if endpoint is EndpointCheck.OFF:
        checked.append(f"endpoint {found.address}:{found.port} assigned (not connected to: "
                       "endpoint check off; verified through the RDS API only)")
    else:
        answered, seen = endpoint_answers(found.address, found.port, timeout=timeout)
        if answered or endpoint is EndpointCheck.REPORT:
            checked.append(seen if answered else f"{seen} (reported, not required)")
        else:
            problems.append(seen)
    return checked, problems
