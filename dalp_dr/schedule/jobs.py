"""The persistent job store (APScheduler 3.x SQLAlchemyJobStore) and its reconciliation with
the drill files on disk.

One job per drill, id = the drill's name, so a definition edited on disk keeps its history
(history is keyed by drill name). A job carries what a missed or refused run must be
recorded with (topology, scenario, environment, owner, objectives), so that record never
depends on the file still loading. The jobs live in the history database: table
``dalp_dr_jobs`` next to the runs (SQLite by default, PostgreSQL in production).

The function a job names (``fire``) is never called by APScheduler's own executors: the
scheduler service runs jobs through its drill executor, which sees every planned fire time.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from dalp_dr.errors import ConfigError, InvalidInput, SpecError
from dalp_dr.spec import LoadedDrill, discover_drills, load_drill

JOBS_TABLE = "dalp_dr_jobs"
EXECUTOR = "drills"
FUNC_REF = "dalp_dr.schedule.jobs:fire"


def fire(**_kwargs: Any) -> None:
    """Placeholder the stored jobs reference; the drill executor runs them instead."""
    raise RuntimeError("dalp-dr drill jobs run only through the scheduler's drill executor")


class DrillJob(BaseModel):
    """What the job store keeps about one scheduled drill (the job's kwargs)."""

    model_config = ConfigDict(frozen=True)

    drill: str
    path: str
    spec_hash: str
    cron: str
    timezone: str
    topology: str
    scenario: str
    environment: str
    owner: str
    rto: float
    rpo: float
    since: datetime
    """when this drill was first scheduled (cadence windows that opened before do not count)"""

    @property
    def schedule_key(self) -> tuple[str, str]:
        return (self.cron, self.timezone)

    def trigger(self) -> Any:
        from dalp_dr.spec import Schedule

        return Schedule(cron=self.cron, timezone=self.timezone).trigger()

    @classmethod
    def of(cls, loaded: LoadedDrill, since: datetime) -> DrillJob:
        spec = loaded.spec
        return cls(drill=spec.name, path=str(loaded.path.resolve()), spec_hash=loaded.spec_hash,
                   cron=spec.schedule.cron, timezone=spec.schedule.timezone,
                   topology=spec.topology.value, scenario=spec.scenario.value,
                   environment=spec.environment, owner=spec.owner,
                   rto=spec.objectives.rto.total_seconds(),
                   rpo=spec.objectives.rpo.total_seconds(), since=since)


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


def sqlalchemy_url(store_url: str) -> str:
    """The history store URL as SQLAlchemy spells it (psycopg 3 driver for PostgreSQL)."""
    for prefix in ("postgresql://", "postgres://"):
        if store_url.startswith(prefix):
            return "postgresql+psycopg://" + store_url.removeprefix(prefix)
    return store_url


def open_jobstore(store_url: str, scheduler: Any | None = None) -> Any:
    """The SQLAlchemy job store in the history database, started (table created)."""
    from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
    from apscheduler.schedulers.background import BackgroundScheduler

    from dalp_dr.errors import StoreError

    if store_url.startswith("sqlite://"):
        Path(store_url.removeprefix("sqlite://")).parent.mkdir(parents=True, exist_ok=True)
    jobstore = SQLAlchemyJobStore(url=sqlalchemy_url(store_url), tablename=JOBS_TABLE)
    owner = scheduler or BackgroundScheduler(timezone=UTC)
    try:
        jobstore.start(owner, "default")
    except Exception as exc:  # sqlalchemy.exc.*: translated here, where it enters our code
        raise StoreError(f"cannot open the job store: {_one_line(exc)}") from None
    return jobstore


def _one_line(exc: BaseException) -> str:
    from dalp_dr.redact import Redactor

    return Redactor().text(" ".join(str(exc).split())[:300])


def stored_jobs(jobstore: Any) -> dict[str, tuple[DrillJob, datetime | None]]:
    """Every drill job in the store with its next run time."""
    from dalp_dr.errors import StoreError

    try:
        jobs = jobstore.get_all_jobs()
    except Exception as exc:
        raise StoreError(f"cannot read the job store: {_one_line(exc)}") from None
    return {job.id: (DrillJob.model_validate(job.kwargs), job.next_run_time) for job in jobs}


@dataclass
class SyncReport:
    added: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    rescheduled: list[str] = field(default_factory=list)
    """changed drills whose schedule changed (next run recomputed)"""
    removed: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    kept_invalid: list[str] = field(default_factory=list)
    """drills whose file is broken now: their job is kept (a fire records the failure)"""

    @property
    def changes(self) -> int:
        return len(self.added) + len(self.changed) + len(self.removed)


def _job(scheduler: Any, spec: DrillJob, trigger: Any, next_run_time: datetime | None) -> Any:
    from apscheduler.job import Job

    return Job(scheduler, id=spec.drill, name=spec.drill, func=FUNC_REF, args=(),
               kwargs=spec.model_dump(mode="json"), trigger=trigger, executor=EXECUTOR,
               misfire_grace_time=None, coalesce=False, max_instances=1,
               next_run_time=next_run_time)


def _add_all(jobstore: Any, new_jobs: list[Any]) -> None:
    """Insert new jobs in one transaction: the row SQLAlchemyJobStore.add_job writes (id,
    next run as a UTC timestamp, pickled job state), without a commit per job (a thousand
    drills sync in a fraction of the time)."""
    import pickle

    from apscheduler.util import datetime_to_utc_timestamp

    if not new_jobs:
        return
    rows = [{"id": job.id, "next_run_time": datetime_to_utc_timestamp(job.next_run_time),
             "job_state": pickle.dumps(job.__getstate__(), jobstore.pickle_protocol)}
            for job in new_jobs]
    with jobstore.engine.begin() as connection:
        connection.execute(jobstore.jobs_t.insert(), rows)


def sync(jobstore: Any, definitions: Definitions, *, now: datetime | None = None,
         broken_names: Iterable[str] = ()) -> SyncReport:
    """Make the job store match the definitions. New drills are scheduled from ``now``; a
    changed file keeps its pending next run unless its schedule changed; a deleted file's job
    is removed. ``broken_names``: drills whose file exists but does not load now; their jobs
    stay."""
    from dalp_dr.errors import StoreError

    moment = now or datetime.now(UTC)
    scheduler = jobstore._scheduler  # the scheduler the store was started with
    current = stored_jobs(jobstore)
    report = SyncReport()
    keep = set(broken_names)
    new_jobs = []
    try:
        for name, loaded in sorted(definitions.valid.items()):
            stored = current.get(name)
            if stored is None:
                spec = DrillJob.of(loaded, since=moment)
                trigger = spec.trigger()
                new_jobs.append(_job(scheduler, spec, trigger,
                                     trigger.get_next_fire_time(None, moment)))
                report.added.append(name)
                continue
            old, next_run = stored
            spec = DrillJob.of(loaded, since=old.since)
            if spec == old:
                report.unchanged.append(name)
                continue
            trigger = spec.trigger()
            if spec.schedule_key != old.schedule_key or next_run is None:
                next_run = trigger.get_next_fire_time(None, moment)
                report.rescheduled.append(name)
            jobstore.update_job(_job(scheduler, spec, trigger, next_run))
            report.changed.append(name)
        _add_all(jobstore, new_jobs)
        for name in sorted(set(current) - set(definitions.valid)):
            if name in keep:
                report.kept_invalid.append(name)
                continue
            jobstore.remove_job(name)
            report.removed.append(name)
    except (InvalidInput, StoreError):
        raise
    except Exception as exc:  # sqlalchemy errors
        raise StoreError(f"cannot update the job store: {_one_line(exc)}") from None
    return report


def broken_drill_names(definitions: Definitions) -> set[str]:
    """Names the broken files probably define (read without validation), so their jobs are
    not removed just because the file does not validate right now."""
    import yaml

    names: set[str] = set()
    for path in definitions.invalid:
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError, UnicodeDecodeError):
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


class ScheduleRow(BaseModel):
    """One line of 'dalp-dr schedule list'."""

    model_config = ConfigDict(frozen=True)

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


def overview(jobstore: Any, definitions: Definitions, store: Any) -> list[ScheduleRow]:
    """Every scheduled drill and every definition on disk, with its next and last run."""
    scheduled = stored_jobs(jobstore)
    on_disk = {name: DrillJob.of(loaded, since=datetime.now(UTC))
               for name, loaded in definitions.valid.items()}
    rows = []
    for name in sorted(set(scheduled) | set(on_disk)):
        stored = scheduled.get(name)
        disk = on_disk.get(name)
        job = stored[0] if stored else disk
        assert job is not None
        last = store.list_runs(drill=name, limit=1)
        rows.append(ScheduleRow(
            drill=name, file=job.path, cron=job.cron, timezone=job.timezone,
            next_run=stored[1] if stored else None,
            synced=stored is not None and disk is not None and
            disk.model_copy(update={"since": stored[0].since}) == stored[0],
            last_run_id=last[0].run_id if last else None,
            last_outcome=last[0].outcome.value if last else None,
            last_started=last[0].started_at if last else None))
    return rows
