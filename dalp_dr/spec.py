"""Drill definitions: the YAML files under ``drills/``, validated into frozen models.

Relative paths in a drill file (inventory, playbooks) are resolved against the directory of
the drill file itself, so a drill is valid wherever the command is run from.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from datetime import datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from dalp_dr import config, drill_yaml
from dalp_dr.drill_yaml import MAX_SHOWN, clip, shown
from dalp_dr.durations import Duration
from dalp_dr.errors import HintKey, SpecError

QUARTERLY_CRON = "0 3 1 1,4,7,10 *"
"""DALP's quarterly cadence: first day of Jan/Apr/Jul/Oct, 03:00 (UTC unless a timezone is set)."""

_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")


class Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Topology(StrEnum):
    CLOUD_NATIVE = "cloud-native"
    HOT_WARM = "hot-warm"
    HOT_COLD = "hot-cold"
    HOT_HOT = "hot-hot"


class Scenario(StrEnum):
    FAILOVER = "failover"
    SWITCHOVER = "switchover"
    RESTORE = "restore"
    SITE_LOSS = "site-loss"


ALLOWED_SCENARIOS: dict[Topology, frozenset[Scenario]] = {
    Topology.CLOUD_NATIVE: frozenset({Scenario.FAILOVER, Scenario.SWITCHOVER}),
    Topology.HOT_WARM: frozenset({Scenario.FAILOVER, Scenario.SWITCHOVER}),
    Topology.HOT_COLD: frozenset({Scenario.RESTORE}),
    Topology.HOT_HOT: frozenset({Scenario.SITE_LOSS}),
}


class PhaseName(StrEnum):
    PREFLIGHT = "preflight"
    BASELINE = "baseline"
    INJECT = "inject"
    RECOVER = "recover"
    VERIFY = "verify"
    MEASURE = "measure"
    STEADY_STATE = "steady_state"


class Objectives(Frozen):
    rto: Duration = Field(description="declared maximum acceptable downtime")
    rpo: Duration = Field(description="declared maximum acceptable data loss, as time")


class Endpoint(Frozen):
    """How clients reach the database: an inline libpq DSN or an inventory variable holding one."""

    dsn: str | None = None
    from_inventory: str | None = Field(default=None, description="inventory variable with the DSN")
    host: str | None = Field(default=None, description="inventory host to read the variable from")

    @model_validator(mode="after")
    def _exactly_one(self) -> Endpoint:
        if (self.dsn is None) == (self.from_inventory is None):
            raise ValueError("set exactly one of 'dsn' or 'from_inventory'")
        if self.dsn is not None and re.search(r"(^|\s|[?&])password\s*=", self.dsn):
            raise ValueError(
                "an inline DSN must not carry a password: keep it in the inventory "
                "(vault) and use 'from_inventory', or in PGPASSWORD / ~/.pgpass"
            )
        return self


_TABLE = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
DEFAULT_MARKER_TABLE = "dalp_dr_heartbeat"
SINGLE_POPULATION = "service"


class Population(Frozen):
    """One group of clients with its own way in (hot-hot: each site's users, routed to
    their site first). Each population runs its own heartbeat into its own marker table."""

    endpoint: Endpoint
    marker_table: str = Field(default=DEFAULT_MARKER_TABLE,
                              description="table the population's markers go to")
    judged: bool = Field(default=True,
                         description="judge the objectives on this population's figures")

    @field_validator("marker_table")
    @classmethod
    def _identifier(cls, value: str) -> str:
        if not _TABLE.match(value):
            raise ValueError("marker_table must be a plain lower-case SQL identifier")
        return value


class Workload(Frozen):
    heartbeat_interval: Duration = timedelta(milliseconds=100)
    baseline: Duration = Field(default=timedelta(seconds=2),
                               description="how long the heartbeat runs before the fault")
    observe: Duration = Field(default=timedelta(seconds=1),
                              description="how long the heartbeat keeps running after verify")

    @field_validator("heartbeat_interval")
    @classmethod
    def _positive(cls, value: timedelta) -> timedelta:
        if value < timedelta(milliseconds=10):
            raise ValueError("heartbeat_interval must be at least 10ms")
        return value


