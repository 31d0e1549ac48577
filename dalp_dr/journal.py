"""Evidence written as it happens, under ``results/<run-id>/``.

Layout (like ansible-runner's artifact directory):

* ``journal/000001-run.started.json`` ... one file per engine event, written to a temporary
  file and renamed, so a reader never sees half an event and a crash loses nothing written.
* ``ansible/<phase>/000001-<event>.json`` every ansible-runner event of each phase.
* ``heartbeat.jsonl`` one line per write attempt, appended and flushed as it happens (a
  process crash loses nothing; only a torn last line after a host crash is possible); with
  several client populations each line names its ``population``.
* ``files/<phase>/...`` files a phase playbook fetched into ``dalp_evidence_dir`` (e.g. the
  cloud-native observer's record); adopted after the phase: redacted in place and their
  sha256 recorded in the journal (``evidence.files``).
* ``result.json``, ``summary.txt`` written at the end (temp file + rename).

Everything passes through the run's Redactor first.

Evidence never stops a drill. A journal record, an Ansible event or a heartbeat line that
cannot be written (a full disk, a read-only or vanished results directory) is kept in
memory, bounded (BACKLOG_MAX_BYTES), in order, and written with the next write that
succeeds; beyond the bound it is counted as lost, by kind. ``problem`` says so; the engine
injects no fault while there is one, and a run that had one after its fault is not passed.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import re
import threading
from collections import deque
from collections.abc import Callable
from enum import StrEnum
from pathlib import Path
from typing import Any

from dalp_dr import private_files
from dalp_dr.clock import SYSTEM_CLOCK, Clock
from dalp_dr.errors import ConfigError
from dalp_dr.private_files import atomic_write
from dalp_dr.redact import Redactor
from dalp_dr.results import HeartbeatSample

BACKLOG_MAX_BYTES = 8 * 1024 * 1024
"""evidence kept in memory while it cannot be written; beyond this it is lost (and counted)"""
_WAIT_FOR = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EIO, errno.ENOENT})
"""write errors that space, a remount or the directory coming back can mend: held"""


class _GiveUp:
    """_write_one's answer for an error waiting cannot mend (the piece is lost)"""


_GIVE_UP = _GiveUp()


def _json(value: Any) -> str:
    return json.dumps(value, indent=2, sort_keys=True, default=str)


class EventKind(StrEnum):
    """Every kind of journal record, and the two kinds an observer sees that are not journal
    records (``ANSIBLE_TASK``, ``HEARTBEAT``). The values are in evidence on disk (file names
    and ``kind`` fields): never change one."""

    RUN_STARTED = "run.started"
    RUN_INTERRUPTED = "run.interrupted"
    RUN_DEADLINE = "run.deadline"
    RUN_RECOVERING = "run.recovering"
    """crash recovery took over a run whose process died"""
    RUN_FINISHED = "run.finished"
    RESERVE_CHECKED = "reserve.checked"
    """before the preflight playbook: free space for the run on each filesystem it writes
    to, and what proves the history store takes writes (``dalp_dr.reserve``)"""
    PHASE_HELD = "phase.held"
    """a phase playbook started ahead of the fault, waiting at the fault barrier"""
    PHASE_ABANDONED = "phase.abandoned"
    """a held phase playbook let go without its fault: it ended having done nothing"""
    PHASE_STARTED = "phase.started"
    PHASE_FINISHED = "phase.finished"
    FAULT_INJECTED = "fault.injected"
    RECOVERY_TARGET = "recovery.target"
    RECOVERY_OBSERVED = "recovery.observed"
    CHECK = "check"
    """one client-side verify check"""
    CONVERGED = "converged"
    """one converge probe decided: met or timed out"""
    NAME_RESOLVED = "name.resolved"
    """a population's clients got a new answer for the API's host name"""
    MEASUREMENT = "measurement"
    STEADY_STATE_INTERRUPTED = "steady_state.interrupted"
    EVIDENCE_FILES = "evidence.files"
    EVIDENCE_DROPPED = "evidence.dropped"
    EVIDENCE_NOT_WRITTEN = "evidence.not_written"
    OBSERVER_DISABLED = "observer.disabled"
    ANSIBLE_TASK = "ansible.task"
    """observer only: a task-level Ansible event (the events are kept under ansible/)"""
    HEARTBEAT = "heartbeat"
    """observer only: one write attempt (kept in heartbeat.jsonl)"""


