"""The dalp-dr command line: parses, calls the engine, renders. Exit codes are chosen here.

0 objectives met; 1 objectives missed or drill failed; 2 invalid input; 130 interrupted.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import click
from rich.table import Table
from rich.text import Text

from dalp_dr.cancel import CancelToken
from dalp_dr.cli_vault import vault_options
from dalp_dr.config import Settings, load_settings
from dalp_dr.console import err, out, styled, unexpected
from dalp_dr.durations import format_duration
from dalp_dr.errors import (
    DalpDrError,
    Interrupted,
    InvalidInput,
    ResultNotRecorded,
    TamperedHistory,
    TargetUnreachable,
)
from dalp_dr.spec import discover_drills, load_drill

EXIT_OK, EXIT_FAILED, EXIT_INVALID, EXIT_INTERRUPTED = 0, 1, 2, 130


class Exit(Exception):
    def __init__(self, code: int) -> None:
        self.code = code


def _settings(ctx: click.Context) -> Settings:
    settings = ctx.obj
    assert isinstance(settings, Settings)
    return settings


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--results-dir", envvar="DALP_DR_RESULTS", help="evidence directory [./results]")
@click.option("--store", envvar="DALP_DR_STORE",
              help="history store URL [sqlite:///<results-dir>/history.sqlite]")
@click.option("--project-dir", envvar="DALP_DR_PROJECT",
              help="where drills/, playbooks/, inventories/ live")
@click.option("--keys", "keys_dir", envvar="DALP_DR_KEYS",
              help="the history's signing key directory (checkpoints and bundles) "
                   "[~/.config/dalp-dr]")
@click.version_option(package_name="dalp-dr")
@click.pass_context
def cli(ctx: click.Context, results_dir: str | None, store: str | None,
        project_dir: str | None, keys_dir: str | None) -> None:
    """Disaster-recovery drills for self-hosted DALP: measured RTO/RPO, kept in history."""
    ctx.obj = load_settings(results_dir=results_dir, store=store, project_dir=project_dir,
                            keys=keys_dir)


# --- drill ----------------------------------------------------------------------------------


@cli.group()
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
                  f"RPO {format_duration(loaded.spec.objectives.rpo)}")
    if bad:
        raise Exit(EXIT_INVALID)


@drill.command("list")
@click.option("--dir", "directory", type=click.Path(file_okay=False),
              help="drill directory [<project>/drills]")
@click.pass_context
def drill_list(ctx: click.Context, directory: str | None) -> None:
    """List the drills in a directory with their objectives and schedule."""
    folder = Path(directory) if directory else _settings(ctx).project_dir / "drills"
    table = Table(box=None)
    for col in ("file", "name", "topology", "scenario", "RTO", "RPO", "schedule", "owner"):
        table.add_column(col)
    invalid = 0
    for path in discover_drills(folder):
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
@click.option("--json", "as_json", is_flag=True, help="print the plan as JSON only")
@click.option("--no-preflight", is_flag=True, help="only show the plan; run nothing")
@vault_options
@click.pass_context
def drill_plan(ctx: click.Context, file: str, as_json: bool, no_preflight: bool) -> None:
    """Dry run: phases, playbooks, hosts, the fault, objectives; runs the read-only preflight
    (and check mode where a playbook supports it). Injects nothing, records nothing."""
    from dalp_dr.adapters.ansible import AnsibleRunner
    from dalp_dr.engine import DrillEngine
    from dalp_dr.plan import make_plan

    settings = _settings(ctx)
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
                    f"{format_duration(plan.objectives['rpo'])}", markup=False)
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
                          p.dry_run or ("check mode supported" if p.check_mode else "-"))
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
@click.option("--json", "as_json", is_flag=True, help="print the result as JSON only")
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
    from dalp_dr.adapters.ansible import AnsibleRunner
    from dalp_dr.engine import DrillEngine
    from dalp_dr.history import open_history
    from dalp_dr.progress import JsonLines, LiveView
    from dalp_dr.render import print_result
    from dalp_dr.results import Trigger

    global _json_errors
    settings = _settings(ctx)
    json_log = JsonLines(sys.stderr) if log_format == "json" else None
    _json_errors = json_log
    loaded = load_drill(file)
    live = LiveView(err) if json_log is None and not as_json and err.is_terminal else None

    def progress(message: str) -> None:
        if json_log is not None:
            json_log.progress(message)
        elif live is not None:
            live.progress(message)
        else:
            err.print(styled((f"{datetime.now(UTC):%H:%M:%S.%f}"[:-3], "dim"), f" {message}"))

    engine_runner = AnsibleRunner()
    engine = DrillEngine(runner=engine_runner, results_dir=settings.results_dir,
                         progress=progress, lock_ttl=settings.lock_ttl,
                         observer=json_log or live)
    prepared = engine.prepare(loaded)  # nothing is written before the target answers
    store = open_history(settings, on_problem=lambda m: _report("warning", m))
    from dalp_dr.recovery import recover_all

    try:  # runs whose orchestrator died: put their environment back first
        recover_all(store, engine_runner, progress=progress, lock_ttl=settings.lock_ttl,
                    environment=loaded.spec.environment)
    except BaseException:
        store.close()
        raise
    token = CancelToken()

    def on_signal(signum: int, _frame: object) -> None:
        if token.is_set():
            raise KeyboardInterrupt  # a second interrupt: stop waiting for anything
        token.request(signal.Signals(signum).name)
        progress(f"{signal.Signals(signum).name}: stopping the running playbook, then "
                 "restoring steady state (interrupt again to stop at once)")

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    unrecorded: ResultNotRecorded | None = None
    try:
        with live if live is not None else contextlib.nullcontext():
            result = engine.run(prepared, store=store, trigger=Trigger.CLI,
                                operator=operator, cancel=token, confirm=confirm)
    except ResultNotRecorded as exc:
        unrecorded, result = exc, exc.result
    except KeyboardInterrupt:
        raise Interrupted("interrupted twice: steady state may NOT be restored; check "
                          "'dalp-dr lab status' or the environment before the next drill")\
            from None
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        store.close()
    if json_log is not None:
        click.echo(json.dumps({"ts": datetime.now(UTC).isoformat(), "event": "run.result",
                               "result": result.model_dump(mode="json")}, sort_keys=True))
    elif as_json:
        click.echo(result.model_dump_json(indent=2))
    else:
        print_result(out, result)
    textfile = os.environ.get("DALP_DR_METRICS_TEXTFILE")
    if textfile and unrecorded is None:
        from dalp_dr import metrics
        from dalp_dr.errors import StoreError

        try:
            metrics.write_textfile(Path(textfile), lambda: open_history(settings), [loaded])
        except (OSError, StoreError) as exc:
            _report("warning", f"metrics textfile {textfile} not written: {exc}")
    if unrecorded is not None:
        _report("warning", f"NOT RECORDED in the history: {unrecorded} (the scheduler "
                           "records kept results when it starts)")
        raise Exit(EXIT_FAILED)
    from dalp_dr.notify import notify

    notify(result, report=lambda message: _report("warning", message))
    if result.outcome.value == "preflight_failed" and result.message and \
            result.message.startswith("preflight: unreachable"):
        raise TargetUnreachable(result.message, source=file)
    raise Exit(result.outcome.exit_code)


@drill.command("recover")
@click.argument("run_id")
@click.option("--force", is_flag=True, help="even if the run's lease has not expired yet "
                                            "(only when you know its process is dead)")
@vault_options
@click.pass_context
def drill_recover(ctx: click.Context, run_id: str, force: bool) -> None:
    """Put back the environment of a run whose orchestrator died (its steady-state phase)
    and record the run as aborted. 'drill run' and the scheduler do this by themselves."""
    from dalp_dr.adapters.ansible import AnsibleRunner
    from dalp_dr.history import open_history
    from dalp_dr.recovery import recover

    settings = _settings(ctx)
    store = open_history(settings, on_problem=lambda m: _report("warning", m))
    try:
        done = recover(store, run_id, AnsibleRunner(), lock_ttl=settings.lock_ttl,
                       force=force, progress=lambda m: err.print(m, markup=False))
    finally:
        store.close()
    out.print(done.message, markup=False)
    if not done.recorded or done.steady_state_restored is False:
        raise Exit(EXIT_FAILED)


# --- lab ------------------------------------------------------------------------------------


@cli.group()
def lab() -> None:
    """The local lab: real PostgreSQL and a route on 127.0.0.1, built by playbooks."""


def _lab(ctx: click.Context) -> Any:
    from dalp_dr.adapters.ansible import AnsibleRunner
    from dalp_dr.lab import Lab

    return Lab(_settings(ctx).project_dir, AnsibleRunner())


@lab.command("up")
@click.argument("topology")
@click.pass_context
def lab_up(ctx: click.Context, topology: str) -> None:
    """Create (or repair) the lab for a topology. Running it twice is harmless."""
    _lab(ctx).up(topology)
    out.print(f"lab {topology} is up")


@lab.command("status")
@click.argument("topology", required=False)
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def lab_status(ctx: click.Context, topology: str | None, as_json: bool) -> None:
    """Show each lab's sites (role, timeline, replication) and where the route points."""
    the_lab = _lab(ctx)
    topologies = [topology] if topology else the_lab.topologies()
    report = {t: the_lab.status(t) for t in topologies}
    if as_json:
        click.echo(json.dumps(report, indent=2, sort_keys=True))
        return
    for name, status in report.items():
        if not status.get("present"):
            out.print(f"{name}: down")
            continue
        out.print(f"{name}:")
        for member in status.get("members", []):  # clusters that report members (Patroni)
            out.print(f"  {member.get('name', '?'):<8} {member.get('role', '?'):<13} "
                      f"{member.get('state', '?'):<10} timeline {member.get('timeline', '-')}"
                      f"  lag {member.get('lag', 0)}")
        for site, s in sorted(status.get("sites", {}).items()):
            detail = s.get("detail") or {}
            role = ("standby" if detail.get("in_recovery") else "primary") \
                if s.get("accepting") else "down"
            replicas = ", ".join(f"{r.get('application_name')}={r.get('state')}"
                                 for r in detail.get("replicas", []))
            out.print(f"  {site:<8} port {s.get('port')}  {role:<8} timeline "
                      f"{detail.get('timeline', '-')}"
                      + (f"  streaming from :{detail['upstream_port']}"
                         if detail.get("upstream_port") else "")
                      + (f"  replicas: {replicas}" if replicas else ""))
            for sub in s.get("subscriptions", []):  # logical replication (hot-hot)
                health = ("streaming" if sub.get("worker") else "no worker") \
                    if sub.get("enabled") else "DISABLED"
                out.print(f"           subscription {sub.get('name')}: {health}"
                          + (f", {sub['unsynced']} tables syncing" if sub.get("unsynced") else ""))
        if "route" in status:
            target = status["route"].get("backend_port") or "unreachable"
            out.print(f"  route    -> {target}")


