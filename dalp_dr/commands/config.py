"""``dalp-dr config``: the settings in effect and where each came from."""

from __future__ import annotations

import click
from rich import box
from rich.table import Table
from rich.text import Text

from dalp_dr.commands.output import Output, output_options
from dalp_dr.commands.shared import settings_of
from dalp_dr.config_sources import system_file, user_file


@click.group()
def config() -> None:
    """The configuration: defaults, /etc/dalp-dr/config.yaml, $XDG_CONFIG_HOME/dalp-dr/
    config.yaml, DALP_DR_* variables, flags (each overrides the one before)."""


@config.command("show")
@output_options()
@click.pass_context
def config_show(ctx: click.Context, output: Output) -> None:
    """Print every setting's effective value and where it came from (default, system file,
    user file, env VAR, flag); secrets (the key passphrase, webhook URLs, a store URL's
    password) masked."""
    from dalp_dr.config_show import effective

    root = ctx.find_root()
    rows = effective(settings_of(ctx), dict(root.params))
    data = [r.model_dump(mode="json") for r in rows]
    table = Table(box=box.SIMPLE_HEAVY,
                  caption=f"files: {system_file()}, then {user_file()}",
                  caption_justify="left")
    table.add_column("key", no_wrap=True)
    table.add_column("value", overflow="fold")
    table.add_column("from", overflow="fold")
    for r in rows:  # values come from files and the environment: Text, never markup
        table.add_row(Text(r.key), Text(r.value),
                      Text(f"{r.source} {r.origin}" if r.origin else str(r.source)))
    output.rows(data, table, ["key", "variable", "value", "source", "origin"])
