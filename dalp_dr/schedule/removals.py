"""The record of removed drill jobs: table ``dalp_dr_schedule_removed`` beside the job store
(same database, written in the same transaction as the removal).

Why a table and not only a log line: a log rotates away, and a drill whose job was removed
simply stops running; ``dalp-dr schedule removals`` shows later who removed which drill's
job, when, and what it was (its schedule, file, environment), so the silence has a record.
Why not the history: history records are sealed drill runs; a removed job is not a run and
must not count in any cadence, coverage or pass rate.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel
from sqlalchemy import Column, Float, Integer, MetaData, Table, Unicode, UnicodeText, select
from sqlalchemy.exc import SQLAlchemyError

from dalp_dr.errors import StoreError
from dalp_dr.schedule.store import DrillJob, DrillJobStore, StoredJob, one_line

REMOVALS_TABLE = "dalp_dr_schedule_removed"

_TABLE = Table(REMOVALS_TABLE, MetaData(),
               Column("id", Integer, primary_key=True, autoincrement=True),
               Column("drill", Unicode(191), nullable=False, index=True),
               Column("removed_at", Float(25), nullable=False),
               Column("removed_by", Unicode(191), nullable=False),
               Column("job", UnicodeText, nullable=False))


class Removal(BaseModel, frozen=True):
    """One removed job, as recorded."""

    drill: str
    removed_at: datetime
    removed_by: str
    cron: str | None
    timezone: str | None
    environment: str | None
    file: str | None
    """None: the recorded job no longer reads as a drill job"""


def rows(removed: Sequence[StoredJob], at: datetime, by: str) -> list[dict[str, Any]]:
    return [{"drill": s.job.drill, "removed_at": at.timestamp(), "removed_by": by,
             "job": s.job.model_dump_json()} for s in removed]


def write(db: Any, records: list[dict[str, Any]]) -> None:
    """Insert in the caller's transaction (the one that deletes the jobs)."""
    _TABLE.create(db, checkfirst=True)
    if records:
        db.execute(_TABLE.insert(), records)


def removals(jobstore: DrillJobStore, limit: int = 1000) -> list[Removal]:
    """The recorded removals, newest first (none when nothing was ever removed)."""
    t = _TABLE
    try:
        with jobstore.engine.begin() as db:
            t.create(db, checkfirst=True)
            found = db.execute(select(t.c.drill, t.c.removed_at, t.c.removed_by, t.c.job)
                               .order_by(t.c.removed_at.desc(), t.c.id.desc())
                               .limit(limit)).all()
    except SQLAlchemyError as exc:
        raise StoreError(f"cannot read {REMOVALS_TABLE}: {one_line(exc)}") from None
    out = []
    for drill, at, by, text in found:
        try:
            job: DrillJob | None = DrillJob.model_validate_json(text)
        except ValueError:
            job = None
        out.append(Removal(drill=str(drill), removed_at=datetime.fromtimestamp(at, UTC),
                           removed_by=str(by), cron=job.cron if job else None,
                           timezone=job.timezone if job else None,
                           environment=job.environment if job else None,
                           file=job.path if job else None))
    return out
