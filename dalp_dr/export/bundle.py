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
import time
from pathlib import Path
from typing import IO, Any

from pydantic import BaseModel, ConfigDict

from dalp_dr import integrity
from dalp_dr.errors import InvalidInput
from dalp_dr.export import keys, records
from dalp_dr.export.records import Selection
from dalp_dr.journal import atomic_write

MANIFEST = "manifest.json"
SIGNATURE = "manifest.json.sig"
PUBLIC_KEY = "public-key.pem"


def write_json(selection: Selection, out: IO[str], drills: list[str] | None = None) -> None:
    """The export document, streamed one record per line (compact JSON: ten thousand records
    never sit in memory twice)."""
    header = {"format": "dalp-dr export", "version": 1, "summary": records.summary(selection),
              "coverage": {d: {q: c.value for q, c in row.items()}
                           for d, row in records.coverage(selection, drills).items()}}
    out.write('{"export": ' + json.dumps(header, sort_keys=True) + ',\n"records": [')
    for i, r in enumerate(selection.records):
        out.write(("\n" if i == 0 else ",\n") + json.dumps(
            {"result": json.loads(r.result_json), "spec_json": r.spec_json,
             "chain": r.chain.model_dump(mode="json")}, sort_keys=True))
    out.write('],\n"chain_segment": [')
    for i, e in enumerate(selection.segment):
        out.write(("\n" if i == 0 else ",\n") + e.model_dump_json())
    out.write("]}\n")


def to_json(selection: Selection, drills: list[str] | None = None) -> str:
    buffer = io.StringIO()
    write_json(selection, buffer, drills)
    return buffer.getvalue()


def to_csv(selection: Selection) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=records.CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for record in selection.records:
        writer.writerow({k: "" if v is None else v for k, v in records.run_row(record).items()})
    return buffer.getvalue()


def write_bundle(selection: Selection, destination: Path, key_directory: Path,
                 drills: list[str] | None = None) -> tuple[Path, str]:
    """Write the bundle (a directory, or a .tar.gz when the name says so). Returns the path
    and the signing key's fingerprint. Raises InvalidInput when no signing key exists.

    Every file is read once: hashed for the manifest as it goes into the bundle."""
    from dalp_dr.export.report import to_html

    private = keys.load_private(key_directory)  # before writing anything
    public = private.public_key()
    tarball = destination.name.endswith((".tar.gz", ".tgz"))
    if destination.exists() and (tarball or any(destination.iterdir())):
        raise InvalidInput(f"{destination} exists and is not empty", field="--bundle",
                           hint="choose a new path; bundles are never overwritten")
    staging = Path(tempfile.mkdtemp(prefix="dalp-dr-bundle-"))
    try:
        document = staging / "records.json"
        with document.open("w", encoding="utf-8") as fh:
            write_json(selection, fh, drills)
        sources: list[tuple[str, Path | bytes]] = [
            ("records.json", document),
            ("runs.csv", to_csv(selection).encode()),
            ("report.html", to_html(selection, drills).encode())]
        for record in selection.records:
            base = Path(record.result.evidence_dir)
            sources.extend((f"evidence/{record.result.run_id}/{name}", base / name)
                           for name in sorted(record.chain.evidence))
        sources.append((PUBLIC_KEY, keys.public_pem(public)))
        writer = _TarWriter(destination) if tarball else _DirWriter(destination)
        files: dict[str, str] = {}
        try:
            for name, source in sources:
                data = source if isinstance(source, bytes) else source.read_bytes()
                files[name] = integrity.sha256(data)
                writer.add(name, data)
            manifest = json.dumps({"files": files, "chain_head": selection.head,
                                   "records": len(selection.records),
                                   "period": selection.query.describe(),
                                   "key_fingerprint": keys.fingerprint(public),
                                   "generated_at": selection.generated_at.isoformat()},
                                  indent=1, sort_keys=True).encode()
            writer.add(MANIFEST, manifest)
            writer.add(SIGNATURE, keys.sign(private, manifest))
        except BaseException:
            writer.abort()
            raise
        writer.close()
        return destination, keys.fingerprint(public)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


class _TarWriter:
    """Members straight into a .tar.gz (temp name, renamed when complete)."""

    def __init__(self, destination: Path) -> None:
        destination.parent.mkdir(parents=True, exist_ok=True)
        self._final = destination
        self._tmp = destination.with_name(f".{destination.name}.tmp")
        self._tar = tarfile.open(self._tmp, "w:gz", format=tarfile.GNU_FORMAT,  # noqa: SIM115
                                 compresslevel=6)
        self._mtime = time.time()

    def add(self, name: str, data: bytes) -> None:
        info = tarfile.TarInfo(name)
        info.size, info.mtime, info.mode = len(data), self._mtime, 0o644
        self._tar.addfile(info, io.BytesIO(data))

    def close(self) -> None:
        self._tar.close()
        os.replace(self._tmp, self._final)

    def abort(self) -> None:
        self._tar.close()
        self._tmp.unlink(missing_ok=True)


