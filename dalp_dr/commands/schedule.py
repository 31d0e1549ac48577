"""``dalp-dr schedule``: the job store, next runs and cadence status of the drills."""

from __future__ import annotations

import contextlib
import socket
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import click
from rich.console import Console, RenderableType
from rich.table import Table
from rich.text import Text

from dalp_dr.clock import utcnow
from dalp_dr.commands.output import Format, Output, output_options
from dalp_dr.commands.shared import (
    DRILLS_OPTION,
    ERRORS,
    EXIT_FAILED,
    Exit,
    drills_dir_of,
    duration_option,
    settings_of,
)
from dalp_dr.config import Settings
from dalp_dr.console import err
from dalp_dr.errors import InvalidInput, SpecError

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
def _store_to_read(settings: Settings, *, read: bool) -> Iterator[tuple[Settings, bool]]:
    """The settings to open the stores with, and whether they stand in for a missing one. A
    read (``read``) of a SQLite history that does not exist yet gets an empty one in a
    temporary directory instead: nothing is created in the results directory."""
    url = settings.store_url
    with tempfile.TemporaryDirectory(prefix="dalp-dr-empty-") as empty:
        missing = read and url.startswith("sqlite://") and \
            not Path(url.removeprefix("sqlite://")).exists()
        yield (settings.model_copy(update={"store_url": f"sqlite:///{empty}/history.sqlite",
                                           "results_dir": Path(empty)})
               if missing else settings), missing


@contextlib.contextmanager
def _schedule_stores(settings: Settings) -> Iterator[tuple[HistoryStore, DrillJobStore]]:
    """The history store and the job store beside it, closed afterwards; a read (see
    :func:`_store_to_read`: every drill then reads as never run, never synced)."""
    # lazy: SQLAlchemy, psycopg and APScheduler are heavy at start-up
    from dalp_dr.history import open_history
    from dalp_dr.schedule import jobs

    with _store_to_read(settings, read=True) as (readable, missing):
        if missing:
            err.print(f"note: no history yet at {settings.store_url}: every drill reads as "
                      "never run and not scheduled", markup=False, soft_wrap=True)
        history_store = open_history(readable)
        try:
            jobstore = jobs.open_jobstore(readable.store_url)
            try:
                yield history_store, jobstore
            finally:
                jobstore.shutdown()
        finally:
            history_store.close()


@contextlib.contextmanager
def _job_store(settings: Settings, *, read: bool) -> Iterator[DrillJobStore]:
    """The job store beside the history, shut down afterwards; ``read`` (a dry run, a
    listing): see :func:`_store_to_read`."""
    from dalp_dr.schedule import jobs  # lazy: SQLAlchemy and APScheduler are heavy

    with _store_to_read(settings, read=read) as (readable, _missing):
        jobstore = jobs.open_jobstore(readable.store_url)
        try:
            yield jobstore
        finally:
            jobstore.shutdown()


@click.group()
def schedule() -> None:
    """The drills' schedule: job store, next runs, cadence status."""


def _in_zone(moment: datetime | None, zone: str | None) -> str:
    """A time in the drill's zone (else UTC), with the zone's name."""
    if moment is None:
        return "-"
    try:
        local = moment.astimezone(ZoneInfo(zone) if zone else UTC)
    except (ValueError, KeyError):  # an unknown zone name in a stored job: say UTC
        local = moment.astimezone(UTC)
    return f"{local:%Y-%m-%d %H:%M %Z}"


def _table(columns: Sequence[str], rows: Iterable[Sequence[RenderableType]]) -> Table:
    table = Table(box=None)
    for column in columns:
        table.add_column(column, overflow="fold")
    for made in table.columns:  # drill names and run ids are keys: never cut
        made.no_wrap = made.header in ("drill", "run id")
    for cells in rows:
        table.add_row(*cells)
    return table


@schedule.command("sync")
@DRILLS_OPTION
@click.option("--skip-invalid", is_flag=True, help="leave broken definitions out (their jobs "
                                                   "stay) instead of refusing")
