"""Who and what produced a record: the person, the controller, the tool, the files.

``run_provenance`` is what a run record carries (``RunResult.provenance``, sealed into the
history's hash chain with it): dalp-dr and ansible-core versions, the controller host, the
operator (``identity``), and the sha256 of every file the run reads: the drill file, the
inventory, every phase playbook and what it pulls in, resolved as Ansible resolves them
(``playbook_files``). What cannot be resolved before the run is listed in ``unresolved``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import BaseModel

from dalp_dr.integrity import file_sha256
from dalp_dr.provenance.identity import (
    OperatorSource,
    ansible_core_version,
    controller_host,
    operator_and_source,
    resolve_operator,
    tool_version,
)
from dalp_dr.provenance.playbook_files import drill_files

if TYPE_CHECKING:
    from dalp_dr.spec import LoadedDrill

__all__ = [
    "OperatorSource",
    "Provenance",
    "ansible_core_version",
    "controller_host",
    "controller_provenance",
    "drill_files",
    "file_sha256",
    "operator_and_source",
    "resolve_operator",
    "run_provenance",
    "tool_version",
]


class Provenance(BaseModel, frozen=True):
    """What produced a run record. Sealed with the record (old records have none)."""

    dalp_dr_version: str
    ansible_core_version: str | None
    controller: str
    """the host dalp-dr (and ansible-playbook) ran on"""
    operator: str
    operator_source: OperatorSource
    project_dir: str | None = None
    """what the relative keys of ``files`` are relative to"""
    files: dict[str, str] = {}
    """sha256 by path: the drill file, the inventory, every playbook and file it pulls in"""
    unresolved: list[str] = []
    """includes that could not be resolved before the run (templated paths, missing files),
    and what was hashed in their place"""


def controller_provenance(operator: str, source: OperatorSource) -> Provenance:
    """Versions, controller and operator only: the record of a run that never read its
    files (a missed schedule)."""
    return Provenance(dalp_dr_version=tool_version(), ansible_core_version=ansible_core_version(),
                      controller=controller_host(), operator=operator, operator_source=source)


def run_provenance(drill: LoadedDrill, operator: str, source: OperatorSource, *,
                   project_dir: Path | None = None) -> Provenance:
    """The provenance of one run of ``drill``. Never raises: what could not be read or
    followed is listed in ``unresolved``."""
    if project_dir is None:
        from dalp_dr.config import project_dir as configured_project

        project_dir = configured_project()
    project = Path(os.path.abspath(project_dir))
    files, unresolved = drill_files(drill, project)
    return Provenance(dalp_dr_version=tool_version(), ansible_core_version=ansible_core_version(),
                      controller=controller_host(), operator=operator, operator_source=source,
                      project_dir=str(project), files=files, unresolved=unresolved)