class _DirWriter:
    def __init__(self, destination: Path) -> None:
        self._root = destination
        destination.mkdir(parents=True, exist_ok=True)

    def add(self, name: str, data: bytes) -> None:
        target = self._root / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)

    def close(self) -> None:
        pass

    def abort(self) -> None:
        pass


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


def _read_bundle(bundle: Path) -> tuple[dict[str, str], dict[str, bytes]]:
    """sha256 of every file in the bundle, and the content of the few files verification
    reads (manifest, signature, key, records). One pass; nothing is extracted to disk."""
    wanted = {MANIFEST, SIGNATURE, PUBLIC_KEY, "records.json"}
    digests: dict[str, str] = {}
    contents: dict[str, bytes] = {}
    if bundle.is_dir():
        for path in sorted(bundle.rglob("*")):
            if path.is_file():
                name = path.relative_to(bundle).as_posix()
                data = path.read_bytes()
                digests[name] = integrity.sha256(data)
                if name in wanted:
                    contents[name] = data
        return digests, contents
    try:
        with tarfile.open(bundle, "r:gz") as tar:
            for member in tar:
                if member.isdir():
                    continue
                if not member.isfile() or member.name.startswith("/") or \
                        ".." in Path(member.name).parts:
                    raise InvalidInput(f"unsafe member '{member.name}' in the archive",
                                       source=str(bundle))
                fh = tar.extractfile(member)
                assert fh is not None
                data = fh.read()
                digests[member.name] = integrity.sha256(data)
                if member.name in wanted:
                    contents[member.name] = data
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise InvalidInput(f"not a bundle archive: {exc}", source=str(bundle)) from None
    return digests, contents


def verify_bundle(bundle: Path, public_key: Path | None = None) -> BundleReport:
    if not bundle.exists():
        raise InvalidInput("no such bundle", source=str(bundle))
    digests, contents = _read_bundle(bundle)
    return _verify(digests, contents, public_key)


def _verify(present: dict[str, str], contents: dict[str, bytes],
            public_key: Path | None) -> BundleReport:
    def fail(problem: str, fingerprint: str | None = None, source: str = "",
             count: int = 0, head: str | None = None) -> BundleReport:
        return BundleReport(ok=False, problem=problem, records=count,
                            key_fingerprint=fingerprint, key_source=source, chain_head=head)

    for name in (MANIFEST, SIGNATURE):
        if name not in contents:
            return fail(f"{name} is missing")
    if public_key is not None:
        key = keys.load_public(public_key.read_bytes(), str(public_key))
        source = f"given ({public_key})"
    elif PUBLIC_KEY in contents:
        key = keys.load_public(contents[PUBLIC_KEY], PUBLIC_KEY)
        source = "embedded in the bundle (compare its fingerprint with the signer's)"
    else:
        return fail(f"{PUBLIC_KEY} is missing and no --public-key was given")
    fingerprint = keys.fingerprint(key)
    manifest_bytes = contents[MANIFEST]
    if not keys.signature_ok(key, manifest_bytes, contents[SIGNATURE]):
        return fail(f"{SIGNATURE}: the signature does not match manifest.json with key "
                    f"{fingerprint}", fingerprint, source)
    manifest: dict[str, Any] = json.loads(manifest_bytes)
    files: dict[str, str] = manifest.get("files", {})
    for name, digest in sorted(files.items()):
        if name not in present:
            return fail(f"{name}: listed in the manifest but missing", fingerprint, source)
        if present[name] != digest:
            return fail(f"{name}: changed (sha256 differs from the manifest)", fingerprint,
                        source)
    extra = sorted(set(present) - set(files) - {MANIFEST, SIGNATURE})
    if extra:
        return fail(f"{extra[0]}: not in the manifest (added after signing)", fingerprint,
                    source)
    if "records.json" not in contents:
        return fail("records.json is missing", fingerprint, source)
    document = json.loads(contents["records.json"])
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
        run_id = entry.run_id
        if in_segment.get(run_id) != entry:
            return fail(f"run {run_id}: its chain entry is not the one in the segment",
                        fingerprint, source, count, head)
        sealed = integrity.SealedRecord(entry=entry, result_json=json.dumps(item["result"]),
                                        spec_json=item["spec_json"], columns=None)
        problem = integrity.check_record(sealed, check_evidence=False)
        if problem is not None:
            return fail(str(problem), fingerprint, source, count, head)
        for name, digest in sorted(entry.evidence.items()):  # manifest digests = content
            path = f"evidence/{run_id}/{name}"
            if path not in files:
                return fail(f"#{entry.seq} run {run_id}: evidence file missing: {path}",
                            fingerprint, source, count, head)
            if files[path] != digest:
                return fail(f"#{entry.seq} run {run_id}: evidence file changed: {path}",
                            fingerprint, source, count, head)
    return BundleReport(ok=True, problem=None, records=count, key_fingerprint=fingerprint,
                        key_source=source, chain_head=head)
