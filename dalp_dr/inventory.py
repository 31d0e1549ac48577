"""Reading an Ansible inventory the way ansible-playbook does (groups, vars, templating).

Used for two things only: resolving the service endpoint DSN a drill names by variable, and
collecting secret values so they can be redacted from everything dalp-dr writes.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from dalp_dr.ansible_warnings import quiet_ansible
from dalp_dr.errors import HintKey, InventoryError

SECRET_NAME = re.compile(r"(passw|secret|token|private_key|api_key|access_key)", re.IGNORECASE)


class Inventory:
    """A parsed inventory file with templated variable lookup."""

    @quiet_ansible
    def __init__(self, path: Path) -> None:
        from ansible.errors import AnsibleError
        from ansible.inventory.manager import InventoryManager
        from ansible.parsing.dataloader import DataLoader
        from ansible.vars.manager import VariableManager

        self.path = path
        if not path.is_file():
            raise InventoryError("inventory file not found", source=str(path))
        try:
            self._loader = DataLoader()
            self._inventory = InventoryManager(loader=self._loader, sources=[str(path)])
            self._vars = VariableManager(loader=self._loader, inventory=self._inventory)
        except AnsibleError as exc:
            raise InventoryError(f"cannot parse inventory: {exc}", source=str(path)) from None
        if not self._inventory.hosts:
            raise InventoryError("inventory defines no hosts",
                                 source=str(path), hint="is it an Ansible YAML/INI inventory?")

    @quiet_ansible
    def hosts(self, group: str = "all") -> list[str]:
        found = self._inventory.groups.get(group)
        return [h.name for h in found.get_hosts()] if found else []

    @quiet_ansible
    def match(self, pattern: str) -> list[str]:
        """Host names an Ansible host pattern (a play's ``hosts:``) selects."""
        from ansible.errors import AnsibleError

        try:
            return [h.name for h in self._inventory.list_hosts(pattern)]
        except AnsibleError:
            return []

    @quiet_ansible
    def per_host(self, name: str) -> dict[str, Any]:
        """``name`` as each host that defines it sees it (templated); hosts without it are
        left out. Guardrails read every host: a setting on one host only still counts."""
        found: dict[str, Any] = {}
        for host in self.hosts():
            if name in self._host_vars(host):
                found[host] = self.variable(name, host=host)
        return found

    def is_production(self) -> bool:
        """``dalp_production: true`` on the inventory's hosts.

        Read on every host. An inventory that mixes production and non-production hosts is
        refused, and so is a value that is not a boolean: a guardrail that cannot tell fails
        closed."""
        values = self.per_host("dalp_production")
        flags: dict[str, bool] = {}
        for host in self.hosts():
            value = values.get(host, False)
            if isinstance(value, bool):
                flags[host] = value
            elif str(value).strip().lower() in ("true", "yes", "on", "1"):
                flags[host] = True
            elif str(value).strip().lower() in ("false", "no", "off", "0", ""):
                flags[host] = False
            else:
                raise InventoryError(f"host '{host}': {str(value)[:80]!r} is not a boolean",
                                     source=str(self.path), field="dalp_production",
                                     hint="true or false")
        if len(set(flags.values())) > 1:
            prod = sorted(h for h, f in flags.items() if f)
            other = sorted(h for h, f in flags.items() if not f)
            raise InventoryError(
                f"mixes production hosts ({', '.join(prod)}) with non-production hosts "
                f"({', '.join(other)})", source=str(self.path), field="dalp_production",
                hint="one inventory per environment: set dalp_production under all.vars")
        return any(flags.values())

    def _host_vars(self, host: str | None) -> dict[str, Any]:
        from ansible.vars.hostvars import HostVars

        name = host or self.hosts()[0]
        found = self._inventory.get_host(name)
        if found is None:
            raise InventoryError(f"host '{name}' is not in the inventory", source=str(self.path))
        values = dict(self._vars.get_vars(host=found))
        # magic variables playbooks see, so inventory values may refer to other hosts
        values.setdefault("hostvars", HostVars(inventory=self._inventory,
                                               variable_manager=self._vars, loader=self._loader))
        values.setdefault("groups", self._inventory.get_groups_dict())
        return values

    @quiet_ansible
    def variable(self, name: str, *, host: str | None = None) -> Any:
        """A variable as the playbooks would see it on ``host`` (templated)."""
        from ansible.errors import AnsibleError
        from ansible.template import Templar

        values = self._host_vars(host)
        if name not in values:
            raise InventoryError(f"variable '{name}' is not defined", source=str(self.path),
                                 field=name, hint="define it under all.vars or on the host")
        try:
            return Templar(loader=self._loader, variables=values).template(values[name])
        except AnsibleError as exc:
            raise InventoryError(f"cannot render variable '{name}': {exc}",
                                 source=str(self.path), field=name) from None

    @quiet_ansible
    def secret_values(self) -> set[str]:
        """Every value the redactor must learn, on every host: each vaulted value (whatever
        its name) and each variable whose name looks like a secret (templated).

        Fails closed: a vaulted value, or a secret-named variable, that cannot be decrypted
        raises :class:`InventoryError` (nothing may run that could print it in the clear).
        """
        from ansible.errors import AnsibleError
        from ansible.template import Templar

        secrets: set[str] = set()
        for host in self.hosts():
            values = self._host_vars(host)
            templar = Templar(loader=self._loader, variables=values)
            for key, raw in values.items():
                if key in ("hostvars", "groups"):
                    continue
                vaulted = _has_vaulted(raw)
                if not vaulted and not SECRET_NAME.search(key):
                    continue
                try:
                    rendered = templar.template(raw)
                except AnsibleError as exc:
                    if vaulted or _is_vault_error(exc):
                        raise InventoryError(
                            f"cannot decrypt '{key}' on host '{host}'", source=str(self.path),
                            field=key, hint_key=HintKey.VAULT_PASSWORD) from None
                    continue  # e.g. a lookup only a target can answer: nothing to leak here
                secrets.update(_strings(rendered))
        return {s for s in secrets if len(s) >= 4}


def _has_vaulted(value: Any) -> bool:
    from ansible.parsing.vault import EncryptedString

    if isinstance(value, EncryptedString):
        return True
    if isinstance(value, dict):
        return any(_has_vaulted(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return any(_has_vaulted(v) for v in value)
    return False


def _is_vault_error(exc: BaseException) -> bool:
    return "undecryptable" in str(exc).lower() or "vault" in type(exc).__name__.lower()


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [str(value)]
    if isinstance(value, dict):
        return [s for v in value.values() for s in _strings(v)]
    if isinstance(value, (list, tuple)):
        return [s for v in value for s in _strings(v)]
    return []