@lab.command("down")
@click.argument("topology", required=False)
@click.pass_context
def lab_down(ctx: click.Context, topology: str | None) -> None:
    """Stop every lab process and remove the lab's data (all labs when none is named)."""
    the_lab = _lab(ctx)
    for name in [topology] if topology else the_lab.topologies():
        if topology or the_lab.is_present(name):
            the_lab.down(name)
            out.print(f"lab {name} is down")


# --- backup ---------------------------------------------------------------------------------


@cli.group()
def backup() -> None:
    """Backups and WAL in object storage (hot-cold)."""


def _rpo_for(inventory: Path, drills_dir: Path) -> timedelta | None:
    """The tightest RPO of the drills that use this inventory."""
    rpos = []
    for path in discover_drills(drills_dir):
        try:
            loaded = load_drill(path)
        except InvalidInput:
            continue
        if loaded.inventory == inventory.resolve():
            rpos.append(loaded.spec.objectives.rpo)
    return min(rpos) if rpos else None


@backup.command("status")
@click.argument("inventory", type=click.Path())
@click.option("--rpo", help="objective to check against [the tightest RPO of the drills that "
                            "use this inventory]")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def backup_status(ctx: click.Context, inventory: str, rpo: str | None, as_json: bool) -> None:
    """Newest base backup and archived WAL, their ages, and whether the RPO is attainable
    now (exit 1 when it is not)."""
    from dalp_dr.adapters.s3 import S3Archive
    from dalp_dr.durations import parse_duration
    from dalp_dr.inventory import Inventory

    path = Path(inventory)
    if rpo is not None:
        try:
            objective = parse_duration(rpo)
        except ValueError as exc:
            raise InvalidInput(str(exc), field="--rpo") from None
    else:
        found = _rpo_for(path, _settings(ctx).project_dir / "drills")
        if found is None:
            raise InvalidInput("no drill uses this inventory, so there is no RPO to check",
                               source=inventory, field="--rpo", hint="pass --rpo, e.g. 4h")
        objective = found
    status = S3Archive.from_inventory(Inventory(path)).status(objective)
    if as_json:
        click.echo(status.model_dump_json(indent=2))
    else:
        out.print(f"location        {status.location}")
        out.print(f"base backups    {status.backups}; newest {status.newest_backup or '-'}, "
                  f"age {format_duration(status.newest_backup_age_s)}")
        out.print(f"archived WAL    newest {status.newest_wal or '-'}, "
                  f"age {format_duration(status.newest_wal_age_s)}")
        out.print(f"WAL continuity  {'gap at ' + status.wal_gap if status.wal_gap else 'no gap'}")
        verdict = "attainable" if status.attainable else "NOT attainable"
        out.print(f"RPO {format_duration(status.rpo_s)}: {verdict}")
        for reason in status.reasons:
            out.print(f"  - {reason}")
    raise Exit(EXIT_OK if status.attainable else EXIT_FAILED)


