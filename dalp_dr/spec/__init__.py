"""Drill definitions: the YAML files under ``drills/``, validated into frozen models.

Relative paths in a drill file (inventory, playbooks) are resolved against the directory of
the drill file itself, so a drill is valid wherever the command is run from.

``parts`` holds the pieces of a definition, ``drill`` the whole (``DrillSpec``,
``LoadedDrill``), ``load`` reading files into them.
"""

from dalp_dr.spec.drill import DrillSpec, LoadedDrill, spec_digest
from dalp_dr.spec.load import allowed_roots, discover_drills, load_drill, parse_drill
from dalp_dr.spec.parts import (
    DEFAULT_MARKER_TABLE,
    ENGINE_VARS,
    INVENTORY_CONTRACT,
    QUARTERLY_CRON,
    Expect,
    Objectives,
    PhaseName,
    PhaseSpec,
    Scenario,
    Schedule,
    Topology,
    VerifyCheck,
)

__all__ = [
    "DEFAULT_MARKER_TABLE", "ENGINE_VARS", "INVENTORY_CONTRACT", "QUARTERLY_CRON",
    "DrillSpec", "Expect", "LoadedDrill", "Objectives", "PhaseName", "PhaseSpec", "Scenario",
    "Schedule", "Topology", "VerifyCheck", "allowed_roots", "discover_drills", "load_drill",
    "parse_drill", "spec_digest",
]
