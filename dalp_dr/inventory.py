"""Reading an Ansible inventory the way ansible-playbook does (groups, vars, templating).

Used for two things only: resolving the service endpoint DSN a drill names by variable, and
collecting secret values so they can be redacted from everything dalp-dr writes.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from dalp_dr.errors import InventoryError

SECRET_NAME = re.compile(r"(passw|secret|token|private_key|api_key|access_key)", re.IGNORECASE)


class Inventory:
    """A parsed inventory file with templated variable lookup."""

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

    def hosts(self, group: str = "all") -> list[str]:
        found = self._inventory.groups.get(group)
        return [h.name for h in found.get_hosts()] if found else []

    def match(self, pattern: str) -> list[str]:
        """Host names an Ansible host pattern (a play's ``hosts:``) selects."""
        from ansible.errors import AnsibleError

        try:
            return [h.name for h in self._inventory.list_hosts(pattern)]
        except AnsibleError:
            return []

    def is_production(self) -> bool:
        """``dalp_production: true`` in the inventory (any host)."""
        try:
            value = self.variable("dalp_production")
        except InventoryError:
            return False
        return value is True or str(value).lower() in ("true", "yes", "1")

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

    def secret_values(self) -> set[str]:
        """Values of variables whose names look like secrets, on every host (templated)."""
        from ansible.errors import AnsibleError
        from ansible.template import Templar

        secrets: set[str] = set()
        for host in self.hosts():
            values = self._host_vars(host)
            templar = Templar(loader=self._loader, variables=values)
            for key, raw in values.items():
                if not SECRET_NAME.search(key):
                    continue
                try:
                    rendered = templar.template(raw)
                except AnsibleError:
                    continue  # e.g. an undefined vault variable: nothing to leak either
                if isinstance(rendered, str) and len(rendered) >= 4:
                    secrets.add(rendered)
        return secrets
