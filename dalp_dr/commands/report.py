"""``dalp-dr report``: the control check of a period (did every drill run on cadence and meet
its RTO and RPO?), one row per drill, exit 0 only when every drill passes."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

import click
from rich.console import Console
from rich.table import Table
from rich.text import Text

from dalp_dr.clock import utcnow
from dalp_dr.commands.output import Format, Output, output_options
from dalp_dr.commands.shared import (
    DRILLS_OPTION,
    EXIT_FAILED,
    Exit,
    drills_dir_of,
    settings_of,
)
from dalp_dr.console import err
from dalp_dr.errors import InvalidInput
from dalp_dr.spec import Topology

if TYPE_CHECKING:
    from dalp_dr.compliance import ControlReport, ObjectiveCheck, Period

COLUMNS = ("drill", "passed", "cadence", "windows", "windows_with_run", "missed_windows",
           "worst_outcome", "rto.status", "rto.margin_s", "rto.run_id", "rpo.status",
           "rpo.margin_s", "rpo.run_id", "run_ids", "findings", "file", "schedule")


@click.command("report")
@click.option("--quarter", help="the period: a quarter, e.g. 2026Q3")
@click.option("--from", "start", help="or: 2026Q1, 2026-01-01 or an ISO time")
@click.option("--to", "end", help="inclusive quarter or day, or an ISO time [now]")
@click.option("--environment", "environments", multiple=True,
              help="only this environment (repeatable)")
@click.option("--topology", help="only this topology")
@click.option("--allow-unsigned", is_flag=True,
              help="pass on a history no signed checkpoint pins (kept without a signing key: "
                   "whoever can write the store could have rewritten it)")
@DRILLS_OPTION
@output_options()
@click.pass_context
def report(ctx: click.Context, quarter: str | None, start: str | None, end: str | None,
           environments: tuple[str, ...], topology: str | None, allow_unsigned: bool,
           directory: str | None, output: Output) -> None:
    """Did every drill run on cadence and meet its RTO and RPO in the period? One row per
    drill (and per drill in the history but not in the drill directory). Exit 0 only when
    every drill passed, 1 otherwise (also when the history does not verify)."""
    # lazy: the history store (SQLAlchemy), APScheduler
    from dalp_dr.compliance import control_report
    from dalp_dr.export.records import Query, verified_selection
    from dalp_dr.history import checkpointer, open_store
    from dalp_dr.schedule.jobs import broken_drill_names, load_definitions

    now = utcnow()
    period = _period(quarter, start, end, now)
    try:
        kind = Topology(topology) if topology else None
    except ValueError:
        raise InvalidInput(f"unknown topology '{topology}'", field="--topology",
                           hint="one of " + ", ".join(t.value for t in Topology)) from None
    definitions = load_definitions(drills_dir_of(ctx, directory))
    settings = settings_of(ctx)
    store = open_store(settings.store_url, results_dir=settings.results_dir, create=False)
    try:  # a history that does not verify never passes the check
        first, last = period.widened()  # every drill's own quarter or days, in its zone
        selection = verified_selection(store, checkpointer(settings), Query(
            start=first, end=last, topology=kind), now=now)
    finally:
        store.close()
    known = {d.spec.environment for d in definitions.valid.values()} | {
        r.result.environment for r in selection.records}
    unknown = sorted(set(environments) - known)
    if unknown:
        raise InvalidInput(f"{', '.join(unknown)}: neither in the drill directory nor in the "
                           "history of the period", field="--environment",
                           hint="one of " + (", ".join(sorted(known)) or "none"))
    if environments:
        selection = selection.model_copy(update={"records": [
            r for r in selection.records if r.result.environment in environments]})
    drills = {name: loaded for name, loaded in definitions.valid.items()
              if (kind is None or loaded.spec.topology is kind)
              and (not environments or loaded.spec.environment in environments)}
    invalid = {}
    for path, problem in sorted(definitions.invalid.items()):
        names = broken_drill_names(type(definitions)(valid={}, invalid={path: problem}))
        name = next(iter(names), path.stem)
        invalid[name if name not in drills and name not in invalid else path.name] = (
            path, problem.detail if problem.field is None
            else f"{problem.field}: {problem.detail}")
    if selection.attestation is not None and not selection.attestation.pinned:
        err.print(f"note: {selection.attestation.describe()}", markup=False, soft_wrap=True)
    result = control_report(selection, drills, invalid, period, now,
                            unsigned_allowed=allow_unsigned)
    if output.format is Format.CSV:
        output.rows([d.row() for d in result.drills], lambda c: None, COLUMNS)
    else:
        output.record(result.document(), lambda console: _table(console, result))
    if not result.passed:
        raise Exit(EXIT_FAILED)


def _period(quarter: str | None, start: str | None, end: str | None, now: datetime
            ) -> Period:
    from dalp_dr.compliance import Period
    from dalp_dr.export.records import is_calendar_bound, is_quarter, parse_bound

    if quarter and (start or end):
        raise InvalidInput("give --quarter or --from/--to, not both", field="--quarter",
                           hint="e.g. --quarter 2026Q3, or --from 2026-07-01 --to 2026-09-30")
    if quarter:
        if not is_quarter(quarter):
            raise InvalidInput(f"'{quarter}' is not a quarter", field="--quarter",
                               hint="a year and a quarter, e.g. 2026Q3")
        first = parse_bound(quarter, end=False, field="--quarter")
        if first >= now:  # nothing to check is not a pass: a typo'd year must not exit 0
            raise InvalidInput(f"{quarter} has not begun", field="--quarter",
                               hint="a quarter that has begun, e.g. the last one")
        return Period(start=first, end=parse_bound(quarter, end=True, field="--quarter"),
                      start_is_calendar=True, end_is_calendar=True)
    if not start:
        raise InvalidInput("which period?", field="--quarter",
                           hint="--quarter 2026Q3, or --from 2026-07-01 [--to 2026-09-30]")
    first = parse_bound(start, end=False, field="--from")
    if first >= now:
        raise InvalidInput(f"the period from {start} has not begun", field="--from",
                           hint="a period that has begun")
    last = parse_bound(end, end=True, field="--to") if end else now
    if last <= first:
        raise InvalidInput("the period is empty or inverted", field="--to",
                           hint="--to must come after --from")
    return Period(start=first, end=last, start_is_calendar=is_calendar_bound(start),
                  end_is_calendar=end is not None and is_calendar_bound(end))


def _objective(check: ObjectiveCheck) -> Text:
    from dalp_dr.durations import format_duration
    from dalp_dr.results import Status

    text = Text(check.status.value, style={Status.MET: "green", Status.MISSED: "red"}.get(
        check.status, "yellow"))
    if check.margin_s is not None:
        sign = "+" if check.margin_s >= 0 else "-"
        text.append(f" ({sign}{format_duration(abs(check.margin_s))})")
    return text


def _table(console: Console, result: ControlReport) -> None:
    period = result.period
    table = Table(box=None, title=f"control check {period.start:%Y-%m-%d %H:%M %Z} to "
                                  f"{period.end:%Y-%m-%d %H:%M %Z} (end exclusive"
                                  + ("; quarters and days in each drill's own time zone)"
                                     if period.start_is_calendar or period.end_is_calendar
                                     else ")"))
    for column in ("drill", "cadence", "worst outcome", "RTO (margin)", "RPO (margin)",
                   "runs", "result"):
        table.add_column(column, overflow="fold")
    for key in (0, 5):  # drill names and run ids are keys: whole, to paste them
        table.columns[key].no_wrap = True
    for drill in result.drills:
        windows = f"{sum(1 for w in drill.windows if w.runs)}/{len(drill.windows)}"
        table.add_row(
            drill.drill, f"{drill.cadence.value} {windows}",
            drill.worst_outcome.value if drill.worst_outcome else "no record",
            _objective(drill.rto), _objective(drill.rpo), "\n".join(drill.run_ids) or "-",
            Text("pass", style="green") if drill.passed else Text("FAIL", style="red"))
    console.print(table)
    for drill in result.drills:
        for finding in drill.findings:
            console.print(Text(f"{drill.drill}: {finding}"), soft_wrap=True)
    failing = sum(1 for d in result.drills if not d.passed)
    if result.attestation is not None:
        console.print(Text(result.attestation.describe()), soft_wrap=True)
    if result.history_finding is not None:
        console.print(Text(f"FAIL: {result.history_finding} ('dalp-dr keys init', then "
                           "'dalp-dr history checkpoint --sign' after review; or "
                           "--allow-unsigned)", style="red"), soft_wrap=True)
    elif not result.history_pinned:
        console.print(Text("the history is not pinned by a signed checkpoint "
                           "(allowed: --allow-unsigned)"), soft_wrap=True)
    console.print(Text(
        "no drill defined or recorded: nothing passes" if not result.drills else
        f"{len(result.drills) - failing} of {len(result.drills)} drill(s) pass"
        + ("" if not failing else f"; {failing} fail")), soft_wrap=True)
