"""Tamper evidence for the drill history: every final record is sealed into a hash chain.

When a run is finished (passed, missed, failed, aborted, a missed schedule...) the store
appends one chain entry in the same transaction:

* ``record_digest``: sha256 of the record's canonical content (the full result, parsed and
  re-serialised with sorted keys, and the sha256 of its spec snapshot);
* ``evidence``: sha256 of every file in the run's evidence directory at that moment, and
  ``evidence_digest`` over that list;
* ``prev_digest``: the previous entry's ``digest`` (64 zeros for the first);
* ``digest``: sha256 over (seq, run id, record digest, evidence digest, prev digest).

``verify`` walks the chain in order and names the first thing that does not add up: a
changed field (the digest, or a summary column that no longer matches the sealed content),
a deleted or reordered record (broken link, gap in the sequence), a record nobody sealed,
a changed or missing evidence file. The newest entry's digest (the head) is what an export
signs; a record appended at the end and deleted again leaves no trace locally, which is why
exports carry the head and a signature.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
from collections.abc import Callable, Collection, Iterable, Iterator
from datetime import datetime
from enum import StrEnum
from pathlib import Path, PurePath
from typing import Any

from pydantic import BaseModel

GENESIS = "0" * 64


class ChainEntry(BaseModel, frozen=True):
    """One link of the hash chain: a sealed record's digest, its evidence's digests and the
    digest of the link before it."""

    seq: int
    run_id: str
    record_digest: str
    evidence: dict[str, str]
    """relative path -> sha256 of each evidence file when the record was sealed"""
    evidence_digest: str
    prev_digest: str
    digest: str
    sealed_at: datetime


class SealedRecord(BaseModel, frozen=True):
    """A chain entry with the stored record it seals (None where the record is gone)."""

    entry: ChainEntry
    result_json: str | None
    spec_json: str | None
    columns: dict[str, Any] | None
    """the runs row's summary columns as stored (normalised to JSON types)"""


class ProblemKind(StrEnum):
    TAMPERED = "tampered"
    """something sealed no longer adds up: changed, deleted, reordered, forged"""
    MISSING = "missing"
    """a run's evidence directory is not there at all (moved or not restored?)"""
    UNPINNED = "unpinned"
    """the history has a signing key but no signed checkpoint pins it"""


class Problem(BaseModel, frozen=True):
    run_id: str | None
    seq: int | None
    what: str
    kind: ProblemKind = ProblemKind.TAMPERED

    def __str__(self) -> str:
        where = " ".join(p for p in (f"#{self.seq}" if self.seq is not None else None,
                                    f"run {self.run_id}" if self.run_id else None) if p)
        return f"{where}: {self.what}" if where else self.what


def canonical(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      default=str).encode()


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def record_digest(result_json: str, spec_json: str) -> str:
    return _digest_of(json.loads(result_json), spec_json)


def _digest_of(result: Any, spec_json: str) -> str:
    return sha256(canonical({"result": result, "spec_sha256": sha256(spec_json.encode())}))


def relative_evidence(evidence_dir: str) -> str:
    """A run's evidence directory relative to the results directory. Records keep the
    absolute path where the evidence was first written; the engine always writes it to
    ``<results dir>/<run id>``, so the last component is where it is under any results
    directory it was moved or restored to."""
    if not evidence_dir.startswith("/"):
        return evidence_dir
    return evidence_dir.rstrip("/").rsplit("/", 1)[-1]


def unsafe_path(name: str, single: bool = False) -> str | None:
    """Why ``name`` (read from the store: data) cannot name something under a directory:
    absolute, '.', '..' or empty segments, backslashes or control characters; ``single``:
    more than one segment. None when it is a plain relative path."""
    parts = name.split("/")
    if not name or name.startswith("/") or any(p in ("", ".", "..") for p in parts):
        return "not a plain relative path"
    if "\\" in name or not name.isprintable():
        return "backslashes or control characters"
    if single and len(parts) > 1:
        return "more than one path segment"
    return None


def evidence_location(evidence_dir: str, results_dir: Path | None) -> Path | None:
    """Where a run's evidence is now: under ``results_dir`` (the configured one), never at
    the absolute path it was first written to when a results directory is known."""
    if not evidence_dir:
        return None
    if results_dir is None:
        return Path(evidence_dir) if PurePath(evidence_dir).is_absolute() else None
    relative = relative_evidence(evidence_dir)
    if unsafe_path(relative, single=True):
        return None  # not a run directory under the results directory: never followed
    return results_dir / relative


