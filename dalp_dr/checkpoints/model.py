"""A checkpoint: "the chain had head H at sequence number N", signed with the history's key;
and what a source of checkpoints holds."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from datetime import UTC, datetime

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from pydantic import BaseModel, ConfigDict, ValidationError

from dalp_dr.export import keys
from dalp_dr.integrity import canonical

FORMAT = "dalp-dr checkpoint"
MAX_LINE = 4096


class Checkpoint(BaseModel):
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


def signature_ok(key: Ed25519PublicKey, checkpoint: Checkpoint) -> bool:
    return keys.signature_ok(key, checkpoint.payload(), checkpoint.signature.encode())


def parse(text: str | bytes, where: str) -> Checkpoint | str:
    """A checkpoint, or one line saying why ``text`` is not one."""
    if len(text) > MAX_LINE:
        return f"{where}: longer than {MAX_LINE} bytes"
    try:
        return Checkpoint.model_validate_json(text)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first.get("loc", ())) or "line"
        return f"{where}: not a checkpoint ({field}: {first.get('msg')})"


class Claim(BaseModel):
    """A checkpoint as a source names it: its sequence number and head, and how to read the
    signed checkpoint itself (a witness names them in object keys, so the chain can be held
    against ten thousand of them while reading only the few whose signature matters)."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    seq: int
    head: str
    where: str
    fetch: Callable[[], Checkpoint | str]
    """the signed checkpoint, or why it cannot be read"""


class Read(BaseModel, frozen=True):
    """What one source of checkpoints held."""

    source: str
    claims: list[Claim]
    unreadable: list[str]
    """entries that are not checkpoints at all (altered lines, deleted witness objects)"""
    present: bool
    """the source exists (a log file, witness objects)"""


def known(checkpoint: Checkpoint, where: str) -> Claim:
    return Claim(seq=checkpoint.seq, head=checkpoint.head, where=where,
                 fetch=lambda: checkpoint)
