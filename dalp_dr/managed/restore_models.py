"""What the RDS point-in-time restore drill reads and reports (``rds_restore.py``)."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel

from dalp_dr.managed.base import Transition

RUN_TAG = "dalp-dr:run-id"
"""the tag every restored instance carries: the run that created it (and may delete it)"""

DELETABLE = frozenset({"available", "failed", "incompatible-parameters",
                       "incompatible-restore", "incompatible-network", "storage-full",
                       "inaccessible-encryption-credentials", "stopped"})
"""statuses in which RDS takes a DeleteDBInstance (creating, backing-up, modifying... do
not: the drill waits for them to end)"""


class EndpointCheck(StrEnum):
    """How verify treats the restored instance's endpoint."""

    REQUIRED = "required"
    """a PostgreSQL server must answer there (the controller reaches the VPC)"""
    REPORT = "report"
    """tried and reported, not required"""
    OFF = "off"
    """not connected to: verified through the RDS API only (e.g. moto, which has no
    PostgreSQL behind its endpoints)"""


class SourceBackups(BaseModel, frozen=True):
    """The source instance and its automated backups, as RDS reports them."""

    identifier: str
    status: str
    engine: str
    engine_version: str | None = None
    backup_retention_days: int
    latest_restorable: datetime | None
    observed_at: datetime

    @property
    def latest_restorable_age(self) -> float | None:
        """Seconds from the latest restorable time to when this was read."""
        if self.latest_restorable is None:
            return None
        return (self.observed_at - self.latest_restorable).total_seconds()


class RestoreProblem(BaseModel, frozen=True):
    """Why the drill must not go on: the field of the source (or request) at fault."""

    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.field} {self.message}"


class RestoreRequest(BaseModel, frozen=True):
    """A restore RDS accepted."""

    source: str
    target: str
    requested_at: datetime
    seconds: float
    """how long the request call took"""
    latest_restorable_at_start: datetime | None
    restore_time: datetime | None
    """the target time asked for; None: the latest restorable time"""

    @property
    def restored_time(self) -> datetime | None:
        """The point in time the restored instance holds the data of."""
        return self.restore_time or self.latest_restorable_at_start

    def data_loss_bound(self, fault_at: datetime, held_at_fault: datetime | None = None
                        ) -> float | None:
        """Seconds of writes before the fault a loss at the fault would have lost (0 when
        the restored time is at or after the fault). Restoring to the latest point, what
        the backups held at the fault (``held_at_fault``, the source's LatestRestorableTime
        read then) bounds it: the source, untouched, kept shipping its logs after the fault,
        which a lost instance could not have done."""
        restored = self.restored_time
        if restored is None:
            return None
        if self.restore_time is None and held_at_fault is not None:
            restored = min(restored, held_at_fault)
        return round(max(0.0, (fault_at - restored).total_seconds()), 3)


class RestoredInstance(BaseModel, frozen=True):
    identifier: str
    status: str
    engine: str
    engine_version: str | None = None
    address: str | None = None
    port: int | None = None
    tags: dict[str, str] = {}
    observed_at: datetime


class WaitOutcome(BaseModel, frozen=True):
    reached: bool
    waited: float
    final: RestoredInstance | None
    transitions: list[Transition]
