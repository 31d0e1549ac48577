"""The parts of a drill definition: objectives, endpoints, client populations, workload,
phases, restore targets, schedules and verify checks (frozen models), and the names they
may take."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from dalp_dr.drill_yaml import clip, shown
from dalp_dr.durations import Duration
from dalp_dr.spec.zones import check_zone

QUARTERLY_CRON = "0 3 1 1,4,7,10 *"
"""DALP's quarterly cadence: first day of Jan/Apr/Jul/Oct, 03:00 (UTC unless a timezone is set)."""

NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")


def matching(pattern: re.Pattern[str], message: str) -> AfterValidator:
    """A string field's check against a pattern, failing with ``message``."""

    def check(value: str) -> str:
        if not pattern.match(value):
            raise ValueError(message)
        return value

    return AfterValidator(check)


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
    LINK_CUT = "link-cut"
    """the link between active sites cut, both sites up: each keeps serving its own clients"""


ALLOWED_SCENARIOS: dict[Topology, frozenset[Scenario]] = {
    Topology.CLOUD_NATIVE: frozenset({Scenario.FAILOVER, Scenario.SWITCHOVER,
                                      Scenario.RESTORE}),
    Topology.HOT_WARM: frozenset({Scenario.FAILOVER, Scenario.SWITCHOVER}),
    Topology.HOT_COLD: frozenset({Scenario.RESTORE}),
    Topology.HOT_HOT: frozenset({Scenario.SITE_LOSS, Scenario.LINK_CUT}),
}

CLIENTS_MOVE_TO_RESTORED: frozenset[Topology] = frozenset({Topology.HOT_COLD})
"""topologies whose restore drill moves the clients to the restored database (the route is
switched), so the markers read back show the point in time restored. A managed database's
restore (cloud-native: RDS point-in-time restore) builds a new instance beside the source,
which its clients keep writing to: their markers say nothing of the restore."""


class PhaseName(StrEnum):
    PREFLIGHT = "preflight"
    BASELINE = "baseline"
    INJECT = "inject"
    RECOVER = "recover"
    VERIFY = "verify"
    CONVERGE = "converge"
    MEASURE = "measure"
    DIVERGENCE = "divergence"
    STEADY_STATE = "steady_state"


def _write_count(value: Any) -> Any:
    """A whole number of writes, 0 or more: never a boolean, a fraction or text (None: the
    objective is not declared)."""
    if value is not None and (isinstance(value, bool) or not isinstance(value, int)
                              or value < 0):
        raise ValueError("split_brain must be a whole number of writes, 0 or more (the most "
                         "writes the old primary may accept after the promotion), not "
                         + shown(value))
    return value


class Objectives(Frozen):
    rto: Duration = Field(description="declared maximum acceptable downtime")
    rpo: Duration = Field(description="declared maximum acceptable data loss, as time")
    split_brain: Annotated[int | None, BeforeValidator(_write_count)] = Field(
        default=None, description="most writes the old primary may acknowledge after the new "
                                  "primary was promoted, judged on every population")
    rtt: Duration | None = Field(
        default=None, description="declared maximum time from the fault until the platform "
                                  "is verified and every converge probe met (realistic "
                                  "end-to-end recovery time)")

    def targets(self) -> dict[str, float]:
        """The objectives as numbers, as a run records them (durations in seconds)."""
        out = {"rto": self.rto.total_seconds(), "rpo": self.rpo.total_seconds()}
        if self.rtt is not None:
            out["rtt"] = self.rtt.total_seconds()
        if self.split_brain is not None:
            out["split_brain"] = float(self.split_brain)
        return out


_INVENTORY_VAR = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,99}$")


def _inventory_var(value: str | None) -> str | None:
    if value is not None and not _INVENTORY_VAR.match(value):
        raise ValueError("from_inventory names an inventory variable (letters, digits, "
                         "underscores)")
    return value


