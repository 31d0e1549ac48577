"""Where checkpoints are kept: the log next to the evidence and the S3 witness."""

from __future__ import annotations

import contextlib
import fcntl
import functools
import os
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from dalp_dr import private_files
from dalp_dr.checkpoints.model import MAX_LINE, Checkpoint, Claim, Read, known, parse
from dalp_dr.clock import utcnow
from dalp_dr.errors import ObjectStoreError, StoreError

LOG_NAME = "checkpoints.jsonl"
LOCK_NAME = ".checkpoints.lock"
LOCK_DEADLINE = 60.0
"""how long a seal or a verification waits for the checkpoint log's lock (a seal holds it
for one transaction and one appended line)"""


class CheckpointLog:
    """``<results dir>/checkpoints.jsonl``: appended by every seal, never rewritten. A seal
    holds ``sealing()`` from its transaction until its line is appended; a verification
    holds ``reading()`` while it reads the chain and the log, so it never sees a sealed
    entry whose checkpoint is still being written."""

    def __init__(self, results_dir: Path) -> None:
        self.path = results_dir / LOG_NAME
        self._lock = results_dir / LOCK_NAME

    @contextlib.contextmanager
    def _locked(self, mode: int) -> Iterator[None]:
        private_files.make_dir(self._lock.parent)
        fd = private_files.open_for_write(self._lock, append=True)
        try:
            if not private_files.flock_within(fd, mode, LOCK_DEADLINE):
                raise StoreError(f"{self._lock}: held by another dalp-dr process for more "
                                 f"than {LOCK_DEADLINE:.0f}s")
            yield
        finally:
            os.close(fd)

    def sealing(self) -> contextlib.AbstractContextManager[None]:
        return self._locked(fcntl.LOCK_EX)

    def reading(self) -> contextlib.AbstractContextManager[None]:
        return self._locked(fcntl.LOCK_SH)

    def append(self, checkpoint: Checkpoint) -> None:
        """(the caller holds ``sealing()``)"""
        private_files.make_dir(self.path.parent)
        fd = private_files.open_for_write(self.path, append=True)
        try:
            os.write(fd, checkpoint.line().encode())
            os.fsync(fd)
        finally:
            os.close(fd)

    def last(self) -> Checkpoint | str | None:
        """The newest line (seals append in chain order under the lock), parsed; None for
        an empty or missing log."""
        if not self.path.is_file():
            return None
        with self.path.open("rb") as fh:
            fh.seek(0, os.SEEK_END)
            fh.seek(max(0, fh.tell() - 2 * MAX_LINE))
            lines = [line for line in fh.read().splitlines() if line.strip()]
        return parse(lines[-1], f"{self.path} (last line)") if lines else None

    def read(self) -> Read:
        source = str(self.path)
        if not self.path.is_file():
            return Read(source=source, claims=[], unreadable=[], present=False)
        claims: list[Claim] = []
        bad: list[str] = []
        with self.path.open("rb") as fh:
            for number, raw in enumerate(fh, 1):
                if not raw.strip():
                    continue
                parsed = parse(raw.strip(), f"{source} line {number}")
                if isinstance(parsed, Checkpoint):
                    claims.append(known(parsed, source))
                else:
                    bad.append(parsed)
        return Read(source=source, claims=claims, unreadable=bad, present=True)


class S3Witness:
    """One object per checkpoint, ``<prefix>/<seq>-<head>.json``, with Object Lock
    retention. Reading lists every version: a delete marker (a plain delete hides an object
    from listings even under retention) is reported, never taken as absence."""

    def __init__(self, bucket: str, prefix: str, retain_days: int, mode: str,
                 client: Any) -> None:
        self.bucket, self.prefix = bucket, prefix.strip("/")
        self.retain_days, self.mode = retain_days, mode
        self._client = client
        self.url = f"s3://{bucket}/{self.prefix}"

    def _key(self, checkpoint: Checkpoint) -> str:
        name = f"{checkpoint.seq:012d}-{checkpoint.head}.json"
        return f"{self.prefix}/{name}" if self.prefix else name

    def _call(self, what: str, fn: Callable[[], Any]) -> Any:
        from dalp_dr.adapters.aws_errors import BOTO_ERRORS  # boto only when witnessed

        try:
            return fn()
        except BOTO_ERRORS as exc:
            raise ObjectStoreError(f"checkpoint witness {self.url}: {what}: {exc}") from None

    def publish(self, checkpoint: Checkpoint, now: datetime | None = None) -> None:
        until = (now or utcnow()) + timedelta(days=self.retain_days)
        self._call("cannot write the checkpoint", lambda: self._client.put_object(
            Bucket=self.bucket, Key=self._key(checkpoint), Body=checkpoint.line().encode(),
            ContentType="application/json", ObjectLockMode=self.mode,
            ObjectLockRetainUntilDate=until))

    def _fetch(self, name: str, version: str) -> Checkpoint | str:
        def get() -> bytes:
            response = self._client.get_object(Bucket=self.bucket, Key=name, VersionId=version)
            with contextlib.closing(response["Body"]) as body:
                data: bytes = body.read(MAX_LINE + 1)
            return data

        return parse(self._call(f"cannot read {name}", get).strip(),
                     f"{self.url} object {name}")

    def read(self) -> Read:
        claims: list[Claim] = []
        bad: list[str] = []
        present = False
        prefix = f"{self.prefix}/" if self.prefix else ""

        def listing() -> list[dict[str, Any]]:
            found: list[dict[str, Any]] = []
            paginator = self._client.get_paginator("list_object_versions")
            for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix):
                found.extend({**v, "marker": False} for v in page.get("Versions", []))
                found.extend({**m, "marker": True} for m in page.get("DeleteMarkers", []))
            return found

        for item in self._call("cannot list the checkpoints", listing):
            present = True
            name = item["Key"]
            if item["marker"]:
                bad.append(f"{self.url} object {name}: deleted (a delete marker hides a "
                           "witnessed checkpoint)")
                continue
            stem = name[len(prefix):].removesuffix(".json")
            seq_text, _, head = stem.partition("-")
            if not seq_text.isdigit() or len(head) != 64:
                bad.append(f"{self.url} object {name}: not a checkpoint name")
                continue
            claims.append(Claim(seq=int(seq_text), head=head, where=self.url,
                                fetch=functools.partial(self._fetch, name,
                                                        item["VersionId"])))
        return Read(source=self.url, claims=claims, unreadable=bad, present=present)
