"""Room for a run before its fault (issue 18): what a run of a drill needs free on the
filesystems it writes to, measured from past runs, and whether it is there.

* **Evidence** (the results directory): the largest evidence directory among the last
  RECENT_RUNS finished runs of the same topology, times HEADROOM; FLOOR_BYTES when no such
  run has its evidence on disk. A directory's size is what its files and folders take on
  the filesystem (their blocks, at least their length): free space is counted in blocks,
  and a journal is hundreds of files smaller than one.
* **The embedded history store** (SQLite): STORE_BYTES per run beside its file.
* Needs on one filesystem add up (the default store is in the results directory); each
  filesystem's free space (for an unprivileged writer) is read through ``Disks``, the one
  seam tests replace.

The store's writability needs no probe of its own before the fault: the engine begins the
run's record (``HistoryStore.begin``: a committed write transaction, SQLite's
``BEGIN IMMEDIATE`` and an fsync'd commit, PostgreSQL's committed INSERT) just before this
check, and a store that cannot take it raises StoreError there: the run never starts.
``doctor`` proves it with ``prove_writable``: a write that leaves nothing behind.
"""

from __future__ import annotations

import os
import secrets
import shutil
import stat
from collections.abc import Iterable
from pathlib import Path
from typing import Protocol

from pydantic import BaseModel

from dalp_dr import integrity
from dalp_dr.config import EnvVar
from dalp_dr.errors import StoreError
from dalp_dr.history.base import HistoryStore
from dalp_dr.results import Outcome

KiB = 1024
MiB = 1024 * KiB
GiB = 1024 * MiB

RECENT_RUNS = 10
"""how many of the newest finished runs of a topology are measured"""
HEADROOM = 4
"""times the largest recent run: a run can write several times what a usual one does (a slow
recovery polls longer, so more Ansible events and heartbeat lines; a failure adds
diagnostics); 4x leaves room for a run four times as long as any recent one and is still
only a few MiB for drills that write 1-2 MiB"""
FLOOR_BYTES = 2 * MiB
"""a run's need when no past run of its topology is measured: a lab hot-warm run writes a
few hundred KiB to ~2 MiB; kept modest so that a small results filesystem (the 4 MiB tmpfs
of the disk-full lab test) still takes a first run, whose measured size then counts"""
STORE_BYTES = 1 * MiB
"""what one run writes to an embedded (SQLite) store's filesystem: its record and seal (tens
of KiB) and a 4 KiB WAL page per commit, one for each lease renewal (every third of the lock
TTL: about an hour of drill at the default 60 s); the WAL stops growing at SQLite's automatic
checkpoint (1000 pages, ~4 MiB) whatever the run's length"""
MEASURED = frozenset({Outcome.PASSED, Outcome.MISSED, Outcome.INCONCLUSIVE, Outcome.FAILED,
                      Outcome.ABORTED})
"""the finished runs measured: those that may have gone past preflight (runs refused, failed
closed, missed or still running wrote little or are not done)"""
STORE_WRITTEN = "the run's record was begun (a committed write) just before this check"
"""what proves, at the check, that the history store takes writes"""


def size_text(count: int) -> str:
    """Bytes for a human: KiB below a MiB, MiB below a GiB, else GiB."""
    if count < MiB:
        return f"{count / KiB:.0f} KiB"
    if count < GiB:
        return f"{count / MiB:.1f} MiB"
    return f"{count / GiB:.1f} GiB"


class Need(BaseModel, frozen=True):
    """What one run needs free on the filesystem holding ``directory``."""

    directory: Path
    bytes: int
    basis: str
    """how the figure was reached, for humans"""
    variable: EnvVar
    """the setting that moves what is written there elsewhere"""


class Space(BaseModel, frozen=True):
    """One filesystem checked: its free space against what a run needs on it."""

    directory: Path
    free: int | None
    """None: it could not be read (``problem`` says why)"""
    need: int
    basis: str
    variables: tuple[EnvVar, ...]
    problem: str | None = None

    @property
    def short(self) -> bool:
        return self.free is None or self.free < self.need

    def describe(self) -> str:
        free, need = size_text(self.free or 0), size_text(self.need)
        if self.free is not None and free == need and self.short:  # never "3.0 free, 3.0"
            free, need = f"{self.free:,} bytes", f"{self.need:,} bytes"
        have = (f"free space unknown ({self.problem})" if self.free is None
                else f"{free} free")
        return f"{self.directory}: {have}, {need} needed ({self.basis})"

    def fix(self) -> str:
        names = " or ".join(v.value for v in self.variables)
        return f"free space on that filesystem, or point {names} at one with more room"

    def refusal(self) -> str:
        """The one line a run refused for it records."""
        return f"no fault injected: not enough free space for this run in {self.describe()}; " \
               f"{self.fix()}"