InventoryVar = Annotated[str | None, AfterValidator(_inventory_var)]


class SqlEndpoint(Frozen):
    """A libpq DSN: inline, or an inventory variable holding one."""

    dsn: str | None = None
    from_inventory: InventoryVar = Field(default=None,
                                         description="inventory variable with the DSN")
    host: str | None = Field(default=None, description="inventory host to read the variable from")

    @model_validator(mode="after")
    def _exactly_one(self) -> SqlEndpoint:
        if (self.dsn is None) == (self.from_inventory is None):
            raise ValueError("set exactly one of 'dsn' or 'from_inventory'")
        _no_inline_password(self.dsn)
        return self


def _no_inline_password(dsn: str | None) -> None:
    if dsn is not None and re.search(r"(^|\s|[?&])password\s*=", dsn):
        raise ValueError(
            "an inline DSN must not carry a password: keep it in the inventory "
            "(vault) and use 'from_inventory', or in PGPASSWORD / ~/.pgpass"
        )


_PATH = re.compile(r"^/[A-Za-z0-9._~!$&'()*+,;=:@%/-]*$")


class UrlRef(Frozen):
    """An HTTP(S) URL: inline, or an inventory variable holding the base URL plus a path.
    Where clients reach the platform is a connection setting: real deployments keep it in
    the inventory."""

    url: str | None = None
    from_inventory: InventoryVar = Field(default=None,
                                         description="inventory variable with the base URL")
    host: str | None = Field(default=None, description="inventory host to read the variable from")
    path: Annotated[str, matching(_PATH, "path must start with '/' and hold no spaces")] = ""

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, data: Any) -> Any:
        return {"url": data} if isinstance(data, str) else data

    @model_validator(mode="after")
    def _exactly_one(self) -> UrlRef:
        if (self.url is None) == (self.from_inventory is None):
            raise ValueError("set exactly one of 'url' or 'from_inventory'")
        if self.url is not None and not self.url.startswith(("http://", "https://")):
            raise ValueError("'url' must be an http:// or https:// URL")
        if self.url is not None:
            _no_credentials(self.url)
        return self


def _no_credentials(url: str) -> None:
    if "@" in url.split("/")[2]:
        raise ValueError("a URL must not carry credentials: put an Authorization header in "
                         "the inventory's dalp_api_headers (vault)")


def base_url_problem(url: str) -> str | None:
    """Why an inventory's base URL cannot be used (a path is appended to it), or None."""
    if not url.startswith(("http://", "https://")):
        return "is not an http:// or https:// URL"
    if "@" in url.split("/")[2]:
        return "carries credentials (put an Authorization header in dalp_api_headers)"
    if "?" in url or "#" in url:
        return "has a query or fragment (a base URL takes the path appended)"
    return None


class ApiEndpoint(Frozen):
    """The platform's API as the heartbeat's way in (docs/platform-drills.md): each marker a
    ``POST {url}{path}``; read back by ``GET`` through the API, or through SQL on the
    recovered primary (``read_back``), which does not take the API's word for it."""

    from_inventory: InventoryVar = Field(default=None,
                                         description="inventory variable with the base URL")
    url: str | None = None
    host: str | None = Field(default=None, description="inventory host to read variables from")
    path: Annotated[str, matching(_PATH, "path must start with '/' and hold no spaces")] = (
        "/dr/heartbeat")
    read_back: SqlEndpoint | None = Field(
        default=None, description="read the markers back through SQL on the recovered "
                                  "primary (default: GET through the API)")

    def base(self) -> UrlRef:
        return UrlRef(url=self.url, from_inventory=self.from_inventory, host=self.host,
                      path=self.path)

    @model_validator(mode="after")
    def _valid_url(self) -> ApiEndpoint:
        self.base()  # the same rules as any URL
        return self