@click.option("--dry-run", is_flag=True,
              help="say what would be added, changed and removed; change nothing")
@click.option("--prune", is_flag=True,
              help="remove the jobs of drills whose file is gone (logged at warning and "
                   "recorded: 'schedule removals'); without it they are kept and reported")
@click.option("--all", "prune_all", is_flag=True,
              help="with --prune: allow removing every job at once (refused otherwise)")
@output_options()
@click.pass_context
def schedule_sync(ctx: click.Context, directory: str | None, skip_invalid: bool,
                  dry_run: bool, prune: bool, prune_all: bool, output: Output) -> None:
    """Reconcile the job store with the drill files: added, changed definitions; jobs whose
    file is gone are kept (and said) unless --prune."""
    from dalp_dr.provenance.identity import resolve_operator
    from dalp_dr.schedule import jobs  # lazy: APScheduler and SQLAlchemy are heavy

    if prune_all and not prune:
        raise InvalidInput("--all only widens --prune", field="--all",
                           hint="add --prune, or leave --all out")
    definitions = _definitions(ctx, directory, skip_invalid)
    with _job_store(settings_of(ctx), read=dry_run) as jobstore:
        broken = jobs.broken_drill_names(definitions)
        report = jobs.sync(jobstore, definitions, broken_names=broken, prune=prune,
                           dry_run=True)
        if report.removes_every_job and not prune_all:
            raise InvalidInput(
                f"this would remove every scheduled job ({', '.join(report.removed)}) and "
                f"keep none: {drills_dir_of(ctx, directory)} defines none of them",
                field="--prune", hint="check that --drills names the drill directory; to "
                                      "remove every job, say so: --prune --all")
        if not dry_run:
            report = jobs.sync(jobstore, definitions, broken_names=broken, prune=prune,
                               removed_by=f"{resolve_operator()}@{socket.gethostname()}")
        stored = jobs.stored_jobs(jobstore)
    now = utcnow()
    rows: list[dict[str, Any]] = []
    for action, names in (("added", report.added), ("changed", report.changed),
                          ("removed", report.removed), ("orphaned", report.orphaned),
                          ("kept_invalid", report.kept_invalid),
                          ("unchanged", report.unchanged)):
        for name in names:
            job = stored.get(name)
            loaded = definitions.valid.get(name)
            zone = (job.job.timezone if job else
                    loaded.spec.schedule.timezone if loaded else None)
            when = job.next_run if job and action != "removed" else None
            if loaded is not None and (when is None or name in report.rescheduled) \
                    and action in ("added", "changed") and report.dry_run:
                when = loaded.spec.schedule.trigger().get_next_fire_time(None, now)
            rows.append({"drill": name, "action": action,
                         "rescheduled": name in report.rescheduled,
                         "next_run": when.isoformat() if when else None,
                         "next_run_local": _in_zone(when, zone) if when else None})
    document = {"dry_run": report.dry_run, "changes": report.changes,
                "unchanged": len(report.unchanged), "drills": rows}
    verbs = {"orphaned": "KEPT (drill file gone: --prune removes it)",
             "kept_invalid": "kept (file broken)"}

    def human(console: Console) -> None:
        for row in rows:
            if row["action"] == "unchanged":
                continue
            console.print(Text(f"{verbs.get(row['action'], row['action']):<8} {row['drill']}"
                               + (f"  next run {row['next_run_local']}"
                                  if row["next_run_local"] else "")
                               + ("  (schedule changed)" if row["rescheduled"] else "")),
                          soft_wrap=True)
        console.print(Text(("dry run, nothing changed: would make " if report.dry_run else "")
                           + f"{report.changes} change(s), {len(report.unchanged)} "
                             "unchanged"), soft_wrap=True)

    if output.format is Format.CSV:
        output.rows(rows, human)
    else:
        output.record(document, human)


