"""The dalp-dr command line: parses, calls the engine, renders. Exit codes are chosen here.

0 objectives met; 1 objectives missed or drill failed; 2 invalid input; 130 interrupted.
"""

from __future__ import annotations

import json
import signal
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from dalp_dr.cancel import CancelToken
from dalp_dr.config import Settings, load_settings
from dalp_dr.durations import format_duration
from dalp_dr.errors import DalpDrError, Interrupted, InvalidInput, TargetUnreachable
from dalp_dr.spec import discover_drills, load_drill

EXIT_OK, EXIT_FAILED, EXIT_INVALID, EXIT_INTERRUPTED = 0, 1, 2, 130

# Not a terminal (CI logs, pipes): wide enough that tables do not fold run ids.
out = Console(highlight=False, width=None if sys.stdout.isatty() else 160)
err = Console(stderr=True, highlight=False, soft_wrap=True)


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
@click.version_option(package_name="dalp-dr")
@click.pass_context
def cli(ctx: click.Context, results_dir: str | None, store: str | None,
        project_dir: str | None) -> None:
    """Disaster-recovery drills for self-hosted DALP: measured RTO/RPO, kept in history."""
    ctx.obj = load_settings(results_dir=results_dir, store=store, project_dir=project_dir)


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
            err.print(f"[red]invalid[/] {exc}", markup=True)
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


@drill.command("run")
@click.argument("file")
@click.option("--json", "as_json", is_flag=True, help="print the result as JSON only")
@click.option("--operator", help="who runs the drill [DALP_DR_OPERATOR or the OS user]")
@click.pass_context
def drill_run(ctx: click.Context, file: str, as_json: bool, operator: str | None) -> None:
    """Run a drill now, on demand, and print measured figures against the objectives."""
    from dalp_dr.adapters.ansible import AnsibleRunner
    from dalp_dr.engine import DrillEngine
    from dalp_dr.history import open_store
    from dalp_dr.render import print_result
    from dalp_dr.results import Trigger

    settings = _settings(ctx)
    loaded = load_drill(file)

    def progress(message: str) -> None:
        err.print(f"[dim]{datetime.now(UTC):%H:%M:%S.%f}"[:-3] + f"[/] {message}")

    engine = DrillEngine(runner=AnsibleRunner(), results_dir=settings.results_dir,
                         progress=progress)
    prepared = engine.prepare(loaded)  # nothing is written before the target answers
    settings.results_dir.mkdir(parents=True, exist_ok=True)
    store = open_store(settings.store_url)
    token = CancelToken()

    def on_signal(signum: int, _frame: object) -> None:
        if token.is_set():
            raise KeyboardInterrupt  # a second interrupt: stop waiting for anything
        token.request(signal.Signals(signum).name)
        err.print(f"{signal.Signals(signum).name}: stopping the running playbook, then "
                  "restoring steady state (interrupt again to stop at once)")

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        result = engine.run(prepared, store=store, trigger=Trigger.CLI, operator=operator,
                            cancel=token)
    except KeyboardInterrupt:
        raise Interrupted("interrupted twice: steady state may NOT be restored; check "
                          "'dalp-dr lab status' or the environment before the next drill")\
            from None
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        store.close()
    if as_json:
        click.echo(result.model_dump_json(indent=2))
    else:
        print_result(out, result)
    if result.outcome.value == "preflight_failed" and result.message and \
            result.message.startswith("preflight: unreachable"):
        raise TargetUnreachable(result.message, source=file)
    raise Exit(result.outcome.exit_code)


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
    from dalp_dr.history import open_store

    opened = open_store(_settings(ctx).store_url, migrate=True)
    try:
        before = getattr(opened, "migrated_from", None)
        if before is not None:
            out.print(f"upgraded from schema version {before}", markup=False)
        out.print(f"history store ready: {opened.describe()}", markup=False)
    finally:
        opened.close()


# --- history --------------------------------------------------------------------------------


@cli.group()
def history() -> None:
    """Past drill runs."""


@history.command("list")
@click.option("--drill", "drill_name", help="only this drill")
@click.option("--limit", default=50, show_default=True)
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def history_list(ctx: click.Context, drill_name: str | None, limit: int, as_json: bool) -> None:
    """List runs, newest first."""
    from dalp_dr.history import open_store
    from dalp_dr.render import history_table

    store = open_store(_settings(ctx).store_url)
    try:
        rows = store.list_runs(drill=drill_name, limit=limit)
    finally:
        store.close()
    if as_json:
        click.echo(json.dumps([r.model_dump(mode="json") for r in rows], indent=2))
    else:
        out.print(history_table(rows))


@history.command("show")
@click.argument("run_id")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def history_show(ctx: click.Context, run_id: str, as_json: bool) -> None:
    """Show one run: figures, verdicts, phases and where its evidence is."""
    from dalp_dr.history import open_store
    from dalp_dr.render import print_result

    store = open_store(_settings(ctx).store_url)
    try:
        result = store.get(run_id)
    finally:
        store.close()
    if as_json:
        click.echo(result.model_dump_json(indent=2))
        return
    out.print(f"{result.drill} ({result.topology}/{result.scenario}) environment "
              f"{result.environment}, owner {result.owner}; {result.trigger.value} by "
              f"{result.operator}; spec sha256 {result.spec_hash[:16]}")
    print_result(out, result)
    table = Table(box=None, title="phases")
    for col in ("phase", "status", "started (UTC)", "duration", "playbook", "note"):
        table.add_column(col)
    for p in result.phases:
        table.add_row(p.phase.value, p.status.value, f"{p.started_at:%H:%M:%S.%f}"[:-3],
                      format_duration(p.duration), p.playbook or "", p.message or "")
    out.print(table)


# --- entry point ----------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
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
        err.print(f"{exc}")
        return EXIT_INTERRUPTED
    except KeyboardInterrupt:
        err.print("interrupted")
        return EXIT_INTERRUPTED
    except InvalidInput as exc:
        err.print(f"error: {exc}", markup=False)
        return EXIT_INVALID
    except DalpDrError as exc:
        err.print(f"failed: {exc}", markup=False)
        return EXIT_FAILED
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
