"""Amazon Aurora cluster (also an RDS Multi-AZ DB cluster): ``FailoverDBCluster``.

The provider promotes a reader (the one named as target, else its own choice) and moves the
cluster endpoint to it. The failover is complete when the cluster is ``available`` with a
different writer than before; the target, when given, must be that writer.

IAM: ``rds:DescribeDBClusters``, ``rds:DescribeDBInstances``, ``rds:FailoverDBCluster``,
``rds:DescribeEvents`` on the cluster's and its instances' ARNs.
"""

from __future__ import annotations

from typing import Any

from dalp_dr.clock import utcnow
from dalp_dr.managed.base import ManagedState, RdsApi


class AuroraCluster(RdsApi):
    kind = "aurora"
    event_source_type = "db-cluster"

    def state(self) -> ManagedState:
        cluster = self._cluster()
        members = cluster.get("DBClusterMembers", [])
        writer = next((m["DBInstanceIdentifier"] for m in members if m.get("IsClusterWriter")),
                      None)
        readers = sorted((m.get("PromotionTier", 1), m["DBInstanceIdentifier"])
                         for m in members if not m.get("IsClusterWriter"))
        return ManagedState(identifier=self.identifier, status=cluster.get("Status", "?"),
                            writer=writer, standby=readers[0][1] if readers else None,
                            members=tuple(sorted(m["DBInstanceIdentifier"] for m in members)),
                            multi_az=bool(cluster.get("MultiAZ")), observed_at=utcnow())

    def _instance_status(self, instance: str) -> str:
        return str(self._instance(instance).get("DBInstanceStatus", "?"))

    def preflight(self, state: ManagedState) -> list[str]:
        problems = []
        if not state.available:
            problems.append(f"cluster {self.identifier} is {state.status}, not available")
        if state.writer is None:
            problems.append(f"cluster {self.identifier} reports no writer")
        readers = [m for m in state.members if m != state.writer]
        if not readers:
            problems.append(f"cluster {self.identifier} has no reader to fail over to")
        ready = [r for r in readers if self._instance_status(r) == "available"]
        if readers and not ready:
            problems.append("no reader is available: " + ", ".join(readers))
        return problems

    def failover(self, state: ManagedState, target: str | None = None) -> None:
        kwargs: dict[str, Any] = {"DBClusterIdentifier": self.identifier}
        if target:
            kwargs["TargetDBInstanceIdentifier"] = target
        self._call("failover_db_cluster", **kwargs)

    def failed_over(self, before: ManagedState, now: ManagedState,
                    target: str | None = None) -> bool:
        moved = now.writer is not None and now.writer != before.writer
        on_target = target is None or now.writer == target
        return now.available and moved and on_target
