"""Reading a bundle (a .tar.gz or a directory) as untrusted input: one pass, nothing
extracted, memory bounded whatever the members' sizes.

* a .tar.gz is decompressed the way gzip/GNU tar do (every gzip member) and read as a
  stream; only regular files and directories; everything after the end-of-archive marker
  must be zeros (GNU tar skips a bad header and reads on: nothing may hide behind one);
* a directory is walked without following links; links and special files are refused;
* member names must come from the bundle layout (:func:`~dalp_dr.export.bundle_format.
  name_problem`), each once (a second copy could hide behind the first);
* every member is hashed in chunks; manifest, signature and key are kept (size-capped);
  records.json is spooled to a temporary file, to be parsed only after its digest matched
  the signed manifest.

Whatever makes a bundle not intact raises :class:`Refused` (one line); a path that is not a
bundle at all raises :class:`~dalp_dr.errors.InvalidInput`.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import stat
import tarfile
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Protocol

from dalp_dr.errors import DalpDrError, HintKey, InvalidInput
from dalp_dr.export.bundle import MANIFEST, PUBLIC_KEY, SIGNATURE
from dalp_dr.export.bundle_format import RECORDS, name_problem, printable, why

CAPS = {MANIFEST: 64 << 20, SIGNATURE: 1 << 10, PUBLIC_KEY: 16 << 10}
"""the members verification keeps in memory, and the most each may hold"""
RECORDS_CAP = 4 << 30
"""the most records.json may hold (spooled to disk before it is authenticated: a bound on
what a forged bundle can make verification write; a million records is about 500 MB)"""
HEADER_CAP = 1 << 20
"""the most a member's headers may take (tarfile reads a pax or GNU long-name header whole:
a forged one must not become gigabytes of memory before the signature is checked)"""
MAX_MEMBERS = 500_000
CHUNK = 1 << 20
# what reading a damaged gzip/tar stream can raise (tarfile lets some of these through)
_READ_ERRORS = (tarfile.TarError, OSError, EOFError, zlib.error, ValueError)


class Refused(DalpDrError):
    """Something about the bundle's members that makes it not intact (one line); verify
    turns it into a report, it never reaches the CLI."""


class Scan:
    """sha256 of every member, the small members verification reads, records.json spooled."""

    def __init__(self, spool: Path) -> None:
        self.digests: dict[str, str] = {}
        self.directories: set[str] = set()
        self.small: dict[str, bytes] = {}
        self.spool = spool
        self.spooled = False

    def directory(self, name: str) -> None:
        problem = name_problem(name, directory=True)
        if problem is not None:
            raise Refused(f"{printable(name)}/: {problem}")
        self._count()
        self.directories.add(name)

    def _count(self) -> None:
        if len(self.digests) + len(self.directories) >= MAX_MEMBERS:
            raise Refused(f"more than {MAX_MEMBERS} members")

    def check(self, name: str) -> None:
        problem = name_problem(name, directory=False)
        if problem is not None:
            raise Refused(f"{printable(name)}: {problem}")
        if name in self.digests:
            raise Refused(f"{name}: appears twice in the bundle (one copy could hide behind "
                          "the other)")
        self._count()

    def add(self, name: str, fh: IO[bytes], size: int) -> None:
        """Hash a member (already :meth:`check`-ed) in chunks."""
        cap = CAPS.get(name)
        if name == RECORDS and size > RECORDS_CAP:
            raise Refused(f"{name}: {size} bytes, more than verification reads "
                          f"({RECORDS_CAP})")
        if cap is not None and size > cap:
            raise Refused(f"{name}: {size} bytes, more than a bundle's {name} can hold "
                          f"({cap})")
        digest = hashlib.sha256()
        kept = bytearray()
        with (self.spool.open("wb") if name == RECORDS else _NoSpool()) as spool:
            while chunk := fh.read(CHUNK):
                digest.update(chunk)
                spool.write(chunk)
                if cap is not None:
                    kept += chunk
                    if len(kept) > cap:
                        raise Refused(f"{name}: more than a bundle's {name} can hold ({cap})")
        self.digests[name] = digest.hexdigest()
        if cap is not None:
            self.small[name] = bytes(kept)
        self.spooled = self.spooled or name == RECORDS

    def finish(self) -> None:
        """A file cannot also be a directory, nor sit where another file's directory is."""
        for name in self.digests:
            if name in self.directories:
                raise Refused(f"{name}: both a file and a directory")
            parts = name.split("/")
            for i in range(1, len(parts)):
                if "/".join(parts[:i]) in self.digests:
                    raise Refused(f"{name}: inside {'/'.join(parts[:i])}, which is a file")


def read_bundle(bundle: Path, directory: bool, spool: Path) -> Scan:
    """Scan a bundle (a directory, else a .tar.gz) in one pass, records.json spooled to
    ``spool``. Raises :class:`Refused` when it is not intact."""
    scan = Scan(spool)
    if directory:
        _scan_directory(bundle, scan)
    else:
        _scan_tar(bundle, scan)
    scan.finish()
    return scan


