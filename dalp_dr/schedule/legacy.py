"""Migration from the pickled job table of earlier versions: ``dalp_dr_jobs``, written by
APScheduler 3.11's SQLAlchemyJobStore (columns id, next_run_time, job_state).

``job_state`` is a pickle, and loading it is the very hole the JSON job store closes, so it
is never read: the table is declared here without that column, so no query can select it.
A drill's job is rebuilt from its drill file (the source of truth) and takes from the old row
what its plain columns say: the drill name (id) and the pending next run. That next run is
kept when it is a fire time of the drill's schedule today (a run that fell due during the
upgrade is still caught up, or recorded missed), and recomputed from now otherwise (the
schedule changed after the last sync).

When a drill was first scheduled was in the pickle only. A migrated job counts from
:data:`MIGRATED_SINCE` (long ago), so 'schedule status' calls a drill with no run in its
current window overdue rather than new: the upgrade never hides a missed-drill alert.

A row whose drill file is broken stays in the old table until the file loads again (sync
keeps a broken drill's job too). A row with no drill file is removed by sync only: list and
status migrate but delete nothing, since pointed at another directory they would otherwise
drop every job.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Column, Float, MetaData, Table, Unicode, inspect, select
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from dalp_dr.errors import StoreError
from dalp_dr.schedule.store import DrillJob, DrillJobStore, StoredJob, encode, one_line
from dalp_dr.spec import LoadedDrill

log = logging.getLogger("dalp_dr.scheduler")

LEGACY_TABLE = "dalp_dr_jobs"
MIGRATED_SINCE = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Migration:
    migrated: tuple[str, ...] = ()
    rescheduled: tuple[str, ...] = ()
    """migrated drills whose old next run was not a fire time of their schedule now"""
    kept: tuple[str, ...] = ()
    """rows left in the old table: the drill file is broken (or, for list and status,
    absent)"""
    removed: tuple[str, ...] = ()


def _legacy_table() -> Table:
    # job_state deliberately absent (see the module's docstring)
    return Table(LEGACY_TABLE, MetaData(), Column("id", Unicode(191), primary_key=True),
                 Column("next_run_time", Float(25)))


def _pending_run(value: object, trigger: Any) -> datetime | None:
    """The old row's next run if it is a fire time of the schedule now, else None. The
    column is whatever someone wrote there (SQLite stores any type in any column)."""
    if isinstance(value, bool) or not isinstance(value, int | float) \
            or not math.isfinite(value):
        return None
    try:
        moment = datetime.fromtimestamp(value, UTC)
    except (OverflowError, OSError, ValueError):
        return None
    return moment if trigger.get_next_fire_time(None, moment) == moment else None


def migrate(jobstore: DrillJobStore, valid: Mapping[str, LoadedDrill], *, now: datetime,
            broken: Collection[str], remove_missing: bool) -> Migration:
    """Move the old table's rows into the job store, in one transaction. ``valid``: the drill
    files that load, by drill name; ``broken``: drill names whose file does not load now.
    Another process migrating at the same moment makes one of the two inserts conflict; the
    loser tries again and finds the rows gone."""
    for attempt in (1, 2):
        try:
            with jobstore.engine.begin() as db:
                return _migrate(db, jobstore, valid, now, broken, remove_missing)
        except IntegrityError as exc:
            if attempt == 2:
                raise StoreError(f"cannot migrate {LEGACY_TABLE}: {one_line(exc)}") from None
        except SQLAlchemyError as exc:
            raise StoreError(f"cannot migrate {LEGACY_TABLE}: {one_line(exc)}") from None
    raise AssertionError("unreachable")


def _migrate(db: Any, jobstore: DrillJobStore, valid: Mapping[str, LoadedDrill],
             now: datetime, broken: Collection[str], remove_missing: bool) -> Migration:
    if not inspect(db).has_table(LEGACY_TABLE):
        return Migration()
    legacy = _legacy_table()
    rows = db.execute(select(legacy.c.id, legacy.c.next_run_time)).all()
    if not rows:
        return Migration()
    present = set(db.execute(select(jobstore.table.c.id)).scalars())
    new: list[StoredJob] = []
    done: list[object] = []
    migrated: list[str] = []
    rescheduled: list[str] = []
    removed: list[str] = []
    kept: list[str] = []
    for raw_id, raw_next in rows:
        name = raw_id if isinstance(raw_id, str) else None
        loaded = valid.get(name) if name is not None else None
        if name is not None and name in present:  # sync or another migration was first
            done.append(raw_id)
        elif loaded is not None and name is not None:
            job = DrillJob.of(loaded, since=MIGRATED_SINCE)
            trigger = job.trigger()
            next_run = _pending_run(raw_next, trigger)
            if next_run is None:
                next_run = trigger.get_next_fire_time(None, now)
                rescheduled.append(name)
            new.append(StoredJob(job, next_run))
            migrated.append(name)
            done.append(raw_id)
        elif (name is not None and name in broken) or not remove_missing:
            kept.append(str(raw_id))
        else:
            removed.append(str(raw_id))
            done.append(raw_id)
    if new:
        db.execute(jobstore.table.insert(), [encode(s) for s in new])
    if done:
        db.execute(legacy.delete().where(legacy.c.id.in_(done)))
    for name in migrated:
        log.info("job of %s migrated from %s (rebuilt from its drill file)", name,
                 LEGACY_TABLE)
    for name in kept:
        log.info("%s: left in %s (its drill file does not load here)", name, LEGACY_TABLE)
    return Migration(migrated=tuple(migrated), rescheduled=tuple(rescheduled),
                     removed=tuple(removed), kept=tuple(kept))