# --- store ----------------------------------------------------------------------------------


@cli.group()
def store() -> None:
    """The history store (DALP_DR_STORE: sqlite:///... or postgresql://...)."""


@store.command("migrate")
@click.pass_context
def store_migrate(ctx: click.Context) -> None:
    """Create or upgrade the store's schema to this dalp-dr's version and say where it is."""
    from dalp_dr.history import open_history

    opened = open_history(_settings(ctx), migrate=True)
    try:
        before = getattr(opened, "migrated_from", None)
        if before is not None:
            out.print(f"upgraded from schema version {before}", markup=False)
        out.print(f"history store ready: {opened.describe()}", markup=False)
    finally:
        opened.close()


# --- schedule and scheduler -----------------------------------------------------------------


def _duration_option(value: str | None, name: str) -> timedelta | None:
    from dalp_dr.durations import parse_duration

    if value is None:
        return None
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise InvalidInput(str(exc), field=name, hint="a duration such as 30s, 15m or 1h"
                           ) from None


def _definitions(ctx: click.Context, directory: str | None, skip_invalid: bool) -> Any:
    from dalp_dr.errors import SpecError
    from dalp_dr.schedule.jobs import load_definitions

    folder = Path(directory) if directory else _settings(ctx).project_dir / "drills"
    definitions = load_definitions(folder)
    for path, problem in definitions.invalid.items():
        if not skip_invalid:
            raise SpecError(problem.detail, source=problem.source or str(path),
                            field=problem.field,
                            hint="fix it, or pass --skip-invalid to leave it out")
        err.print(f"SKIPPED invalid definition: {problem}", markup=False)
    return definitions


@contextlib.contextmanager
def _schedule_stores(settings: Settings) -> Iterator[tuple[Any, Any]]:
    """The history store and the job store beside it, closed afterwards."""
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


_DRILLS_OPTION = click.option("--drills", "directory", type=click.Path(file_okay=False),
                              help="drill directory [<project>/drills]")


@cli.group()
def schedule() -> None:
    """The drills' schedule: job store, next runs, cadence status."""


@schedule.command("sync")
@_DRILLS_OPTION
@click.option("--skip-invalid", is_flag=True, help="leave broken definitions out (their jobs "
                                                   "stay) instead of refusing")
