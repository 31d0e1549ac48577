"""Ansible Vault secrets, loaded the way the Ansible CLI loads them.

Sources, as ``ansible-playbook`` takes them: ``--vault-id [label@]source`` (repeatable),
``--vault-password-file FILE`` (repeatable; the ``default`` label), and the environment
(``ANSIBLE_VAULT_IDENTITY_LIST``, ``ANSIBLE_VAULT_PASSWORD_FILE``). A source is a password file
or an executable that prints the password (a client script). Prompts are never offered: a
drill runs unattended.

ansible-core keeps vault secrets in one process-wide context (``VaultSecretsContext``), which
decrypts inventory values when they are used. :func:`activate` loads the secrets and opens that
context once per process; the same identities are then handed to every ``ansible-playbook``
run (:meth:`VaultIdentities.argv`), so the controller and the playbooks decrypt alike.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from dalp_dr.errors import ConfigError, HintKey

_lock = threading.Lock()
_active: tuple[str, ...] | None = None


class VaultIdentities(BaseModel, frozen=True):
    """The vault identities of this process, as ``label@source`` slugs."""

    slugs: tuple[str, ...] = ()

    @classmethod
    def from_options(cls, vault_ids: tuple[str, ...] | list[str] = (),
                     password_files: tuple[str, ...] | list[str] = (),
                     environ: dict[str, str] | None = None) -> VaultIdentities:
        """Flags first, then the environment, as ansible-playbook orders them."""
        env = os.environ if environ is None else environ
        slugs: list[str] = [*vault_ids, *(f"default@{f}" for f in password_files)]
        slugs += [s.strip() for s in env.get("ANSIBLE_VAULT_IDENTITY_LIST", "").split(",")
                  if s.strip()]
        if env.get("ANSIBLE_VAULT_PASSWORD_FILE"):
            slugs.append(f"default@{env['ANSIBLE_VAULT_PASSWORD_FILE']}")
        for slug in slugs:
            source = slug.split("@", 1)[1] if "@" in slug else slug
            if source in ("prompt", "prompt_ask_vault_pass"):
                raise ConfigError("vault password prompts are not supported (a drill runs "
                                  "unattended)", field=f"vault id {slug}",
                                  hint="give a password file or a client script")
            if not Path(source).expanduser().is_file():
                raise ConfigError("vault password file not found", field=f"vault id {slug}",
                                  hint_key=HintKey.VAULT_PASSWORD_FILE)
        return cls(slugs=tuple(dict.fromkeys(slugs)))

    def argv(self) -> list[str]:
        """Arguments that give ansible-playbook the same secrets."""
        out: list[str] = []
        for slug in self.slugs:
            out += ["--vault-id", slug]
        return out


def activate(identities: VaultIdentities) -> None:
    """Load the secrets and open ansible-core's vault context (once per process).

    Raises :class:`ConfigError` when a source cannot be read, or when a second, different set
    of identities is asked for in the same process (ansible-core allows one context)."""
    global _active
    if not identities.slugs:
        return
    with _lock:
        if _active is not None:
            if _active != identities.slugs:
                raise ConfigError("a different set of vault identities is already active in "
                                  "this process", field="vault",
                                  hint="run one dalp-dr process per set of vault identities")
            return
        from ansible.errors import AnsibleError
        from ansible.parsing.dataloader import DataLoader
        from ansible.parsing.vault import VaultSecretsContext, get_file_vault_secret

        secrets: list[tuple[str, Any]] = []
        loader = DataLoader()
        for slug in identities.slugs:
            label, source = slug.split("@", 1) if "@" in slug else ("default", slug)
            try:
                secret = get_file_vault_secret(filename=str(Path(source).expanduser()),
                                               vault_id=label, loader=loader)
                secret.load()
            except AnsibleError as exc:
                raise ConfigError(f"cannot load the vault password: {_first_line(exc)}",
                                  field=f"vault id {label}@{source}") from None
            secrets.append((label, secret))
        current = VaultSecretsContext.current(optional=True)
        if current is None:
            VaultSecretsContext.initialize(VaultSecretsContext(secrets))
        else:  # opened by something else in this process (a test): add ours to it
            current.secrets.extend(secrets)
        _active = identities.slugs


def active() -> VaultIdentities:
    """The identities :func:`activate` opened in this process (none before)."""
    return VaultIdentities(slugs=_active or ())


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:300] if text else type(exc).__name__
