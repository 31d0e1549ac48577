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

from dalp_dr.clock import utcnow
from dalp_dr.managed.base import ManagedState, RdsApi


class RdsMultiAz(RdsApi):
    kind = "rds-multi-az"
    event_source_type = "db-instance"

    def state(self) -> ManagedState:
        db = self._instance()
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
        self._call("reboot_db_instance", DBInstanceIdentifier=self.identifier,
                   ForceFailover=True)

    def failed_over(self, before: ManagedState, now: ManagedState,
                    target: str | None = None) -> bool:
        return now.available and now.writer is not None and now.writer != before.writer
