"""Backups and the WAL archive in S3, seen from the controller (boto3).

The layout is ``dalp_dr.s3_archive`` (the same file the database hosts run as their
archive/restore command), so both sides agree on what a complete backup and a gap are.
boto3/botocore errors are translated here: an unreachable endpoint, a missing bucket or
refused credentials are TargetUnreachable (invalid input: nothing to measure), anything
else ObjectStoreError.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from pydantic import BaseModel

from dalp_dr import s3_archive
from dalp_dr.adapters.aws_errors import BOTO_ERRORS, AwsErrorKind, object_store_error
from dalp_dr.durations import format_duration
from dalp_dr.errors import HintKey, InventoryError, ObjectStoreError
from dalp_dr.inventory import Inventory

_UNREACHABLE = frozenset({AwsErrorKind.REFUSED, AwsErrorKind.NO_BUCKET, AwsErrorKind.NOT_FOUND})
"""a refused, missing or unreadable location: nothing to measure (invalid input)"""


class BackupStatus(BaseModel, frozen=True):
    location: str
    backups: int
    newest_backup: str | None
    newest_backup_age_s: float | None
    newest_wal: str | None
    newest_wal_age_s: float | None
    wal_gap: str | None
    rpo_s: float
    attainable: bool
    reasons: list[str]


class S3Archive:
    def __init__(self, settings: dict[str, Any]) -> None:
        self._cfg = settings
        self._client = s3_archive.client(settings)
        self.location = f"s3://{settings['bucket']}/{settings.get('prefix') or ''}"

    @classmethod
    def from_inventory(cls, inventory: Inventory) -> S3Archive:
        def var(name: str, default: Any = None) -> Any:
            try:
                value = inventory.variable(name)
            except InventoryError:
                if default is ...:
                    raise
                return default
            return value if value not in ("", None) else default

        return cls({
            "bucket": var("dalp_s3_bucket", ...),
            "prefix": var("dalp_s3_prefix", ""),
            "endpoint_url": var("dalp_s3_endpoint_url"),
            "region": var("dalp_s3_region", "us-east-1"),
            "access_key_id": var("dalp_s3_access_key_id"),
            "secret_access_key": var("dalp_s3_secret_access_key"),
        })

    def _call(self, what: str, fn: Any) -> Any:
        try:
            return fn()
        except BOTO_ERRORS as exc:
            raise object_store_error(exc, self.location, what, unreachable=_UNREACHABLE,
                                     hint_key=HintKey.S3_ENDPOINT) from None
        except (s3_archive.Failure, OSError) as exc:
            raise ObjectStoreError(f"{self.location}: {what}: {exc}") from None

    def status(self, rpo: timedelta) -> BackupStatus:
        raw: dict[str, Any] = self._call("status", lambda: s3_archive.status(self._client,
                                                                            self._cfg))
        limit = rpo.total_seconds()
        reasons: list[str] = []
        if not raw["backups"]:
            reasons.append(f"no complete base backup under {self.location}/basebackups/")
        elif raw["newest_backup_age_s"] is not None and raw["newest_backup_age_s"] >= limit:
            reasons.append(f"newest base backup is {format_duration(raw['newest_backup_age_s'])}"
                           f" old, RPO {format_duration(limit)}")
        if raw["newest_wal"] is None:
            reasons.append(f"no archived WAL under {self.location}/wal/")
        elif raw["newest_wal_age_s"] is not None and raw["newest_wal_age_s"] >= limit:
            reasons.append(f"newest archived WAL is {format_duration(raw['newest_wal_age_s'])}"
                           f" old, RPO {format_duration(limit)}")
        if raw["wal_gap"]:
            reasons.append(f"WAL gap: {self.location}/wal/{raw['wal_gap']}.gz is missing")
        return BackupStatus(
            location=self.location, backups=raw["backups"], newest_backup=raw["newest_backup"],
            newest_backup_age_s=raw["newest_backup_age_s"], newest_wal=raw["newest_wal"],
            newest_wal_age_s=raw["newest_wal_age_s"], wal_gap=raw["wal_gap"], rpo_s=limit,
            attainable=not reasons, reasons=reasons,
        )
