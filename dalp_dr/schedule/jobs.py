"""The drill files on disk and their reconciliation with the job store.

One job per drill, id = the drill's name, so a definition edited on disk keeps its history
(history is keyed by drill name). A job carries what a missed or refused run must be
recorded with (topology, scenario, environment, owner, objectives), so that record never
depends on the file still loading. The jobs live in the history database as JSON rows
(:mod:`dalp_dr.schedule.store`, table ``dalp_dr_schedule``); the pickled table of earlier
versions is migrated on the way (:mod:`dalp_dr.schedule.legacy`).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from dalp_dr.clock import utcnow
from dalp_dr.errors import ConfigError, InvalidInput, SpecError
from dalp_dr.schedule import legacy
from dalp_dr.schedule.store import (
    EXECUTOR,
    FUNC_REF,
    JOBS_TABLE,
    DrillJob,
    DrillJobStore,
    StoredJob,
    open_jobstore,
)
from dalp_dr.spec import LoadedDrill, discover_drills, load_drill

log = logging.getLogger("dalp_dr.scheduler")

__all__ = ["EXECUTOR", "FUNC_REF", "JOBS_TABLE", "Definitions", "DrillJob", "DrillJobStore",
           "ScheduleRow", "StoredJob", "SyncReport", "broken_drill_names", "current_jobs",
           "digest_of", "load_definitions", "open_jobstore", "overview", "stored_jobs", "sync"]


@dataclass(frozen=True)
class Definitions:
    """The drill files of a directory: the valid ones by drill name, and the broken ones."""

    valid: dict[str, LoadedDrill]
    invalid: dict[Path, InvalidInput]


def load_definitions(directory: Path) -> Definitions:
    """Load every drill file. A name defined twice is an error for the second file."""
    if not directory.is_dir():
        raise ConfigError(f"drill directory {directory} does not exist", field="--drills",
                          hint="point --drills (or DALP_DR_PROJECT) at the drills")
    valid: dict[str, LoadedDrill] = {}
    invalid: dict[Path, InvalidInput] = {}
    for path in discover_drills(directory):
        try:
            loaded = load_drill(path)
        except InvalidInput as exc:
            invalid[path] = exc
            continue
        first = valid.get(loaded.spec.name)
        if first is not None:
            invalid[path] = SpecError(
                f"drill name '{loaded.spec.name}' is already defined by {first.path.name}",
                source=str(path), field="name", hint="every drill needs its own name")
            continue
        valid[loaded.spec.name] = loaded
    return Definitions(valid=valid, invalid=invalid)


def stored_jobs(jobstore: DrillJobStore) -> dict[str, StoredJob]:
    """Every drill job in the store with its next run time (StoreError for a row that is
    not a drill job)."""
    return jobstore.jobs()


def current_jobs(jobstore: DrillJobStore, definitions: Definitions,
                 now: datetime | None = None) -> dict[str, StoredJob]:
    """The stored jobs for a command that only reads ('schedule list', 'status'): the old
    pickled table's rows are migrated first (what the drill files define; nothing deleted),
    so the first command after an upgrade already shows every drill scheduled."""
    legacy.migrate(jobstore, definitions.valid, now=now or utcnow(),
                   broken=broken_drill_names(definitions), remove_missing=False)
    return jobstore.jobs()


@dataclass(frozen=True)
class SyncReport:
    """What a sync did (or, dry run, would do) to the job store, drill by drill."""

    added: tuple[str, ...] = ()
    changed: tuple[str, ...] = ()
    rescheduled: tuple[str, ...] = ()
    """changed drills whose schedule changed (next run recomputed)"""
    removed: tuple[str, ...] = ()
    """jobs removed (only with ``prune``)"""
    orphaned: tuple[str, ...] = ()
    """jobs whose drill file is gone, kept (without ``prune``): each fire records a
    failure, so a drill never stops silently"""
    unchanged: tuple[str, ...] = ()
    kept_invalid: tuple[str, ...] = ()
    """drills whose file is broken now: their job is kept (a fire records the failure)"""
    migrated: tuple[str, ...] = ()
    """jobs rebuilt from the old pickled table (:mod:`dalp_dr.schedule.legacy`)"""
    dry_run: bool = False
    """nothing was written: what a sync would do"""

    @property
    def changes(self) -> int:
        return len(self.added) + len(self.changed) + len(self.removed)

    @property
    def removes_every_job(self) -> bool:
        """It removes jobs and keeps none of those stored: what an empty or wrong drill
        directory looks like (refused unless asked for by name: ``--prune --all``)."""
        return bool(self.removed) and not (self.changed or self.unchanged
                                           or self.kept_invalid or self.orphaned)


def sync(jobstore: DrillJobStore, definitions: Definitions, *, now: datetime | None = None,
         broken_names: Iterable[str] = (), prune: bool = False, dry_run: bool = False,
         removed_by: str = "dalp-dr") -> SyncReport:
    """Make the job store match the definitions. New drills are scheduled from ``now``; a
    changed file keeps its pending next run unless its schedule changed. A job whose file is
    gone is kept (``orphaned``, logged at warning) unless ``prune``: then it is removed,
    logged at warning and recorded (:mod:`dalp_dr.schedule.removals`, ``removed_by``).
    ``broken_names``: drills whose file exists but does not load now; their jobs stay.
    ``dry_run``: nothing is written (an old pickled table is neither migrated nor read)."""
    from dalp_dr.schedule import removals

    moment = now or utcnow()
    keep = set(broken_names)
    moved = legacy.Migration() if dry_run else legacy.migrate(
        jobstore, definitions.valid, now=moment, broken=keep, remove_missing=prune)
    current = jobstore.jobs()
    added: list[StoredJob] = []
    changed: list[StoredJob] = []
    unchanged: list[str] = []
    rescheduled: list[str] = []
    for name, loaded in sorted(definitions.valid.items()):
        stored = current.get(name)
        if stored is None:
            spec = DrillJob.of(loaded, since=moment)
            added.append(StoredJob(spec, spec.trigger().get_next_fire_time(None, moment)))
            continue
        spec = DrillJob.of(loaded, since=stored.job.since)
        if spec == stored.job:
            unchanged.append(name)
            continue
        next_run = stored.next_run
        if spec.schedule_key != stored.job.schedule_key or next_run is None:
            next_run = spec.trigger().get_next_fire_time(None, moment)
            rescheduled.append(name)
        changed.append(StoredJob(spec, next_run))
    gone = sorted(set(current) - set(definitions.valid) - keep)
    removed = gone if prune else []
    orphaned = [] if prune else gone
    report = SyncReport(added=tuple(s.job.drill for s in added),
                        changed=tuple(s.job.drill for s in changed),
                        rescheduled=tuple(rescheduled),
                        removed=tuple(sorted([*removed, *moved.removed])),
                        orphaned=tuple(orphaned), unchanged=tuple(unchanged),
                        kept_invalid=tuple(sorted([*(n for n in set(current) - set(
                            definitions.valid) if n in keep), *moved.kept])),
                        migrated=moved.migrated, dry_run=dry_run)
    if dry_run:
        return report
    record = removals.rows([current[n] for n in removed], moment, removed_by)
    jobstore.save(added=added, changed=changed, removed=removed,
                  record_removed=lambda db: removals.write(db, record))
    for name in removed:
        job = current[name].job
        log.warning("schedule: REMOVED the job of drill %s (%s %s, environment %s, file %s) "
                    "by %s: it no longer runs", name, job.cron, job.timezone, job.environment,
                    job.path, removed_by)
    for name in orphaned:
        log.warning("schedule: the drill file of %s is gone (%s); its job is kept and every "
                    "fire records a failure until the file is back or the job is pruned",
                    name, current[name].job.path)
    return report


def broken_drill_names(definitions: Definitions) -> set[str]:
    """Names the broken files probably define (read without validation, through the drill
    YAML loader's bounds), so their jobs are not removed just because the file does not
    validate right now."""
    from dalp_dr import drill_yaml

    names: set[str] = set()
    for path in definitions.invalid:
        try:
            data = drill_yaml.load(path.read_text(encoding="utf-8"), source=str(path))
        except (OSError, UnicodeDecodeError, InvalidInput):
            data = None
        if isinstance(data, dict) and isinstance(data.get("name"), str):
            names.add(data["name"])
        else:  # unreadable: fall back on the file name
            names.add(path.stem)
    return names


def digest_of(definitions: Definitions) -> str:
    """A digest of the valid definitions (for log lines: did anything change?)."""
    h = hashlib.sha256()
    for name, loaded in sorted(definitions.valid.items()):
        h.update(f"{name}={loaded.spec_hash};".encode())
    return h.hexdigest()[:12]


class ScheduleRow(BaseModel, frozen=True):
    """One line of 'dalp-dr schedule list'."""

    drill: str
    file: str
    cron: str | None
    timezone: str | None
    next_run: datetime | None
    synced: bool
    """the job store has this definition as it is on disk now"""
    last_run_id: str | None
    last_outcome: str | None
    last_started: datetime | None


def overview(jobstore: DrillJobStore, definitions: Definitions, store: Any
             ) -> list[ScheduleRow]:
    """Every scheduled drill and every definition on disk, with its next and last run."""
    scheduled = current_jobs(jobstore, definitions)
    on_disk = {name: DrillJob.of(loaded, since=utcnow())
               for name, loaded in definitions.valid.items()}
    rows = []
    for name in sorted(set(scheduled) | set(on_disk)):
        stored = scheduled.get(name)
        disk = on_disk.get(name)
        job = stored.job if stored else disk
        assert job is not None
        last = store.list_runs(drill=name, limit=1)
        rows.append(ScheduleRow(
            drill=name, file=job.path, cron=job.cron, timezone=job.timezone,
            next_run=stored.next_run if stored else None,
            synced=stored is not None and disk is not None and
            disk.model_copy(update={"since": stored.job.since}) == stored.job,
            last_run_id=last[0].run_id if last else None,
            last_outcome=last[0].outcome.value if last else None,
            last_started=last[0].started_at if last else None))
    return rows