@schedule.command("removals")
@output_options()
@click.pass_context
def schedule_removals(ctx: click.Context, output: Output) -> None:
    """The jobs 'schedule sync --prune' removed: which drill, when, by whom, what it was."""
    from dalp_dr.schedule import removals  # lazy: SQLAlchemy

    with _job_store(settings_of(ctx), read=True) as jobstore:
        found = removals.removals(jobstore)
    output.rows([r.model_dump(mode="json") for r in found], _table(
        ("drill", "removed", "by", "schedule", "environment", "file"),
        ((r.drill, f"{r.removed_at:%Y-%m-%d %H:%M:%S %Z}", r.removed_by,
          f"{r.cron} {r.timezone}" if r.cron else "-", r.environment or "-", r.file or "-")
         for r in found)) if found else Text("no job was ever removed"))


@schedule.command("list")
@DRILLS_OPTION
@output_options()
@click.pass_context
def schedule_list(ctx: click.Context, directory: str | None, output: Output) -> None:
    """Every drill's schedule, next run and last run with its verdict."""
    from dalp_dr.schedule import jobs  # lazy: APScheduler and SQLAlchemy are heavy

    settings = settings_of(ctx)
    definitions = _definitions(ctx, directory, skip_invalid=True)
    with _schedule_stores(settings) as (history_store, jobstore):
        rows = jobs.overview(jobstore, definitions, history_store)
    output.rows([r.model_dump(mode="json") for r in rows], _table(
        ("drill", "schedule", "next run", "last run", "run id", "outcome", "file"),
        ((r.drill, f"{r.cron} {r.timezone}",
          _in_zone(r.next_run, r.timezone) if r.next_run
          else Text("not synced", style="yellow") if not r.synced else "-",
          _in_zone(r.last_started, r.timezone) if r.last_started else "never",
          r.last_run_id or "-", r.last_outcome or "-",
          Path(r.file).name + ("" if r.synced else " (changed on disk: sync)"))
         for r in rows)))


@schedule.command("status")
@DRILLS_OPTION
@click.option("--grace", default="1h", show_default=True,
              help="how long after its window opens a drill may still be pending")
@output_options()
@click.pass_context
def schedule_status(ctx: click.Context, directory: str | None, grace: str,
                    output: Output) -> None:
    """Did every drill run and meet its objectives in its current cadence window? Exit 1 when
    one is overdue, failing, unscheduled, broken or only in the history, and when there is
    no drill at all (wire this to monitoring)."""
    from dalp_dr.schedule import cadence  # lazy: APScheduler and SQLAlchemy are heavy

    settings = settings_of(ctx)
    allowed = duration_option(grace, "--grace")
    assert allowed is not None
    definitions = _definitions(ctx, directory, skip_invalid=True)
    with _schedule_stores(settings) as (history_store, jobstore):
        rows = cadence.report(history_store, jobstore, definitions, utcnow(), allowed)
    zones = {name: d.spec.schedule.timezone for name, d in definitions.valid.items()}
    output.rows([r.model_dump(mode="json") for r in rows], _table(
        ("drill", "status", "window opened", "next run", "detail"),
        ((r.drill, Text(r.status.value, style="red" if r.problem else "green"),
          _in_zone(r.window_start, zones.get(r.drill)),
          _in_zone(r.next_run, zones.get(r.drill)), Text(r.detail)) for r in rows)))
    problems = [r for r in rows if r.problem]
    if not rows:
        err.print(f"no drill in {drills_dir_of(ctx, directory)} and none in the history: "
                  "nothing is scheduled", markup=False, soft_wrap=True)
        raise Exit(EXIT_FAILED)
    if problems:
        err.print(f"{len(problems)} drill(s) need attention: "
                  + ", ".join(f"{r.drill} ({r.status.value})" for r in problems),
                  markup=False, soft_wrap=True)
        raise Exit(EXIT_FAILED)


@schedule.command("export")
@click.option("--awx", "awx", is_flag=True,
              help="as an Ansible playbook of awx.awx job templates and schedules (the one "
                   "format so far: required)")