class Endpoint(Frozen):
    """How clients reach the service: an inline libpq DSN or an inventory variable holding
    one (the database), or the platform's API (``api``)."""

    dsn: str | None = None
    from_inventory: InventoryVar = Field(default=None,
                                         description="inventory variable with the DSN")
    host: str | None = Field(default=None, description="inventory host to read the variable from")
    api: ApiEndpoint | None = Field(default=None, description="the platform's API (HTTP)")

    @model_validator(mode="after")
    def _exactly_one(self) -> Endpoint:
        if sum(x is not None for x in (self.dsn, self.from_inventory, self.api)) != 1:
            raise ValueError("set exactly one of 'dsn', 'from_inventory' or 'api'")
        _no_inline_password(self.dsn)
        return self

    def sql(self) -> SqlEndpoint | None:
        """The SQL way in: this endpoint's DSN, or an API endpoint's SQL read-back."""
        if self.api is not None:
            return self.api.read_back
        return SqlEndpoint(dsn=self.dsn, from_inventory=self.from_inventory, host=self.host)


_TABLE = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
DEFAULT_MARKER_TABLE = "dalp_dr_heartbeat"
SINGLE_POPULATION = "service"


class Population(Frozen):
    """One group of clients with its own way in (hot-hot: each site's users, routed to
    their site first). Each population runs its own heartbeat into its own marker table."""

    endpoint: Endpoint
    marker_table: Annotated[str, matching(
        _TABLE, "marker_table must be a plain lower-case SQL identifier")] = Field(
        default=DEFAULT_MARKER_TABLE,
                              description="table the population's markers go to")
    judged: bool = Field(default=True,
                         description="judge the objectives on this population's figures")
    isolated: bool | None = Field(
        default=None,  # not False: a drill that does not say it keeps its spec hash
        description="the population's clients are cut off together with the old primary (a "
                    "partition drill): verify and the read-back do not expect them to reach "
                    "the recovered primary; they are measured for split brain, never judged "
                    "on RTO or RPO")

    @model_validator(mode="after")
    def _isolated_not_judged(self) -> Population:
        if self.isolated and self.judged:
            raise ValueError("an isolated population cannot be judged on RTO and RPO (its "
                             "clients never reach the recovered primary): add judged: false")
        return self


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
    "dalp_change_freezes", "dalp_api_url", "dalp_api_ca_file", "dalp_api_headers",
    "dalp_api_follow_redirects", "dalp_api_timeout", "dalp_dns_nameservers",
    "dalp_dns_server", "dalp_dns_port", "dalp_dns_zone", "dalp_dns_name", "dalp_dns_ttl",
    "dalp_dns_tsig_name", "dalp_dns_tsig_algorithm", "dalp_dns_tsig_secret",
    "dalp_api_address",
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
    divergence: PhaseSpec | None = Field(
        default=None, description="the divergence probe: after measure and before steady "
                                  "state, reads what the failover lost from the old "
                                  "primary's WAL (publishes dalp_divergence)")
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
    timezone: Annotated[str, AfterValidator(check_zone)] = "UTC"

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


def _read_only_sql(value: str | None) -> str | None:
    if value is not None:
        from dalp_dr.checks import check_query  # checks.py imports this module

        check_query(value)
    return value


ReadOnlySql = Annotated[str | None, AfterValidator(_read_only_sql)]


def _http_url(value: Any) -> Any:
    if isinstance(value, str):
        if not value.startswith(("http://", "https://")):
            raise ValueError("'http' must be an http:// or https:// URL")
        _no_credentials(value)
        return value
    if isinstance(value, dict):
        try:
            return UrlRef.model_validate(value)
        except ValidationError as exc:
            error = exc.errors()[0]
            where = ".".join(str(p) for p in error["loc"])
            raise ValueError((f"{where}: " if where else "") + error["msg"]
                             .removeprefix("Value error, ")) from None
    return value


HttpRef = Annotated[str | UrlRef | None, BeforeValidator(_http_url)]
"""an inline URL (kept as written: a drill's digest does not change), or a UrlRef"""