@click.pass_context
def schedule_sync(ctx: click.Context, directory: str | None, skip_invalid: bool) -> None:
    """Reconcile the job store with the drill files: added, changed, removed definitions."""
    from dalp_dr.schedule import jobs

    definitions = _definitions(ctx, directory, skip_invalid)
    jobstore = jobs.open_jobstore(_settings(ctx).store_url)
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
@_DRILLS_OPTION
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def schedule_list(ctx: click.Context, directory: str | None, as_json: bool) -> None:
    """Every drill's schedule, next run and last run with its verdict."""
    from dalp_dr.schedule import jobs

    settings = _settings(ctx)
    definitions = _definitions(ctx, directory, skip_invalid=True)
    with _schedule_stores(settings) as (history_store, jobstore):
        rows = jobs.overview(jobstore, definitions, history_store)
    if as_json:
        click.echo(json.dumps([r.model_dump(mode="json") for r in rows], indent=2))
        return
    table = Table(box=None)
    for col in ("drill", "schedule", "next run", "last run", "outcome", "file"):
        table.add_column(col)
    for r in rows:
        table.add_row(r.drill, f"{r.cron} {r.timezone}",
                      f"{r.next_run.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC" if r.next_run
                      else Text("not synced", style="yellow") if not r.synced else "-",
                      f"{r.last_started:%Y-%m-%d %H:%M} {r.last_run_id}" if r.last_started
                      else "never", r.last_outcome or "-",
                      Path(r.file).name + ("" if r.synced else " (changed on disk: sync)"))
    out.print(table)


@schedule.command("status")
@_DRILLS_OPTION
@click.option("--grace", default="1h", show_default=True,
              help="how long after its window opens a drill may still be pending")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def schedule_status(ctx: click.Context, directory: str | None, grace: str,
                    as_json: bool) -> None:
    """Did every drill run and meet its objectives in its current cadence window? Exit 1 when
    one is overdue, failing, unscheduled or broken (wire this to monitoring)."""
    from dalp_dr.schedule import cadence

    settings = _settings(ctx)
    allowed = _duration_option(grace, "--grace")
    assert allowed is not None
    definitions = _definitions(ctx, directory, skip_invalid=True)
    with _schedule_stores(settings) as (history_store, jobstore):
        rows = cadence.report(history_store, jobstore, definitions, datetime.now(UTC), allowed)
    if as_json:
        click.echo(json.dumps([r.model_dump(mode="json") for r in rows], indent=2))
    else:
        table = Table(box=None)
        for col in ("drill", "status", "window opened", "next run", "detail"):
            table.add_column(col)
        for r in rows:
            style = "red" if r.problem else "green"
            table.add_row(r.drill, Text(r.status.value, style=style),
                          f"{r.window_start:%Y-%m-%d %H:%M}" if r.window_start else "-",
                          f"{r.next_run:%Y-%m-%d %H:%M}" if r.next_run else "-",
                          r.detail)
        out.print(table)
    problems = [r for r in rows if r.problem]
    if problems:
        err.print(f"{len(problems)} drill(s) need attention: "
                  + ", ".join(f"{r.drill} ({r.status.value})" for r in problems), markup=False)
        raise Exit(EXIT_FAILED)


@cli.group()
def scheduler() -> None:
    """The scheduler service."""


@scheduler.command("run")
@_DRILLS_OPTION
@click.option("--grace", default="1h", show_default=True,
              help="a fire time missed by less than this (service down) still runs, once")
@click.option("--lease-ttl", default="6s", show_default=True,
              help="leader lease: a standby takes over this long after the active one died")
@click.option("--sync-interval", default="30s", show_default=True,
              help="how often the active scheduler re-reads the drill directory")
@click.option("--skip-invalid", is_flag=True,
              help="start even if a definition is broken (it is logged and shown by "
                   "'schedule status')")
@click.option("--metrics-address", default="127.0.0.1:9464", show_default=True,
              help="serve Prometheus /metrics here (HOST:PORT; empty to disable)")
@click.option("--log-format", type=click.Choice(["human", "json"]), default="human",
              show_default=True, help="json: one JSON object per log line")
@vault_options
@click.pass_context
def scheduler_run(ctx: click.Context, directory: str | None, grace: str, lease_ttl: str,
                  sync_interval: str, skip_invalid: bool, metrics_address: str,
                  log_format: str) -> None:
    """Run drills on their schedules until stopped (SIGTERM/SIGINT; SIGHUP re-reads the
    drills). Several may run on one PostgreSQL store: one is active, the others stand by."""
    import logging

    from dalp_dr.history import checkpointer, open_history
    from dalp_dr.schedule.service import SchedulerService, ServiceOptions

    settings = _settings(ctx)
    durations = {name: _duration_option(value, name) for name, value in (
        ("--grace", grace), ("--lease-ttl", lease_ttl), ("--sync-interval", sync_interval))}
    lease = durations["--lease-ttl"]
    if lease is None or lease.total_seconds() < 1.5:
        raise InvalidInput("must be at least 1.5s", field="--lease-ttl")
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(message)s")
    if log_format == "json":
        from dalp_dr.progress import JsonLogFormatter

        for handler in logging.getLogger().handlers:
            handler.setFormatter(JsonLogFormatter())
    logging.getLogger("apscheduler").setLevel(logging.WARNING)
    folder = Path(directory) if directory else settings.project_dir / "drills"
    service = SchedulerService(ServiceOptions(
        drills_dir=folder, store_url=settings.store_url, results_dir=settings.results_dir,
        grace=durations["--grace"] or timedelta(hours=1), lease_ttl=lease.total_seconds(),
        sync_interval=(durations["--sync-interval"] or timedelta(seconds=30)).total_seconds(),
        lock_ttl=settings.lock_ttl, skip_invalid=skip_invalid,
        observer=checkpointer(settings)))
    store, definitions = service.check()  # broken definition: 2; store unreachable: 1
    if metrics_address:
        from dalp_dr import metrics
        try:
            metrics.serve(metrics_address, lambda: open_history(settings),
                          list(definitions.valid.values()))
        except (OSError, ValueError) as exc:
            store.close()
            raise InvalidInput(f"cannot serve metrics on {metrics_address}: {exc}",
                               field="--metrics-address") from None
        logging.getLogger("dalp_dr.scheduler").info("metrics on http://%s/metrics",
                                                    metrics_address)
    interrupted: list[str] = []

    def on_stop(signum: int, _frame: object) -> None:
        interrupted.append(signal.Signals(signum).name)
        service.stopping.set()

    signal.signal(signal.SIGTERM, on_stop)
    signal.signal(signal.SIGINT, on_stop)
    signal.signal(signal.SIGHUP, lambda _s, _f: service.resync.set())
    service.run(store, definitions)
    if "SIGINT" in interrupted:
        raise Exit(EXIT_INTERRUPTED)


