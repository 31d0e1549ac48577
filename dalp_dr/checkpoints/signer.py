"""Signing a checkpoint for every seal, and for a head the operator reviewed."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from dalp_dr.checkpoints.model import Checkpoint, Read, sign, signature_ok
from dalp_dr.checkpoints.sources import CheckpointLog, S3Witness
from dalp_dr.checkpoints.verdict import newest, revoked_keys, trusted_keys
from dalp_dr.clock import utcnow
from dalp_dr.errors import ConfigError, DalpDrError
from dalp_dr.export import keys
from dalp_dr.integrity import ChainEntry, Problem

log = logging.getLogger(__name__)

VOUCHED = b"dalp-dr vouched v1\n"
"""what a vouch signs before the data (never a checkpoint or a bundle signature)"""

CATCH_UP = 1000
"""at most this many checkpoints the witness missed are published with the next seal"""


class Checkpointer:
    """Signs a checkpoint after every seal, but only one that extends a chain already
    pinned: the new entry must link to the newest signed checkpoint's head. A seal after a
    gap (a checkpoint log cut short, entries sealed by another controller, a history older
    than its key) is not signed automatically, so a forgery slipped in between is never
    pinned by the next genuine seal; ``history verify`` then names the unpinned entries and
    ``history checkpoint --sign`` pins them once someone reviewed them.

    Never raises from a seal: a checkpoint that cannot be written is reported
    (``on_problem``) and the record stays sealed."""

    def __init__(self, results_dir: Path, key_directory: Path,
                 witness: S3Witness | None = None,
                 on_problem: Callable[[str], None] | None = None) -> None:
        self.log = CheckpointLog(results_dir)
        self.key_directory = key_directory
        self.witness = witness
        self._on_problem = on_problem or (lambda m: log.warning("%s", m))
        self._pending: list[Checkpoint] = []
        self._seen: Read | DalpDrError | None = None
        """what this seal found in the witness (or why it could not read it)"""

    def sources(self) -> tuple[list[Read], list[Problem]]:
        """What every source holds, and a problem for each that cannot be read (it cannot
        prove the history holds: verification fails closed)."""
        reads: list[Read] = []
        problems: list[Problem] = []
        readers = [self.log.read]
        if self.witness is not None:
            readers.append(self.witness.read)
        for read in readers:
            try:
                reads.append(read())
            except (DalpDrError, OSError) as exc:
                problems.append(Problem(run_id=None, seq=None,
                                        what=f"checkpoints unreadable: {exc}"))
        return reads, problems

    def trusted(self) -> dict[str, Ed25519PublicKey]:
        return trusted_keys(self.key_directory)

    def revoked(self) -> frozenset[str]:
        return frozenset(revoked_keys(self.key_directory))

    def reading(self) -> contextlib.AbstractContextManager[None]:
        """Held while a verification reads the chain and the checkpoints."""
        return self.log.reading()

    @contextlib.contextmanager
    def sealing(self) -> Iterator[None]:
        """Held from a seal's transaction until its checkpoint is in the log; the witness
        is written after it is released (a slow or absent S3 blocks no one)."""
        with self.log.sealing():
            yield
            pending, self._pending = self._pending, []
            seen, self._seen = self._seen, None
        self._publish(pending, seen)

    def _publish(self, pending: list[Checkpoint], seen: Read | DalpDrError | None) -> None:
        """The new checkpoints to the witness, after any authentic ones of the local log it
        does not hold (missed while it was unreachable), oldest first, at most CATCH_UP of
        those. A witness found unreachable by this seal already is not tried again."""
        if self.witness is None or not pending:
            return
        try:
            read = seen if seen is not None else self.witness.read()
            if isinstance(read, Exception):
                raise read
            witnessed = {claim.seq for claim in read.claims}
            missed = [c for c in self._logged() if c.seq not in witnessed
                      and c.seq < pending[0].seq][-CATCH_UP:]
            for checkpoint in [*missed, *pending]:
                self.witness.publish(checkpoint)
        except (DalpDrError, OSError) as exc:
            self._on_problem(f"checkpoint #{pending[-1].seq} not witnessed in "
                             f"{self.witness.url} yet (the next seal publishes it): {exc}")

    def _logged(self) -> list[Checkpoint]:
        """The local log's checkpoints signed by a trusted key (a line that is not one is
        never published: the witness keeps what it is given for good; verify names it)."""
        trusted = self.trusted()
        found = [claim.fetch() for claim in self.log.read().claims]
        return [c for c in found if isinstance(c, Checkpoint)
                and (key := trusted.get(c.key_fingerprint)) is not None
                and signature_ok(key, c)]

    def vouch(self, data: bytes) -> bytes | None:
        private = self._private()
        return None if private is None else keys.sign(private, VOUCHED + data)

    def vouches(self, data: bytes, signature: bytes | None) -> bool:
        trusted = self.trusted()
        if not trusted and not (self.key_directory / keys.PRIVATE).is_file():
            return True  # unpinned: no key to hold the results directory against
        return signature is not None and any(
            keys.signature_ok(public, VOUCHED + data, signature) for public in trusted.values())

    def _private(self) -> Ed25519PrivateKey | None:
        if not (self.key_directory / keys.PRIVATE).is_file():
            return None  # unpinned history: verify and exports say so
        return keys.load_private(self.key_directory)

    def _previous(self) -> tuple[str, Checkpoint] | str | None:
        """The newest signed checkpoint this chain must extend, or why there is none."""
        trusted = self.trusted()
        last = self.log.last()
        if isinstance(last, str):
            return last
        if last is not None:
            key = trusted.get(last.key_fingerprint)
            if key is None or not signature_ok(key, last):
                return (f"the last line of {self.log.path} is not a checkpoint signed by "
                        "this history's key")
        best = (str(self.log.path), last) if last is not None else None
        if self.witness is not None:
            witnessed = None
            try:
                read = self.witness.read()
                self._seen = read  # (publishing after this seal needs the same listing)
                witnessed = newest([read], trusted)
            except DalpDrError as exc:  # the local log alone decides; published later
                self._seen = exc
                self._on_problem(f"checkpoint witness unreachable, the local log alone "
                                 f"decides what this seal extends: {exc}")
            if witnessed is not None and (best is None or witnessed[1].seq > best[1].seq):
                best = witnessed
        return best

    def sealed(self, entry: ChainEntry) -> None:
        """Sign the checkpoint of a new chain entry (the caller holds ``sealing()``)."""
        try:
            private = self._private()
            if private is None:
                return
            previous = self._previous() if entry.seq > 1 else None
            if isinstance(previous, str):
                self._on_problem(f"chain entry #{entry.seq} NOT signed: {previous}")
                return
            if entry.seq > 1:
                if previous is None:
                    self._on_problem(
                        f"chain entry #{entry.seq} NOT signed: no signed checkpoint before it "
                        "(a history older than its key, or a checkpoint log that is gone)")
                    return
                source, cp = previous
                if (cp.seq, cp.head) != (entry.seq - 1, entry.prev_digest):
                    self._on_problem(
                        f"chain entry #{entry.seq} NOT signed: it does not extend the newest "
                        f"signed checkpoint #{cp.seq} ({source}): entries between them are not "
                        "pinned, or the chain was rewritten")
                    return
            self._append(sign(private, entry.seq, entry.digest, utcnow()))
        except (DalpDrError, OSError) as exc:
            self._on_problem(f"checkpoint for chain entry #{entry.seq} not written: {exc}")

    def _append(self, checkpoint: Checkpoint) -> None:
        self.log.append(checkpoint)
        self._pending.append(checkpoint)

    def sign_head(self, seq: int, head: str) -> Checkpoint:
        """Sign a head someone reviewed (``history checkpoint --sign``). Raises ConfigError
        without a key, ObjectStoreError when the witness cannot take it."""
        private = self._private()
        if private is None:
            raise ConfigError(f"no signing key at {self.key_directory / keys.PRIVATE}",
                              field="keys")
        with self.log.sealing():
            checkpoint = sign(private, seq, head, utcnow())
            self.log.append(checkpoint)
        if self.witness is not None:
            self.witness.publish(checkpoint)
        return checkpoint
