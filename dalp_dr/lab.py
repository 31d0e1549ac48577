"""The labs: real PostgreSQL (and friends) on this machine, built by our own playbooks.

Each topology has ``inventories/lab/<topology>.yml`` and ``playbooks/<topology>/lab-up.yml``,
``lab-down.yml`` and ``lab-status.yml``. The lab root is the inventory's ``dalp_lab_root``.

A *host lab* (``hosts=True``) runs the same topology with every inventory host a host of its
own: a network namespace with its address and sshd, reached over SSH as an unprivileged user
(``inventories/lab/hosts/<topology>.yml``). ``playbooks/hosts/lab-up.yml`` builds the hosts
before the topology's lab-up runs over SSH; ``playbooks/hosts/lab-down.yml`` takes the whole
host lab away (every process in its namespaces, then the namespaces, user and files).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dalp_dr.adapters.base import PlaybookResult, PlaybookRunner
from dalp_dr.errors import InvalidInput, LabError
from dalp_dr.inventory import Inventory

LAB_TIMEOUT = 600.0


class Lab:
    def __init__(self, project_dir: Path, runner: PlaybookRunner) -> None:
        self._project = project_dir
        self._runner = runner

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

    def is_present(self, topology: str, *, hosts: bool = False) -> bool:
        root = Inventory(self.inventory(topology, hosts=hosts)).variable("dalp_lab_root")
        return Path(str(root)).exists()

    def _run(self, playbook: Path, inventory: Path, what: str) -> PlaybookResult:
        result = self._runner.run(playbook, inventory, extravars={}, timeout=LAB_TIMEOUT)
        if not result.ok:
            raise LabError(f"lab {what}: {result.describe_failure()}")
        return result

    def _topology_run(self, topology: str, action: str, hosts: bool) -> PlaybookResult:
        inventory = self.inventory(topology, hosts=hosts)
        playbook = self._project / "playbooks" / topology / f"lab-{action}.yml"
        return self._run(playbook, inventory, f"{action} {topology}{' --hosts' if hosts else ''}")

    def _hosts_run(self, topology: str, action: str) -> PlaybookResult:
        inventory = self.inventory(topology, hosts=True)
        playbook = self._project / "playbooks" / "hosts" / f"lab-{action}.yml"
        return self._run(playbook, inventory, f"{action} {topology} --hosts (the hosts)")

    def up(self, topology: str, *, hosts: bool = False) -> None:
        if hosts:
            self._hosts_run(topology, "up")
        self._topology_run(topology, "up", hosts)

    def down(self, topology: str, *, hosts: bool = False) -> None:
        if hosts:
            self._hosts_run(topology, "down")
        else:
            self._topology_run(topology, "down", hosts)

    def status(self, topology: str, *, hosts: bool = False) -> dict[str, Any]:
        if not self.is_present(topology, hosts=hosts):
            return {"present": False}
        return {"present": True, **self._topology_run(topology, "status", hosts).artifact_data}
