"""Export formats and the signed, self-contained bundle.

A bundle (a directory, or the same as a .tar.gz) holds::

    records.json        the export: period, filters, summary, coverage, every record with its
                        spec snapshot and chain entry, and the chain segment it belongs to
    runs.csv            one row per record
    report.html         the human report (self-contained)
    evidence/<run>/...  each record's evidence files, as sealed
    public-key.pem      the signer's public key (it tells who signed, never whom to trust)
    manifest.json       sha256 of every file above, the chain head, the key fingerprint,
                        provenance (tool version, exporter, controller, export time)
    manifest.json.sig   Ed25519 signature over manifest.json (base64)

The manifest also says who exported it, where and when, with which dalp-dr (provenance).
Verification, which reads a bundle as untrusted input and establishes authenticity only
from a key the verifier trusts, is in :mod:`dalp_dr.export.verify`.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import shutil
import stat
import tarfile
import tempfile
import time
from pathlib import Path
from typing import IO, Any

from dalp_dr import csv_safe, integrity, private_files, provenance
from dalp_dr.clock import utcnow
from dalp_dr.errors import Flag, InvalidInput, TamperedHistory
from dalp_dr.export import keys, records
from dalp_dr.export.records import Selection
from dalp_dr.integrity import evidence_location, unsafe_path
from dalp_dr.private_files import atomic_write

MANIFEST = "manifest.json"
SIGNATURE = "manifest.json.sig"
PUBLIC_KEY = "public-key.pem"


def write_json(selection: Selection, out: IO[str], drills: list[str] | None = None) -> None:
    """The export document, streamed one record per line (compact JSON: ten thousand records
    never sit in memory twice)."""
    attestation = selection.attestation
    header = {"format": "dalp-dr export", "version": 1, "summary": records.summary(selection),
              "history_verification": attestation.model_dump(mode="json") | {
                  "pinned": attestation.pinned, "statement": attestation.describe()}
              if attestation is not None else None,
              "coverage": records.coverage_json(records.coverage(selection, drills)),
              "approvals": {run_id: [a.model_dump(mode="json") for a in found]
                            for run_id, found in selection.approvals.items()}}
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
    # RFC 4180 line ends: a CR inside a cell (a target's message) is quoted, never a row
    writer = csv.DictWriter(buffer, fieldnames=records.CSV_COLUMNS, lineterminator="\r\n")
    writer.writeheader()
    for record in selection.records:
        writer.writerow({k: "" if v is None else csv_safe.cell(v)
                         for k, v in records.run_row(record).items()})
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
        raise InvalidInput(f"{destination} exists and is not empty", flag=Flag.BUNDLE,
                           hint="choose a new path; bundles are never overwritten")
    staging = Path(tempfile.mkdtemp(prefix="dalp-dr-bundle-"))
    try:
        document = staging / "records.json"
        with document.open("w", encoding="utf-8") as text:
            write_json(selection, text, drills)
        sources: list[tuple[str, Path | bytes]] = [
            ("records.json", document),
            ("runs.csv", to_csv(selection).encode()),
            ("report.html", to_html(selection, drills, signer=keys.fingerprint(public),
                                    in_bundle=True).encode())]
        sealed: dict[str, str] = {}
        for record in selection.records:
            base = evidence_location(record.result.evidence_dir, selection.results_dir)
            for name in sorted(record.chain.evidence):
                member = f"evidence/{record.result.run_id}/{name}"
                why = unsafe_path(record.result.run_id, single=True) or unsafe_path(name)
                if why or base is None:  # data from the store: never a path outside
                    raise TamperedHistory(f"{member!r}: {why or 'no evidence directory'}; "
                                          "not exported")
                sealed[member] = record.chain.evidence[name]
                sources.append((member, (base or Path(".")) / name))
        sources.append((PUBLIC_KEY, keys.public_pem(public)))
        writer = _TarWriter(destination) if tarball else _DirWriter(destination)
        files: dict[str, str] = {}
        try:
            for name, source in sources:
                if isinstance(source, bytes):
                    files[name] = integrity.sha256(source)
                    writer.add(name, source)
                    continue
                if name in sealed and not source.is_file():
                    raise TamperedHistory(f"{name}: evidence file missing ({source}); not "
                                          "exported (moved or not restored?)")
                try:  # never through a link; streamed: bounded memory per file
                    fh = os.fdopen(os.open(source, os.O_RDONLY | os.O_NOFOLLOW), "rb")
                except OSError as exc:
                    raise TamperedHistory(f"{name}: cannot read {source} ({exc.strerror}); "
                                          "not exported") from None
                with fh:
                    if not stat.S_ISREG(os.fstat(fh.fileno()).st_mode):
                        raise TamperedHistory(f"{name}: {source} is not a regular file; not "
                                              "exported")
                    reader = _Hashing(fh)
                    writer.add_stream(name, reader, os.fstat(fh.fileno()).st_size)
                files[name] = reader.hexdigest()
                if name in sealed and files[name] != sealed[name]:  # changed since verified
                    raise TamperedHistory(f"{name}: changed since it was sealed (sha256 "
                                          "differs); not exported")
            manifest = json.dumps({"files": files, "chain_head": selection.head,
                                   "records": len(selection.records),
                                   "period": selection.query.describe(),
                                   "key_fingerprint": keys.fingerprint(public),
                                   "generated_at": selection.generated_at.isoformat(),
                                   "tool_version": provenance.tool_version(),
                                   "exporter": provenance.resolve_operator(None),
                                   "exported_at": utcnow().isoformat(),
                                   "controller": provenance.controller_host()},
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


class _Hashing(io.RawIOBase):
    """A file read through once, hashed on the way."""

    def __init__(self, fh: IO[bytes]) -> None:
        self._fh = fh
        self._sha = hashlib.sha256()
        self.size = 0

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        data = self._fh.read(n)
        self._sha.update(data)
        self.size += len(data)
        return data

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(buffer))
        buffer[:len(data)] = data
        return len(data)

    def hexdigest(self) -> str:
        return self._sha.hexdigest()


class _TarWriter:
    """Members straight into a .tar.gz (temp name, renamed when complete)."""

    def __init__(self, destination: Path) -> None:
        destination.parent.mkdir(parents=True, exist_ok=True)
        self._final = private_files.replaceable(destination)
        self._tmp = destination.with_name(f".{destination.name}.tmp")
        self._file = os.fdopen(private_files.open_for_write(self._tmp), "wb")  # 0600
        self._tar = tarfile.open(fileobj=self._file, mode="w:gz",  # noqa: SIM115
                                 format=tarfile.GNU_FORMAT, compresslevel=6)
        self._mtime = time.time()

    def add(self, name: str, data: bytes) -> None:
        self.add_stream(name, io.BytesIO(data), len(data))

    def add_stream(self, name: str, fh: io.RawIOBase | IO[bytes], size: int) -> None:
        info = tarfile.TarInfo(name)
        info.size, info.mtime, info.mode = size, self._mtime, 0o644
        self._tar.addfile(info, fh)

    def close(self) -> None:
        self._tar.close()
        self._file.close()
        os.replace(self._tmp, self._final)

    def abort(self) -> None:
        self._tar.close()
        self._file.close()
        self._tmp.unlink(missing_ok=True)


class _DirWriter:
    """Members as files under a new (or empty) directory, the owner's alone; removed again
    when the bundle cannot be completed."""

    def __init__(self, destination: Path) -> None:
        self._root = destination
        self._created = not destination.exists()
        private_files.make_dir(destination)

    def add(self, name: str, data: bytes) -> None:
        self.add_stream(name, io.BytesIO(data), len(data))

    def add_stream(self, name: str, fh: io.RawIOBase | IO[bytes], size: int) -> None:
        target = self._root / name
        for parent in reversed(target.relative_to(self._root).parents[:-1]):
            private_files.make_dir(self._root / parent)
        with os.fdopen(private_files.open_for_write(target), "wb") as out:
            shutil.copyfileobj(fh, out, 1 << 20)

    def close(self) -> None:
        pass

    def abort(self) -> None:
        if self._created:
            shutil.rmtree(self._root, ignore_errors=True)
        else:  # it was empty: empty again
            for child in self._root.iterdir():
                (shutil.rmtree if child.is_dir() and not child.is_symlink()
                 else lambda p: p.unlink())(child)


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