# --- doctor ---------------------------------------------------------------------------------


@cli.command()
@_DRILLS_OPTION
@click.option("--json", "as_json", is_flag=True)
@vault_options
@click.pass_context
def doctor(ctx: click.Context, directory: str | None, as_json: bool) -> None:
    """Check this machine for what the configured drills need; exit 1 when something a
    drill needs is missing."""
    from dalp_dr.doctor import Health, diagnose

    settings = _settings(ctx)
    folder = Path(directory) if directory else settings.project_dir / "drills"
    findings = diagnose(folder, settings.store_url, settings.results_dir, settings.keys_dir)
    if as_json:
        click.echo(json.dumps([f.model_dump(mode="json") for f in findings], indent=2))
    else:
        table = Table(box=None)
        for col in ("check", "status", "detail", "what to do", "needed by"):
            table.add_column(col)
        style = {Health.OK: "green", Health.WARN: "yellow", Health.MISSING: "bold red"}
        for f in findings:
            table.add_row(Text(f.check), Text(f.status.value, style=style[f.status]),
                          Text(f.detail), Text(f.fix),
                          Text(", ".join(f.needed_by[:3])
                               + (" ..." if len(f.needed_by) > 3 else "")))
        out.print(table)
    missing = [f for f in findings if f.status is Health.MISSING]
    if missing:
        err.print(f"{len(missing)} problem(s): " + "; ".join(f"{f.check}: {f.detail}"
                                                          for f in missing), markup=False)
        raise Exit(EXIT_FAILED)


# --- keys and exports -----------------------------------------------------------------------


@cli.group()
def keys() -> None:
    """The Ed25519 key that signs export bundles."""


@keys.command("init")
@click.option("--keys", "keys_dir",
              help="key directory [the global --keys: DALP_DR_KEYS or ~/.config/dalp-dr]")
@click.option("--force", is_flag=True, help="replace an existing key (its public key is kept "
                                            "in retired/: what it signed still verifies)")
@click.option("--revoke", is_flag=True, help="with --force: the old key is compromised; do not "
                                             "keep trusting it (what it signed no longer "
                                             "verifies by default)")
@click.pass_context
def keys_init(ctx: click.Context, keys_dir: str | None, force: bool, revoke: bool) -> None:
    """Create the signing key pair (private key mode 0600; hand out the public one)."""
    from dalp_dr.export import keys as signing

    if revoke and not force:
        raise InvalidInput("--revoke replaces a key", field="--revoke", hint="add --force")
    private, public, fingerprint = signing.init(_keys_dir(ctx, keys_dir), force=force,
                                                revoke=revoke)
    out.print(f"private key {private} (mode 0600, keep it secret)", markup=False)
    out.print(f"public key  {public} (give it to whoever verifies bundles)", markup=False)
    out.print(f"fingerprint {fingerprint}", markup=False)


def _keys_dir(ctx: click.Context, explicit: str | None) -> Path:
    """A command's own --keys, else the global one (both default to DALP_DR_KEYS)."""
    return Path(explicit) if explicit else _settings(ctx).keys_dir


def _export_drills(ctx: click.Context, query: Any) -> list[str]:
    """Drills defined in the project that the query covers ('not run' cells for them)."""
    names = []
    for path in discover_drills(_settings(ctx).project_dir / "drills"):
        try:
            spec = load_drill(path).spec
        except InvalidInput:
            continue
        if (query.topology and spec.topology is not query.topology) or \
                (query.drills and spec.name not in query.drills) or \
                (query.environments and spec.environment not in query.environments):
            continue
        names.append(spec.name)
    return names


@cli.group("export", invoke_without_command=True)
@click.option("--from", "start", help="2026Q1, 2026-01-01 or an ISO time [the beginning]")
@click.option("--to", "end", help="inclusive quarter or day, or an ISO time [now]")
@click.option("--topology", help="only this topology")
@click.option("--drill", "drill_names", multiple=True, help="only this drill (repeatable)")
@click.option("--environment", "environments", multiple=True,
              help="only this environment (repeatable)")
@click.option("--format", "fmt", type=click.Choice(["json", "csv", "html"]), default="json",
              show_default=True, help="format when not writing a bundle")
@click.option("--output", "-o", type=click.Path(dir_okay=False), help="file [stdout]")
@click.option("--bundle", type=click.Path(), help="write a signed bundle: a directory, or "
                                                  "FILE.tar.gz")
@click.option("--keys", "keys_dir", help="signing key directory")
@click.option("--to-s3", "to_s3", help="also archive the bundle (FILE.tar.gz) to "
                                       "s3://bucket/prefix under Object Lock retention")
@click.option("--lock-mode", type=click.Choice(["GOVERNANCE", "COMPLIANCE"]),
              default="GOVERNANCE", show_default=True,
              help="COMPLIANCE: nobody can delete it before the date, not even root")
@click.option("--retain-days", type=click.IntRange(1, 36500),
              help="retention in days (required with --to-s3)")
