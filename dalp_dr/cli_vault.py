"""``--vault-id`` and ``--vault-password-file`` for the commands that read inventories and
run playbooks (drill run/plan/recover, scheduler run, doctor), as ansible-playbook takes them;
``ANSIBLE_VAULT_PASSWORD_FILE`` and ``ANSIBLE_VAULT_IDENTITY_LIST`` are honoured as well.
The secrets are loaded before the command does anything (dalp_dr.vault.activate)."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

import click

from dalp_dr import vault

F = TypeVar("F", bound=Callable[..., Any])


def vault_options(command: F) -> F:
    @click.option("--vault-id", "vault_ids", multiple=True, metavar="[LABEL@]SOURCE",
                  help="a vault identity, as ansible-playbook takes it (repeatable)")
    @click.option("--vault-password-file", "vault_password_files", multiple=True,
                  metavar="FILE", help="a vault password file or client script (repeatable)")
    @functools.wraps(command)
    def wrapper(*args: Any, vault_ids: tuple[str, ...] = (),
                vault_password_files: tuple[str, ...] = (), **kwargs: Any) -> Any:
        vault.activate(vault.VaultIdentities.from_options(vault_ids, vault_password_files))
        return command(*args, **kwargs)

    return wrapper  # type: ignore[return-value]