VarValue = str | int | float | bool

INVENTORY_CONTRACT = frozenset({
    "dalp_pg_host", "dalp_pg_port", "dalp_pg_data", "dalp_pg_bin", "dalp_pg_socket_dir",
    "dalp_as_pg", "dalp_db_name", "dalp_app_user", "dalp_app_password",
    "dalp_replication_user", "dalp_route_kind", "dalp_route_host", "dalp_route_port",
    "dalp_route_dir", "dalp_service_dsn", "dalp_max_replay_lag_bytes", "dalp_lab",
    "dalp_lab_root", "dalp_lab_extra_settings", "dalp_lab_extra_hba", "dalp_production",
    "dalp_change_freezes",
})
"""inventory variables that say where and how the playbooks reach the sites (README
'Running against real sites'), and the guardrails' own; a drill file cannot override them"""

ENGINE_VARS = frozenset({
    "dalp_run_id", "dalp_phase", "dalp_rto_seconds", "dalp_rpo_seconds",
    "dalp_baseline_seconds", "dalp_heartbeat_interval_seconds", "dalp_evidence_dir",
    "dalp_recovery_target_time",
})
"""what dalp-dr itself passes every phase (engine.phase_extravars)"""

ANSIBLE_MAGIC_VARS = frozenset({
    "hostvars", "groups", "group_names", "inventory_hostname", "inventory_hostname_short",
    "inventory_dir", "inventory_file", "playbook_dir", "play_hosts", "role_path", "omit",
    "environment", "vars",
})
"""Ansible's own variables (not named ansible_*) that an extra var would shadow"""

_RESERVED_PREFIXES = ("ansible_", "dalp_s3_")
_RESERVED_SUFFIXES = ("_port", "_host", "_dir", "_data", "_bin", "_dsn", "_root", "_url",
                      "_user", "_password")
_VAR_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,99}$")


def _drill_var_name(name: str) -> str:
    """Phase vars tune a playbook (how long to wait, which site is lost); they never say
    where or as whom it connects: connection variables, paths, ports and credentials come
    from the inventory alone, and dalp-dr's own variables from dalp-dr."""
    if not _VAR_NAME.match(name):
        raise ValueError("a variable name is letters, digits and underscores (max 100), "
                         "not starting with a digit")
    lower = name.lower()
    if lower in INVENTORY_CONTRACT or lower.startswith(_RESERVED_PREFIXES) \
            or lower.endswith(_RESERVED_SUFFIXES):
        raise ValueError(f"'{name}' is a connection, path, port or credential variable: it "
                         "comes from the inventory and a drill file cannot override it "
                         "(set it in the inventory)")
    if lower in ENGINE_VARS:
        raise ValueError(f"'{name}' is set by dalp-dr for every phase: a drill file cannot "
                         "override it (remove it from vars)")
    if lower in ANSIBLE_MAGIC_VARS:
        raise ValueError(f"'{name}' is an Ansible variable: a drill file cannot override it "
                         "(rename it)")
    return name


DrillVarName = Annotated[str, AfterValidator(_drill_var_name)]


class PhaseSpec(Frozen):
    playbook: Path
    timeout: Duration = timedelta(minutes=10)
    vars: dict[DrillVarName, VarValue] = Field(
        default_factory=dict, description="extra vars for the playbook (never connection "
                                          "settings: those come from the inventory)")

    @field_validator("timeout")
    @classmethod
    def _nonzero(cls, value: timedelta) -> timedelta:
        if value <= timedelta(0):
            raise ValueError("timeout must be greater than 0s")
        return value


