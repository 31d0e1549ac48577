"""Signed checkpoints: the chain head pinned outside the history store.

The hash chain (``dalp_dr.integrity``) shows a record changed *inside* a chain; someone who
can write the store can still rewrite the whole chain and re-seal every entry. So every seal
also writes a **checkpoint** (seq, head digest, time) signed with the history's Ed25519 key
(``dalp-dr keys init``), where rewriting the database does not reach it:

* the **checkpoint log** ``<results dir>/checkpoints.jsonl`` (one JSON line each, mode 0600,
  appended under an exclusive lock), next to the evidence;
* when configured, an **S3 witness**: one object per checkpoint under Object Lock retention
  (``DALP_DR_WITNESS=s3://bucket/prefix``), which even the bucket owner cannot rewrite or
  delete before the date (Certificate Transparency's signed tree heads and their witnesses).

Verification (``check``) holds the chain against every checkpoint it can read: one signed by
a trusted key whose head is not the chain's digest at that sequence number, or that names a
sequence number past the chain's end, proves the chain was rewritten or truncated. Lines or
objects whose signature does not hold are reported too (altered or forged). Without the
signing key nobody can write a checkpoint that verifies.

The signing key is optional for recording: a history without one is sealed but not pinned,
and every verification and export says so.
"""

from __future__ import annotations

import base64
import fcntl
import functools
import json
import logging
import os
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from pydantic import BaseModel, ConfigDict, ValidationError

from dalp_dr import private_files
from dalp_dr.errors import ConfigError, DalpDrError, InvalidInput, ObjectStoreError
from dalp_dr.export import keys
from dalp_dr.integrity import ChainEntry, Problem, ProblemKind, canonical

log = logging.getLogger(__name__)

LOG_NAME = "checkpoints.jsonl"
FORMAT = "dalp-dr checkpoint"
_MAX_LINE = 4096


class Checkpoint(BaseModel):
    """A signed statement: "the chain had head ``head`` at sequence number ``seq``"."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    seq: int
    head: str
    at: datetime
    key_fingerprint: str
    signature: str
    """base64 Ed25519 signature over ``payload()``"""

    @staticmethod
    def payload_of(seq: int, head: str, at: datetime) -> bytes:
        return canonical({"format": FORMAT, "version": 1, "seq": seq, "head": head,
                          "at": at.astimezone(UTC).isoformat()})

    def payload(self) -> bytes:
        return self.payload_of(self.seq, self.head, self.at)

    def line(self) -> str:
        return json.dumps(self.model_dump(mode="json"), sort_keys=True,
                          separators=(",", ":")) + "\n"


def sign(private: Ed25519PrivateKey, seq: int, head: str, at: datetime) -> Checkpoint:
    signature = base64.b64encode(private.sign(Checkpoint.payload_of(seq, head, at))).decode()
    return Checkpoint(seq=seq, head=head, at=at.astimezone(UTC),
                      key_fingerprint=keys.fingerprint(private.public_key()),
                      signature=signature)


class Read(BaseModel):
    """What a checkpoint source held: the checkpoints, and what could not be parsed."""

    model_config = ConfigDict(frozen=True)

    source: str
    checkpoints: list[Checkpoint]
    unreadable: list[str]
    present: bool
    """the source exists (a log file, a witness prefix)"""


def parse(text: str | bytes, where: str) -> Checkpoint | str:
    """A checkpoint, or one line saying why ``text`` is not one."""
    if len(text) > _MAX_LINE:
        return f"{where}: longer than {_MAX_LINE} bytes"
    try:
        return Checkpoint.model_validate_json(text)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first.get("loc", ())) or "line"
        return f"{where}: not a checkpoint ({field}: {first.get('msg')})"


class CheckpointLog:
    """``<results dir>/checkpoints.jsonl``: appended by every seal, never rewritten."""

    def __init__(self, results_dir: Path) -> None:
        self.path = results_dir / LOG_NAME

    def append(self, checkpoint: Checkpoint) -> None:
        private_files.make_dir(self.path.parent)
        fd = private_files.open_for_write(self.path, append=True)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)  # scheduler and CLI may seal at the same time
            os.write(fd, checkpoint.line().encode())
            os.fsync(fd)
        finally:
            os.close(fd)

    def read(self) -> Read:
        source = str(self.path)
        if not self.path.is_file():
            return Read(source=source, checkpoints=[], unreadable=[], present=False)
        found: list[Checkpoint] = []
        bad: list[str] = []
        with self.path.open("rb") as fh:
            for number, raw in enumerate(fh, 1):
                if not raw.strip():
                    continue
                parsed = parse(raw.strip(), f"{source} line {number}")
                if isinstance(parsed, Checkpoint):
                    found.append(parsed)
                else:
                    bad.append(parsed)
        return Read(source=source, checkpoints=found, unreadable=bad, present=True)


class S3Witness:
    """One object per checkpoint under ``s3://bucket/prefix`` with Object Lock retention."""

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
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return fn()
        except (BotoCoreError, ClientError) as exc:
            raise ObjectStoreError(f"checkpoint witness {self.url}: {what}: {exc}") from None

    def publish(self, checkpoint: Checkpoint, now: datetime | None = None) -> None:
        until = (now or datetime.now(UTC)) + timedelta(days=self.retain_days)
        self._call("cannot write the checkpoint", lambda: self._client.put_object(
            Bucket=self.bucket, Key=self._key(checkpoint), Body=checkpoint.line().encode(),
            ContentType="application/json", ObjectLockMode=self.mode,
            ObjectLockRetainUntilDate=until))

    def read(self) -> Read:
        found: list[Checkpoint] = []
        bad: list[str] = []
        names: list[str] = []

        def listing() -> None:
            paginator = self._client.get_paginator("list_objects_v2")
            prefix = f"{self.prefix}/" if self.prefix else ""
            for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix):
                names.extend(o["Key"] for o in page.get("Contents", []))

        self._call("cannot list the checkpoints", listing)
        def fetch(name: str) -> bytes:
            body: bytes = self._client.get_object(Bucket=self.bucket, Key=name)["Body"].read(
                _MAX_LINE + 1)
            return body

        for name in names:
            body = self._call(f"cannot read {name}", functools.partial(fetch, name))
            parsed = parse(body.strip(), f"{self.url} object {name}")
            if isinstance(parsed, Checkpoint):
                found.append(parsed)
            else:
                bad.append(parsed)
        return Read(source=self.url, checkpoints=found, unreadable=bad, present=bool(names))


