"""``dalp-dr doctor``: what this machine lacks for the configured drills."""

from __future__ import annotations

import click
from rich.table import Table
from rich.text import Text

from dalp_dr.commands.output import Output, output_options
from dalp_dr.commands.shared import (
    DRILLS_OPTION,
    EXIT_FAILED,
    Exit,
    drills_dir_of,
    settings_of,
    vault_options,
)
from dalp_dr.console import err
from dalp_dr.spec.directory import drill_directory


@click.command()
@DRILLS_OPTION
@output_options()
@vault_options
@click.pass_context
def doctor(ctx: click.Context, directory: str | None, output: Output) -> None:
    """Check this machine for what the configured drills need; exit 1 when something a
    drill needs is missing."""
    from dalp_dr.doctor import Health, diagnose  # lazy: ~8 ms of models at every start-up

    settings = settings_of(ctx)
    drills_dir = drills_dir_of(ctx, directory)
    drill_directory(drills_dir, field="--drills" if directory else None)  # missing: exit 2
    findings = diagnose(drills_dir, settings.store_url, settings.results_dir,
                        settings.keys_dir)
    style = {Health.OK: "green", Health.WARN: "yellow", Health.MISSING: "bold red"}
    table = Table(box=None)
    for col in ("check", "status", "detail", "what to do", "needed by"):
        table.add_column(col)
    for f in findings:
        table.add_row(Text(f.check), Text(f.status.value, style=style[f.status]),
                      Text(f.detail), Text(f.fix),
                      Text(", ".join(f.needed_by[:3]) + (" ..." if len(f.needed_by) > 3
                                                         else "")))
    output.rows([f.model_dump(mode="json") for f in findings], table)
    missing = [f for f in findings if f.status is Health.MISSING]
    if missing:
        err.print(f"{len(missing)} problem(s): " + "; ".join(f"{f.check}: {f.detail}"
                                                          for f in missing), markup=False)
        raise Exit(EXIT_FAILED)
