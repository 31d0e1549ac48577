"""AWS RDS DB instance with a Multi-AZ standby: forced failover by reboot.

``RebootDBInstance`` with ``ForceFailover=true`` makes RDS promote the synchronous standby in
the other availability zone and repoint the instance's DNS name at it. The failover is
complete when the instance is ``available`` again with its primary in the zone that held the
standby; a reboot that comes back in the same zone did NOT fail over (e.g. the standby was
not ready), and the drill must say so rather than report a recovery.

IAM: ``rds:DescribeDBInstances``, ``rds:RebootDBInstance``, ``rds:DescribeEvents`` on the
instance's ARN.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from dalp_dr.managed.base import (
    ManagedState,
    ProviderEvent,
    rds_client,
    translate,
    utcnow,
)


class RdsMultiAz:
    kind = "rds-multi-az"

    def __init__(self, identifier: str, *, region: str | None = None,
                 endpoint_url: str | None = None, client: Any = None) -> None:
        self.identifier = identifier
        self._client = client or rds_client(region, endpoint_url)

    def state(self) -> ManagedState:
        try:
            reply = self._client.describe_db_instances(DBInstanceIdentifier=self.identifier)
        except Exception as exc:
            raise translate(exc, f"DescribeDBInstances {self.identifier}") from exc
        db = reply["DBInstances"][0]
        return ManagedState(identifier=self.identifier, status=db.get("DBInstanceStatus", "?"),
                            writer=db.get("AvailabilityZone"),
                            standby=db.get("SecondaryAvailabilityZone"),
                            multi_az=bool(db.get("MultiAZ")), observed_at=utcnow())

    def preflight(self, state: ManagedState) -> list[str]:
        problems = []
        if not state.multi_az:
            problems.append(f"{self.identifier} is not Multi-AZ: there is no standby to fail "
                            "over to (a reboot would only restart it)")
        if not state.available:
            problems.append(f"{self.identifier} is {state.status}, not available")
        if state.standby is not None and state.standby == state.writer:
            problems.append(f"standby zone {state.standby} equals the primary's")
        return problems

    def failover(self, state: ManagedState, target: str | None = None) -> None:
        try:
            self._client.reboot_db_instance(DBInstanceIdentifier=self.identifier,
                                            ForceFailover=True)
        except Exception as exc:
            raise translate(exc, f"RebootDBInstance(ForceFailover) {self.identifier}") from exc

    def failed_over(self, before: ManagedState, now: ManagedState,
                    target: str | None = None) -> bool:
        return now.available and now.writer is not None and now.writer != before.writer

    def events(self, since: datetime) -> list[ProviderEvent]:
        try:
            reply = self._client.describe_events(SourceIdentifier=self.identifier,
                                                 SourceType="db-instance", StartTime=since)
        except Exception as exc:
            raise translate(exc, f"DescribeEvents {self.identifier}") from exc
        return [ProviderEvent(at=e["Date"], message=e.get("Message", ""),
                              source=e.get("SourceIdentifier", self.identifier))
                for e in reply.get("Events", [])]
