"""``dalp-dr backup``: backups and WAL in object storage (hot-cold), read from the catalogue of
the backup tool the inventory names (``dalp_backup_tool``)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import click
from rich.console import Console
from rich.text import Text

from dalp_dr.commands.output import Output, output_options
from dalp_dr.commands.shared import EXIT_FAILED, EXIT_OK, Exit, settings_of
from dalp_dr.durations import format_duration, parse_duration
from dalp_dr.errors import InvalidInput
from dalp_dr.spec import discover_drills, load_drill


@click.group()
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
@output_options()
@click.pass_context
def backup_status(ctx: click.Context, inventory: str, rpo: str | None, output: Output) -> None:
    """Newest base backup and archived WAL, their ages, and whether the RPO is attainable
    now (exit 1 when it is not)."""
    # lazy: boto3 is heavy at start-up
    from dalp_dr.adapters.s3 import S3Archive
    from dalp_dr.inventory import Inventory

    path = Path(inventory)
    if rpo is not None:
        try:
            objective = parse_duration(rpo)
        except ValueError as exc:
            raise InvalidInput(str(exc), field="--rpo",
                               hint="a duration such as 15m or 4h") from None
    else:
        found = _rpo_for(path, settings_of(ctx).project_dir / "drills")
        if found is None:
            raise InvalidInput("no drill uses this inventory, so there is no RPO to check",
                               source=inventory, field="--rpo", hint="pass --rpo, e.g. 4h")
        objective = found
    status = S3Archive.from_inventory(Inventory(path)).status(objective)

    def human(console: Console) -> None:
        for line in (
                f"backup tool     {status.tool}",
                f"location        {status.location}",
                f"base backups    {status.backups}; newest {status.newest_backup or '-'}, "
                f"age {format_duration(status.newest_backup_age_s)}",
                f"archived WAL    newest {status.newest_wal or '-'}, "
                f"age {format_duration(status.newest_wal_age_s)}",
                "WAL continuity  " + ("gap at " + status.wal_gap if status.wal_gap
                                      else "no gap"),
                f"RPO {format_duration(status.rpo_s)}: "
                + ("attainable" if status.attainable else "NOT attainable"),
                *(f"  - {reason}" for reason in status.reasons)):
            console.print(Text(line))
        if status.catalogue:
            console.print(Text(f"{status.tool} catalogue (newest last):"))
            for entry in status.catalogue:
                console.print(Text(
                    f"  {entry.get('backup_id')}  {entry.get('status')}  "
                    f"{entry.get('end_time') or '-'}  WAL {entry.get('begin_wal')}.."
                    f"{entry.get('end_wal')}"))

    output.record(status.model_dump(mode="json"), human)
    raise Exit(EXIT_OK if status.attainable else EXIT_FAILED)
