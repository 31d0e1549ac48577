"""``dalp-dr drill``: validate, list, plan, run and recover drills."""

from __future__ import annotations

import contextlib
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from rich.console import Console
from rich.table import Table
from rich.text import Text

from dalp_dr.clock import utcnow
from dalp_dr.commands.completion import complete_run_id
from dalp_dr.commands.output import Output, output_options
from dalp_dr.commands.problems import refuse_files, refuse_with
from dalp_dr.commands.shared import (
    ERRORS,
    EXIT_FAILED,
    Exit,
    drills_dir_of,
    duration_option,
    outcome_exit_code,
    report,
    settings_of,
    vault_options,
)
from dalp_dr.console import err, styled
from dalp_dr.durations import format_duration
from dalp_dr.errors import (
    HintKey,
    TargetUnreachable,
    words,
)
from dalp_dr.spec import DrillSpec, load_drill
from dalp_dr.spec.directory import expand, load_directory, load_set
from dalp_dr.timefmt import format_clock

if TYPE_CHECKING:
    from dalp_dr.plan import DrillPlan


@click.group()
def drill() -> None:
    """Validate, list and run drill definitions."""


def _drill_row(path: Path, spec: DrillSpec) -> dict[str, Any]:
    objectives = spec.objectives
    return {"file": str(path), "name": spec.name, "topology": spec.topology.value,
            "scenario": spec.scenario.value, "environment": spec.environment,
            "rto": format_duration(objectives.rto), "rpo": format_duration(objectives.rpo),
            "rto_s": objectives.rto.total_seconds(), "rpo_s": objectives.rpo.total_seconds(),
            "split_brain": objectives.split_brain,
            "schedule": spec.schedule.cron, "timezone": spec.schedule.timezone,
            "owner": spec.owner}


@drill.command("validate")
@click.argument("paths", metavar="FILE|DIR...", nargs=-1, required=True)
@output_options()
def drill_validate(paths: tuple[str, ...], output: Output) -> None:
    """Check drill files (every drill file of a DIR) without touching any environment; two
    files defining the same drill name are refused. Exit 2 naming every invalid file."""
    checked = load_set(expand(paths))
    rows = [_drill_row(d.path, d.spec) for d in checked.drills]

    def human(console: Console) -> None:
        for row in rows:
            console.print(Text(
                f"ok {row['file']}: {row['name']} ({row['topology']}/{row['scenario']}) RTO "
                f"{row['rto']} RPO {row['rpo']}"
                + (f" split-brain writes <= {row['split_brain']}"
                   if row["split_brain"] is not None else "")))

    if checked.problems:
        if not output.is_json:
            output.rows(rows, human)
        refuse_files(output, checked.problems, {"valid": False, "drills": rows})
    if output.is_json:
        output.json({"valid": True, "drills": rows})
    else:
        output.rows(rows, human)


@drill.command("list")
@click.option("--dir", "directory", type=click.Path(file_okay=False),
              help="drill directory [<project>/drills]")
@output_options()
@click.pass_context
def drill_list(ctx: click.Context, directory: str | None, output: Output) -> None:
    """List the drills in a directory with their objectives and schedule (exit 2 when the
    directory is missing or a file in it is invalid or repeats a drill name)."""
    found = load_directory(drills_dir_of(ctx, directory),
                           field="--dir" if directory else None)
    rows = [_drill_row(d.path, d.spec) for d in found.drills]
    table = Table(box=None)
    for col in ("file", "name", "topology", "scenario", "RTO", "RPO", "schedule", "owner"):
        table.add_column(col)
    for row in rows:
        table.add_row(*(Text(str(v)) for v in (
            Path(row["file"]).name, row["name"], row["topology"], row["scenario"], row["rto"],
            row["rpo"], f"{row['schedule']} {row['timezone']}", row["owner"])))
    if found.problems:
        if not output.is_json:
            output.rows(rows, table)
        refuse_files(output, found.problems, {"drills": rows})
    output.rows(rows, table)


@drill.command("plan")
@click.argument("file")
@output_options()
@click.option("--no-preflight", is_flag=True,
              help="only show the plan: run nothing, connect to nothing (works offline)")