class VerifyCheck(Frozen):
    """A declarative check run after the verify playbook passed: a read-only SQL query
    through a population's endpoint, or an HTTP GET (status, optionally a JSON field).
    In the SQL, ``$1`` is the fault instant (timestamptz): "started before the fault".

    DALP platform-status semantics: a JSON field whose value is ``no_data`` (or missing)
    never counts as healthy, whatever is expected."""

    name: str
    sql: ReadOnlySql = None
    through: str | None = Field(default=None, description="population (default: the first)")
    http: HttpRef = None
    status: int = 200
    json_field: str | None = Field(default=None, description="dotted path in the JSON body")
    expect: Expect | None = None
    timeout: Duration = timedelta(seconds=10)

    @model_validator(mode="after")
    def _one_kind(self) -> VerifyCheck:
        if (self.sql is None) == (self.http is None):
            raise ValueError("set exactly one of 'sql' or 'http'")
        if self.sql is not None and self.expect is None:
            raise ValueError("an sql check needs 'expect'")
        if self.json_field is not None and self.expect is None:
            raise ValueError("a json_field check needs 'expect'")
        return self


class JsonRpcCall(UrlRef):
    """A JSON-RPC 2.0 call whose result is a number (a hex quantity such as
    ``eth_blockNumber``'s ``"0x1a"`` counts as one)."""

    method: Annotated[str, matching(re.compile(r"^[A-Za-z0-9_.:-]{1,100}$"),
                                    "method must be a JSON-RPC method name")]
    params: list[str | int | float | bool] = []


class Probe(Frozen):
    """Where a value is read: a read-only SQL query through a population, an HTTP GET's JSON
    field, or a JSON-RPC call."""

    sql: ReadOnlySql = None
    through: str | None = Field(default=None, description="population (default: the first)")
    http: HttpRef = None
    json_field: str | None = Field(default=None, description="dotted path in the JSON body")
    jsonrpc: JsonRpcCall | None = None

    @model_validator(mode="after")
    def _one_source(self) -> Probe:
        if sum(x is not None for x in (self.sql, self.http, self.jsonrpc)) != 1:
            raise ValueError("set exactly one of 'sql', 'http' or 'jsonrpc'")
        if self.http is not None and self.json_field is None:
            raise ValueError("an http probe reads a JSON field: set 'json_field'")
        if self.json_field is not None and self.http is None:
            raise ValueError("'json_field' applies to an http probe")
        if self.through is not None and self.sql is None:
            raise ValueError("'through' applies to an sql probe")
        return self


class Near(Probe):
    """A moving reference the probe's value must come within ``within`` of (e.g. the chain
    head an indexer follows)."""

    within: float = Field(ge=0, description="how far below (or above) the reference the "
                                            "value may be")


class ConvergeProbe(Probe):
    """Polled after verify until met or timed out: each a timeline event and a figure; the
    last one met ends the RTT. E.g. "indexer head within 2 blocks of the chain head", "no
    workflow in state running older than 60 s", "the API reports ok"."""

    name: Annotated[str, matching(NAME, "name must be lower-case letters, digits and "
                                        "dashes (max 63)")]
    expect: Expect | None = None
    near: Near | None = None
    timeout: Duration = Field(default=timedelta(minutes=10),
                              description="how long after verify the probe may take")
    interval: Duration = Field(default=timedelta(seconds=1), description="time between polls")

    @model_validator(mode="after")
    def _one_target(self) -> ConvergeProbe:
        if (self.expect is None) == (self.near is None):
            raise ValueError("set exactly one of 'expect' or 'near'")
        if self.interval < timedelta(milliseconds=100):
            raise ValueError("interval must be at least 100ms")
        if self.timeout <= timedelta(0):
            raise ValueError("timeout must be greater than 0s")
        if self.interval > self.timeout:
            raise ValueError("interval must not be longer than timeout")
        return self
