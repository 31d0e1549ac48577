"""The contract every managed-database adapter keeps, and the shared failover wait.

A drill against a managed database does what the cloud-native drill does on Patroni:
inject = ask the provider to fail over, recover = watch until it has, verify = the writer
really moved and stayed moved. The provider's API is the only way in, so each adapter
answers four questions through it and changes nothing except in ``failover()``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime
from typing import Any, Protocol

from pydantic import BaseModel

from dalp_dr.adapters.aws_errors import BOTO_ERRORS, AwsErrorKind, classify
from dalp_dr.errors import ManagedDbError, TargetUnreachable


class ManagedState(BaseModel, frozen=True):
    """What the provider reports at one moment."""

    identifier: str
    status: str
    """the provider's status word (available, rebooting, failing-over, modifying, ...)"""
    writer: str | None
    """where writes go: the primary's availability zone (RDS Multi-AZ) or the writer
    instance (Aurora)"""
    standby: str | None = None
    """where a failover goes: the standby's zone, or the preferred reader"""
    members: tuple[str, ...] = ()
    multi_az: bool = False
    observed_at: datetime

    @property
    def available(self) -> bool:
        return self.status == "available"


class Transition(BaseModel, frozen=True):
    """A change in (status, writer) seen while waiting."""

    at: datetime
    status: str
    writer: str | None


class FailoverWatch(BaseModel, frozen=True):
    completed: bool
    transitions: list[Transition]
    final: ManagedState
    waited: float


class ProviderEvent(BaseModel, frozen=True):
    """An entry of the provider's own event log (RDS DescribeEvents)."""

    at: datetime
    message: str
    source: str


class ManagedDatabase(Protocol):
    """One managed database whose provider fails it over on request.

    Contract: every method raises ``TargetUnreachable`` when the API cannot be reached or
    credentials are refused, ``ManagedDbError`` when the API refuses or fails the request;
    no other exception escapes. Only ``failover()`` changes anything.
    """

    kind: str
    identifier: str

    def state(self) -> ManagedState:
        """The provider's current view."""
        ...

    def preflight(self, state: ManagedState) -> list[str]:
        """Why a failover now would not be safe or meaningful (empty: go ahead)."""
        ...

    def failover(self, state: ManagedState, target: str | None = None) -> None:
        """Ask the provider to fail over; returns once the request is accepted."""
        ...

    def failed_over(self, before: ManagedState, now: ManagedState,
                    target: str | None = None) -> bool:
        """True once ``now`` shows the failover that started from ``before`` (towards
        ``target`` when one was named) completed."""
        ...

    def events(self, since: datetime) -> list[ProviderEvent]:
        """The provider's event log for this database since ``since`` (may be empty)."""
        ...


def wait_for_failover(db: ManagedDatabase, before: ManagedState, *, timeout: float,
                      target: str | None = None, poll: float = 5.0,
                      cancel: Callable[[], bool] | None = None,
                      sleep: Callable[[float], None] = time.sleep,
                      clock: Callable[[], float] = time.monotonic) -> FailoverWatch:
    """Poll until ``db.failed_over(before, state)`` or ``timeout`` seconds; record every
    change of status or writer on the way."""
    started = clock()
    transitions: list[Transition] = []
    last: tuple[str, str | None] = (before.status, before.writer)
    while True:
        now = db.state()
        if (now.status, now.writer) != last:
            transitions.append(Transition(at=now.observed_at, status=now.status,
                                          writer=now.writer))
            last = (now.status, now.writer)
        waited = clock() - started
        done = db.failed_over(before, now, target)
        if done or waited >= timeout or (cancel is not None and cancel()):
            return FailoverWatch(completed=done, transitions=transitions, final=now,
                                 waited=waited)
        sleep(min(poll, max(0.0, timeout - waited)))


class RdsApi:
    """What the RDS-based adapters share: the boto3 client, translated calls, the event log
    (``event_source_type``: db-instance or db-cluster)."""

    kind: str
    event_source_type: str

    def __init__(self, identifier: str, *, region: str | None = None,
                 endpoint_url: str | None = None, client: Any = None) -> None:
        self.identifier = identifier
        self._client = client or rds_client(region, endpoint_url)

    def _call(self, action: str, **kwargs: Any) -> Any:
        """``self._client.<action>(**kwargs)``, boto errors translated (see ``translate``)."""
        name = "".join(part.capitalize() for part in action.split("_"))
        target = kwargs.get("DBInstanceIdentifier") or kwargs.get("DBClusterIdentifier") \
            or self.identifier
        try:
            return getattr(self._client, action)(**kwargs)
        except Exception as exc:
            raise translate(exc, f"{name.replace('Db', 'DB')} {target}") from exc

    def _cluster(self, identifier: str | None = None) -> dict[str, Any]:
        """DescribeDBClusters of one cluster (this one by default)."""
        found: dict[str, Any] = self._call("describe_db_clusters", DBClusterIdentifier=(
            identifier or self.identifier))["DBClusters"][0]
        return found

    def _instance(self, identifier: str | None = None) -> dict[str, Any]:
        """DescribeDBInstances of one instance (this one by default)."""
        found: dict[str, Any] = self._call("describe_db_instances", DBInstanceIdentifier=(
            identifier or self.identifier))["DBInstances"][0]
        return found

    def events(self, since: datetime) -> list[ProviderEvent]:
        reply = self._call("describe_events", SourceIdentifier=self.identifier,
                           SourceType=self.event_source_type, StartTime=since)
        return [ProviderEvent(at=e["Date"], message=e.get("Message", ""),
                              source=e.get("SourceIdentifier", self.identifier))
                for e in reply.get("Events", [])]


def rds_client(region: str | None, endpoint_url: str | None) -> Any:
    import boto3
    from botocore.config import Config

    return boto3.client("rds", region_name=region or "us-east-1", endpoint_url=endpoint_url,
                        config=Config(retries={"max_attempts": 5, "mode": "standard"},
                                      connect_timeout=5, read_timeout=30))


def translate(exc: Exception, what: str) -> Exception:
    """boto3/botocore errors, as dalp-dr errors (sorted by ``dalp_dr.adapters.aws_errors``):
    unreachable or refused -> TargetUnreachable (nothing was done), anything else the API
    said -> ManagedDbError. Any other exception is returned as it is."""
    if not isinstance(exc, BOTO_ERRORS):
        return exc
    error = classify(exc)
    if error.kind is AwsErrorKind.UNREACHABLE:
        return TargetUnreachable(f"{what}: {exc}", field="managed database",
                                 hint="check the region, endpoint and AWS credentials")
    if error.kind is AwsErrorKind.REFUSED:
        return TargetUnreachable(f"{what}: {error}", field="managed database",
                                 hint="the IAM permissions are listed in README")
    return ManagedDbError(f"{what}: {error}")
