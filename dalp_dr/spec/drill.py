"""A whole drill definition (``DrillSpec``), and a loaded one with its files resolved."""

from __future__ import annotations

import hashlib
import json
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from dalp_dr.drill_yaml import shown
from dalp_dr.durations import Duration
from dalp_dr.spec.parts import (
    ALLOWED_SCENARIOS,
    NAME,
    SINGLE_POPULATION,
    ConvergeProbe,
    Endpoint,
    Frozen,
    Objectives,
    PhaseName,
    Phases,
    PhaseSpec,
    Population,
    Restore,
    Scenario,
    Schedule,
    Topology,
    VerifyCheck,
    Workload,
    matching,
)


class DrillSpec(Frozen):
    """One drill definition, exactly as written in the YAML file."""

    version: Literal[1] = 1
    name: Annotated[str, matching(
        NAME, "name must be lower-case letters, digits and dashes (max 63)")]
    description: str = ""
    topology: Topology
    scenario: Scenario
    environment: str = "lab"
    owner: str
    objectives: Objectives
    inventory: Path
    endpoint: Endpoint | None = None
    populations: dict[str, Population] | None = Field(
        default=None, description="several client populations, each through its own endpoint "
                                  "(instead of 'endpoint')")
    workload: Workload = Workload()
    phases: Phases
    schedule: Schedule = Schedule()
    restore: Restore | None = None
    checks: list[VerifyCheck] = Field(
        default=[], description="declarative verify checks (SQL, HTTP) after the verify "
                                "playbook")
    converge: list[ConvergeProbe] = Field(
        default=[], description="what must converge after verify (indexers caught up, "
                                "workflows resumed, the API healthy): each polled until "
                                "met or timed out; the last one met ends the RTT")
    deadline: Duration | None = Field(
        default=None, description="how long after the fault the service must be verified "
                                  "back before the drill is aborted with its RTO missed "
                                  "[the larger of the RTO and the recover + verify timeouts]")

    def recovery_deadline(self) -> timedelta:
        if self.deadline is not None:
            return self.deadline
        budget = self.phases.verify.timeout + (self.phases.recover.timeout
                                               if self.phases.recover else timedelta(0))
        return max(self.objectives.rto, budget)

    @field_validator("restore")
    @classmethod
    def _restore_fits(cls, value: Restore | None, info: ValidationInfo) -> Restore | None:
        if value is not None and info.data.get("scenario") is not Scenario.RESTORE:
            raise ValueError("'restore' applies only to the restore scenario")
        return value

    @field_validator("populations")
    @classmethod
    def _population_names(cls, value: dict[str, Population] | None
                          ) -> dict[str, Population] | None:
        if value is not None:
            if not value:
                raise ValueError("name at least one population")
            for name in value:
                if not NAME.match(name):
                    raise ValueError(f"population name {shown(name)} must be lower-case "
                                     "letters, digits and dashes")
            if not any(p.judged for p in value.values()):
                raise ValueError("at least one population must be judged")
            # (populations through an API keep their markers apart by run id: see
            # adapters/http.py; they may share the API's table)
            tables = [p.marker_table for p in value.values() if p.endpoint.api is None]
            if len(set(tables)) != len(tables):
                raise ValueError("each population needs its own marker_table")
        return value

    @model_validator(mode="after")
    def _split_brain_needs_a_promotion(self) -> DrillSpec:
        if (self.objectives.split_brain is not None
                and self.scenario not in (Scenario.FAILOVER, Scenario.SWITCHOVER)):
            raise ValueError(f"objectives.split_brain applies to failover and switchover drills "
                             f"(a new primary is promoted), not to {self.scenario.value}: "
                             "remove it")
        return self

    @model_validator(mode="after")
    def _isolated_measures_split_brain(self) -> DrillSpec:
        isolated = sorted(n for n, p in (self.populations or {}).items() if p.isolated)
        if isolated and self.objectives.split_brain is None:
            raise ValueError(f"population {shown(isolated[0])} is isolated: it is measured for "
                             "split brain only, so declare objectives.split_brain (0: the old "
                             "primary must accept no write after the promotion)")
        return self

    @model_validator(mode="after")
    def _checks_through_known_populations(self) -> DrillSpec:
        known = set(self.populations) if self.populations else {"service"}
        sql_ways = {name for name, p in self.client_populations().items()
                    if p.endpoint.sql() is not None}
        probes: list[tuple[str, str, str | None, bool]] = []
        for check in self.checks:
            probes.append(("check", check.name, check.through, check.sql is not None))
        for probe in self.converge:
            probes.append(("converge probe", probe.name, probe.through, probe.sql is not None))
            if probe.near is not None:
                probes.append(("converge probe", probe.name + " (near)", probe.near.through,
                               probe.near.sql is not None))
        for what, name, through, sql in probes:
            if through is not None and through not in known:
                raise ValueError(f"{what} {shown(name)}: through {shown(through)} "
                                 f"is not a population ({', '.join(sorted(known))})")
            if sql and (through or next(iter(self.client_populations()))) not in sql_ways:
                raise ValueError(f"{what} {shown(name)} runs SQL, but its population reaches "
                                 "the platform through an API without a SQL read_back: set "
                                 "'through' to a population with a DSN, or give the API a "
                                 "read_back")
        names = [p.name for p in self.converge]
        if len(set(names)) != len(names):
            raise ValueError("each converge probe needs its own name")
        return self

    @model_validator(mode="after")
    def _one_way_in(self) -> DrillSpec:
        if (self.endpoint is None) == (self.populations is None):
            raise ValueError("set exactly one of 'endpoint' or 'populations'")
        return self

    def client_populations(self) -> dict[str, Population]:
        """Every population the drill measures; a single 'endpoint' is one named 'service'."""
        if self.populations is not None:
            return dict(self.populations)
        assert self.endpoint is not None
        return {SINGLE_POPULATION: Population(endpoint=self.endpoint)}

    @field_validator("owner")
    @classmethod
    def _owner(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("owner must name who answers for this drill")
        return value

    @field_validator("scenario")
    @classmethod
    def _scenario_fits(cls, value: Scenario, info: ValidationInfo) -> Scenario:
        topology = info.data.get("topology")
        if isinstance(topology, Topology) and value not in ALLOWED_SCENARIOS[topology]:
            names = ", ".join(sorted(s.value for s in ALLOWED_SCENARIOS[topology]))
            raise ValueError(
                f"scenario '{value}' does not apply to topology '{topology}' (allowed: {names})"
            )
        return value


class LoadedDrill(BaseModel, frozen=True):
    """A validated drill with its file paths resolved and its content hash."""

    path: Path
    spec: DrillSpec
    inventory: Path
    playbooks: dict[PhaseName, Path]
    spec_hash: str

    def phase(self, name: PhaseName) -> PhaseSpec | None:
        value = getattr(self.spec.phases, name.value, None)
        return value if isinstance(value, PhaseSpec) else None


def spec_digest(spec: DrillSpec) -> str:
    """sha256 of the canonical JSON form of a spec (stable across YAML formatting)."""
    # unset optional fields are left out, so a field added later does not change the digest
    # of definitions that do not use it
    canonical = json.dumps(spec.model_dump(mode="json", exclude_none=True), sort_keys=True,
                           separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()

