"""``dalp-dr drill plan``: what a drill would do, shown and checked without injecting anything.

The plan lists the phases in order with their playbooks, timeouts, the hosts each play
targets (resolved against the inventory as Ansible would), the tasks that inject the fault,
the preflight checks, the objectives and the endpoints. Then it runs the preflight playbook
(read-only by contract: it only looks) and, for phases whose playbook declares
``dalp_supports_check_mode: true`` in every play's vars, the playbook in Ansible check mode.
Nothing else runs: no fault is injected, nothing is recorded in the history.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict

from dalp_dr.adapters.base import PlaybookRunner
from dalp_dr.clock import utcnow
from dalp_dr.drill.held import waits_for_fault
from dalp_dr.drill.steps import phase_extravars
from dalp_dr.inventory import Inventory
from dalp_dr.spec import LoadedDrill, PhaseName


class PlayPlan(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: str
    hosts_pattern: str
    hosts: list[str]
    tasks: list[str]


class PhasePlan(BaseModel):
    model_config = ConfigDict(frozen=True)

    phase: PhaseName
    playbook: str
    timeout_s: float
    plays: list[PlayPlan]
    check_mode: bool
    """the playbook declares it is safe in Ansible check mode"""
    held: bool = False
    """a recover playbook that waits for the fault: started before inject, held at the fault
    barrier (drill/held.py)"""
    dry_run: str | None = None
    """what the plan ran: 'preflight ok', 'check mode failed: ...', None if not run"""


class DrillPlan(BaseModel):
    model_config = ConfigDict(frozen=True)

    drill: str
    file: str
    topology: str
    scenario: str
    environment: str
    production: bool
    objectives: dict[str, float]
    endpoints: dict[str, str]
    phases: list[PhasePlan]
    fault: list[str]
    """the inject playbook's plays and tasks: what will break"""
    preflight_ok: bool | None
    preflight_message: str | None


def _task_names(tasks: Any) -> list[str]:
    names: list[str] = []
    for task in tasks or []:
        if not isinstance(task, dict):
            continue
        if "block" in task:
            names.extend(_task_names(task.get("block")))
            names.extend(_task_names(task.get("rescue")))
            names.extend(_task_names(task.get("always")))
            continue
        names.append(str(task.get("name") or next((k for k in task if k not in (
            "when", "register", "vars", "tags", "changed_when", "failed_when")), "task")))
    return names


def _plays(playbook: Path, inventory: Inventory) -> tuple[list[PlayPlan], bool]:
    try:
        document = yaml.safe_load(playbook.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        return [], False
    plays, check_safe = [], True
    for play in document if isinstance(document, list) else []:
        if not isinstance(play, dict):
            continue
        if "import_playbook" in play:
            plays.append(PlayPlan(name=f"import {play['import_playbook']}", hosts_pattern="",
                                  hosts=[], tasks=[]))
            check_safe = False
            continue
        pattern = str(play.get("hosts", ""))
        check_safe = check_safe and bool((play.get("vars") or {}).get(
            "dalp_supports_check_mode"))
        plays.append(PlayPlan(
            name=str(play.get("name", "")), hosts_pattern=pattern,
            hosts=inventory.match(pattern) if pattern and "{{" not in pattern else [],
            tasks=_task_names(play.get("pre_tasks")) + _task_names(play.get("tasks"))
            + _task_names(play.get("post_tasks"))))
    return plays, check_safe and bool(plays)


def make_plan(drill: LoadedDrill, runner: PlaybookRunner, endpoints: dict[str, str],
              execute: bool = True) -> DrillPlan:
    """The plan; with ``execute`` the preflight and the check-mode-safe phases run."""
    inventory = Inventory(drill.inventory)
    spec = drill.spec
    run_id = f"plan-{utcnow():%Y%m%dT%H%M%SZ}"
    scratch = Path(tempfile.mkdtemp(prefix="dalp-dr-plan-"))
    phases: list[PhasePlan] = []
    preflight_ok: bool | None = None
    preflight_message: str | None = None
    fault: list[str] = []
    try:
        for phase, phase_spec in spec.phases.items():
            playbook = drill.playbooks[phase]
            plays, check_safe = _plays(playbook, inventory)
            dry_run = None
            if execute and (phase is PhaseName.PREFLIGHT or check_safe) and \
                    preflight_ok is not False:
                result = runner.run(
                    playbook, drill.inventory, timeout=phase_spec.timeout.total_seconds(),
                    extravars=phase_extravars(drill, phase, run_id, scratch / phase.value),
                    check=phase is not PhaseName.PREFLIGHT)
                what = "preflight" if phase is PhaseName.PREFLIGHT else "check mode"
                dry_run = f"{what} {result.status}" + (
                    f": {result.failure_message}" if not result.ok and result.failure_message
                    else "")
                if phase is PhaseName.PREFLIGHT:
                    preflight_ok = result.ok
                    preflight_message = result.failure_message
            if phase is PhaseName.INJECT:
                fault = [f"{p.name} on {', '.join(p.hosts) or p.hosts_pattern}: "
                         + "; ".join(p.tasks) for p in plays]
            phases.append(PhasePlan(phase=phase, playbook=str(playbook),
                                    timeout_s=phase_spec.timeout.total_seconds(), plays=plays,
                                    check_mode=check_safe, dry_run=dry_run,
                                    held=phase is PhaseName.RECOVER
                                    and waits_for_fault(playbook)))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return DrillPlan(
        drill=spec.name, file=str(drill.path), topology=spec.topology.value,
        scenario=spec.scenario.value, environment=spec.environment,
        production=inventory.is_production(),
        objectives=spec.objectives.targets(),
        endpoints=endpoints, phases=phases, fault=fault, preflight_ok=preflight_ok,
        preflight_message=preflight_message)