@click.option("--force-without-lock", is_flag=True,
              help="archive to a bucket without Object Lock anyway (no retention)")
@click.pass_context
def export(ctx: click.Context, start: str | None, end: str | None, topology: str | None,
           drill_names: tuple[str, ...], environments: tuple[str, ...], fmt: str,
           output: str | None, bundle: str | None, keys_dir: str | None,
           to_s3: str | None, lock_mode: str, retain_days: int | None,
           force_without_lock: bool) -> None:
    """Export the sealed history of a period (json, csv, html), or a signed bundle with
    every format, the evidence files, a manifest and its Ed25519 signature."""
    if ctx.invoked_subcommand is not None:
        return
    from dalp_dr.export import bundle as bundles
    from dalp_dr.export import keys as signing
    from dalp_dr.export.records import Query, parse_bound, verified_selection
    from dalp_dr.history import checkpointer, open_store
    from dalp_dr.spec import Topology

    try:
        kind = Topology(topology) if topology else None
    except ValueError:
        raise InvalidInput(f"unknown topology '{topology}'", field="--topology",
                           hint="one of " + ", ".join(t.value for t in Topology)) from None
    query = Query(start=parse_bound(start, end=False, field="--from") if start else None,
                  end=parse_bound(end, end=True, field="--to") if end else None,
                  topology=kind, drills=drill_names, environments=environments)
    key_directory = _keys_dir(ctx, keys_dir)
    archive = None
    if to_s3:
        from dalp_dr.export.archive import BundleArchive, Target

        if not bundle or not bundle.endswith((".tar.gz", ".tgz")):
            raise InvalidInput("archiving needs a bundle file", field="--to-s3",
                               hint="add --bundle NAME.tar.gz")
        if retain_days is None:
            raise InvalidInput("how long must S3 keep the bundle?", field="--retain-days",
                               hint="e.g. --retain-days 2557 (seven years)")
        archive = BundleArchive(Target.parse(to_s3))
    if bundle:
        signing.load_private(key_directory)  # no key: exit 2 before reading anything
    with_lock = archive.preflight(force_without_lock) if archive is not None else False
    settings = _settings(ctx).model_copy(update={"keys_dir": key_directory})
    store = open_store(settings.store_url, results_dir=settings.results_dir)
    try:  # a history that 'history verify' rejects is not exported, let alone signed
        selection = verified_selection(store, checkpointer(settings), query,
                                       copies_evidence=bool(bundle))
    finally:
        store.close()
    if selection.attestation is not None and not selection.attestation.pinned:
        err.print(f"note: {selection.attestation.describe()} (the export says so)",
                  markup=False, soft_wrap=True)
    drills = _export_drills(ctx, query)
    if bundle:
        path, fingerprint = bundles.write_bundle(selection, Path(bundle), key_directory,
                                                 drills)
        out.print(f"bundle {path}: {len(selection.records)} records ({query.describe()}), "
                  f"chain head {selection.head[:16]}..., signed by {fingerprint}",
                  markup=False, soft_wrap=True)
        if archive is not None:
            from dalp_dr.export.archive import LockMode

            stored = archive.upload(path, LockMode(lock_mode), retain_days or 0, with_lock)
            out.print(f"archived {stored.url} (version {stored.version_id}, sha256 "
                      f"{stored.sha256}): " + (f"{stored.mode} retention until "
                                               f"{stored.retain_until:%Y-%m-%d %H:%M} UTC"
                                               if stored.mode and stored.retain_until else
                                               "NO retention (bucket without Object Lock)"),
                      markup=False, soft_wrap=True)
        return
    text = bundles.write_single(selection, fmt, Path(output) if output else None, drills)
    if text is not None:
        click.echo(text, nl=False)
    else:
        err.print(f"wrote {output}: {len(selection.records)} records", markup=False)


@export.command("verify")
@click.argument("bundle_path", metavar="BUNDLE", type=click.Path())
@click.option("--public-key", type=click.Path(dir_okay=False, exists=True),
              help="trust only this public key (the signer's, obtained out of band)")
@click.option("--fingerprint", help="trust only the key with this fingerprint (SHA256:..., as "
                                    "'keys init' prints it)")
@click.option("--keys", "keys_dir",
              help="without --public-key/--fingerprint, trust this key directory's "
                   "signing-key.pub.pem and the keys 'keys init --force' retired "
                   "(retired/*.pem) [DALP_DR_KEYS or ~/.config/dalp-dr]")
@click.pass_context
def export_verify(ctx: click.Context, bundle_path: str, public_key: str | None,
                  fingerprint: str | None, keys_dir: str | None) -> None:
    """Check a bundle: signed by a trusted key, manifest digests, chain links, record and
    evidence digests. The key inside the bundle is never trusted by itself. Exit 1 naming
    the first problem, 2 when BUNDLE is not a bundle at all."""
    from dalp_dr.export.verify import Trust, verify_bundle

    if public_key and fingerprint:
        raise InvalidInput("give --public-key or --fingerprint, not both", field="--fingerprint")
    trust = (Trust.from_public_key(Path(public_key)) if public_key
             else Trust.from_fingerprint(fingerprint) if fingerprint
             else Trust.from_key_dir(_keys_dir(ctx, keys_dir)))
    report = verify_bundle(Path(bundle_path), trust)
    if report.ok:
        out.print(f"bundle intact: {report.records} records, chain head {report.chain_head},"
                  f" signed by the trusted key {report.trusted_fingerprint} "
                  f"({report.key_source})", markup=False, soft_wrap=True)
        made = report.provenance
        if made is not None and made.exported_at is not None:
            out.print(f"exported {made.exported_at.isoformat()} by {made.exporter} on "
                      f"{made.controller} with dalp-dr {made.tool_version} (period "
                      f"{made.period})", markup=False, soft_wrap=True)
        elif made is not None:
            out.print(f"generated {made.generated_at.isoformat()} (period {made.period}); no "
                      "provenance (written by an older dalp-dr)", markup=False, soft_wrap=True)
        return
    verdict = "NOT verified" if report.untrusted_signer else "NOT intact"
    err.print(f"bundle {verdict}: {report.problem}", markup=False, soft_wrap=True)
    raise Exit(EXIT_FAILED)


