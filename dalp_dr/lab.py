"""The labs: real PostgreSQL (and friends) on this machine, built by our own playbooks.

Each topology has ``inventories/lab/<topology>.yml`` and ``playbooks/<topology>/lab-up.yml``,
``lab-down.yml`` and ``lab-status.yml``. The lab root is the inventory's ``dalp_lab_root``.

A *host lab* (``hosts=True``) runs the same topology with every inventory host a host of its
own: a network namespace with its address and sshd, reached over SSH as an unprivileged user
(``inventories/lab/hosts/<topology>.yml``). ``playbooks/hosts/lab-up.yml`` builds the hosts
before the topology's lab-up runs over SSH; ``playbooks/hosts/lab-down.yml`` takes the whole
host lab away (every process in its namespaces, then the namespaces, user and files).

A *named lab* (``name=``) is one more lab of a topology beside the unnamed one, with its own
root, ports and environment name: the same playbooks run against an inventory generated
from the topology's (``dalp_dr.named_lab``), ``<root>/inventory.yml``.
"""

from __future__ import annotations

import contextlib
import shutil
from pathlib import Path
from typing import Any

from dalp_dr import named_lab, private_files
from dalp_dr.adapters.base import PlaybookResult, PlaybookRunner
from dalp_dr.errors import InvalidInput, LabError
from dalp_dr.inventory import Inventory

LAB_TIMEOUT = 600.0


