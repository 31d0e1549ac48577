"""The scheduler's job store: one JSON row per drill in table ``dalp_dr_schedule`` of the
history database (SQLite or PostgreSQL, one implementation through SQLAlchemy).

Why not APScheduler's SQLAlchemyJobStore: it pickles each job into the table and unpickles
every row it reads, so anyone who can write the table runs code on every scheduler host
(security finding 5). A row here is data only: the drill job (:class:`DrillJob` as JSON,
validated strictly) and its next run time (a plain column, so the scheduler can ask which
jobs are due). Everything executable is rebuilt from fixed code: the trigger from the row's
cron expression and time zone through the parser the drill files use, the job's function
from the constant :data:`FUNC_REF`. A row that does not validate is a StoreError naming the
table and the job id. It is never skipped or deleted silently: a skipped job is a drill that
quietly stops running.

The same object serves APScheduler (``BaseJobStore``: the service's scheduler reads due jobs
and advances next run times through it) and the reconciliation with the drill files
(:meth:`DrillJobStore.jobs`, :meth:`DrillJobStore.save`).
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NamedTuple

from apscheduler.job import Job
from apscheduler.jobstores.base import BaseJobStore, ConflictingIdError, JobLookupError
from pydantic import AwareDatetime, BaseModel, ConfigDict, ValidationError
from sqlalchemy import (
    Column,
    Engine,
    Float,
    MetaData,
    Table,
    Unicode,
    UnicodeText,
    create_engine,
    select,
)
from sqlalchemy.engine import URL
from sqlalchemy.exc import SQLAlchemyError

from dalp_dr import private_files
from dalp_dr.errors import StoreError
from dalp_dr.spec import LoadedDrill, Scenario, Schedule, Topology

JOBS_TABLE = "dalp_dr_schedule"
EXECUTOR = "drills"
FUNC_REF = "dalp_dr.schedule.store:fire"


def fire(**_kwargs: Any) -> None:
    """Placeholder the jobs reference; the scheduler's drill executor runs them instead."""
    raise RuntimeError("dalp-dr drill jobs run only through the scheduler's drill executor")


class DrillJob(BaseModel):
    """What the job store keeps about one scheduled drill: what a fire needs, and what a
    missed or refused run is recorded with (so that record never depends on the file still
    loading). Unknown fields are refused: a row is exactly this, or an error."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    drill: str
    path: str
    spec_hash: str
    cron: str
    timezone: str
    topology: Topology
    scenario: Scenario
    environment: str
    owner: str
    rto: float
    rpo: float
    since: AwareDatetime
    """when this drill was first scheduled (cadence windows that opened before do not count)"""

    @property
    def schedule_key(self) -> tuple[str, str]:
        return (self.cron, self.timezone)

    def trigger(self) -> Any:
        """The CronTrigger, by the drill files' own parser (ValueError for a bad one; built
        once, not again by Schedule's validator: the store builds one for every row read)."""
        return Schedule.model_construct(cron=self.cron, timezone=self.timezone).trigger()

    @classmethod
    def of(cls, loaded: LoadedDrill, since: datetime) -> DrillJob:
        spec = loaded.spec
        return cls(drill=spec.name, path=str(loaded.path.resolve()), spec_hash=loaded.spec_hash,
                   cron=spec.schedule.cron, timezone=spec.schedule.timezone,
                   topology=spec.topology, scenario=spec.scenario,
                   environment=spec.environment, owner=spec.owner,
                   rto=spec.objectives.rto.total_seconds(),
                   rpo=spec.objectives.rpo.total_seconds(), since=since)


class StoredJob(NamedTuple):
    """One row of the job store, decoded."""

    job: DrillJob
    next_run: datetime | None


class _Row(NamedTuple):
    stored: StoredJob
    trigger: Any
    """built while the row was validated, kept for the APScheduler job"""


def one_line(exc: BaseException | str) -> str:
    """An error for one log or terminal line: credentials masked, and no control characters
    (parts of it may come from a row anyone with write access to the table wrote)."""
    from dalp_dr.redact import Redactor

    text = " ".join(str(exc).split())[:300]
    return Redactor().text("".join(c if c.isprintable() else "?" for c in text))


