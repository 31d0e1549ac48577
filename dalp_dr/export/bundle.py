"""Export formats and the signed, self-contained bundle; and its verification.

A bundle (a directory, or the same as a .tar.gz) holds::

    records.json        the export: period, filters, summary, coverage, every record with its
                        spec snapshot and chain entry, and the chain segment it belongs to
    runs.csv            one row per record
    report.html         the human report (self-contained)
    evidence/<run>/...  each record's evidence files, as sealed
    public-key.pem      the signer's public key (compare its fingerprint with yours)
    manifest.json       sha256 of every file above, the chain head, the key fingerprint
    manifest.json.sig   Ed25519 signature over manifest.json (base64)

``verify_bundle`` checks, in this order, and names the first problem: the signature (with
the given public key, else the embedded one), every manifest digest and that no file was
added, the chain segment's links, each record's digest and its evidence files.
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import tarfile
import tempfile
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from dalp_dr import integrity
from dalp_dr.errors import InvalidInput
from dalp_dr.export import keys, records
from dalp_dr.export.records import ExportRecord, Selection
from dalp_dr.journal import atomic_write

MANIFEST = "manifest.json"
SIGNATURE = "manifest.json.sig"
PUBLIC_KEY = "public-key.pem"


def to_json(selection: Selection, drills: list[str] | None = None) -> str:
    document = {
        "export": {"format": "dalp-dr export", "version": 1,
                   "summary": records.summary(selection),
                   "coverage": {d: {q: c.value for q, c in row.items()}
                                for d, row in records.coverage(selection, drills).items()}},
        "records": [{"result": json.loads(r.result_json), "spec_json": r.spec_json,
                     "chain": r.chain.model_dump(mode="json")} for r in selection.records],
        "chain_segment": [e.model_dump(mode="json") for e in selection.segment],
    }
    return json.dumps(document, indent=2, sort_keys=True)


def to_csv(selection: Selection) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=records.CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for record in selection.records:
        writer.writerow({k: "" if v is None else v for k, v in records.run_row(record).items()})
    return buffer.getvalue()


def _copy_evidence(record: ExportRecord, target: Path) -> None:
    source = Path(record.result.evidence_dir)
    for name in record.chain.evidence:
        destination = target / "evidence" / record.result.run_id / name
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source / name, destination)  # missing: history verify says so too


def write_bundle(selection: Selection, destination: Path, key_directory: Path,
                 drills: list[str] | None = None) -> tuple[Path, str]:
    """Write the bundle (a directory, or a .tar.gz when the name says so). Returns the path
    and the signing key's fingerprint. Raises InvalidInput when no signing key exists."""
    from dalp_dr.export.report import to_html

    private = keys.load_private(key_directory)  # before writing anything
    public = private.public_key()
    tarball = destination.name.endswith((".tar.gz", ".tgz"))
    if destination.exists() and (tarball or any(destination.iterdir())):
        raise InvalidInput(f"{destination} exists and is not empty", field="--bundle",
                           hint="choose a new path; bundles are never overwritten")
    staging = Path(tempfile.mkdtemp(prefix="dalp-dr-bundle-"))
    try:
        root = staging / "bundle"
        root.mkdir()
        (root / "records.json").write_text(to_json(selection, drills), encoding="utf-8")
        (root / "runs.csv").write_text(to_csv(selection), encoding="utf-8")
        (root / "report.html").write_text(to_html(selection, drills), encoding="utf-8")
        for record in selection.records:
            _copy_evidence(record, root)
        (root / PUBLIC_KEY).write_bytes(keys.public_pem(public))
        files = {p.relative_to(root).as_posix(): integrity.file_sha256(p)
                 for p in sorted(root.rglob("*")) if p.is_file()}
        manifest = json.dumps({"files": files, "chain_head": selection.head,
                               "records": len(selection.records),
                               "period": selection.query.describe(),
                               "key_fingerprint": keys.fingerprint(public),
                               "generated_at": selection.generated_at.isoformat()},
                              indent=2, sort_keys=True).encode()
        (root / MANIFEST).write_bytes(manifest)
        (root / SIGNATURE).write_bytes(keys.sign(private, manifest))
        if tarball:
            destination.parent.mkdir(parents=True, exist_ok=True)
            tmp = destination.with_name(f".{destination.name}.tmp")
            with tarfile.open(tmp, "w:gz") as tar:
                for path in sorted(root.rglob("*")):
                    tar.add(path, arcname=path.relative_to(root).as_posix(), recursive=False)
            os.replace(tmp, destination)
        else:
            destination.mkdir(parents=True, exist_ok=True)
            for path in sorted(root.rglob("*")):
                target = destination / path.relative_to(root)
                if path.is_dir():
                    target.mkdir(exist_ok=True)
                else:
                    target.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copyfile(path, target)
        return destination, keys.fingerprint(public)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def write_single(selection: Selection, fmt: str, output: Path | None,
                 drills: list[str] | None = None) -> str | None:
    """One format to a file (atomically) or, without ``output``, returned for stdout."""
    from dalp_dr.export.report import to_html

    text = {"json": lambda: to_json(selection, drills), "csv": lambda: to_csv(selection),
            "html": lambda: to_html(selection, drills)}[fmt]()
    if output is None:
        return text
    output.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(output, text)
    return None


