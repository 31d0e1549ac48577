"""``dalp-dr store``: the history store's schema."""

from __future__ import annotations

import click

from dalp_dr.commands.shared import settings_of
from dalp_dr.console import out


@click.group()
def store() -> None:
    """The history store (DALP_DR_STORE: sqlite:///... or postgresql://...)."""


@store.command("migrate")
@click.pass_context
def store_migrate(ctx: click.Context) -> None:
    """Create or upgrade the store's schema to this dalp-dr's version and say where it is."""
    from dalp_dr.history import open_history  # lazy: SQLAlchemy and psycopg are heavy

    opened = open_history(settings_of(ctx), migrate=True)
    try:
        before = getattr(opened, "migrated_from", None)
        if before is not None:
            out.print(f"upgraded from schema version {before}", markup=False)
        out.print(f"history store ready: {opened.describe()}", markup=False)
    finally:
        opened.close()
