"""``dalp-dr drill``: validate, list, plan, run and recover drills."""

from __future__ import annotations

import contextlib
import json
import sys
from pathlib import Path

import click
from rich.table import Table

from dalp_dr.clock import utcnow
from dalp_dr.commands.completion import complete_run_id
from dalp_dr.commands.shared import (
    ERRORS,
    EXIT_FAILED,
    EXIT_INVALID,
    Exit,
    drills_dir_of,
    json_option,
    outcome_exit_code,
    report,
    settings_of,
    vault_options,
)
from dalp_dr.console import err, out, styled
from dalp_dr.durations import format_duration
from dalp_dr.errors import (
    HintKey,
    InvalidInput,
    TargetUnreachable,
    words,
)
from dalp_dr.spec import discover_drills, load_drill


@click.group()
def drill() -> None:
    """Validate, list and run drill definitions."""


@drill.command("validate")
@click.argument("files", nargs=-1, required=True)
def drill_validate(files: tuple[str, ...]) -> None:
    """Check drill files without touching any environment."""
    bad = 0
    for name in files:
        try:
            loaded = load_drill(name)
        except InvalidInput as exc:
            err.print(styled(("invalid", "red"), f" {exc}"))
            bad += 1
            continue
        out.print(f"ok {name}: {loaded.spec.name} ({loaded.spec.topology}/"
                  f"{loaded.spec.scenario}) RTO {format_duration(loaded.spec.objectives.rto)} "
                  f"RPO {format_duration(loaded.spec.objectives.rpo)}"
                  + (f" split-brain writes <= {loaded.spec.objectives.split_brain}"
                     if loaded.spec.objectives.split_brain is not None else ""))
    if bad:
        raise Exit(EXIT_INVALID)


@drill.command("list")
@click.option("--dir", "directory", type=click.Path(file_okay=False),
              help="drill directory [<project>/drills]")
@click.pass_context
def drill_list(ctx: click.Context, directory: str | None) -> None:
    """List the drills in a directory with their objectives and schedule."""
    table = Table(box=None)
    for col in ("file", "name", "topology", "scenario", "RTO", "RPO", "schedule", "owner"):
        table.add_column(col)
    invalid = 0
    for path in discover_drills(drills_dir_of(ctx, directory)):
        try:
            spec = load_drill(path).spec
        except InvalidInput as exc:
            err.print(f"invalid {exc}")
            invalid += 1
            continue
        table.add_row(path.name, spec.name, spec.topology.value, spec.scenario.value,
                      format_duration(spec.objectives.rto), format_duration(spec.objectives.rpo),
                      f"{spec.schedule.cron} {spec.schedule.timezone}", spec.owner)
    out.print(table)
    if invalid:
        raise Exit(EXIT_INVALID)