def trusted_keys(key_directory: Path) -> dict[str, Ed25519PublicKey]:
    """The public keys a checkpoint may be signed by: the history's current key and any
    retired one kept in ``<key dir>/retired/`` (``keys init --force`` keeps the old one)."""
    found: dict[str, Ed25519PublicKey] = {}
    candidates = [key_directory / keys.PUBLIC]
    retired = key_directory / keys.RETIRED
    if retired.is_dir():
        candidates.extend(sorted(retired.glob("*.pem")))
    for path in candidates:
        if path.is_file():
            try:
                key = keys.load_public(path.read_bytes(), str(path))
            except InvalidInput as exc:
                log.warning("ignoring %s", exc)
                continue
            found[keys.fingerprint(key)] = key
    return found


def signature_ok(key: Ed25519PublicKey, checkpoint: Checkpoint) -> bool:
    return keys.signature_ok(key, checkpoint.payload(), checkpoint.signature.encode())


class Verdict(BaseModel):
    model_config = ConfigDict(frozen=True)

    problems: list[Problem]
    notes: list[str]
    checked: int
    """checkpoints the chain agrees with, up to the newest whose signature holds"""
    latest: Checkpoint | None
    """the newest checkpoint that holds"""


def check(reads: Iterable[Read], digests: dict[int, str], head_seq: int,
          trusted: dict[str, Ed25519PublicKey]) -> Verdict:
    """Hold the chain (``digests``: seq -> entry digest, up to ``head_seq``) against every
    checkpoint read.

    A checkpoint that disagrees with the chain has its signature checked: it holds (the
    chain was rewritten or truncated) or it does not (the checkpoint was altered or forged);
    either is a problem. Of the checkpoints that agree, the newest of each source whose
    signature holds pins everything before it through the chain's links, so signatures are
    checked from the newest down until one holds (an altered one on the way is a problem):
    ten thousand checkpoints cost a few signature checks, not ten thousand."""
    problems: list[Problem] = []
    notes: list[str] = []
    agreeing, latest = 0, None
    seen_any_source = False
    for read in reads:
        seen_any_source |= read.present
        problems.extend(Problem(run_id=None, seq=None, what=f"checkpoint {b}")
                        for b in read.unreadable)
        agree: list[Checkpoint] = []
        for cp in read.checkpoints:
            key = trusted.get(cp.key_fingerprint)
            if key is None:
                if trusted:
                    problems.append(Problem(run_id=None, seq=cp.seq, what=(
                        f"{_where(cp, read)}: not signed by this history's key "
                        f"({', '.join(trusted)}): forged or from another history")))
                continue
            if cp.seq <= head_seq and digests.get(cp.seq) == cp.head:
                agree.append(cp)
                continue
            if not signature_ok(key, cp):
                problems.append(Problem(run_id=None, seq=cp.seq, what=(
                    f"{_where(cp, read)}: signature does not hold (altered or forged "
                    "checkpoint)")))
            elif cp.seq > head_seq:
                problems.append(Problem(run_id=None, seq=cp.seq, what=(
                    f"contradicts {_where(cp, read)}: the chain ends at #{head_seq} "
                    "(entries deleted from the end, or the chain rewritten)")))
            else:
                problems.append(Problem(run_id=None, seq=cp.seq, what=(
                    f"contradicts {_where(cp, read)}: head then {cp.head}, the chain now "
                    f"has {digests.get(cp.seq, 'nothing')} there (the chain was rewritten)")))
        for cp in sorted(agree, key=lambda c: c.seq, reverse=True):
            if signature_ok(trusted[cp.key_fingerprint], cp):
                agreeing += sum(1 for c in agree if c.seq <= cp.seq)
                if latest is None or cp.seq > latest.seq:
                    latest = cp
                break
            problems.append(Problem(run_id=None, seq=cp.seq, what=(
                f"{_where(cp, read)}: signature does not hold (altered or forged "
                "checkpoint)")))
    if not trusted:
        notes.append("NOT PINNED: no signing key, so no signed checkpoint pins the chain head "
                     "and a rewrite of the whole store would not show")
    elif head_seq and latest is None and not problems:
        problems.append(Problem(run_id=None, seq=None, kind=ProblemKind.UNPINNED, what=(
            "no signed checkpoint pins this history although it has a signing key "
            "(checkpoint log missing or emptied?); a history sealed before its key existed "
            "is pinned once by signing its current head")))
    elif latest is not None and latest.seq < head_seq:
        notes.append(f"entries #{latest.seq + 1}..#{head_seq} are not covered by a signed "
                     "checkpoint yet")
    if trusted and not seen_any_source and head_seq:
        notes.append("no checkpoint log or witness was found")
    return Verdict(problems=problems, notes=notes, checked=agreeing, latest=latest)