@vault_options
@click.pass_context
def drill_plan(ctx: click.Context, file: str, output: Output, no_preflight: bool) -> None:
    """Dry run: phases, playbooks, hosts, the fault, objectives; runs the read-only preflight
    (and check mode where a playbook supports it). Injects nothing, records nothing."""
    # lazy: the engine and the plan pull in the history store (SQLAlchemy) at start-up
    from dalp_dr.adapters.ansible import AnsibleRunner
    from dalp_dr.drill.engine import DrillEngine
    from dalp_dr.plan import make_plan

    settings = settings_of(ctx)
    loaded = load_drill(file)
    runner = AnsibleRunner()
    prepared = DrillEngine(runner=runner, results_dir=settings.results_dir).prepare(
        loaded, connect=not no_preflight)
    plan = make_plan(loaded, runner, {n: e.display for n, e in prepared.endpoints.items()},
                     execute=not no_preflight)
    output.record(plan.model_dump(mode="json"), lambda console: _print_plan(console, plan))
    if plan.preflight_ok is False:
        if not output.is_json:
            report("error", f"preflight FAILED: {plan.preflight_message} (a run would stop "
                            "here, fail closed)")
        raise Exit(EXIT_FAILED)


def _print_plan(console: Console, plan: DrillPlan) -> None:
    console.print(Text(f"plan for {plan.drill} ({plan.topology}/{plan.scenario}) from "
                       f"{plan.file}"))
    console.print(Text(
        f"environment {plan.environment}"
        + (" [PRODUCTION: 'drill run' needs --confirm " + plan.drill + "]"
           if plan.production else "")
        + f"; objectives RTO {format_duration(plan.objectives['rto'])}, RPO "
          f"{format_duration(plan.objectives['rpo'])}"
        + (f", split-brain writes at most {plan.objectives['split_brain']:.0f}"
           if "split_brain" in plan.objectives else "")))
    for name, display in plan.endpoints.items():
        console.print(Text(f"measured through {name}: {display}"))
    console.print(Text("fault it injects:"))
    for line in plan.fault:
        console.print(Text(f"  {line}"))
    table = Table(box=None, title="phases, in order (steady_state always runs once a fault "
                                  "was injected)")
    for col in ("phase", "playbook", "timeout", "hosts", "tasks", "dry run"):
        table.add_column(col)
    for p in plan.phases:
        hosts = sorted({h for play in p.plays for h in play.hosts}) or \
            [play.hosts_pattern for play in p.plays]
        tasks = [t for play in p.plays for t in play.tasks]
        table.add_row(p.phase.value, Text(Path(p.playbook).name), format_duration(p.timeout_s),
                      Text(", ".join(hosts)), Text(f"{len(tasks)}: " + "; ".join(tasks[:3])
                                                   + (" ..." if len(tasks) > 3 else "")),
                      Text(p.dry_run or ("check mode supported" if p.check_mode
                                         else "started before inject, held until the fault"
                                         if p.held else "-")))
    console.print(table)
    if plan.preflight_ok is not False:
        console.print(Text("nothing was injected and nothing recorded"))


@drill.command("run")
@click.argument("file")
@output_options()
@click.option("--operator", help="who runs the drill, recorded with the run "
                                 "[DALP_DR_OPERATOR, else SUDO_USER, else the OS user]")
@click.option("--confirm", metavar="DRILL-NAME",
              help="the drill's name, typed: required when the inventory is production")
@click.option("--log-format", type=click.Choice(["human", "json"]), default="human",
              show_default=True, help="json: every event and the result as JSON lines")
@click.option("--wait-for-lock", "wait_for_lock", metavar="DURATION", default="0s",
              show_default=True,
              help="while another drill holds the environment, wait this long (e.g. 10m) "
                   "for it before refusing; an interrupt ends the wait")
