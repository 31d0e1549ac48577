"""``dalp-dr schedule``: the job store, next runs and cadence status of the drills."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from datetime import UTC
from pathlib import Path
from typing import TYPE_CHECKING

import click
from rich.text import Text

from dalp_dr.clock import utcnow
from dalp_dr.commands.shared import (
    DRILLS_OPTION,
    EXIT_FAILED,
    Exit,
    drills_dir_of,
    duration_option,
    json_option,
    print_rows,
    settings_of,
)
from dalp_dr.config import Settings
from dalp_dr.console import err, out
from dalp_dr.errors import SpecError

if TYPE_CHECKING:
    from dalp_dr.history.base import HistoryStore
    from dalp_dr.schedule.jobs import Definitions, DrillJobStore


def _definitions(ctx: click.Context, directory: str | None, skip_invalid: bool
                 ) -> Definitions:
    from dalp_dr.schedule.jobs import load_definitions  # lazy: APScheduler, SQLAlchemy

    definitions = load_definitions(drills_dir_of(ctx, directory))
    for path, problem in definitions.invalid.items():
        if not skip_invalid:
            raise SpecError(problem.detail, source=problem.source or str(path),
                            field=problem.field,
                            hint="fix it, or pass --skip-invalid to leave it out")
        err.print(f"SKIPPED invalid definition: {problem}", markup=False)
    return definitions


@contextlib.contextmanager
def _schedule_stores(settings: Settings) -> Iterator[tuple[HistoryStore, DrillJobStore]]:
    """The history store and the job store beside it, closed afterwards."""
    # lazy: SQLAlchemy, psycopg and APScheduler are heavy at start-up
    from dalp_dr.history import open_history
    from dalp_dr.schedule import jobs

    history_store = open_history(settings)
    try:
        jobstore = jobs.open_jobstore(settings.store_url)
        try:
            yield history_store, jobstore
        finally:
            jobstore.shutdown()
    finally:
        history_store.close()


@click.group()
def schedule() -> None:
    """The drills' schedule: job store, next runs, cadence status."""


@schedule.command("sync")
@DRILLS_OPTION
@click.option("--skip-invalid", is_flag=True, help="leave broken definitions out (their jobs "
                                                   "stay) instead of refusing")
@click.pass_context
def schedule_sync(ctx: click.Context, directory: str | None, skip_invalid: bool) -> None:
    """Reconcile the job store with the drill files: added, changed, removed definitions."""
    from dalp_dr.schedule import jobs  # lazy: APScheduler and SQLAlchemy are heavy

    definitions = _definitions(ctx, directory, skip_invalid)
    jobstore = jobs.open_jobstore(settings_of(ctx).store_url)
    try:
        report = jobs.sync(jobstore, definitions,
                           broken_names=jobs.broken_drill_names(definitions))
        next_runs = {name: run for name, (_job, run) in jobs.stored_jobs(jobstore).items()}
    finally:
        jobstore.shutdown()
    for verb, names in (("added", report.added), ("changed", report.changed),
                        ("removed", report.removed), ("kept (file broken)",
                                                      report.kept_invalid)):
        for name in names:
            when = next_runs.get(name)
            out.print(f"{verb:<8} {name}" + (f"  next run {when:%Y-%m-%d %H:%M:%S %Z}"
                                              if when else "")
                      + ("  (schedule changed)" if name in report.rescheduled else ""),
                      markup=False)
    out.print(f"{report.changes} change(s), {len(report.unchanged)} unchanged", markup=False)


@schedule.command("list")
@DRILLS_OPTION
@json_option()
@click.pass_context
def schedule_list(ctx: click.Context, directory: str | None, as_json: bool) -> None:
    """Every drill's schedule, next run and last run with its verdict."""
    from dalp_dr.schedule import jobs  # lazy: APScheduler and SQLAlchemy are heavy

    settings = settings_of(ctx)
    definitions = _definitions(ctx, directory, skip_invalid=True)
    with _schedule_stores(settings) as (history_store, jobstore):
        rows = jobs.overview(jobstore, definitions, history_store)
    print_rows(rows, as_json, ("drill", "schedule", "next run", "last run", "outcome", "file"),
               lambda r: (r.drill, f"{r.cron} {r.timezone}",
                          f"{r.next_run.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC" if r.next_run
                          else Text("not synced", style="yellow") if not r.synced else "-",
                          f"{r.last_started:%Y-%m-%d %H:%M} {r.last_run_id}"
                          if r.last_started else "never", r.last_outcome or "-",
                          Path(r.file).name + ("" if r.synced
                                               else " (changed on disk: sync)")))


@schedule.command("status")
@DRILLS_OPTION
@click.option("--grace", default="1h", show_default=True,
              help="how long after its window opens a drill may still be pending")
@json_option()
@click.pass_context
def schedule_status(ctx: click.Context, directory: str | None, grace: str,
                    as_json: bool) -> None:
    """Did every drill run and meet its objectives in its current cadence window? Exit 1 when
    one is overdue, failing, unscheduled or broken (wire this to monitoring)."""
    from dalp_dr.schedule import cadence  # lazy: APScheduler and SQLAlchemy are heavy

    settings = settings_of(ctx)
    allowed = duration_option(grace, "--grace")
    assert allowed is not None
    definitions = _definitions(ctx, directory, skip_invalid=True)
    with _schedule_stores(settings) as (history_store, jobstore):
        rows = cadence.report(history_store, jobstore, definitions, utcnow(), allowed)
    print_rows(rows, as_json, ("drill", "status", "window opened", "next run", "detail"),
               lambda r: (r.drill, Text(r.status.value, style="red" if r.problem else "green"),
                          f"{r.window_start:%Y-%m-%d %H:%M}" if r.window_start else "-",
                          f"{r.next_run:%Y-%m-%d %H:%M}" if r.next_run else "-", r.detail))
    problems = [r for r in rows if r.problem]
    if problems:
        err.print(f"{len(problems)} drill(s) need attention: "
                  + ", ".join(f"{r.drill} ({r.status.value})" for r in problems), markup=False)
        raise Exit(EXIT_FAILED)
