"""A run's evidence shipped to S3 (``DALP_DR_EVIDENCE=s3://bucket/prefix``; boto3).

After a run is recorded, every regular file of its evidence directory is copied to
``s3://bucket/prefix/<environment>/<run_id>/<relative path>``, each with a SHA-256 checksum
S3 verifies on arrival (``ChecksumAlgorithm=SHA256`` with the digest computed here), then
``manifest.json``: every file's path, size and sha256. The manifest is written last, so a
reader knows the copy is complete when it is there (a copy that failed half-way has none).
The local evidence is never changed or removed. Credentials come from the standard AWS
chain; ``DALP_DR_S3_ENDPOINT`` points at another S3 API. boto3 errors are translated here,
once: before a drill (``preflight``) into TargetUnreachable naming DALP_DR_EVIDENCE
(nothing started), after it (``ship``) into ObjectStoreError.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import urllib.parse
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel

from dalp_dr import object_store
from dalp_dr.adapters.aws_errors import BOTO_ERRORS, classify
from dalp_dr.config import EnvVar, Evidence
from dalp_dr.errors import ObjectStoreError, TargetUnreachable

MANIFEST = "manifest.json"
"""written last, beside the run's files: what a complete copy holds"""
MANIFEST_FORMAT = "dalp-dr-evidence/1"
UPLOADS_AT_ONCE = 8
"""files uploaded in parallel (a run's journal is one small file per record)"""
CHUNK = 1 << 20
T = TypeVar("T")


class ShippedFile(BaseModel, frozen=True):
    path: str
    """relative to the run's evidence directory, ``/``-separated"""
    size: int
    sha256: str


class Shipped(BaseModel, frozen=True):
    url: str
    """``s3://bucket/prefix/<environment>/<run_id>/``: the run's objects and manifest.json"""
    files: tuple[ShippedFile, ...]


def evidence_files(root: Path) -> Iterator[tuple[str, Path]]:
    """Every regular file under ``root`` (symbolic links are not followed nor copied), as
    (its ``/``-separated relative path, its path), sorted."""
    found = []
    for directory, dirs, files in os.walk(root, followlinks=False):
        dirs.sort()
        for name in files:
            path = Path(directory) / name
            if path.is_file() and not path.is_symlink():
                found.append((path.relative_to(root).as_posix(), path))
    yield from sorted(found)


def _sha256(path: Path) -> tuple[int, hashlib._Hash]:
    digest, size = hashlib.sha256(), 0
    with path.open("rb") as fh:
        while chunk := fh.read(CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return size, digest


def key_part(text: str) -> str:
    """``text`` as one path segment of an object key: percent-encoded but for letters,
    digits and ``-_.``, never empty, ``.`` or ``..`` (an environment name is free text; a
    proxy or a sync tool that normalises ``..`` must not move a run's evidence elsewhere)."""
    part = urllib.parse.quote(text, safe="-_")
    return part.replace(".", "%2E") if part in (".", "..") else part or "%00"


class EvidenceStore:
    def __init__(self, target: Evidence, client: Any | None = None) -> None:
        """``client``: a boto3 S3 client (default: one for ``target``'s endpoint and
        region, credentials from the standard AWS chain)."""
        self.target = target
        self._client = client or object_store.client(
            {"endpoint_url": target.endpoint_url, "region": target.region})

    def run_url(self, environment: str, run_id: str) -> str:
        return f"s3://{self.target.bucket}/{self._key(environment, run_id, '')}"

    def _key(self, environment: str, run_id: str, relative: str) -> str:
        return "/".join(p for p in (self.target.prefix, key_part(environment),
                                    key_part(run_id)) if p) + "/" + relative

    def preflight(self) -> None:
        """Before a drill starts: the bucket exists and these credentials may use it
        (HeadBucket). TargetUnreachable naming DALP_DR_EVIDENCE otherwise."""
        try:
            self._client.head_bucket(Bucket=self.target.bucket)
        except BOTO_ERRORS as exc:
            error = classify(exc)
            raise TargetUnreachable(
                f"evidence bucket {self.target.url} cannot be used: "
                f"{error.kind.value}: {error}; the drill was not started",
                field=EnvVar.EVIDENCE.value,
                hint="create the bucket or grant this controller s3:ListBucket and "
                     "s3:PutObject on it (check DALP_DR_S3_ENDPOINT and the AWS credentials),"
                     " or unset DALP_DR_EVIDENCE to keep evidence locally only") from None

    def ship(self, evidence_dir: Path, environment: str, run_id: str) -> Shipped:
        """Copy the run's evidence directory, then its manifest (last). ObjectStoreError
        when any object could not be written (then there is no manifest)."""
        if not evidence_dir.is_dir():
            raise ObjectStoreError(f"evidence directory {evidence_dir} does not exist: "
                                   "nothing to ship")
        files = list(evidence_files(evidence_dir))
        with ThreadPoolExecutor(max_workers=UPLOADS_AT_ONCE,
                                thread_name_prefix="evidence") as pool:
            shipped = tuple(pool.map(
                lambda item: self._put(environment, run_id, *item), files))
        manifest = json.dumps({
            "format": MANIFEST_FORMAT, "environment": environment, "run_id": run_id,
            "files": [f.model_dump() for f in shipped]}, indent=2).encode()
        digest = hashlib.sha256(manifest)
        self._write(self._key(environment, run_id, MANIFEST), manifest, digest,
                    "application/json")
        return Shipped(url=self.run_url(environment, run_id), files=shipped)

    def _put(self, environment: str, run_id: str, relative: str, path: Path) -> ShippedFile:
        try:
            size, digest = _sha256(path)
            with path.open("rb") as body:
                self._write(self._key(environment, run_id, relative), body, digest,
                            "application/octet-stream")
        except OSError as exc:
            raise ObjectStoreError(f"cannot read evidence file {path}: {exc}") from None
        return ShippedFile(path=relative, size=size, sha256=digest.hexdigest())

    def _write(self, key: str, body: Any, digest: hashlib._Hash, content_type: str) -> None:
        self._call(f"upload {key}", lambda: self._client.put_object(
            Bucket=self.target.bucket, Key=key, Body=body, ContentType=content_type,
            ChecksumAlgorithm="SHA256",
            ChecksumSHA256=base64.b64encode(digest.digest()).decode()))

    def _call(self, what: str, fn: Callable[[], T]) -> T:
        try:
            return fn()
        except BOTO_ERRORS as exc:
            error = classify(exc)
            raise ObjectStoreError(f"s3://{self.target.bucket}: {what}: "
                                   f"{error.kind.value}: {error}") from None