@vault_options
@click.pass_context
def drill_run(ctx: click.Context, file: str, output: Output, operator: str | None,
              confirm: str | None, log_format: str, wait_for_lock: str) -> None:
    """Run a drill now, on demand, and print measured figures against the objectives.
    The evidence is written to the results directory, and copied to DALP_DR_EVIDENCE when
    that is set."""
    # lazy: the engine, the history store (SQLAlchemy, psycopg), notifications and metrics
    # are heavy at start-up
    from dalp_dr.drill.run import RunRequest, run_drill
    from dalp_dr.history import open_history
    from dalp_dr.notify import targets_from_settings
    from dalp_dr.progress import JsonLines, LiveView
    from dalp_dr.render import print_result
    from dalp_dr.results import Trigger

    settings = settings_of(ctx)
    json_log = JsonLines(sys.stderr) if log_format == "json" else None
    ERRORS.use(json_log)
    lock_wait = duration_option(wait_for_lock, "--wait-for-lock")
    loaded = load_drill(file)
    live = LiveView(err) if json_log is None and not output.is_json and err.is_terminal \
        else None
    zone = loaded.spec.schedule.timezone

    def progress(message: str) -> None:
        if json_log is not None:
            json_log.progress(message)
        elif live is not None:
            live.progress(message)
        else:
            err.print(styled((format_clock(utcnow(), zone), "dim"), f" {message}"))

    request = RunRequest(
        drill=loaded, results_dir=settings.results_dir, lock_ttl=settings.lock_ttl,
        lock_wait=lock_wait.total_seconds() if lock_wait is not None else 0.0,
        evidence=settings.evidence,
        open_store=lambda: open_history(settings, on_problem=lambda m: report("warning", m)),
        metrics_textfile=settings.metrics_textfile,
        notify_targets=tuple(targets_from_settings(settings)),
        trigger=Trigger.CLI, operator=operator, confirm=confirm, progress=progress,
        warn=lambda message: report("warning", message), observer=json_log or live)
    with live if live is not None else contextlib.nullcontext():
        done = run_drill(request)
    result = done.result
    # beside the result (its stored fields unchanged): where the evidence went, why not,
    # and a run the history did not take (a job that reads --json must not call it done)
    shipped: dict[str, Any] = {"evidence_url": done.evidence_url,
                               "evidence_problem": done.evidence_problem} \
        if settings.evidence is not None else {}
    if not done.recorded:
        shipped["recorded"] = False
    if json_log is not None and output.path is None and not output.is_json:
        click.echo(json.dumps({"ts": utcnow().isoformat(), "event": "run.result",
                               "result": result.model_dump(mode="json"), **shipped},
                              sort_keys=True))
    elif done.unreachable_hosts and done.recorded and output.is_json:
        refuse_with(output, TargetUnreachable(
            result.message or "preflight: unreachable " + ", ".join(done.unreachable_hosts),
            source=file), {**result.model_dump(mode="json"), **shipped})
    else:
        def human(console: Console) -> None:
            print_result(console, result)
            if settings.evidence is not None:
                console.print(Text(f"evidence copied to: {done.evidence_url}"
                                   if done.evidence_url else
                                   f"evidence NOT copied to {settings.evidence.url}: only in "
                                   f"{result.evidence_dir} (see the warning)"))

        output.record({**result.model_dump(mode="json"), **shipped}, human)
    if not done.recorded:
        report("warning", f"NOT RECORDED in the history: {done.problem}. The next "
                          "'drill run' on that environment, the scheduler or "
                          + words(HintKey.DRILL_RECOVER, run_id=result.run_id)
                          + " records it once the store is back")
        raise Exit(EXIT_FAILED)
    if done.unreachable_hosts:
        raise TargetUnreachable(result.message or "preflight: unreachable "
                                + ", ".join(done.unreachable_hosts), source=file)
    raise Exit(outcome_exit_code(result.outcome))


@drill.command("recover")
@click.argument("run_id", shell_complete=complete_run_id)
@click.option("--force", is_flag=True, help="even if the run's lease has not expired yet "
                                            "(only when you know its process is dead)")
@output_options()
@vault_options
@click.pass_context
def drill_recover(ctx: click.Context, run_id: str, force: bool, output: Output) -> None:
    """Put back the environment of a run whose orchestrator died (its steady-state phase)
    and record the run as aborted. 'drill run' and the scheduler do this by themselves."""
    # lazy: the history store (SQLAlchemy, psycopg) and the engine are heavy at start-up
    from dalp_dr.drill.run import recover_run
    from dalp_dr.history import open_history

    settings = settings_of(ctx)
    done = recover_run(
        run_id, open_store=lambda: open_history(settings, on_problem=lambda m: report(
            "warning", m)), lock_ttl=settings.lock_ttl, force=force,
        progress=lambda m: err.print(m, markup=False))
    output.record(done.model_dump(mode="json"), Text(done.message))
    if not done.recorded or done.steady_state_restored is False:
        raise Exit(EXIT_FAILED)