# --- verification ----------------------------------------------------------------------------


class BundleReport(BaseModel):
    model_config = ConfigDict(frozen=True)

    ok: bool
    problem: str | None
    records: int
    key_fingerprint: str | None
    key_source: str
    chain_head: str | None


def _extract(bundle: Path, into: Path) -> Path:
    """Unpack a .tar.gz safely: regular files and directories only, inside ``into``."""
    with tarfile.open(bundle, "r:gz") as tar:
        for member in tar.getmembers():
            target = (into / member.name).resolve()
            if not (member.isfile() or member.isdir()) or \
                    not str(target).startswith(str(into.resolve()) + os.sep):
                raise InvalidInput(f"unsafe member '{member.name}' in the archive",
                                   source=str(bundle))
        tar.extractall(into, filter="data")
    return into


def verify_bundle(bundle: Path, public_key: Path | None = None) -> BundleReport:
    if not bundle.exists():
        raise InvalidInput("no such bundle", source=str(bundle))
    workdir = Path(tempfile.mkdtemp(prefix="dalp-dr-verify-"))
    try:
        try:
            root = _extract(bundle, workdir) if bundle.is_file() else bundle
        except (tarfile.TarError, OSError) as exc:
            raise InvalidInput(f"not a bundle archive: {exc}", source=str(bundle)) from None
        return _verify(root, public_key)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _verify(root: Path, public_key: Path | None) -> BundleReport:
    def fail(problem: str, fingerprint: str | None = None, source: str = "",
             count: int = 0, head: str | None = None) -> BundleReport:
        return BundleReport(ok=False, problem=problem, records=count,
                            key_fingerprint=fingerprint, key_source=source, chain_head=head)

    for name in (MANIFEST, SIGNATURE):
        if not (root / name).is_file():
            return fail(f"{name} is missing")
    if public_key is not None:
        key = keys.load_public(public_key.read_bytes(), str(public_key))
        source = f"given ({public_key})"
    elif (root / PUBLIC_KEY).is_file():
        key = keys.load_public((root / PUBLIC_KEY).read_bytes(), PUBLIC_KEY)
        source = "embedded in the bundle (compare its fingerprint with the signer's)"
    else:
        return fail(f"{PUBLIC_KEY} is missing and no --public-key was given")
    fingerprint = keys.fingerprint(key)
    manifest_bytes = (root / MANIFEST).read_bytes()
    if not keys.signature_ok(key, manifest_bytes, (root / SIGNATURE).read_bytes()):
        return fail(f"{SIGNATURE}: the signature does not match manifest.json with key "
                    f"{fingerprint}", fingerprint, source)
    manifest: dict[str, Any] = json.loads(manifest_bytes)
    files: dict[str, str] = manifest.get("files", {})
    present = {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}
    for name, digest in sorted(files.items()):
        if name not in present:
            return fail(f"{name}: listed in the manifest but missing", fingerprint, source)
        if integrity.file_sha256(root / name) != digest:
            return fail(f"{name}: changed (sha256 differs from the manifest)", fingerprint,
                        source)
    extra = sorted(present - set(files) - {MANIFEST, SIGNATURE})
    if extra:
        return fail(f"{extra[0]}: not in the manifest (added after signing)", fingerprint,
                    source)
    document = json.loads((root / "records.json").read_text(encoding="utf-8"))
    segment = [integrity.ChainEntry.model_validate(e) for e in document["chain_segment"]]
    head = segment[-1].digest if segment else manifest.get("chain_head")
    count = len(document["records"])
    if segment and head != manifest.get("chain_head"):
        return fail("the chain segment does not end at the signed chain head", fingerprint,
                    source, count, head)
    for link in integrity.check_links(segment, first_prev=None,
                                      first_seq=segment[0].seq if segment else None):
        return fail(f"chain: {link}", fingerprint, source, count, head)
    in_segment = {e.run_id: e for e in segment}
    for item in document["records"]:
        entry = integrity.ChainEntry.model_validate(item["chain"])
        if in_segment.get(entry.run_id) != entry:
            return fail(f"run {entry.run_id}: its chain entry is not the one in the segment",
                        fingerprint, source, count, head)
        sealed = integrity.SealedRecord(
            entry=entry, result_json=json.dumps(item["result"]), spec_json=item["spec_json"],
            columns=None)
        problem = integrity.check_record(sealed, evidence_root=root / "evidence")
        if problem is not None:
            return fail(str(problem), fingerprint, source, count, head)
    return BundleReport(ok=True, problem=None, records=count, key_fingerprint=fingerprint,
                        key_source=source, chain_head=head)
