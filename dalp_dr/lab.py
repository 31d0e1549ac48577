"""The local lab: real PostgreSQL (and friends) on 127.0.0.1, built by our own playbooks.

Each topology has ``inventories/lab/<topology>.yml`` and ``playbooks/<topology>/lab-up.yml``,
``lab-down.yml`` and ``lab-status.yml``. The lab root is the inventory's ``dalp_lab_root``.
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

    def topologies(self) -> list[str]:
        inv_dir = self._project / "inventories" / "lab"
        return sorted(p.stem for p in inv_dir.glob("*.yml")
                      if (self._project / "playbooks" / p.stem / "lab-up.yml").is_file())

    def _paths(self, topology: str, action: str) -> tuple[Path, Path]:
        if topology not in self.topologies():
            known = ", ".join(self.topologies()) or "none"
            raise InvalidInput(f"no lab for topology '{topology}'", field="topology",
                               hint=f"known: {known}")
        return (self._project / "playbooks" / topology / f"lab-{action}.yml",
                self._project / "inventories" / "lab" / f"{topology}.yml")

    def is_present(self, topology: str) -> bool:
        _, inventory = self._paths(topology, "up")
        root = Inventory(inventory).variable("dalp_lab_root")
        return Path(str(root)).exists()

    def _run(self, topology: str, action: str) -> PlaybookResult:
        playbook, inventory = self._paths(topology, action)
        result = self._runner.run(playbook, inventory, extravars={}, timeout=LAB_TIMEOUT)
        if not result.ok:
            raise LabError(f"lab {action} {topology}: {result.describe_failure()}")
        return result

    def up(self, topology: str) -> None:
        self._run(topology, "up")

    def down(self, topology: str) -> None:
        self._run(topology, "down")

    def status(self, topology: str) -> dict[str, Any]:
        if not self.is_present(topology):
            return {"present": False}
        return {"present": True, **self._run(topology, "status").artifact_data}
