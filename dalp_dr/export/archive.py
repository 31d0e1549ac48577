"""Archive an export bundle to S3 under Object Lock retention (boto3; AWS or any S3 API).

``s3://bucket/prefix`` receives the bundle as one object with a retention mode
(COMPLIANCE: nobody, not even the account root, can delete or shorten it before the date;
GOVERNANCE: only principals with s3:BypassGovernanceRetention can) and a retain-until date.
A bucket without Object Lock cannot hold retention: the archive is refused before anything
is written, unless forced (then the object is uploaded without retention and the result
says so). Credentials come from the standard AWS chain; ``DALP_DR_S3_ENDPOINT`` points at
another S3 API (the lab's moto server). boto3 errors are translated here.
"""

from __future__ import annotations

import base64
import hashlib
from datetime import datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from dalp_dr import config, object_store
from dalp_dr.adapters.aws_errors import BOTO_ERRORS, AwsErrorKind, classify, object_store_error
from dalp_dr.clock import utcnow
from dalp_dr.config import Settings
from dalp_dr.errors import Flag, HintKey, InvalidInput, ObjectStoreError


class LockMode(StrEnum):
    COMPLIANCE = "COMPLIANCE"
    GOVERNANCE = "GOVERNANCE"


class Target(BaseModel, frozen=True):
    bucket: str
    prefix: str

    @classmethod
    def parse(cls, url: str) -> Target:
        parts = config.split_s3_url(url)
        if parts is None:
            raise InvalidInput(f"'{url}' is not an s3:// URL", flag=Flag.TO_S3,
                               hint_key=HintKey.S3_URL)
        return cls(bucket=parts[0], prefix=parts[1])


class Archived(BaseModel, frozen=True):
    url: str
    version_id: str | None
    mode: LockMode | None
    retain_until: datetime | None
    sha256: str


class BundleArchive:
    def __init__(self, target: Target, client: Any | None = None, *,
                 settings: Settings | None = None) -> None:
        """``settings`` give the S3 endpoint (DALP_DR_S3_ENDPOINT); without them it is read
        from the configuration."""
        self.target = target
        endpoint = settings.s3_endpoint if settings is not None else config.s3_endpoint()
        self._client = client or object_store.client(
            {"endpoint_url": endpoint, "region": config.aws_region()})

    def _call(self, what: str, fn: Any) -> Any:
        where = f"s3://{self.target.bucket}"
        try:
            return fn()
        except BOTO_ERRORS as exc:
            raise object_store_error(exc, where, what, flag=Flag.TO_S3, unreachable=frozenset(
                {AwsErrorKind.REFUSED, AwsErrorKind.NO_BUCKET})) from None

    def lock_enabled(self) -> bool:
        def read() -> Any:
            try:
                return self._client.get_object_lock_configuration(Bucket=self.target.bucket)
            except BOTO_ERRORS as exc:
                if classify(exc).code == "ObjectLockConfigurationNotFoundError":
                    return None
                raise

        answer = self._call("read the Object Lock configuration", read)
        config = (answer or {}).get("ObjectLockConfiguration", {})
        return bool(config.get("ObjectLockEnabled") == "Enabled")

    def preflight(self, force: bool) -> bool:
        """Before the bundle is written: the bucket answers, and holds retention (or the
        caller forces an upload without). Returns whether retention will be applied."""
        if self.lock_enabled():
            return True
        if not force:
            raise InvalidInput(
                f"bucket {self.target.bucket} does not have Object Lock enabled, so the "
                "bundle could be deleted or overwritten", flag=Flag.TO_S3,
                hint_key=HintKey.OBJECT_LOCK_BUCKET)
        return False

    def upload(self, bundle: Path, mode: LockMode, days: int, with_lock: bool,
               now: datetime | None = None) -> Archived:
        data = bundle.read_bytes()
        digest = hashlib.sha256(data)
        key = "/".join(p for p in (self.target.prefix, bundle.name) if p)
        kwargs: dict[str, Any] = {
            "Bucket": self.target.bucket, "Key": key, "Body": data,
            "ContentType": "application/gzip", "ChecksumAlgorithm": "SHA256",
            "ChecksumSHA256": base64.b64encode(digest.digest()).decode(),
            "Metadata": {"dalp-dr-sha256": digest.hexdigest()}}
        until = None
        if with_lock:
            until = (now or utcnow()) + timedelta(days=days)
            kwargs.update(ObjectLockMode=mode.value, ObjectLockRetainUntilDate=until)
        answer = self._call("upload the bundle", lambda: self._client.put_object(**kwargs))
        head = self._call("read back the archived bundle",
                          lambda: self._client.head_object(Bucket=self.target.bucket, Key=key,
                                                           VersionId=answer["VersionId"])
                          if answer.get("VersionId") else
                          self._client.head_object(Bucket=self.target.bucket, Key=key))
        if with_lock and head.get("ObjectLockMode") != mode.value:
            raise ObjectStoreError(f"s3://{self.target.bucket}/{key}: uploaded, but S3 reports"
                                   f" no {mode.value} retention on it")
        return Archived(url=f"s3://{self.target.bucket}/{key}",
                        version_id=answer.get("VersionId"),
                        mode=mode if with_lock else None,
                        retain_until=head.get("ObjectLockRetainUntilDate") or until,
                        sha256=digest.hexdigest())
