"""Verification of export bundles. A bundle is untrusted input until proven otherwise.

**Trust** (:mod:`dalp_dr.export.trust`): a bundle proves something only when it is signed by
a key the verifier already trusts: ``--public-key FILE``, ``--fingerprint SHA256:...``, or by
default the local history's own public key (``<key dir>/signing-key.pub.pem``) and the keys
it replaced (``<key dir>/retired/*.pem``). The key a bundle carries only tells *who* signed
it: a signature that checks out against that key alone is reported as "signer NOT trusted",
and a bundle signed by another key names the signer's and the trusted fingerprints.

**Reading** (:mod:`dalp_dr.export.bundle_reader`): one pass, nothing extracted, memory
bounded; member names from the bundle layout (:mod:`dalp_dr.export.bundle_format`), each
once; records.json parsed only after its digest matched the signed manifest.

**Checks**, in this order, naming the first problem: the signature (with a trusted key),
the manifest's shape, every manifest digest and that no file was added, records.json's
shape, the chain segment's links, each record's digest and its evidence files.

A path that is not a bundle at all raises :class:`InvalidInput`; everything else wrong with a
bundle is a report with ``ok=False`` and one line in ``problem``.
"""

from __future__ import annotations

import re
import stat
import tempfile
from datetime import datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from dalp_dr import integrity
from dalp_dr.errors import InvalidInput
from dalp_dr.export import keys
from dalp_dr.export.bundle import MANIFEST, PUBLIC_KEY, SIGNATURE
from dalp_dr.export.bundle_format import (
    EVIDENCE,
    RECORDS,
    Manifest,
    RecordsDocument,
    printable,
    why,
)
from dalp_dr.export.bundle_reader import Refused, Scan, read_bundle
from dalp_dr.export.trust import Trust, TrustedKey, load_public

__all__ = ["BundleProvenance", "BundleReport", "Trust", "TrustedKey", "verify_bundle"]

_SIGNATURE_TEXT = re.compile(rb"[A-Za-z0-9+/]{86}==\n?")  # 64 bytes, as keys.sign writes them


class BundleProvenance(BaseModel, frozen=True):
    period: str
    generated_at: datetime
    tool_version: str | None
    exporter: str | None
    exported_at: datetime | None
    controller: str | None


class BundleReport(BaseModel, frozen=True):
    ok: bool
    problem: str | None
    """one line: the first thing wrong (None when ok)"""
    authentic: bool
    """signed by a trusted key (False: the signer is unknown, untrusted or another key)"""
    untrusted_signer: bool = False
    """the signature is valid, but made by a key that is not a trusted one"""
    records: int = 0
    key_fingerprint: str | None = None
    """the signer's fingerprint, when known"""
    trusted_fingerprint: str | None = None
    """the trusted key that signed it (until one did: the first trusted key)"""
    key_source: str = ""
    """where that trusted key came from (until one signed: where the trust comes from)"""
    chain_head: str | None = None
    provenance: BundleProvenance | None = None


def verify_bundle(bundle: Path, trust: Trust) -> BundleReport:
    """Verify a bundle (directory or .tar.gz) against the trusted keys. Raises InvalidInput
    when the path is not a bundle at all; every other problem is in the report."""
    try:
        info = bundle.stat()
    except OSError as exc:
        raise InvalidInput(f"no such bundle ({exc.strerror})", source=str(bundle)) from None
    if not (stat.S_ISDIR(info.st_mode) or stat.S_ISREG(info.st_mode)):
        raise InvalidInput("not a bundle (neither a directory nor a file)", source=str(bundle))
    base = BundleReport(ok=False, problem=None, authentic=False,
                        trusted_fingerprint=trust.fingerprint, key_source=trust.source)
    with tempfile.TemporaryDirectory(prefix="dalp-dr-verify-") as spool_dir:
        try:
            scan = read_bundle(bundle, stat.S_ISDIR(info.st_mode), Path(spool_dir) / RECORDS)
        except Refused as exc:
            return base.model_copy(update={"problem": str(exc)})
        return _check(scan, trust, base)


def _authenticate(scan: Scan, trust: Trust) -> tuple[str | None, TrustedKey | None,
                                                     str | None]:
    """(the signer's fingerprint when known, the trusted key that signed the manifest or
    None, the problem or None when a trusted key signed it)."""
    manifest, signature = scan.small[MANIFEST], scan.small[SIGNATURE]
    embedded = None
    if PUBLIC_KEY in scan.small:
        try:
            embedded = load_public(scan.small[PUBLIC_KEY], PUBLIC_KEY)
        except InvalidInput:
            embedded = None
    embedded_fp = keys.fingerprint(embedded) if embedded is not None else None
    embedded_ok = embedded is not None and keys.signature_ok(embedded, manifest, signature)
    if not trust.trusted:
        if embedded_ok:
            return embedded_fp, None, (
                f"signature valid, signer NOT trusted: fingerprint {embedded_fp} "
                f"({trust.source}; name the key you expect with --public-key FILE or "
                "--fingerprint SHA256:...)")
        return None, None, (f"{SIGNATURE} does not match manifest.json with the key in the "
                            f"bundle, and there is no trusted key ({trust.source})")
    checked = False
    for candidate in trust.trusted:
        if candidate.public_key_pem is not None:
            key = load_public(candidate.public_key_pem, candidate.source)
        elif embedded is not None and embedded_fp == candidate.fingerprint:
            key = embedded
        else:
            continue
        checked = True
        if keys.signature_ok(key, manifest, signature):
            return candidate.fingerprint, candidate, None
    trusted = trust.describe()
    if embedded_ok and embedded_fp not in trust.fingerprints:
        which = "the trusted one" if len(trust.trusted) == 1 else "one of the trusted ones"
        return embedded_fp, None, (f"signed by a key that is not {which}: signer "
                                   f"{embedded_fp}, {trusted}")
    if checked:
        return None, None, (f"{SIGNATURE}: the signature does not match manifest.json with "
                            f"the {trusted}")
    if embedded is None:
        return None, None, (f"{PUBLIC_KEY} is missing or not an Ed25519 key, so the signer "
                            f"cannot be matched to the {trusted}; give the key itself with "
                            "--public-key")
    return None, None, (f"{SIGNATURE} does not match manifest.json with the key in the bundle "
                        f"({embedded_fp}), and the {trusted} is not in the bundle")


