"""``dalp-dr collection``: the Ansible collection ``dalp.dr`` for AWX / Automation Platform."""

from __future__ import annotations

from pathlib import Path

import click
from rich.text import Text

from dalp_dr.commands.output import Output, output_options
from dalp_dr.commands.shared import settings_of
from dalp_dr.errors import InvalidInput


@click.group()
def collection() -> None:
    """The Ansible collection dalp.dr: the drill module and the playbooks' roles, for a
    private automation hub or an execution environment."""


@collection.command("build")
@click.option("--out", "out_dir", default="dist", show_default=True,
              help="directory the collection's artifact is written to")
@click.option("--ee", is_flag=True,
              help="also the execution environment's build context in OUT/context "
                   "(dalp-dr's wheel, the definition, ansible-builder create); replaces "
                   "OUT/context and earlier dalp-dr artifacts in OUT")
@output_options()
@click.pass_context
def collection_build(ctx: click.Context, out_dir: str, ee: bool, output: Output) -> None:
    """Build dalp-dr-<version>.tar.gz from the project (ansible-galaxy collection build);
    with --ee the execution environment's build context too, for 'podman build'."""
    from dalp_dr.collection import artifact_name, build, build_ee_context

    project = settings_of(ctx).project_dir
    out = Path(out_dir).resolve()
    if out.exists() and not out.is_dir():
        raise InvalidInput(f"{out} is not a directory", field="--out",
                           hint="a directory the artifacts are written to")
    if ee:
        context = build_ee_context(project, out)
        artifact = out / artifact_name(project)
        output.record({"artifact": str(artifact), "context": str(context)},
                      Text(f"built {artifact} and the execution environment's build context "
                           f"{context} (podman build -t dalp-dr-ee {context})"))
        return
    artifact = build(project, out)
    output.record({"artifact": str(artifact), "context": None}, Text(f"built {artifact}"))
