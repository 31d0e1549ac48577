"""Holding a chain against the checkpoints that were signed for it."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from pydantic import BaseModel

from dalp_dr.checkpoints.model import Checkpoint, Claim, Read, signature_ok
from dalp_dr.errors import DalpDrError
from dalp_dr.export import keys
from dalp_dr.integrity import Problem, ProblemKind

log = logging.getLogger(__name__)


def revoked_keys(key_directory: Path) -> set[str]:
    """Fingerprints of the keys ``keys init --force --revoke`` revoked."""
    found: set[str] = set()
    folder = key_directory / keys.REVOKED
    for path in sorted(folder.glob("*.pem")) if folder.is_dir() else []:
        try:
            found.add(keys.fingerprint(keys.load_public(path.read_bytes(), str(path))))
        except (DalpDrError, OSError, ValueError) as exc:
            log.warning("ignoring %s: %s", path, exc)
    return found


def trusted_keys(key_directory: Path) -> dict[str, Ed25519PublicKey]:
    """The public keys a checkpoint may be signed by: the history's current key (from its
    public key file, else from the private key) and any retired one kept in
    ``<key dir>/retired/`` (``keys init --force`` keeps the old one unless revoked)."""
    found: dict[str, Ed25519PublicKey] = {}
    candidates = [key_directory / keys.PUBLIC]
    retired = key_directory / keys.RETIRED
    if retired.is_dir():
        candidates.extend(sorted(retired.glob("*.pem")))
    for path in candidates:
        try:
            key = keys.load_public(path.read_bytes(), str(path)) if path.is_file() else None
        except (DalpDrError, OSError, ValueError) as exc:
            log.warning("ignoring %s: %s", path, exc)
            continue
        if key is not None:
            found[keys.fingerprint(key)] = key
    if not (key_directory / keys.PUBLIC).is_file() and \
            (key_directory / keys.PRIVATE).is_file():
        try:
            private: Ed25519PrivateKey = keys.load_private(key_directory)
        except DalpDrError as exc:
            log.warning("cannot derive the public key: %s", exc)
        else:
            found[keys.fingerprint(private.public_key())] = private.public_key()
    return found


class Verdict(BaseModel, frozen=True):
    problems: list[Problem]
    notes: list[str]
    checked: int
    """checkpoints the chain agrees with, up to the newest whose signature holds"""
    latest: Checkpoint | None
    """the newest checkpoint that holds"""


def _where(cp: Checkpoint, source: str) -> str:
    return (f"signed checkpoint #{cp.seq} in {source} (signed "
            f"{cp.at:%Y-%m-%d %H:%M:%S} UTC by {cp.key_fingerprint})")


def _authentic(claim: Claim, trusted: dict[str, Ed25519PublicKey]) -> Checkpoint | Problem:
    """The signed checkpoint behind a claim, or what is wrong with it."""
    cp = claim.fetch()
    if isinstance(cp, str):
        return Problem(run_id=None, seq=claim.seq, what=f"checkpoint {cp}")
    if (cp.seq, cp.head) != (claim.seq, claim.head):
        return Problem(run_id=None, seq=claim.seq, what=(
            f"{_where(cp, claim.where)}: its content names #{cp.seq} {cp.head}, not the "
            f"#{claim.seq} {claim.head} it is filed under (altered)"))
    key = trusted.get(cp.key_fingerprint)
    if key is None:
        return Problem(run_id=None, seq=cp.seq, what=(
            f"{_where(cp, claim.where)}: not signed by this history's key "
            f"({', '.join(trusted)}): forged or from another history"))
    if not signature_ok(key, cp):
        return Problem(run_id=None, seq=cp.seq, what=(
            f"{_where(cp, claim.where)}: signature does not hold (altered or forged "
            "checkpoint)"))
    return cp


def check(reads: Iterable[Read], digests: dict[int, str], head_seq: int,
          trusted: dict[str, Ed25519PublicKey], revoked: frozenset[str] = frozenset()
          ) -> Verdict:
    """Hold the chain (``digests``: seq -> entry digest, up to ``head_seq``) against every
    checkpoint read.

    A checkpoint that disagrees with the chain is read and its signature checked: it holds
    (the chain was rewritten or truncated) or it does not (the checkpoint was altered or
    forged); either is a problem. Of those that agree, the newest of each source whose
    signature holds pins everything before it through the chain's links, so signatures are
    checked from the newest down until one holds (an altered one on the way is a problem).
    Entries sealed after the newest checkpoint that holds are not pinned: a problem too (a
    log cut short, or a checkpoint that could not be written), until the operator reviews
    and signs them (``history checkpoint --sign``)."""
    problems: list[Problem] = []
    notes: list[str] = []
    agreeing, latest = 0, None
    if not trusted:
        notes.append("NOT PINNED: no signing key, so no signed checkpoint pins the chain head "
                     "and a rewrite of the whole store would not show")
        return Verdict(problems=problems, notes=notes, checked=0, latest=None)
    ignored: dict[str, int] = {}
    for read in reads:
        problems.extend(Problem(run_id=None, seq=None, what=f"checkpoint {b}")
                        for b in read.unreadable)
        agree: list[Claim] = []
        for claim in read.claims:
            if revoked:
                signed = claim.fetch()
                if isinstance(signed, Checkpoint) and signed.key_fingerprint in revoked:
                    ignored[signed.key_fingerprint] = ignored.get(signed.key_fingerprint, 0) + 1
                    continue
            if claim.seq <= head_seq and digests.get(claim.seq) == claim.head:
                agree.append(claim)
                continue
            found = _authentic(claim, trusted)
            if isinstance(found, Problem):
                problems.append(found)
            elif found.seq > head_seq:
                problems.append(Problem(run_id=None, seq=found.seq, what=(
                    f"contradicts {_where(found, read.source)}: the chain ends at "
                    f"#{head_seq} (entries deleted from the end, or the chain rewritten)")))
            else:
                problems.append(Problem(run_id=None, seq=found.seq, what=(
                    f"contradicts {_where(found, read.source)}: head then {found.head}, "
                    f"the chain now has {digests.get(found.seq, 'nothing')} there (the "
                    "chain was rewritten)")))
        for claim in sorted(agree, key=lambda c: c.seq, reverse=True):
            found = _authentic(claim, trusted)
            if isinstance(found, Problem):
                problems.append(found)
                continue
            agreeing += sum(1 for c in agree if c.seq <= found.seq)
            if latest is None or found.seq > latest.seq:
                latest = found
            break
    notes.extend(f"ignored {n} checkpoint(s) signed by the revoked key {fp}"
                 for fp, n in sorted(ignored.items()))
    if head_seq and latest is None:
        problems.append(Problem(run_id=None, seq=None, kind=ProblemKind.UNPINNED, what=(
            "no signed checkpoint pins this history although it has a signing key "
            "(checkpoint log missing or emptied, or the history was sealed before its key "
            "existed)")))
    elif latest is not None and latest.seq < head_seq:
        problems.append(Problem(run_id=None, seq=latest.seq + 1, kind=ProblemKind.UNPINNED,
                                what=(
            f"entries #{latest.seq + 1}..#{head_seq} were sealed after the newest signed "
            f"checkpoint (#{latest.seq}) and are not pinned (checkpoint log cut short, a "
            "checkpoint that could not be written, or sealed by another controller without "
            "a shared witness)")))
    return Verdict(problems=problems, notes=notes, checked=agreeing, latest=latest)


def newest(reads: Iterable[Read], trusted: dict[str, Ed25519PublicKey]
           ) -> tuple[str, Checkpoint] | None:
    """The newest checkpoint whose signature holds, with its source."""
    best: tuple[str, Checkpoint] | None = None
    for read in reads:
        for claim in sorted(read.claims, key=lambda c: c.seq, reverse=True):
            if best is not None and claim.seq <= best[1].seq:
                break
            found = _authentic(claim, trusted)
            if isinstance(found, Checkpoint):
                best = (read.source, found)
                break
    return best
