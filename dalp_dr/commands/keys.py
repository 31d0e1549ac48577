"""``dalp-dr keys``: the Ed25519 key that signs export bundles and checkpoints."""

from __future__ import annotations

import click
from rich.console import Console
from rich.text import Text

from dalp_dr.commands.output import Output, output_options
from dalp_dr.commands.shared import keys_dir_of
from dalp_dr.errors import InvalidInput


@click.group()
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
@output_options()
@click.pass_context
def keys_init(ctx: click.Context, keys_dir: str | None, force: bool, revoke: bool,
              output: Output) -> None:
    """Create the signing key pair (private key mode 0600; hand out the public one)."""
    from dalp_dr.export import keys as signing  # lazy: cryptography is heavy at start-up

    if revoke and not force:
        raise InvalidInput("--revoke replaces a key", field="--revoke", hint="add --force")
    private, public, fingerprint = signing.init(keys_dir_of(ctx, keys_dir), force=force,
                                                revoke=revoke)

    def human(console: Console) -> None:
        console.print(Text(f"private key {private} (mode 0600, keep it secret)"))
        console.print(Text(f"public key  {public} (give it to whoever verifies bundles)"))
        console.print(Text(f"fingerprint {fingerprint}"))

    output.record({"private_key": str(private), "public_key": str(public),
                   "fingerprint": fingerprint, "replaced": force, "revoked": revoke}, human)