@drill.command("plan")
@click.argument("file")
@json_option("print the plan as JSON only")
@click.option("--no-preflight", is_flag=True, help="only show the plan; run nothing")
@vault_options
@click.pass_context
def drill_plan(ctx: click.Context, file: str, as_json: bool, no_preflight: bool) -> None:
    """Dry run: phases, playbooks, hosts, the fault, objectives; runs the read-only preflight
    (and check mode where a playbook supports it). Injects nothing, records nothing."""
    # lazy: the engine and the plan pull in the history store (SQLAlchemy) at start-up
    from dalp_dr.adapters.ansible import AnsibleRunner
    from dalp_dr.drill.engine import DrillEngine
    from dalp_dr.plan import make_plan

    settings = settings_of(ctx)
    loaded = load_drill(file)
    runner = AnsibleRunner()
    prepared = DrillEngine(runner=runner, results_dir=settings.results_dir).prepare(loaded)
    plan = make_plan(loaded, runner, {n: e.display for n, e in prepared.endpoints.items()},
                     execute=not no_preflight)
    if as_json:
        click.echo(plan.model_dump_json(indent=2))
    else:
        out.print(f"plan for {plan.drill} ({plan.topology}/{plan.scenario}) from {plan.file}",
                  markup=False)
        out.print(f"environment {plan.environment}"
                  + (" [PRODUCTION: 'drill run' needs --confirm " + plan.drill + "]"
                     if plan.production else "")
                  + f"; objectives RTO {format_duration(plan.objectives['rto'])}, RPO "
                    f"{format_duration(plan.objectives['rpo'])}"
                  + (f", split-brain writes at most {plan.objectives['split_brain']:.0f}"
                     if "split_brain" in plan.objectives else ""), markup=False)
        for name, display in plan.endpoints.items():
            out.print(f"measured through {name}: {display}", markup=False)
        out.print("fault it injects:", markup=False)
        for line in plan.fault:
            out.print(f"  {line}", markup=False)
        table = Table(box=None, title="phases, in order (steady_state always runs once a fault "
                                      "was injected)")
        for col in ("phase", "playbook", "timeout", "hosts", "tasks", "dry run"):
            table.add_column(col)
        for p in plan.phases:
            hosts = sorted({h for play in p.plays for h in play.hosts}) or \
                [play.hosts_pattern for play in p.plays]
            tasks = [t for play in p.plays for t in play.tasks]
            table.add_row(p.phase.value, Path(p.playbook).name, format_duration(p.timeout_s),
                          ", ".join(hosts), f"{len(tasks)}: " + "; ".join(tasks[:3])
                          + (" ..." if len(tasks) > 3 else ""),
                          p.dry_run or ("check mode supported" if p.check_mode
                                        else "started before inject, held until the fault"
                                        if p.held else "-"))
        out.print(table)
        if plan.preflight_ok is False:
            err.print(f"preflight FAILED: {plan.preflight_message} (a run would stop here, "
                      "fail closed)", markup=False)
        else:
            out.print("nothing was injected and nothing recorded", markup=False)
    if plan.preflight_ok is False:
        raise Exit(EXIT_FAILED)


@drill.command("run")
@click.argument("file")
@json_option("print the result as JSON only")
@click.option("--operator", help="who runs the drill, recorded with the run "
                                 "[DALP_DR_OPERATOR, else SUDO_USER, else the OS user]")
@click.option("--confirm", metavar="DRILL-NAME",
              help="the drill's name, typed: required when the inventory is production")
@click.option("--log-format", type=click.Choice(["human", "json"]), default="human",
              show_default=True, help="json: every event and the result as JSON lines")
@vault_options
@click.pass_context
def drill_run(ctx: click.Context, file: str, as_json: bool, operator: str | None,
              confirm: str | None, log_format: str) -> None:
    """Run a drill now, on demand, and print measured figures against the objectives."""
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
    loaded = load_drill(file)
    live = LiveView(err) if json_log is None and not as_json and err.is_terminal else None

    def progress(message: str) -> None:
        if json_log is not None:
            json_log.progress(message)
        elif live is not None:
            live.progress(message)
        else:
            err.print(styled((f"{utcnow():%H:%M:%S.%f}"[:-3], "dim"), f" {message}"))

    request = RunRequest(
        drill=loaded, results_dir=settings.results_dir, lock_ttl=settings.lock_ttl,
        open_store=lambda: open_history(settings, on_problem=lambda m: report("warning", m)),
        metrics_textfile=settings.metrics_textfile,
        notify_targets=tuple(targets_from_settings(settings)),
        trigger=Trigger.CLI, operator=operator, confirm=confirm, progress=progress,
        warn=lambda message: report("warning", message), observer=json_log or live)
    with live if live is not None else contextlib.nullcontext():
        done = run_drill(request)
    result = done.result
    if json_log is not None:
        click.echo(json.dumps({"ts": utcnow().isoformat(), "event": "run.result",
                               "result": result.model_dump(mode="json")}, sort_keys=True))
    elif as_json:
        click.echo(result.model_dump_json(indent=2))
    else:
        print_result(out, result)
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
@vault_options
@click.pass_context
def drill_recover(ctx: click.Context, run_id: str, force: bool) -> None:
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
    out.print(done.message, markup=False)
    if not done.recorded or done.steady_state_restored is False:
        raise Exit(EXIT_FAILED)
