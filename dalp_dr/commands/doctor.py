"""``dalp-dr doctor``: what this machine lacks for the configured drills."""

from __future__ import annotations

import click
from rich.text import Text

from dalp_dr.commands.shared import (
    DRILLS_OPTION,
    EXIT_FAILED,
    Exit,
    drills_dir_of,
    json_option,
    print_rows,
    settings_of,
    vault_options,
)
from dalp_dr.console import err


@click.command()
@DRILLS_OPTION
@json_option()
@vault_options
@click.pass_context
def doctor(ctx: click.Context, directory: str | None, as_json: bool) -> None:
    """Check this machine for what the configured drills need; exit 1 when something a
    drill needs is missing."""
    from dalp_dr.doctor import Health, diagnose  # lazy: ~8 ms of models at every start-up

    settings = settings_of(ctx)
    findings = diagnose(drills_dir_of(ctx, directory), settings.store_url,
                        settings.results_dir, settings.keys_dir)
    style = {Health.OK: "green", Health.WARN: "yellow", Health.MISSING: "bold red"}
    print_rows(findings, as_json, ("check", "status", "detail", "what to do", "needed by"),
               lambda f: (Text(f.check), Text(f.status.value, style=style[f.status]),
                          Text(f.detail), Text(f.fix),
                          Text(", ".join(f.needed_by[:3])
                               + (" ..." if len(f.needed_by) > 3 else ""))))
    missing = [f for f in findings if f.status is Health.MISSING]
    if missing:
        err.print(f"{len(missing)} problem(s): " + "; ".join(f"{f.check}: {f.detail}"
                                                          for f in missing), markup=False)
        raise Exit(EXIT_FAILED)