class Disks(Protocol):
    """The filesystems under directories (the seam tests replace: ``tests.fakes.FakeDisks``).
    A directory not made yet is judged by its nearest existing parent."""

    def free(self, directory: Path) -> int:
        """Bytes an unprivileged writer can still use there. Raises OSError."""
        ...

    def device(self, directory: Path) -> int:
        """Which filesystem holds it. Raises OSError."""
        ...


def _existing(path: Path) -> Path:
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


class LocalDisks:
    """This host's filesystems (``shutil.disk_usage``, ``os.stat``)."""

    def free(self, directory: Path) -> int:
        return shutil.disk_usage(_existing(directory)).free

    def device(self, directory: Path) -> int:
        return os.stat(_existing(directory)).st_dev


LOCAL_DISKS = LocalDisks()


def evidence_bytes(root: Path) -> int | None:
    """What an evidence directory takes on its filesystem (links are not followed, a file
    gone meanwhile is not counted); None when it is not there."""
    try:
        if root.is_symlink() or not root.is_dir():
            return None
    except OSError:  # (not ours to read: not measured)
        return None
    total = 0
    for dirpath, dirnames, filenames in os.walk(root):  # does not descend into links
        for name in [*dirnames, *filenames]:
            try:
                info = os.lstat(os.path.join(dirpath, name))
            except OSError:
                continue
            length = info.st_size if stat.S_ISREG(info.st_mode) else 0
            total += max(length, info.st_blocks * 512)
    return total


def evidence_need(store: HistoryStore, topology: str, results_dir: Path, *,
                  recent: int = RECENT_RUNS) -> Need:
    """What a run of ``topology`` needs in the results directory (see the module)."""
    sizes: list[int] = []  # (runs not measured are passed over: read a few times more)
    for row in store.list_runs(topology=topology, limit=recent * 5):
        if len(sizes) == recent:
            break
        location = integrity.evidence_location(row.evidence_dir, results_dir)
        size = evidence_bytes(location) if row.outcome in MEASURED and location else None
        if size is not None:
            sizes.append(size)
    if not sizes:
        return Need(directory=results_dir, bytes=FLOOR_BYTES, variable=EnvVar.RESULTS,
                    basis=f"no past {topology} run: default floor {size_text(FLOOR_BYTES)}")
    largest = max(sizes)
    runs = f"largest of the last {len(sizes)} {topology} runs" if len(sizes) > 1 \
        else f"the last {topology} run"
    return Need(directory=results_dir, bytes=largest * HEADROOM, variable=EnvVar.RESULTS,
                basis=f"{runs}: {size_text(largest)} x {HEADROOM}")


def store_need(store: HistoryStore) -> Need | None:
    """What a run needs beside an embedded store's file (None: a database server, whose
    disk is its own)."""
    if store.file is None:
        return None
    return Need(directory=store.file.parent, bytes=STORE_BYTES, variable=EnvVar.STORE,
                basis=f"the SQLite history store: {size_text(STORE_BYTES)} per run")


def run_needs(store: HistoryStore, topology: str, results_dir: Path) -> tuple[Need, ...]:
    """Everything a run of ``topology`` needs free. Raises StoreError (reading the
    history)."""
    found = store_need(store)
    return (evidence_need(store, topology, results_dir), *([found] if found else []))


def check(needs: Iterable[Need], disks: Disks = LOCAL_DISKS) -> tuple[Space, ...]:
    """Each filesystem the needs are on, with its free space and what they add up to
    there; a filesystem that cannot be read is short (fail closed)."""
    groups: dict[object, list[Need]] = {}
    problems: dict[object, str] = {}
    for need in needs:
        try:
            key: object = disks.device(need.directory)
        except OSError as exc:
            key = need.directory
            problems[key] = f"{type(exc).__name__}: {exc}"
        groups.setdefault(key, []).append(need)
    spaces = []
    for key, group in groups.items():
        directory, problem = group[0].directory, problems.get(key)
        free = None
        if problem is None:
            try:
                free = disks.free(directory)
            except OSError as exc:
                problem = f"{type(exc).__name__}: {exc}"
        spaces.append(Space(directory=directory, free=free, problem=problem,
                            need=sum(n.bytes for n in group),
                            basis=" + ".join(n.basis for n in group),
                            variables=tuple(dict.fromkeys(n.variable for n in group))))
    return tuple(spaces)


def prove_writable(store: HistoryStore) -> None:
    """A write that leaves nothing behind: a lease of its own taken (a committed insert) and
    given up (a committed delete). Raises StoreError when the store does not take it."""
    holder = f"write-probe-{secrets.token_hex(6)}"
    name = f"dalp-dr:{holder}"
    lease = store.acquire_lease(name, holder, "a write probe (dalp-dr doctor)", ttl=60)
    store.release_lease(name, holder)
    if lease.holder != holder:
        raise StoreError(f"{store.describe()} did not take a write (lease {name} is "
                         f"{lease.info})")
