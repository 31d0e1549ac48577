"""``dalp-dr scheduler``: the scheduler service."""

from __future__ import annotations

import logging
import signal
import sys
import time
from datetime import timedelta

import click
from rich.text import Text

from dalp_dr.commands.output import Output, output_options
from dalp_dr.commands.shared import (
    DRILLS_OPTION,
    ERRORS,
    EXIT_INTERRUPTED,
    Exit,
    drills_dir_of,
    duration_option,
    settings_of,
    vault_options,
)
from dalp_dr.errors import InvalidInput


@click.group()
def scheduler() -> None:
    """The scheduler service."""


@scheduler.command("run")
@DRILLS_OPTION
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
              show_default=True, help="json: one JSON object per log line (also with -o json)")
@output_options()
@vault_options
@click.pass_context
def scheduler_run(ctx: click.Context, directory: str | None, grace: str, lease_ttl: str,
                  sync_interval: str, skip_invalid: bool, metrics_address: str,
                  log_format: str, output: Output) -> None:
    """Run drills on their schedules until stopped (SIGTERM/SIGINT; SIGHUP re-reads the
    drills). Several may run on one PostgreSQL store: one is active, the others stand by."""
    # The service, assembled here as it was in cli.py; to be replaced by the library's use
    # case. Lazy: the history store (SQLAlchemy, psycopg), APScheduler and
    # prometheus_client are heavy at start-up.
    from dalp_dr.history import checkpointer, open_history
    from dalp_dr.progress import JsonLines, JsonLogFormatter
    from dalp_dr.schedule.service import SchedulerService, ServiceOptions

    settings = settings_of(ctx)
    durations = {name: duration_option(value, name) for name, value in (
        ("--grace", grace), ("--lease-ttl", lease_ttl), ("--sync-interval", sync_interval))}
    lease = durations["--lease-ttl"]
    if lease is None or lease.total_seconds() < 1.5:
        raise InvalidInput("must be at least 1.5s", field="--lease-ttl")
    utc = logging.Formatter("%(asctime)s UTC %(levelname)s %(message)s")
    utc.converter = time.gmtime  # log times in UTC, and say so
    text_log = logging.StreamHandler(sys.stderr)
    text_log.setFormatter(utc)
    logging.basicConfig(level=logging.INFO, handlers=[text_log])
    if log_format == "json" or output.is_json:
        for handler in logging.getLogger().handlers:
            handler.setFormatter(JsonLogFormatter())
        ERRORS.use(JsonLines(sys.stderr))  # warnings and the final error: JSON lines too
    logging.getLogger("apscheduler").setLevel(logging.WARNING)
    folder = drills_dir_of(ctx, directory)
    service = SchedulerService(ServiceOptions(
        drills_dir=folder, store_url=settings.store_url, results_dir=settings.results_dir,
        grace=durations["--grace"] or timedelta(hours=1), lease_ttl=lease.total_seconds(),
        sync_interval=(durations["--sync-interval"] or timedelta(seconds=30)).total_seconds(),
        lock_ttl=settings.lock_ttl, skip_invalid=skip_invalid,
        observer=checkpointer(settings), evidence=settings.evidence))
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
    stopped_by = interrupted[0] if interrupted else None
    output.record({"stopped": True, "stopped_by": stopped_by, "drills": str(folder)},
                  Text(f"scheduler stopped ({stopped_by or 'done'})"))
    if "SIGINT" in interrupted:
        raise Exit(EXIT_INTERRUPTED)