Observer = Callable[[str, dict[str, Any]], None]
"""Sees every journal record, task-level Ansible event and heartbeat as it is written
(redacted), for live progress and structured logs. It must not raise."""

_TASK_EVENTS = frozenset({"playbook_on_task_start", "runner_on_ok", "runner_on_failed",
                          "runner_on_unreachable", "runner_on_skipped"})


class Journal:
    def __init__(self, root: Path, run_id: str, redactor: Redactor,
                 observer: Observer | None = None, clock: Clock = SYSTEM_CLOCK) -> None:
        self.root, self.run_id, self._redactor = root, run_id, redactor
        self._observer, self._clock = observer, clock
        self._lock = threading.Lock()
        self._seq = 0
        self._event_seq: dict[str, int] = {}
        self._init_backlog()
        private_files.make_dir(root)
        (root / "journal").mkdir(mode=0o700)  # a run's journal is new: never reused
        private_files.make_dir(root / "journal")
        # unbuffered: a line a full disk cut short is finished from where it stopped
        self._heartbeat: int | None = private_files.open_for_write(root / "heartbeat.jsonl",
                                                                   append=True)

    @property
    def redactor(self) -> Redactor:
        return self._redactor

    def _init_backlog(self) -> None:
        # (path, text, kind): a whole file; (None, bytes, "heartbeat"): what is left of
        # heartbeat lines
        self._backlog: deque[tuple[Path | None, str | bytes, str]] = deque()
        self._backlog_bytes = 0
        self._lost: dict[str, int] = {}
        self._error: str | None = None

    @property
    def problem(self) -> str | None:
        """None while every piece of evidence is on disk; else what is not, and why."""
        with self._lock:
            if self._error is None:
                return None
            held = len(self._backlog)
            lost = sum(self._lost.values())
            if not held and not lost:
                return None
            parts = [f"{held} held in memory"] if held else []
            if lost:
                kinds = ", ".join(f"{n} {kind}" for kind, n in sorted(self._lost.items()))
                parts.append(f"{lost} lost ({kinds})")
            return f"evidence not written to {self.root}: {self._error}; " + ", ".join(parts)

    def _put(self, path: Path | None, data: str | bytes, kind: str) -> None:
        """Write a file (``path``) or heartbeat bytes (None) now, after whatever is held;
        keep it in memory when that cannot be done (yet). Call with the lock held."""
        if path is None and self._heartbeat is None:  # a beat after close: never written
            self._lost[kind] = self._lost.get(kind, 0) + 1
            return
        if self._flush_locked():
            left = self._write_one(path, data)
            if left is None:
                return
            if isinstance(left, _GiveUp):
                self._lost[kind] = self._lost.get(kind, 0) + 1
                return
            data = left
        if self._backlog_bytes + len(data) > BACKLOG_MAX_BYTES:
            self._lost[kind] = self._lost.get(kind, 0) + 1
            return
        self._backlog.append((path, data, kind))
        self._backlog_bytes += len(data)

    def _write_one(self, path: Path | None, data: str | bytes) -> str | bytes | _GiveUp | None:
        """Write it; None when done, else what is left to write, or _GIVE_UP for an error
        that waiting cannot mend (the error noted either way). The run's directory and its
        journal folder are never made again here: gone, they are a failure, not a fresh
        start."""
        raw = data if isinstance(data, bytes) else data.encode()
        try:
            if path is None:
                if self._heartbeat is None or os.fstat(self._heartbeat).st_nlink == 0:
                    raise OSError(errno.ENOENT, "heartbeat.jsonl is gone")
                while raw:
                    raw = raw[os.write(self._heartbeat, raw):]
                return None
            if not self.root.is_dir() or not (self.root / "journal").is_dir():
                raise OSError(errno.ENOENT, f"{self.root} or its journal folder is gone")
            if not path.parent.is_dir():  # ansible/<phase>: made with its first event
                private_files.make_dir(self.root / "ansible")
                private_files.make_dir(path.parent)
            atomic_write(path, data if isinstance(data, str) else data.decode())
            return None
        except OSError as exc:
            self._error = f"{type(exc).__name__}: {exc}"
            if exc.errno not in _WAIT_FOR:
                return _GIVE_UP
            return raw if path is None else data
        except ConfigError as exc:  # a link where evidence goes: never written through
            self._error = f"{type(exc).__name__}: {exc}"
            return _GIVE_UP

    def _flush_locked(self) -> bool:
        """Write what is held, in order, until something fails; whether all was."""
        while self._backlog:
            path, data, kind = self._backlog[0]
            left = self._write_one(path, data)
            self._backlog_bytes -= len(data)
            if isinstance(left, _GiveUp):
                self._lost[kind] = self._lost.get(kind, 0) + 1
            elif left is not None:
                self._backlog[0] = (path, left, kind)
                self._backlog_bytes += len(left)
                return False
            self._backlog.popleft()
        return True

    def settle(self) -> str | None:
        """The run's evidence is complete: write what is held; what cannot be written now
        is lost. ``problem`` afterwards (None when everything is on disk)."""
        with self._lock:
            self._flush_locked()
            for _path, _data, kind in self._backlog:
                self._lost[kind] = self._lost.get(kind, 0) + 1
            self._backlog.clear()
            self._backlog_bytes = 0
        return self.problem

    def flush(self) -> bool:
        """Write what is held in memory; whether everything is on disk now."""
        with self._lock:
            return self._flush_locked() and not self._lost

    @classmethod
    def resume(cls, root: Path, run_id: str, redactor: Redactor,
               clock: Clock = SYSTEM_CLOCK) -> Journal:
        """Append to the journal of a run whose process died (crash recovery): numbering
        continues after the last record it wrote."""
        journal = cls.__new__(cls)
        journal.root, journal.run_id, journal._redactor = root, run_id, redactor
        journal._observer = None
        journal._clock = clock
        journal._lock = threading.Lock()
        journal._init_backlog()
        existing = sorted((root / "journal").glob("[0-9]*.json"))
        journal._seq = int(existing[-1].name.split("-", 1)[0]) if existing else 0
        journal._event_seq = {}
        private_files.make_dir(root / "journal")
        journal._heartbeat = private_files.open_for_write(root / "heartbeat.jsonl",
                                                          append=True)
        return journal

    def record(self, kind: EventKind | str, **payload: Any) -> None:
        """One journal record. ``kind`` is an :class:`EventKind` (a plain string is still
        taken, for callers not yet moved to the enum)."""
        kind = str(kind)
        with self._lock:
            self._seq += 1
            body = {"seq": self._seq, "at": self._clock.now().isoformat(),
                    "run_id": self.run_id, "kind": kind, **payload}
            name = f"{self._seq:06d}-{kind}.json"
            clean = self._redactor.scrub(body)
            self._put(self.root / "journal" / name, _json(clean), kind)
        self._notify(kind, clean)

    def _notify(self, kind: str, body: dict[str, Any]) -> None:
        if self._observer is not None:
            try:
                self._observer(kind, body)
            except Exception as exc:  # a display problem must never stop a drill: say so
                self._observer = None
                self.record(EventKind.OBSERVER_DISABLED, error=f"{type(exc).__name__}: {exc}")

    def ansible_event(self, phase: str, event: dict[str, Any]) -> None:
        with self._lock:
            folder = self.root / "ansible" / phase  # made with its first event
            seq = self._event_seq.get(phase, 0) + 1
            self._event_seq[phase] = seq
            kind = re.sub(r"[^a-z_]", "", str(event.get("event", "event")))
            clean = self._redactor.scrub(event)
            self._put(folder / f"{seq:06d}-{kind}.json", _json(clean), "ansible event")
        if kind in _TASK_EVENTS:
            data = clean.get("event_data") or {}
            self._notify(EventKind.ANSIBLE_TASK, {
                "run_id": self.run_id, "phase": phase, "ansible_event": kind,
                "task": data.get("task"), "host": data.get("host"),
                "at": clean.get("created")})

    def heartbeat(self, sample: HeartbeatSample, population: str | None = None) -> None:
        """One write attempt; ``population`` names its client population in a drill that
        has several (hot-hot), and is left out otherwise."""
        body = sample.model_dump(mode="json")
        if population is not None:
            body["population"] = population
        clean = self._redactor.scrub(body)
        line = json.dumps(clean)
        with self._lock:
            self._put(None, (line + "\n").encode(), "heartbeat")
        self._notify(EventKind.HEARTBEAT, {"run_id": self.run_id, **clean})

    def write_document(self, name: str, content: str) -> Path:
        path = self.root / name
        atomic_write(path, self._redactor.text(content))
        return path

    def files_dir(self, phase: str) -> Path:
        """Where a phase playbook may put files it fetched (``dalp_evidence_dir``)."""
        return self.root / "files" / phase

    def adopt_files(self, phase: str) -> list[dict[str, Any]]:
        """Redact the files a phase playbook left in its files directory (text files are
        rewritten atomically; binary files are kept only when they contain no secret) and
        record their digests. Returns what was recorded."""
        folder = self.files_dir(phase)
        try:
            if not folder.is_dir():
                return []
            return self._adopt(folder, phase)
        except OSError as exc:  # evidence that cannot be read or redacted: said, never raised
            problem = f"{type(exc).__name__}: {exc}"
            with self._lock:
                self._error = problem
                self._lost["fetched file"] = self._lost.get("fetched file", 0) + 1
            self.record(EventKind.EVIDENCE_NOT_WRITTEN, document=f"files/{phase}",
                        error=problem)
            return []

    def _adopt(self, folder: Path, phase: str) -> list[dict[str, Any]]:
        private_files.tighten(self.root / "files")
        kept: list[dict[str, Any]] = []
        for path in sorted(folder.rglob("*")):
            if path.is_symlink() or (not path.is_file() and not path.is_dir()):
                # a link or a device among fetched files: never read, never sealed
                path.unlink()
                self.record(EventKind.EVIDENCE_DROPPED, file=str(path.relative_to(self.root)),
                            reason="not a regular file (a link, a device or a pipe)")
                continue
            if not path.is_file():
                continue
            raw = path.read_bytes()
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError:
                if any(secret.encode() in raw for secret in self._redactor.secrets):
                    path.unlink()
                    self.record(EventKind.EVIDENCE_DROPPED, file=str(path.relative_to(self.root)),
                                reason="binary file containing a secret")
                    continue
            else:
                clean = self._redactor.text(text)
                if clean != text:
                    try:
                        atomic_write(path, clean)
                    except OSError as exc:  # a secret must not stay: the file goes
                        path.unlink()
                        self.record(EventKind.EVIDENCE_DROPPED,
                                    file=str(path.relative_to(self.root)),
                                    reason=f"could not be redacted in place ({exc})")
                        continue
                    raw = clean.encode("utf-8")
            kept.append({"file": str(path.relative_to(self.root)), "bytes": len(raw),
                         "sha256": hashlib.sha256(raw).hexdigest()})
        if kept:
            self.record(EventKind.EVIDENCE_FILES, phase=phase, files=kept)
        return kept

    def close(self) -> None:
        """Write what is held and close the heartbeat file; what still cannot be written is
        lost (``problem`` says how much). Records may still follow (the run's last ones):
        ``settle`` says whether they were written."""
        self.settle()
        with self._lock:
            if self._heartbeat is not None:
                fd, self._heartbeat = self._heartbeat, None
                try:
                    os.fsync(fd)
                    os.close(fd)
                except OSError as exc:  # (a delayed ENOSPC or EDQUOT on a network filesystem)
                    self._error = f"{type(exc).__name__}: {exc}"
                    self._lost["heartbeat"] = self._lost.get("heartbeat", 0) + 1


def records_of(records: list[dict[str, Any]], kind: EventKind) -> list[dict[str, Any]]:
    """The records of one kind, in order."""
    return [r for r in records if r.get("kind") == kind.value]


def read_journal(root: Path) -> list[dict[str, Any]]:
    folder = root / "journal"
    if not folder.is_dir():
        return []
    return [json.loads(p.read_text(encoding="utf-8"))
            for p in sorted(folder.glob("[0-9]*.json"))]