class Lab:
    def __init__(self, project_dir: Path, runner: PlaybookRunner,
                 named_labs: Path | None = None) -> None:
        self._project = project_dir
        self._runner = runner
        self._named = named_labs or named_lab.NAMED_LABS
        self._slots = named_lab.Slots(self._named)

    def _inventories(self, hosts: bool) -> Path:
        lab = self._project / "inventories" / "lab"
        return lab / "hosts" if hosts else lab

    def topologies(self, *, hosts: bool = False) -> list[str]:
        return sorted(p.stem for p in self._inventories(hosts).glob("*.yml")
                      if (self._project / "playbooks" / p.stem / "lab-up.yml").is_file())

    def inventory(self, topology: str, *, hosts: bool = False) -> Path:
        """The lab's inventory; InvalidInput for a topology without such a lab."""
        known = self.topologies(hosts=hosts)
        if topology not in known:
            kind = "host lab" if hosts else "lab"
            raise InvalidInput(f"no {kind} for topology '{topology}'", field="topology",
                               hint=f"known: {', '.join(known) or 'none'}")
        return self._inventories(hosts) / f"{topology}.yml"

    def is_present(self, topology: str, *, hosts: bool = False, name: str | None = None
                   ) -> bool:
        if name is not None:
            return self.named_root(topology, name).exists()
        root = Inventory(self.inventory(topology, hosts=hosts)).variable("dalp_lab_root")
        return Path(str(root)).exists()

    # --- named labs ---------------------------------------------------------------------

    def _check_named(self, topology: str, hosts: bool, name: str) -> None:
        named_lab.check_name(name)
        if hosts:
            raise InvalidInput("a host lab cannot be named (its hosts, addresses and user are "
                               "the machine's)", field="lab name")
        self.inventory(topology)
        named_lab.check_nameable(topology)

    def named_root(self, topology: str, name: str) -> Path:
        """The named lab's root, once every directory above it is proven to be this user's
        alone and it a real directory (``named_lab.trusted_root``): its inventory is what
        Ansible runs from, for up, down and status alike. LabError otherwise, before
        anything is read from it."""
        root = named_lab.named_root(self._named, named_lab.check_name(name), topology)
        named_lab.trusted_root(root)
        return root

    def named_inventory(self, topology: str, name: str) -> Path:
        """Where the named lab's generated inventory is (or will be)."""
        return self.named_root(topology, name) / named_lab.INVENTORY

    def named_topologies(self, name: str) -> list[str]:
        """The topologies that have a lab of this name (its root exists)."""
        folder = self._named / named_lab.check_name(name)
        return sorted(p.name for p in folder.iterdir() if p.is_dir()) if folder.is_dir() else []

    def _write_named(self, topology: str, name: str) -> Path:
        """The named lab's inventory, written (its slot taken when the name has none)."""
        self._check_named(topology, False, name)
        base = named_lab.load(self.inventory(topology))
        root = self.named_root(topology, name)
        with self._slots.locked() as table:
            slot = named_lab.take_slot(table, name)
            made = named_lab.named_inventory(base, name=name, slot=slot, root=root)
            named_lab.passable(root.parent)
            root.mkdir(exist_ok=True, mode=0o700)
            named_lab.trusted_root(root)  # an existing root (or a link planted there) too
            path = root / named_lab.INVENTORY
            private_files.atomic_write(
                path, named_lab.dump(made, name=name, topology=topology, slot=slot))
        return path

    def _release(self, name: str) -> None:
        """Give the name's slot back once no lab of that name is left."""
        with self._slots.locked() as table:
            if not self.named_topologies(name):
                table.pop(name, None)
                with contextlib.suppress(OSError):
                    (self._named / name).rmdir()

    def named_ports(self, topology: str, name: str) -> dict[str, int]:
        """The named lab's ``*_port`` variables (its generated inventory's)."""
        return named_lab.ports(named_lab.load(self.named_inventory(topology, name)))

    # --- playbooks ----------------------------------------------------------------------

    def _run(self, playbook: Path, inventory: Path, what: str) -> PlaybookResult:
        result = self._runner.run(playbook, inventory, extravars={}, timeout=LAB_TIMEOUT)
        if not result.ok:
            raise LabError(f"lab {what}: {result.describe_failure()}")
        return result

    def _topology_run(self, topology: str, action: str, hosts: bool,
                      inventory: Path | None = None, name: str | None = None
                      ) -> PlaybookResult:
        inventory = inventory or self.inventory(topology, hosts=hosts)
        playbook = self._project / "playbooks" / topology / f"lab-{action}.yml"
        return self._run(playbook, inventory, f"{action} {topology}"
                         f"{' --hosts' if hosts else ''}{f' --name {name}' if name else ''}")

    def _hosts_run(self, topology: str, action: str) -> PlaybookResult:
        inventory = self.inventory(topology, hosts=True)
        playbook = self._project / "playbooks" / "hosts" / f"lab-{action}.yml"
        return self._run(playbook, inventory, f"{action} {topology} --hosts (the hosts)")

    def up(self, topology: str, *, hosts: bool = False, name: str | None = None) -> Path:
        """The lab up; the inventory it runs with (a named lab's: generated)."""
        if name is not None:
            self._check_named(topology, hosts, name)
            inventory = self._write_named(topology, name)
            self._topology_run(topology, "up", False, inventory, name)
            return inventory
        if hosts:
            self._hosts_run(topology, "up")
        self._topology_run(topology, "up", hosts)
        return self.inventory(topology, hosts=hosts)

    def down(self, topology: str, *, hosts: bool = False, name: str | None = None) -> None:
        if name is not None:
            self._check_named(topology, hosts, name)
            if self.is_present(topology, name=name):
                inventory = self.named_inventory(topology, name)
                if not inventory.is_file():  # (a run killed before it was written)
                    inventory = self._write_named(topology, name)
                self._topology_run(topology, "down", False, inventory, name)
                # lab-down removed the root; an inventory left beside nothing goes too
                shutil.rmtree(self.named_root(topology, name), ignore_errors=True)
            self._release(name)
            return
        if hosts:
            self._hosts_run(topology, "down")
        else:
            self._topology_run(topology, "down", hosts)

    def status(self, topology: str, *, hosts: bool = False, name: str | None = None
               ) -> dict[str, Any]:
        if name is not None:
            self._check_named(topology, hosts, name)
            if not self.is_present(topology, name=name):
                return {"present": False, "name": name}
            inventory = self.named_inventory(topology, name)
            if not inventory.is_file():
                inventory = self._write_named(topology, name)
            report = self._topology_run(topology, "status", False, inventory, name).artifact_data
            return {"present": True, "name": name, "inventory": str(inventory),
                    "root": str(self.named_root(topology, name)),
                    "environment": named_lab.environment_of(name), **report}
        if not self.is_present(topology, hosts=hosts):
            return {"present": False}
        return {"present": True, **self._topology_run(topology, "status", hosts).artifact_data}