# --- history --------------------------------------------------------------------------------


@cli.group()
def history() -> None:
    """Past drill runs."""


@history.command("list")
@click.option("--drill", "drill_name", help="only this drill")
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 1_000_000))
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def history_list(ctx: click.Context, drill_name: str | None, limit: int, as_json: bool) -> None:
    """List runs, newest first, as their seals say they were (a row edited after its seal
    is marked ROW EDITED and shows the sealed values, a changed record TAMPERED); a warning
    names the first problem of the whole history. Listing is not the check: exit 0 unless
    the store cannot be read ('history verify' exits 1)."""
    from dalp_dr.history import checkpointer, open_store
    from dalp_dr.history.views import audit, list_checked
    from dalp_dr.render import history_table

    settings = _settings(ctx)
    store = open_store(settings.store_url, results_dir=settings.results_dir)
    try:
        rows = list_checked(store, drill=drill_name, limit=limit)
        report = audit(store, checkpointer(settings), check_evidence=False)
    finally:
        store.close()
    if as_json:
        click.echo(json.dumps([r.model_dump(mode="json") for r in rows], indent=2))
    else:
        out.print(history_table(rows))
    if report.problems:  # a page can hide an edited run: the whole history says so
        err.print(f"warning: history does NOT verify: {report.problems[0]} (rows show sealed "
                  "values where a row was edited; 'dalp-dr history verify' is the check)",
                  markup=False, soft_wrap=True)


def _audit(settings: Settings, no_evidence: bool = False,
           expect_head: str | None = None) -> tuple[Any, str]:
    from dalp_dr.history import checkpointer, open_store
    from dalp_dr.history.views import audit

    store = open_store(settings.store_url, results_dir=settings.results_dir)
    try:
        report = audit(store, checkpointer(settings), check_evidence=not no_evidence,
                       expect_head=expect_head)
        where = store.describe()
    finally:
        store.close()
    return report, where


@history.command("verify")
@click.option("--no-evidence", is_flag=True, help="check records and links only, not the "
                                                  "evidence files")
@click.option("--expect-head", metavar="[SEQ:]DIGEST",
              help="a chain head written down earlier ('history checkpoint'): it must be in "
                   "this chain")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def history_verify(ctx: click.Context, no_evidence: bool, expect_head: str | None,
                   as_json: bool) -> None:
    """Recompute the history's hash chain and evidence digests and hold them against every
    signed checkpoint; exit 1 naming the first changed, deleted, reordered, unsealed or
    rewritten record, or evidence that is missing or changed."""
    from dalp_dr.integrity import ProblemKind

    report, where = _audit(_settings(ctx), no_evidence, expect_head)
    if as_json:
        click.echo(json.dumps({**report.model_dump(mode="json"), "intact": report.intact},
                              indent=2))
    elif not report.problems:
        out.print(f"history intact: {report.records} sealed records, chain head "
                  f"#{report.head_seq} {report.head} ({where}); {report.checkpoints} signed "
                  "checkpoint(s) agree"
                  + (f"; {report.unsealed_running} run(s) in progress, sealed when they end"
                     if report.unsealed_running else ""), markup=False, soft_wrap=True)
    else:
        tampered = any(p.kind is ProblemKind.TAMPERED for p in report.problems)
        verdict = "history TAMPERED" if tampered else "history NOT VERIFIED"
        err.print(f"{verdict}: first problem: {report.problems[0]}", markup=False,
                  soft_wrap=True)
        if any(p.kind is ProblemKind.UNPINNED for p in report.problems):
            err.print("  (unpinned entries: review them, then 'dalp-dr history checkpoint "
                      "--sign' pins the chain as it is now)", markup=False, soft_wrap=True)
        for problem in report.problems[1:10]:
            err.print(f"  also: {problem}", markup=False, soft_wrap=True)
        if len(report.problems) > 10:
            err.print(f"  ... {len(report.problems) - 10} more", markup=False)
    if not as_json:
        for note in report.notes:
            err.print(f"note: {note}", markup=False, soft_wrap=True)
    if report.problems:
        raise Exit(EXIT_FAILED)