class Phases(Frozen):
    preflight: PhaseSpec
    baseline: PhaseSpec | None = None
    inject: PhaseSpec
    recover: PhaseSpec | None = None
    verify: PhaseSpec
    steady_state: PhaseSpec

    def items(self) -> list[tuple[PhaseName, PhaseSpec]]:
        out: list[tuple[PhaseName, PhaseSpec]] = []
        for name in PhaseName:
            phase = getattr(self, name.value, None)
            if isinstance(phase, PhaseSpec):
                out.append((name, phase))
        return out


class RecoveryTarget(Frozen):
    """Where a restore stops: the latest point (default), a time, or a time before the fault."""

    before_fault: Duration | None = None
    time: datetime | None = None

    @model_validator(mode="after")
    def _one(self) -> RecoveryTarget:
        if self.before_fault is not None and self.time is not None:
            raise ValueError("set one of 'before_fault' or 'time'")
        if self.time is not None and self.time.tzinfo is None:
            raise ValueError("'time' needs a timezone, e.g. 2026-10-01T03:00:00Z")
        return self

    @property
    def latest(self) -> bool:
        return self.before_fault is None and self.time is None


class Restore(Frozen):
    target: RecoveryTarget = RecoveryTarget()

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("target") == "latest":
            return {**data, "target": {}}
        return data


_CRON_DAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")


def _cron_weekdays(field: str) -> str:
    """Standard cron weekday numbers (0 and 7 are Sunday) as names: APScheduler 3.x reads
    a bare 0 as Monday."""
    return re.sub(r"(?<![/\d])\d+", lambda m: _CRON_DAYS[int(m.group()) % 7]
                  if int(m.group()) <= 7 else m.group(), field)


class Schedule(Frozen):
    """When the scheduler runs the drill: ``quarterly`` (first day of Jan/Apr/Jul/Oct, 03:00),
    a 5-field cron expression (minute hour day month weekday, as crontab(5)), or 6 fields with
    seconds first (for tests and labs), in ``timezone`` (IANA name)."""

    cron: str = QUARTERLY_CRON
    timezone: str = "UTC"

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, data: Any) -> Any:
        if isinstance(data, str):
            return {"cron": QUARTERLY_CRON if data.strip() == "quarterly" else data}
        if isinstance(data, dict) and data.get("cron") == "quarterly":
            return {**data, "cron": QUARTERLY_CRON}
        return data

    def trigger(self) -> Any:
        """The APScheduler CronTrigger (raises ValueError for a bad expression or zone)."""
        from apscheduler.triggers.cron import CronTrigger

        fields = self.cron.split()
        if len(fields) == 5:
            fields = ["0", *fields]
        if len(fields) != 6:
            raise ValueError(f"{len(fields)} fields; expected 5 (minute hour day month "
                             "weekday) or 6 (second first)")
        second, minute, hour, day, month, weekday = fields
        return CronTrigger(second=second, minute=minute, hour=hour, day=day, month=month,
                           day_of_week=_cron_weekdays(weekday), timezone=self.timezone)

    @model_validator(mode="after")
    def _valid_cron(self) -> Schedule:
        try:
            self.trigger()
        except Exception as exc:  # apscheduler raises ValueError/ZoneInfo errors
            raise ValueError(f"not a valid schedule: {clip(str(exc))} (use 'quarterly' or a "
                             "5-field cron expression)") from exc
        return self


class Expect(Frozen):
    """What a check's value must be: equal to a value, and/or within bounds."""

    equals: str | int | float | bool | None = None
    min: float | None = None
    max: float | None = None

    @model_validator(mode="after")
    def _something(self) -> Expect:
        if self.equals is None and self.min is None and self.max is None:
            raise ValueError("set 'equals', 'min' or 'max'")
        return self