def evidence_manifest(evidence_dir: str | Path | None) -> dict[str, str]:
    """sha256 of every regular file under the evidence directory (none for records without
    one). Links are never followed: a link planted among the evidence would otherwise seal,
    and export, whatever it points to (the signing key)."""
    if not evidence_dir:
        return {}
    root = Path(evidence_dir)
    if root.is_symlink() or not root.is_dir():
        return {}
    found = {}
    for dirpath, dirnames, filenames in os.walk(root):  # does not descend into links
        dirnames.sort()
        for name in sorted(filenames):
            path = os.path.join(dirpath, name)
            if name.endswith(".tmp") or not stat.S_ISREG(os.lstat(path).st_mode):
                continue
            found[Path(path).relative_to(root).as_posix()] = evidence_sha256(path)
    return dict(sorted(found.items()))


def file_sha256(path: Path | str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def evidence_sha256(path: Path | str) -> str:
    """sha256 of an evidence file, which must be a regular file and not a link (OSError:
    ELOOP for a link, and ValueError for anything else that is not a regular file)."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    with os.fdopen(fd, "rb") as fh:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise ValueError(f"{path} is not a regular file")
        h = hashlib.sha256()
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def entry_digest(seq: int, run_id: str, record: str, evidence: str, prev: str) -> str:
    return sha256(canonical([seq, run_id, record, evidence, prev]))


def seal(seq: int, run_id: str, result_json: str, spec_json: str,
         evidence: dict[str, str], prev: str, now: datetime) -> ChainEntry:
    record = record_digest(result_json, spec_json)
    evidence_digest = sha256(canonical(evidence))
    return ChainEntry(seq=seq, run_id=run_id, record_digest=record, evidence=evidence,
                      evidence_digest=evidence_digest, prev_digest=prev,
                      digest=entry_digest(seq, run_id, record, evidence_digest, prev),
                      sealed_at=now)


# the summary columns must say what the sealed result says
_COLUMN_FROM_RESULT: dict[str, Callable[[dict[str, Any]], Any]] = {
    "drill": lambda r: r["drill"],
    "topology": lambda r: r["topology"],
    "environment": lambda r: r["environment"],
    "trigger": lambda r: r["trigger"],
    "operator": lambda r: r["operator"],
    "outcome": lambda r: r["outcome"],
    "evidence_dir": lambda r: relative_evidence(r["evidence_dir"]),
    "started_at": lambda r: _instant(r["started_at"]),
    "ended_at": lambda r: _instant(r.get("ended_at")),
    "planned_at": lambda r: _instant(r.get("planned_at")),
    "recovery_time": lambda r: (r.get("measurements") or {}).get("recovery_time"),
    "data_loss_window": lambda r: (r.get("measurements") or {}).get("data_loss_window"),
}


def _instant(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.timestamp()
    return datetime.fromisoformat(str(value)).timestamp()


def _same(column: str, stored: Any, sealed: Any) -> bool:
    if column in ("started_at", "ended_at", "planned_at"):
        stored = _instant(stored)
    elif column == "evidence_dir":
        stored = relative_evidence(str(stored or ""))
    if isinstance(stored, float) or isinstance(sealed, float):
        return stored is not None and sealed is not None and \
            abs(float(stored) - float(sealed)) < 1e-6
    return bool(stored == sealed)


def _same_or_broken(column: str, stored: Any, sealed: dict[str, Any],
                    derive: Callable[[dict[str, Any]], Any]) -> bool:
    """The stored column says what the sealed result says (False when either cannot even be
    read: a value dalp-dr never writes)."""
    try:
        return _same(column, stored, derive(sealed))
    except (ValueError, TypeError, KeyError, AttributeError):
        return False


def check_record(record: SealedRecord, results_dir: Path | None = None,
                 check_evidence: bool = True) -> Problem | None:
    """The first problem with one sealed record, or None. Evidence is looked for under
    ``results_dir`` (see evidence_location)."""
    entry = record.entry
    if record.result_json is None or record.spec_json is None:
        return Problem(run_id=entry.run_id, seq=entry.seq,
                       what="record deleted (its chain entry is still there)")
    try:
        sealed = json.loads(record.result_json)
    except ValueError:
        return Problem(run_id=entry.run_id, seq=entry.seq,
                       what="record content changed after it was sealed (not even JSON)")
    if not isinstance(sealed, dict) or \
            _digest_of(sealed, record.spec_json) != entry.record_digest:
        return Problem(run_id=entry.run_id, seq=entry.seq,
                       what="record content changed after it was sealed")
    for column, stored in (record.columns or {}).items():
        derive = _COLUMN_FROM_RESULT.get(column)
        if derive is not None and not _same_or_broken(column, stored, sealed, derive):
            return Problem(run_id=entry.run_id, seq=entry.seq,
                           what=f"column '{column}' changed after it was sealed "
                                f"(stored {stored!r})")
    if sha256(canonical(entry.evidence)) != entry.evidence_digest:
        return Problem(run_id=entry.run_id, seq=entry.seq,
                       what="evidence list in the chain entry changed")
    for name in entry.evidence:
        if unsafe_path(name):
            return Problem(run_id=entry.run_id, seq=entry.seq,
                           what=f"evidence name {name!r} in the chain entry escapes the run's "
                                "directory")
    relative = relative_evidence(str(sealed.get("evidence_dir") or ""))
    if relative and unsafe_path(relative, single=True):
        return Problem(run_id=entry.run_id, seq=entry.seq,
                       what=f"evidence directory {relative!r} is not a run directory under "
                            "the results directory")
    if check_evidence and entry.evidence:
        base = evidence_location(str(sealed.get("evidence_dir") or ""), results_dir)
        if base is None or not base.is_dir():
            where = results_dir if results_dir is not None else base
            return Problem(run_id=entry.run_id, seq=entry.seq, kind=ProblemKind.MISSING,
                           what=f"evidence for run {entry.run_id} not found under {where} "
                                "(moved or not restored?)")
        root = str(base)
        for name, digest in sorted(entry.evidence.items()):
            path = os.path.join(root, name)  # plain strings: ten thousand runs, fast
            try:
                found = evidence_sha256(path)
            except FileNotFoundError:
                return Problem(run_id=entry.run_id, seq=entry.seq,
                               what=f"evidence file missing: {path}")
            except (OSError, ValueError):
                return Problem(run_id=entry.run_id, seq=entry.seq,
                               what=f"evidence file replaced by a link or something that is "
                                    f"not a file: {path}")
            if found != digest:
                return Problem(run_id=entry.run_id, seq=entry.seq,
                               what=f"evidence file changed: {path}")
    return None


def check_links(entries: Iterable[ChainEntry], first_prev: str | None = GENESIS,
                first_seq: int | None = 1) -> Iterator[Problem]:
    """Every entry's own digest, and the link to the one before (None: start anywhere)."""
    prev, expected_seq = first_prev, first_seq
    for entry in entries:
        if expected_seq is not None and entry.seq != expected_seq:
            yield Problem(run_id=entry.run_id, seq=entry.seq,
                          what=f"chain entry #{expected_seq} is missing (deleted record?)")
        elif prev is not None and entry.prev_digest != prev:
            yield Problem(run_id=entry.run_id, seq=entry.seq,
                          what="does not link to the entry before it (records deleted, "
                               "inserted or reordered)")
        if entry_digest(entry.seq, entry.run_id, entry.record_digest, entry.evidence_digest,
                        entry.prev_digest) != entry.digest:
            yield Problem(run_id=entry.run_id, seq=entry.seq, what="chain entry altered")
        prev, expected_seq = entry.digest, entry.seq + 1


class VerifyReport(BaseModel, frozen=True):
    records: int
    head: str
    """the newest entry's digest (record it elsewhere: it pins the whole history)"""
    head_seq: int = 0
    problems: list[Problem]
    unsealed_running: int
    """runs still in progress (sealed when they finish)"""
    notes: list[str] = []
    """what the verdict rests on and what it cannot show (no signing key, entries no
    checkpoint covers yet)"""
    checkpoints: int = 0
    """signed checkpoints checked against the chain"""
    latest_checkpoint_seq: int | None = None

    @property
    def intact(self) -> bool:
        return not self.problems


def verify(records: Iterable[SealedRecord], unsealed: Iterable[str], running: int,
           check_evidence: bool = True, results_dir: Path | None = None,
           evidence_checked_elsewhere: Collection[str] = ()) -> VerifyReport:
    """The whole chain. ``evidence_checked_elsewhere``: runs whose evidence files the caller
    hashes itself against their seal (a bundle writer copying them)."""
    problems: list[tuple[int, int, Problem]] = []
    count, head, head_seq = 0, GENESIS, 0
    entries = []
    for record in records:
        count += 1
        entries.append(record.entry)
        head, head_seq = record.entry.digest, record.entry.seq
        problem = check_record(record, results_dir=results_dir, check_evidence=(
            check_evidence and record.entry.run_id not in evidence_checked_elsewhere))
        if problem is not None:
            problems.append((record.entry.seq, 1, problem))
    # a broken link comes before what is wrong with the record it leads to
    problems.extend((p.seq or 0, 0, p) for p in check_links(entries))
    ordered = [p for _seq, _rank, p in sorted(problems, key=lambda t: (t[0], t[1]))]
    for run_id in unsealed:
        ordered.append(Problem(run_id=run_id, seq=None,
                               what="final record not in the chain (inserted behind the "
                                    "store's back, or its chain entry deleted)"))
    return VerifyReport(records=count, head=head, head_seq=head_seq, problems=ordered,
                        unsealed_running=running)