def _where(cp: Checkpoint, read: Read) -> str:
    return (f"signed checkpoint #{cp.seq} in {read.source} (signed "
            f"{cp.at:%Y-%m-%d %H:%M:%S} UTC by {cp.key_fingerprint})")


class Checkpointer:
    """Signs and publishes a checkpoint after every seal. Never raises: a checkpoint that
    cannot be written is reported (``on_problem``) and the record stays sealed."""

    def __init__(self, results_dir: Path, key_directory: Path,
                 witness: S3Witness | None = None,
                 on_problem: Callable[[str], None] | None = None) -> None:
        self.log = CheckpointLog(results_dir)
        self.key_directory = key_directory
        self.witness = witness
        self._on_problem = on_problem or (lambda m: log.warning("%s", m))

    def sources(self) -> list[Read]:
        reads = [self.log.read()]
        if self.witness is not None:
            reads.append(self.witness.read())
        return reads

    def trusted(self) -> dict[str, Ed25519PublicKey]:
        return trusted_keys(self.key_directory)

    def _private(self) -> Ed25519PrivateKey | None:
        if not (self.key_directory / keys.PRIVATE).is_file():
            return None  # unpinned history: verify and exports say so
        return keys.load_private(self.key_directory)

    def sign_head(self, seq: int, head: str, now: datetime | None = None) -> Checkpoint:
        """Sign and publish a checkpoint (raises ConfigError without a key)."""
        private = self._private()
        if private is None:
            raise ConfigError(f"no signing key at {self.key_directory / keys.PRIVATE}",
                              field="keys")
        checkpoint = sign(private, seq, head, now or datetime.now(UTC))
        self.log.append(checkpoint)
        if self.witness is not None:
            self.witness.publish(checkpoint, now)
        return checkpoint

    def after_seal(self, entry: ChainEntry) -> None:
        try:
            if self._private() is None:
                return
            self.sign_head(entry.seq, entry.digest)
        except (DalpDrError, OSError) as exc:
            self._on_problem(f"checkpoint for chain entry #{entry.seq} not written: {exc}")


def newest(reads: Iterable[Read], trusted: dict[str, Ed25519PublicKey]) -> Iterator[
        tuple[str, Checkpoint]]:
    """Every checkpoint whose signature holds, newest first, with its source."""
    good = [(r.source, cp) for r in reads for cp in r.checkpoints
            if (k := trusted.get(cp.key_fingerprint)) is not None and signature_ok(k, cp)]
    yield from sorted(good, key=lambda t: (t[1].seq, t[1].at), reverse=True)