class VerifyCheck(Frozen):
    """A declarative check run after the verify playbook passed: a read-only SQL query
    through a population's endpoint, or an HTTP GET (status, optionally a JSON field).

    DALP platform-status semantics: a JSON field whose value is ``no_data`` (or missing)
    never counts as healthy, whatever is expected."""

    name: str
    sql: str | None = None
    through: str | None = Field(default=None, description="population (default: the first)")
    http: str | None = None
    status: int = 200
    json_field: str | None = Field(default=None, description="dotted path in the JSON body")
    expect: Expect | None = None
    timeout: Duration = timedelta(seconds=10)

    @field_validator("sql")
    @classmethod
    def _read_only(cls, value: str | None) -> str | None:
        if value is not None:
            from dalp_dr.checks import check_query  # checks.py imports this module

            check_query(value)
        return value

    @model_validator(mode="after")
    def _one_kind(self) -> VerifyCheck:
        if (self.sql is None) == (self.http is None):
            raise ValueError("set exactly one of 'sql' or 'http'")
        if self.sql is not None and self.expect is None:
            raise ValueError("an sql check needs 'expect'")
        if self.http is not None and not self.http.startswith(("http://", "https://")):
            raise ValueError("'http' must be an http:// or https:// URL")
        if self.json_field is not None and self.expect is None:
            raise ValueError("a json_field check needs 'expect'")
        return self


class DrillSpec(Frozen):
    """One drill definition, exactly as written in the YAML file."""

    version: Literal[1] = 1
    name: str
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

    @field_validator("name")
    @classmethod
    def _slug(cls, value: str) -> str:
        if not _NAME.match(value):
            raise ValueError("name must be lower-case letters, digits and dashes (max 63)")
        return value

    @field_validator("restore")
    @classmethod
    def _restore_fits(cls, value: Restore | None, info: ValidationInfo) -> Restore | None:
        if value is not None and info.data.get("scenario") is not Scenario.RESTORE:
            raise ValueError("'restore' applies only to the restore scenario (hot-cold)")
        return value

    @field_validator("populations")
    @classmethod
    def _population_names(cls, value: dict[str, Population] | None
                          ) -> dict[str, Population] | None:
        if value is not None:
            if not value:
                raise ValueError("name at least one population")
            for name in value:
                if not _NAME.match(name):
                    raise ValueError(f"population name {shown(name)} must be lower-case "
                                     "letters, digits and dashes")
            if not any(p.judged for p in value.values()):
                raise ValueError("at least one population must be judged")
            tables = [p.marker_table for p in value.values()]
            if len(set(tables)) != len(tables):
                raise ValueError("each population needs its own marker_table")
        return value

    @model_validator(mode="after")
    def _checks_through_known_populations(self) -> DrillSpec:
        known = set(self.populations) if self.populations else {"service"}
        for check in self.checks:
            if check.through is not None and check.through not in known:
                raise ValueError(f"check {shown(check.name)}: through {shown(check.through)} "
                                 f"is not a population ({', '.join(sorted(known))})")
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


class LoadedDrill(BaseModel):
    """A validated drill with its file paths resolved and its content hash."""

    model_config = ConfigDict(frozen=True)

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


def _loc(loc: tuple[int | str, ...]) -> str:
    parts: list[str] = []
    for item in loc:
        if isinstance(item, int):
            parts.append(f"[{item}]")
        elif item.startswith(("function-", "constrained-")) or item == "[key]":
            continue
        else:
            parts.append(("." if parts else "") + item)
    return "".join(parts) or "(top level)"


def _from_validation(error: ValidationError, source: str) -> SpecError:
    # A misspelt key shows up twice: as unknown and as the missing one. The unknown one is
    # the message that tells the user what to fix.
    errors = sorted(error.errors(), key=lambda e: e["type"] != "extra_forbidden")
    first = errors[0]
    loc = tuple(p for p in first["loc"] if not (isinstance(p, str) and p in ("str", "int",
                "float", "bool", "nullable")))
    # user text (keys, values) is shown short: an error message never grows with the input
    field = clip(_loc(loc))
    kind = first["type"]
    if kind == "extra_forbidden":
        return SpecError(f"unknown field {shown(loc[-1])}", source=source, field=field,
                         hint="remove it or check its spelling")
    if kind == "missing":
        return SpecError("required field is missing", source=source, field=field,
                         hint="see README 'Drill format'")
    message = str(first["msg"]).removeprefix("Value error, ")
    if kind == "enum":
        expected = first.get("ctx", {}).get("expected", "")
        message = f"{shown(first.get('input'))} is not one of {expected}"
    hint = next((h for pattern, h in _HINTS if pattern.fullmatch(field)), None)
    return SpecError(clip(message, 2 * MAX_SHOWN), source=source, field=field, hint=hint)