def _one_line(what: str, exc: ValidationError) -> str:
    errors = exc.errors(include_url=False, include_input=False, include_context=False)
    if not errors:
        return f"{what}: invalid"
    first = errors[0]
    where = ".".join(printable(str(p), 60) for p in first["loc"])
    more = f" (and {len(errors) - 1} more problems)" if len(errors) > 1 else ""
    return f"{what}: {where + ': ' if where else ''}{printable(first['msg'])}{more}"


def _check(scan: Scan, trust: Trust, base: BundleReport) -> BundleReport:
    def fail(problem: str, **update: Any) -> BundleReport:
        return base.model_copy(update={"problem": problem, **update})

    for name in (MANIFEST, SIGNATURE):
        if name not in scan.small:
            return fail(f"{name} is missing")
    if not _SIGNATURE_TEXT.fullmatch(scan.small[SIGNATURE]):
        return fail(f"{SIGNATURE}: not an Ed25519 signature in base64")
    signer, matched, problem = _authenticate(scan, trust)
    if problem is not None:
        return fail(problem, key_fingerprint=signer, untrusted_signer=signer is not None)
    assert matched is not None  # no problem: a trusted key signed it
    # from here on, manifest.json is what a trusted key signed
    base = base.model_copy(update={"authentic": True, "key_fingerprint": signer,
                                   "trusted_fingerprint": matched.fingerprint,
                                   "key_source": matched.source})
    try:
        manifest = Manifest.model_validate_json(scan.small[MANIFEST])
    except ValidationError as exc:
        return fail(_one_line(MANIFEST, exc))
    if manifest.key_fingerprint != signer:
        return fail(f"{MANIFEST} names the signing key {printable(manifest.key_fingerprint)}"
                    f", but {signer} signed it")
    for name, digest in sorted(manifest.files.items()):
        if name not in scan.digests:
            return fail(f"{name}: listed in the manifest but missing")
        if scan.digests[name] != digest:
            return fail(f"{name}: changed (sha256 differs from the manifest)")
    extra = sorted(set(scan.digests) - set(manifest.files) - {MANIFEST, SIGNATURE})
    if extra:
        return fail(f"{extra[0]}: not in the manifest (added after signing)")
    if not scan.spooled:
        return fail(f"{RECORDS} is missing")
    try:  # its digest matched the signed manifest: now it may be parsed
        document = RecordsDocument.model_validate_json(scan.spool.read_bytes())
    except ValidationError as exc:
        return fail(_one_line(RECORDS, exc))
    provenance = BundleProvenance(period=manifest.period, generated_at=manifest.generated_at,
                            tool_version=manifest.tool_version, exporter=manifest.exporter,
                            exported_at=manifest.exported_at, controller=manifest.controller)
    segment = document.chain_segment
    head = segment[-1].digest if segment else manifest.chain_head
    count = len(document.records)
    base = base.model_copy(update={"records": count, "chain_head": head,
                                   "provenance": provenance})
    if count != manifest.records:
        return fail(f"{RECORDS} holds {count} records, the manifest says {manifest.records}")
    if head != manifest.chain_head:
        return fail("the chain segment does not end at the signed chain head")
    for link in integrity.check_links(segment, first_prev=None,
                                      first_seq=segment[0].seq if segment else None):
        return fail(f"chain: {link}")
    in_segment = {e.run_id: e for e in segment}
    for item in document.records:
        entry = item.chain
        run_id = printable(entry.run_id)
        if in_segment.get(entry.run_id) != entry:
            return fail(f"run {run_id}: its chain entry is not the one in the segment")
        try:
            result_json = integrity.canonical(item.result).decode()
        except (TypeError, ValueError) as exc:
            return fail(f"run {run_id}: its result cannot be read: {why(exc)}")
        sealed = integrity.SealedRecord(entry=entry, result_json=result_json,
                                        spec_json=item.spec_json, columns=None)
        record_problem = integrity.check_record(sealed, check_evidence=False)
        if record_problem is not None:
            return fail(printable(str(record_problem)))
        for name, digest in sorted(entry.evidence.items()):  # manifest digests = content
            path = f"{EVIDENCE}/{entry.run_id}/{name}"
            if path not in manifest.files:
                return fail(f"#{entry.seq} run {run_id}: evidence file missing: "
                            f"{printable(path)}")
            if manifest.files[path] != digest:
                return fail(f"#{entry.seq} run {run_id}: evidence file changed: "
                            f"{printable(path)}")
    return base.model_copy(update={"ok": True})