@click.option("--out", "out_file", type=click.Path(dir_okay=False),
              help="write the playbook to FILE (whole or not at all) [stdout]")
@click.option("--organization", required=True, help="the AWX organization, by name")
@click.option("--project", required=True,
              help="the AWX project (its checkout holds the drill files), by name")
@click.option("--inventory", required=True, help="the AWX inventory, by name")
@click.option("--playbook", default="playbooks/dalp-dr-run.yml", show_default=True,
              help="the project's playbook the job templates run (it reads dalp_dr_drill)")
@click.option("--execution-environment", help="the AWX execution environment, by name")
@click.option("--credential", "credentials", multiple=True,
              help="an AWX credential, by name (repeatable; never its secret)")
@click.option("--project-dir", "checkout", type=click.Path(file_okay=False),
              help="the local checkout of the AWX project: drill files are passed relative "
                   "to it [dalp-dr's project directory]")
@click.option("--start", default=None, metavar="DATE",
              help="DTSTART is each drill's first fire time on or after DATE (UTC) "
                   "[1 January of this year]")
@click.argument("drills", nargs=-1, type=click.Path())
@output_options()
@click.pass_context
def schedule_export(ctx: click.Context, awx: bool, out_file: str | None, organization: str,
                    project: str, inventory: str, playbook: str,
                    execution_environment: str | None, credentials: tuple[str, ...],
                    checkout: str | None, start: str | None, drills: tuple[str, ...],
                    output: Output) -> None:
    """Write the drills (files, or every file of a directory; default the project's
    drills/) as AWX job templates and schedules, firing when dalp-dr's scheduler would;
    'schedule status' and 'report' still judge cadence from the history."""
    from dalp_dr.commands.problems import refuse_files
    from dalp_dr.schedule import awx as awx_export
    from dalp_dr.spec.directory import expand, load_set

    if not awx:
        raise InvalidInput("say which format to export", field="--awx",
                           hint="--awx: an Ansible playbook of awx.awx modules")
    settings = settings_of(ctx)
    begin = _start_date(start)
    files = expand(drills or [drills_dir_of(ctx, None)])
    if not files:
        raise InvalidInput("no drill file to export", field="DRILLS",
                           hint="give drill files or a directory holding them")
    loaded = load_set(files)
    if loaded.problems:
        refuse_files(output, loaded.problems, {"drills": []})
    target = awx_export.AwxTarget(
        organization=organization, project=project, inventory=inventory, playbook=playbook,
        execution_environment=execution_environment, credentials=credentials,
        project_dir=Path(checkout) if checkout else settings.project_dir)
    made = awx_export.export(loaded.drills, target, start=begin)
    if not (target.project_dir / playbook).is_file():
        ERRORS.report("warning", f"{playbook} is not in {target.project_dir}: the job templates "
                          "fail until the AWX project has it")
    rows = [d.model_dump(mode="json") for d in made.drills]
    if out_file is not None:
        from dalp_dr.private_files import atomic_write

        path = Path(out_file)
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, made.playbook)
    elif output.format is Format.TABLE and output.path is None:
        click.echo(made.playbook, nl=False)
        return
    document: dict[str, Any] = {"out": out_file, "drills": rows}
    if out_file is None:
        document["playbook"] = made.playbook
    table = _table(("drill", "job template", "schedule", "rrule"),
                   ((d.drill, d.job_template, d.schedule, d.rrule) for d in made.drills))
    if output.format is Format.CSV:
        output.rows(rows, table)
    else:
        output.record(document, table)


def _start_date(value: str | None) -> datetime:
    """--start as midnight UTC; by default 1 January of this year (the same all year, so an
    export made again changes nothing in AWX)."""
    if value is None:
        return utcnow().replace(month=1, day=1, hour=0, minute=0, second=0, microsecond=0)
    try:
        return datetime.strptime(value, "%Y-%m-%d").replace(tzinfo=UTC)
    except ValueError:
        raise InvalidInput(f"not a date: {value!r}", field="--start",
                           hint="a date such as 2026-01-01") from None