_HINTS = [
    (re.compile(r"checks\[\d+\]\.sql"), "write one SELECT that only reads: no ';', no "
     "COPY, INSERT, UPDATE, DELETE or side-effecting function; README 'Security'"),
]
"""what to do, by field, when the message itself does not say"""


def parse_drill(text: str, *, source: str) -> DrillSpec:
    """Parse and validate drill YAML text. Does not touch the file system."""
    data = drill_yaml.load(text, source=source)
    if not isinstance(data, dict):
        raise SpecError("a drill file must be a YAML mapping", source=source,
                        hint="start with 'name:', 'topology:', ...")
    try:
        return DrillSpec.model_validate(data)
    except ValidationError as exc:
        raise _from_validation(exc, source) from None


def allowed_roots(drill_dir: Path, *, project: Path | None = None,
                  extra: Sequence[Path] | None = None) -> list[Path]:
    """Where a drill's playbooks and inventory may live: the drill file's own directory,
    the project and the ``extra`` directories (by default as configured: see
    ``dalp_dr.config.project_dir`` and ``allowed_dirs``)."""
    roots = [drill_dir, (project if project is not None else config.project_dir()).resolve()]
    roots.extend(Path(p).resolve() for p in
                 (extra if extra is not None else config.allowed_dirs()))
    return roots


def _inside(path: Path, roots: list[Path], source: str, field: str) -> None:
    """Paths from a drill file never reach outside the allowed directories (symlinks
    followed): a definition cannot point Ansible at an arbitrary file."""
    if not any(path.is_relative_to(root) for root in roots):
        raise SpecError(f"{clip(str(path))} is outside the project and the allowed directories",
                        source=source, field=field,
                        hint="keep playbooks and inventories in the project, or list their "
                             "directory in DALP_DR_ALLOWED_DIRS")


def load_drill(path: Path | str) -> LoadedDrill:
    """Read, validate and resolve a drill file. Raises SpecError naming file and field."""
    file = Path(path)
    source = str(path)
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SpecError("drill file not found", source=source,
                        hint_key=HintKey.LIST_DRILLS) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError(f"cannot read drill file: {exc}", source=source) from None
    spec = parse_drill(text, source=source)
    base = file.resolve().parent
    roots = allowed_roots(base)

    inventory = (base / spec.inventory).resolve()
    _inside(inventory, roots, source, "inventory")
    if not inventory.is_file():
        raise SpecError(f"inventory file {clip(str(spec.inventory))} not found (resolved to "
                        f"{clip(str(inventory))})",
                        source=source, field="inventory",
                        hint="paths are relative to the drill file")
    playbooks: dict[PhaseName, Path] = {}
    for name, phase in spec.phases.items():
        resolved = (base / phase.playbook).resolve()
        _inside(resolved, roots, source, f"phases.{name.value}.playbook")
        if not resolved.is_file():
            raise SpecError(f"playbook {clip(str(phase.playbook))} not found (resolved to "
                            f"{clip(str(resolved))})",
                            source=source, field=f"phases.{name.value}.playbook",
                            hint="paths are relative to the drill file")
        playbooks[name] = resolved
    return LoadedDrill(path=file.resolve(), spec=spec, inventory=inventory, playbooks=playbooks,
                       spec_hash=spec_digest(spec))


def discover_drills(directory: Path) -> list[Path]:
    """Drill files in a directory, sorted by name."""
    return sorted(p for p in directory.glob("*.y*ml") if p.suffix in (".yaml", ".yml"))
