"""Signed checkpoints: the chain head pinned outside the history store.

The hash chain (``dalp_dr.integrity``) shows a record changed *inside* a chain; someone who
can write the store can still rewrite the whole chain and re-seal every entry. So every seal
also writes a **checkpoint** (seq, head digest, time) signed with the history's Ed25519 key
(``dalp-dr keys init``), where rewriting the database does not reach it:

* the **checkpoint log** ``<results dir>/checkpoints.jsonl`` (one JSON line each, mode 0600,
  appended under an exclusive lock held from the seal's transaction), next to the evidence;
* when configured, an **S3 witness**: one object per checkpoint under Object Lock retention
  (``DALP_DR_WITNESS=s3://bucket/prefix``); in COMPLIANCE mode nobody can rewrite or delete
  it before the date, in GOVERNANCE mode only principals allowed to bypass retention can
  (Certificate Transparency's signed tree heads and their witnesses).

Verification (``check``) holds the chain against every checkpoint it can read: one signed by
a trusted key whose head is not the chain's digest at that sequence number, or that names a
sequence number past the chain's end, proves the chain was rewritten or truncated; entries
after the newest checkpoint that holds are not pinned and fail verification too. Lines or
objects whose signature does not hold, and deleted witness objects, are reported. Without
the signing key nobody can write a checkpoint that verifies.

The signing key is optional for recording: a history without one is sealed but not pinned,
and every verification and export says so.
"""

from dalp_dr.checkpoints.model import Checkpoint, Claim, Read, sign, signature_ok
from dalp_dr.checkpoints.signer import Checkpointer
from dalp_dr.checkpoints.sources import LOG_NAME, CheckpointLog, S3Witness
from dalp_dr.checkpoints.verdict import Verdict, check, newest, trusted_keys

__all__ = ["LOG_NAME", "Checkpoint", "CheckpointLog", "Checkpointer", "Claim", "Read",
           "S3Witness", "Verdict", "check", "newest", "sign", "signature_ok", "trusted_keys"]