@history.command("checkpoint")
@click.option("--sign", "sign_now", is_flag=True,
              help="verify the history, then sign its current head now (a history sealed "
                   "before its key existed, or to pin it before an audit)")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def history_checkpoint(ctx: click.Context, sign_now: bool, as_json: bool) -> None:
    """Print the latest signed chain head (for a ticket or an auditor's file); later,
    'history verify --expect-head SEQ:DIGEST' shows the chain still holds it."""
    from dalp_dr import checkpoints
    from dalp_dr.history import checkpointer

    settings = _settings(ctx)
    pinned = checkpointer(settings)
    if sign_now:
        from dalp_dr.integrity import ProblemKind

        report, _where = _audit(settings)
        blocking = [p for p in report.problems if p.kind is not ProblemKind.UNPINNED]
        if blocking:
            raise TamperedHistory(f"history does not verify, not signed: {blocking[0]} "
                                  "(see 'dalp-dr history verify')")
        if report.head_seq == 0:
            raise InvalidInput("the history has no sealed record yet", field="--sign")
        first = (report.latest_checkpoint_seq or 0) + 1
        if first <= report.head_seq:
            err.print(f"pinning entries #{first}..#{report.head_seq} as they are now (no "
                      "signed checkpoint covered them: review them with 'history list' / "
                      "'history show' first)", markup=False, soft_wrap=True)
        pinned.sign_head(report.head_seq, report.head)
    latest = checkpoints.newest(pinned.sources()[0], pinned.trusted())
    if latest is None:
        err.print("no signed checkpoint (no signing key, or nothing sealed since it was "
                  "created): 'dalp-dr keys init', then 'dalp-dr history checkpoint --sign'",
                  markup=False, soft_wrap=True)
        raise Exit(EXIT_FAILED)
    source, cp = latest
    if as_json:
        click.echo(json.dumps({"source": source, **cp.model_dump(mode="json")}, indent=2))
        return
    out.print(f"checkpoint {cp.seq}:{cp.head}", markup=False, soft_wrap=True)
    out.print(f"signed {cp.at:%Y-%m-%d %H:%M:%S} UTC by {cp.key_fingerprint} ({source})",
              markup=False, soft_wrap=True)


@history.command("show")
@click.argument("run_id")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def history_show(ctx: click.Context, run_id: str, as_json: bool) -> None:
    """Show one run: figures, verdicts, phases and where its evidence is."""
    from dalp_dr.history import open_store
    from dalp_dr.history.views import seal_of
    from dalp_dr.integrity import evidence_location
    from dalp_dr.render import print_result

    settings = _settings(ctx)
    store = open_store(settings.store_url, results_dir=settings.results_dir)
    try:
        result = store.get(run_id)
        seal, problem = seal_of(store, result.run_id, result.outcome)
    finally:
        store.close()
    if as_json:
        click.echo(json.dumps({**result.model_dump(mode="json"), "seal": seal.value,
                               "seal_problem": problem}, indent=2))
    else:
        _show_run(result, seal.value, problem,
                  evidence_location(result.evidence_dir, settings.results_dir), print_result)
    if problem is not None:
        raise Exit(EXIT_FAILED)


def _show_run(result: Any, seal: str, problem: str | None, evidence: Path | None,
              print_result: Any) -> None:
    from rich.text import Text  # table cells from the record: never read as markup

    out.print(f"{result.drill} ({result.topology}/{result.scenario}) environment "
              f"{result.environment}, owner {result.owner}; {result.trigger.value} by "
              f"{result.operator}; spec sha256 {result.spec_hash[:16]}", markup=False)
    print_result(out, result)
    table = Table(box=None, title="phases")
    for col in ("phase", "status", "started (UTC)", "duration", "playbook", "note"):
        table.add_column(col)
    for p in result.phases:
        table.add_row(p.phase.value, p.status.value, f"{p.started_at:%H:%M:%S.%f}"[:-3],
                      format_duration(p.duration), Text(p.playbook or ""),
                      Text(p.message or ""))
    out.print(table)
    prov = result.provenance
    if prov is None:
        out.print("provenance: not recorded (the run predates provenance records)")
    else:
        out.print(f"provenance: dalp-dr {prov.dalp_dr_version}, ansible-core "
                  f"{prov.ansible_core_version or 'not installed'}, controller "
                  f"{prov.controller}; operator {prov.operator} (from "
                  f"{prov.operator_source.value})", markup=False)
        files = Table(box=None, title="files read (sha256, first 16 hex digits; --json: all)")
        files.add_column("file")
        files.add_column("sha256")
        for name, digest in prov.files.items():
            files.add_row(Text(name), Text(digest[:16]))
        out.print(files)
        for note in prov.unresolved:
            out.print(f"not resolved before the run: {note}", markup=False)
    out.print(f"evidence now: {evidence or 'none'}", markup=False)
    if problem is not None:
        err.print(f"this record does NOT match its seal ({seal}): {problem}; see 'dalp-dr "
                  "history verify'", markup=False, soft_wrap=True)
    else:
        out.print(f"seal: {seal}", markup=False)


# --- entry point ----------------------------------------------------------------------------


_json_errors: Any = None
"""set by a command run with --log-format json: errors are printed as JSON lines too"""


def _report(kind: str, message: str) -> None:
    if _json_errors is not None:
        _json_errors.emit(kind, message=message)
    else:
        err.print(message if kind != "error" else f"error: {message}", markup=False)


def main(argv: list[str] | None = None) -> int:
    global _json_errors
    _json_errors = None
    try:
        cli.main(args=argv, prog_name="dalp-dr", standalone_mode=False)
    except Exit as exc:
        return exc.code
    except click.exceptions.Abort:
        err.print("interrupted")
        return EXIT_INTERRUPTED
    except click.ClickException as exc:
        exc.show()
        return EXIT_INVALID
    except Interrupted as exc:
        _report("interrupted", f"{exc}")
        return EXIT_INTERRUPTED
    except KeyboardInterrupt:
        _report("interrupted", "interrupted")
        return EXIT_INTERRUPTED
    except InvalidInput as exc:
        _report("error", f"{exc}")
        return EXIT_INVALID
    except DalpDrError as exc:
        _report("failed", f"failed: {exc}" if _json_errors is None else f"{exc}")
        return EXIT_FAILED
    except Exception as exc:  # nobody expected it: exit 1, one line (DALP_DR_DEBUG=1: more)
        _report("failed", unexpected(exc))
        return EXIT_FAILED
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