class _NoSpool:
    def __enter__(self) -> _NoSpool:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def write(self, data: bytes) -> None:
        return None


class _Readable(Protocol):
    def read(self, size: int = -1, /) -> bytes: ...


class _ZeroTail:
    """Passes reads through, remembering where the last non-zero byte was."""

    def __init__(self, raw: _Readable) -> None:
        self._raw = raw
        self._zeros = b""
        self.position = 0
        self.last_nonzero = 0

    limit: int | None = None
    """while tarfile reads a member's headers: the position they must end by"""

    def read(self, size: int = -1) -> bytes:
        if self.limit is not None and self.position > self.limit:
            raise Refused(f"a member's headers take more than {HEADER_CAP} bytes (a forged "
                          "pax or long-name header)")
        data = self._raw.read(size)
        if data and (data[-1] or data != self._zero_run(len(data))):  # memcmp, not a scan
            self.last_nonzero = self.position + len(data.rstrip(b"\0"))
        self.position += len(data)
        return data

    def _zero_run(self, size: int) -> bytes:
        if len(self._zeros) != size:
            self._zeros = bytes(size)
        return self._zeros


def _scan_tar(path: Path, scan: Scan) -> None:
    count = 0
    try:
        raw = path.open("rb")
    except OSError as exc:
        raise InvalidInput(f"cannot read the bundle: {exc.strerror}", source=str(path)) from None
    with raw, gzip.GzipFile(fileobj=raw, mode="rb") as unzipped:
        stream = _ZeroTail(unzipped)
        try:
            # tarfile's stream keeps one buffer and slices it per read: a small one
            # (its default record size) is what keeps ten thousand members linear
            tar = tarfile.open(fileobj=stream, mode="r|",  # type: ignore[call-overload]  # noqa: SIM115
                               bufsize=tarfile.RECORDSIZE)
        except (EOFError, zlib.error) as exc:  # a gzip stream, cut short or corrupt
            raise Refused(f"archive damaged before its first member: {why(exc)}") from None
        except _READ_ERRORS as exc:
            raise InvalidInput(f"not a bundle: {why(exc)}", source=str(path),
                               hint_key=HintKey.BUNDLE_FORMAT) from None
        with tar:
            while True:
                stream.limit = stream.position + HEADER_CAP
                try:
                    member = tar.next()
                except _READ_ERRORS as exc:
                    raise Refused(f"archive damaged after {count} members: {why(exc)}") \
                        from None
                stream.limit = None
                if member is None:
                    break
                tar.members.clear()  # a stream keeps every header otherwise: memory per member
                count += 1
                if member.isdir():
                    scan.directory(member.name)
                    continue
                if not member.isreg() or member.issparse():
                    kind = "a link" if member.issym() or member.islnk() else "not a regular file"
                    raise Refused(f"{printable(member.name)}: {kind} (a bundle holds only "
                                  "regular files)")
                scan.check(member.name)
                try:
                    fh = tar.extractfile(member)
                    assert fh is not None
                    scan.add(member.name, fh, member.size)
                except _READ_ERRORS as exc:
                    raise Refused(f"archive damaged in {member.name}: {why(exc)}") from None
            end = tar.offset
            try:
                while stream.read(CHUNK):
                    pass
            except _READ_ERRORS as exc:
                raise Refused(f"archive damaged after {count} members: {why(exc)}") from None
        if stream.last_nonzero > end:
            raise Refused(f"archive damaged or extended: data after member {count} that is "
                          "not a tar header (or after the end of the archive)")


def _walk(root: Path) -> Iterator[tuple[str, os.stat_result]]:
    """Every entry under a directory, name-sorted, without following links (a stack, not
    recursion: a bundle nested a thousand directories deep is read, not a crash)."""
    pending = [""]
    while pending:
        rel = pending.pop()
        with os.scandir(root / rel if rel else root) as found:
            entries = sorted(found, key=lambda e: e.name)
        below = []
        for entry in entries:
            name = f"{rel}/{entry.name}" if rel else entry.name
            info = entry.stat(follow_symlinks=False)
            yield name, info
            if stat.S_ISDIR(info.st_mode):
                below.append(name)
        pending.extend(reversed(below))


def _scan_directory(root: Path, scan: Scan) -> None:
    try:
        for name, info in _walk(root):
            if stat.S_ISDIR(info.st_mode):
                scan.directory(name)
                continue
            if stat.S_ISLNK(info.st_mode):
                raise Refused(f"{printable(name)}: a symbolic link (a bundle holds only "
                              "regular files)")
            if not stat.S_ISREG(info.st_mode):
                raise Refused(f"{printable(name)}: not a regular file")
            scan.check(name)
            fd = os.open(root / name, os.O_RDONLY | os.O_NOFOLLOW)
            with os.fdopen(fd, "rb") as fh:
                if not stat.S_ISREG(os.fstat(fh.fileno()).st_mode):
                    raise Refused(f"{name}: not a regular file")
                scan.add(name, fh, os.fstat(fh.fileno()).st_size)
    except OSError as exc:
        raise Refused(f"cannot read {printable(str(exc.filename or root))}: "
                      f"{exc.strerror or exc}") from None