def engine_for(store_url: str) -> Engine:
    """An engine on the history store's database: for SQLite the very file open_store uses
    (its URL path taken the same way), for PostgreSQL the psycopg 3 driver."""
    if store_url.startswith("sqlite://"):
        path = Path(store_url.removeprefix("sqlite://"))
        if not path.parent.is_dir():  # as the history store makes them: the owner's alone
            private_files.make_dir(path.parent)
        if not path.exists():  # SQLite gives its -wal and -shm files the database's mode
            os.close(private_files.open_for_write(path, append=True))
        return create_engine(URL.create("sqlite", database=str(path)))
    for prefix in ("postgresql://", "postgres://"):
        if store_url.startswith(prefix):
            return create_engine("postgresql+psycopg://" + store_url.removeprefix(prefix))
    return create_engine(store_url)


def _timestamp(moment: datetime | None) -> float | None:
    return None if moment is None else moment.timestamp()


def encode(stored: StoredJob) -> dict[str, Any]:
    """The table row of a job: JSON and a UTC timestamp, nothing executable."""
    return {"id": stored.job.drill, "next_run_time": _timestamp(stored.next_run),
            "job": stored.job.model_dump_json()}


class DrillJobStore(BaseJobStore):  # type: ignore[misc]
    def __init__(self, engine: Engine) -> None:
        super().__init__()
        self.engine = engine
        # 191: the longest key MySQL indexes in utf8mb4, as APScheduler sized its id column
        self.table = Table(JOBS_TABLE, MetaData(),
                           Column("id", Unicode(191), primary_key=True),
                           Column("next_run_time", Float(25), index=True),
                           Column("job", UnicodeText, nullable=False))

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {JOBS_TABLE}>"

    @contextmanager
    def _db(self, action: str) -> Iterator[Any]:
        """A transaction; database errors become StoreError here, where they enter our
        code (JobLookupError and friends pass: they are APScheduler's protocol)."""
        try:
            with self.engine.begin() as connection:
                yield connection
        except SQLAlchemyError as exc:
            raise StoreError(f"cannot {action} the job store: {one_line(exc)}") from None

    def create(self) -> None:
        with self._db("open") as db:
            self.table.create(db, checkfirst=True)

    # -- rows ------------------------------------------------------------------------------

    def _decode(self, job_id: object, next_run_time: object, text: object) -> _Row:
        where = f"job store table {JOBS_TABLE}, job {job_id!r}"
        if not isinstance(text, str):
            raise StoreError(f"{where}: the job is not JSON text ({type(text).__name__}); "
                             "delete the row and run 'dalp-dr schedule sync'")
        try:
            job = DrillJob.model_validate_json(text)
            trigger = job.trigger()
        except ValidationError as exc:
            # field names and messages only: the row's values may be anything at all
            problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'row'}: {e['msg']}"
                                 for e in exc.errors(include_url=False)[:3])
            raise StoreError(f"{where}: not a drill job ({one_line(problems)}); delete the "
                             "row and run 'dalp-dr schedule sync'") from None
        except ValueError as exc:
            raise StoreError(f"{where}: invalid schedule: {one_line(exc)}") from None
        if job.drill != job_id:
            raise StoreError(f"{where}: the row holds the job of drill {job.drill!r}; delete "
                             "the row and run 'dalp-dr schedule sync'")
        return _Row(StoredJob(job, self._next_run(where, next_run_time)), trigger)

    @staticmethod
    def _next_run(where: str, value: object) -> datetime | None:
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int | float) \
                or not math.isfinite(value):
            raise StoreError(f"{where}: next_run_time is not a timestamp")
        try:
            return datetime.fromtimestamp(value, UTC)
        except (OverflowError, OSError, ValueError):
            raise StoreError(f"{where}: next_run_time is out of range") from None

    def _rows(self, *conditions: Any) -> list[_Row]:
        t = self.table
        query = select(t.c.id, t.c.next_run_time, t.c.job).where(*conditions).order_by(
            t.c.next_run_time, t.c.id)
        with self._db("read") as db:
            rows = db.execute(query).all()
        return [self._decode(*row) for row in rows]

    def jobs(self) -> dict[str, StoredJob]:
        """Every drill job in the store by drill name."""
        return {row.stored.job.drill: row.stored for row in self._rows()}

    def save(self, *, added: Sequence[StoredJob] = (), changed: Sequence[StoredJob] = (),
             removed: Sequence[str] = (),
             record_removed: Callable[[Any], None] | None = None) -> None:
        """One transaction for a whole sync (a thousand drills in a fraction of a second,
        and never half a sync). ``record_removed``: writes the record of the removals in
        that same transaction (:mod:`dalp_dr.schedule.removals`)."""
        t = self.table
        with self._db("update") as db:
            if added:
                db.execute(t.insert(), [encode(s) for s in added])
            for stored in changed:
                values = encode(stored)
                done = db.execute(t.update().where(t.c.id == values.pop("id")).values(values))
                if done.rowcount == 0:  # removed meanwhile: the drill file says it exists
                    db.execute(t.insert().values(encode(stored)))
            if removed:
                db.execute(t.delete().where(t.c.id.in_(list(removed))))
                if record_removed is not None:
                    record_removed(db)

    # -- APScheduler's job store interface (the service's scheduler) ------------------------

    def start(self, scheduler: Any, alias: str) -> None:
        super().start(scheduler, alias)
        self.create()

    def _job(self, row: _Row) -> Job:
        """The APScheduler job, built from fixed code and the validated row: the function is
        FUNC_REF whatever the row says, the trigger comes from the cron parser."""
        stored = row.stored
        job = Job.__new__(Job)
        job.__setstate__({
            "version": 1, "id": stored.job.drill, "func": FUNC_REF,
            "trigger": row.trigger, "executor": EXECUTOR, "args": (),
            "kwargs": stored.job.model_dump(mode="json"), "name": stored.job.drill,
            "misfire_grace_time": None, "coalesce": False, "max_instances": 1,
            "next_run_time": stored.next_run})
        job._scheduler = self._scheduler
        job._jobstore_alias = self._alias
        return job

    def lookup_job(self, job_id: str) -> Job | None:
        found = self._rows(self.table.c.id == job_id)
        return self._job(found[0]) if found else None

    def get_due_jobs(self, now: datetime) -> list[Job]:
        return [self._job(r) for r in self._rows(self.table.c.next_run_time <= now.timestamp())]

    def get_next_run_time(self) -> datetime | None:
        t = self.table
        with self._db("read") as db:
            value = db.execute(select(t.c.next_run_time).where(t.c.next_run_time.is_not(None))
                               .order_by(t.c.next_run_time).limit(1)).scalar()
        return self._next_run(f"job store table {JOBS_TABLE}", value)

    def get_all_jobs(self) -> list[Job]:
        found = [self._job(r) for r in self._rows()]
        self._fix_paused_jobs_sorting(found)
        return found

    def add_job(self, job: Job) -> None:
        stored = StoredJob(DrillJob.model_validate(job.kwargs), job.next_run_time)
        try:
            self.save(added=[stored])
        except StoreError:
            if self.lookup_job(job.id) is not None:
                raise ConflictingIdError(job.id) from None
            raise

    def update_job(self, job: Job) -> None:
        # The scheduler only advances next run times. What a job runs belongs to the drill
        # files (sync), so a fire handled while 'dalp-dr schedule sync' rewrites a job
        # cannot put the old definition back.
        t = self.table
        with self._db("update") as db:
            done = db.execute(t.update().where(t.c.id == job.id).values(
                next_run_time=_timestamp(job.next_run_time)))
        if done.rowcount == 0:
            raise JobLookupError(job.id)

    def remove_job(self, job_id: str) -> None:
        t = self.table
        with self._db("update") as db:
            done = db.execute(t.delete().where(t.c.id == job_id))
        if done.rowcount == 0:
            raise JobLookupError(job_id)

    def remove_all_jobs(self) -> None:
        with self._db("update") as db:
            db.execute(self.table.delete())

    def shutdown(self) -> None:
        self.engine.dispose()


def open_jobstore(store_url: str, scheduler: Any | None = None) -> DrillJobStore:
    """The job store in the history database, its table created. ``scheduler``: the service's
    APScheduler scheduler, which starts the store again itself (starting is idempotent)."""
    try:
        engine = engine_for(store_url)
    except (SQLAlchemyError, ValueError, ImportError) as exc:
        raise StoreError(f"cannot open the job store: {one_line(exc)}") from None
    jobstore = DrillJobStore(engine)
    if scheduler is not None:
        jobstore.start(scheduler, "default")
    else:
        jobstore.create()
    return jobstore


__all__ = ["EXECUTOR", "FUNC_REF", "JOBS_TABLE", "DrillJob", "DrillJobStore", "StoredJob",
           "encode", "engine_for", "fire", "one_line", "open_jobstore"]
