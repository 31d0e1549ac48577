"""``dalp-dr store``: the history store's schema."""

from __future__ import annotations

import click
from rich.console import Console
from rich.text import Text

from dalp_dr.commands.output import Output, output_options
from dalp_dr.commands.shared import settings_of


@click.group()
def store() -> None:
    """The history store (DALP_DR_STORE: sqlite:///... or postgresql://...)."""


@store.command("migrate")
@output_options()
@click.pass_context
def store_migrate(ctx: click.Context, output: Output) -> None:
    """Create or upgrade the store's schema to this dalp-dr's version and say where it is."""
    from dalp_dr.history import open_history  # lazy: SQLAlchemy and psycopg are heavy

    opened = open_history(settings_of(ctx), migrate=True)
    try:
        before = getattr(opened, "migrated_from", None)
        where = opened.describe()
    finally:
        opened.close()

    def human(console: Console) -> None:
        if before is not None:
            console.print(Text(f"upgraded from schema version {before}"))
        console.print(Text(f"history store ready: {where}"))

    output.record({"store": where, "migrated_from": before, "ready": True}, human)
