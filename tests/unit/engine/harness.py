"""Runs real drill files through the drill engine with the fakes of ``tests/fakes.py``: a real
SQLite history store and real evidence in ``tmp_path``, an in-memory endpoint and a fake
playbook runner. The engine class itself comes from this package's conftest (one import).

Phase hooks run when the engine journals ``phase.started`` for a phase (the engine's
``observer`` seam): that is how a test asks for a cancel, or breaks the endpoint, *during* a
phase, including the ones without a playbook (baseline, measure).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any, Protocol, cast

from dalp_dr.adapters.base import PlaybookRunner, ServiceEndpoint
from dalp_dr.cancel import CancelToken
from dalp_dr.errors import GuardrailRefused, ResultNotRecorded
from dalp_dr.history import HistoryStore, open_store
from dalp_dr.journal import Observer
from dalp_dr.redact import Redactor
from dalp_dr.reserve import LOCAL_DISKS, Disks
from dalp_dr.results import ObjectiveVerdict, PhaseRecord, RunResult, Trigger
from dalp_dr.spec import LoadedDrill, PhaseName, load_drill
from tests.fakes import FakePlaybookRunner, InMemoryEndpoint, Play, StoreThatCannotFinish

SECRET = "Sesame-7f3a9c-open"
"""the inventory's application password (a secret-named variable): redacted by value"""

OPERATOR = "engine-test"
HELD_PLAYBOOK = """- name: recover
  hosts: all
  vars: {dalp_waits_for_fault: true}
  tasks: []
"""
"""a recover playbook whose first play says it waits for the fault (the fake runner plays
its barrier task: it runs the dalp_fault_barrier command)"""
ENVIRONMENT = "engine-test"
OLD_PRIMARY_TABLE = "dalp_dr_heartbeat_a"
"""the marker table of a partitioned drill's population that writes to the old primary"""


class Engine(Protocol):
    """What the tests use of the drill engine: its public API."""

    def prepare(self, drill: LoadedDrill) -> Any: ...

    def run(self, prepared: Any, *, store: HistoryStore, trigger: Trigger = ...,
            operator: str | None = ..., cancel: CancelToken | None = ...,
            planned_at: datetime | None = ..., confirm: str | None = ...) -> RunResult: ...


class EngineFactory(Protocol):
    def __call__(self, *, runner: PlaybookRunner, results_dir: Path,
                 endpoint_factory: Callable[[str, Redactor, str], ServiceEndpoint],
                 observer: Observer, summarize: Callable[[RunResult], str],
                 disks: Disks) -> Engine: ...


def brief_summary(result: RunResult) -> str:
    """summary.txt in one line: the real rendering (rich tables) is a tenth of a run's
    time, and what it shows is not the engine's behaviour (``test_redaction`` uses it)."""
    return f"{result.run_id} {result.outcome.value}: {result.message or ''}\n"


@dataclass(frozen=True)
class DrillShape:
    """The drill file a test runs: tiny heartbeat and baseline (the spec's minimum interval
    is 10ms), observe 0s, every phase declared."""

    rto: str = "30s"
    rpo: str = "5s"
    topology: str = "hot-warm"
    scenario: str = "failover"
    deadline: str | None = None
    baseline_playbook: bool = False
    recover: bool = True
    timeout: str = "5s"
    observe: str = "0s"
    production: bool = False
    frozen: bool = False
    """the inventory declares a change freeze around now"""
    held_recover: bool = False
    """the recover playbook waits for the fault (started ahead, held at the barrier)"""
    split_brain: int | None = None
    """the split_brain objective (most split-brain writes), when declared"""
    rtt: str | None = None
    """the rtt objective, when declared"""
    converge: str | None = None
    """the drill's ``converge:`` list, in YAML flow style"""
    checks: str | None = None
    """the drill's ``checks:`` list, in YAML flow style"""
    divergence: bool = False
    """the drill has a divergence probe phase (its playbook: divergence.yml)"""
    partitioned: bool = False
    """two client populations: ``clients`` (judged, through the route: the harness's
    ``endpoint``) and ``site-a`` (not judged, straight to the old primary: its
    ``old_primary``, cut off with it)"""


def _drill_yaml(shape: DrillShape) -> str:
    phases = ["preflight", *(["baseline"] if shape.baseline_playbook else []), "inject",
              *(["recover"] if shape.recover else []), "verify",
              *(["divergence"] if shape.divergence else []), "steady_state"]
    lines = [
        "name: engine-test",
        f"topology: {shape.topology}",
        f"scenario: {shape.scenario}",
        f"environment: {ENVIRONMENT}",
        "owner: sre",
        f"objectives: {{rto: {shape.rto}, rpo: {shape.rpo}"
        + (f", split_brain: {shape.split_brain}" if shape.split_brain is not None else "")
        + (f", rtt: {shape.rtt}" if shape.rtt is not None else "") + "}",
        *([f"converge: {shape.converge}"] if shape.converge else []),
        *([f"checks: {shape.checks}"] if shape.checks else []),
        "inventory: inventory.yml",
        *(["populations:",
           "  clients: {endpoint: {dsn: 'host=in-memory dbname=app'}}",
           f"  site-a: {{endpoint: {{dsn: 'host=in-memory dbname=app'}}, "
           f"marker_table: {OLD_PRIMARY_TABLE}, judged: false, isolated: true}}"]
          if shape.partitioned else ["endpoint: {dsn: 'host=in-memory dbname=app'}"]),
        "workload: {heartbeat_interval: 10ms, baseline: 50ms, "
        f"observe: {shape.observe}}}",
        *([f"deadline: {shape.deadline}"] if shape.deadline else []),
        "phases:",
        *(f"  {p}: {{playbook: {p}.yml, timeout: {shape.timeout}}}" for p in phases),
    ]
    return "\n".join(lines) + "\n"


def _inventory_yaml(shape: DrillShape) -> str:
    lines = ["all:", "  vars:", f"    dalp_app_password: {SECRET}"]
    if shape.production:
        lines.append("    dalp_production: true")
    if shape.frozen:
        lines += ["    dalp_change_freezes:",
                  "      - {from: '2000-01-01T00:00:00Z', to: '2999-01-01T00:00:00Z',"
                  " reason: engine test freeze}"]
    lines += ["  hosts:", "    db1: {}"]
    return "\n".join(lines) + "\n"


def write_drill(root: Path, shape: DrillShape) -> LoadedDrill:
    """A drill file, its inventory and empty playbook files under ``root``, loaded."""
    root.mkdir(parents=True, exist_ok=True)
    for phase in PhaseName:
        (root / f"{phase.value}.yml").write_text("")
    if shape.held_recover:
        (root / "recover.yml").write_text(HELD_PLAYBOOK)
    (root / "inventory.yml").write_text(_inventory_yaml(shape))
    drill = root / "drill.yaml"
    drill.write_text(_drill_yaml(shape))
    return load_drill(drill)


def promoting(endpoint: InMemoryEndpoint, *, advance_timeline: bool = True,
              clock_ahead: float = 0.0, then: Callable[[], None] | None = None) -> Play:
    """A recover playbook that promotes the standby behind ``endpoint`` (the route reaches
    it; timeline + 1 unless told otherwise) and reports the instant on the recovery
    timeline, as the hot-warm recover playbook does ("new primary promoted"), by a clock
    ``clock_ahead`` seconds ahead of the controller's; ``then`` runs after it."""
    report: dict[str, Any] = {}  # published after its effect ran: the instant is known

    def promote() -> None:
        report["dalp_timeline"] = [{"event": "new primary promoted",
                                    "at": datetime.now(UTC).timestamp() + clock_ahead,
                                    "source": "pg_ctl"}]
        endpoint.recover(advance_timeline=advance_timeline)
        if then is not None:
            then()

    return Play(effect=promote, report=report)


def failover(endpoint: InMemoryEndpoint, *, lose_last: int = 0,
             down_for: float = 0.0) -> dict[PhaseName, Play]:
    """A sudden primary loss: inject loses the server (and the last ``lose_last``
    acknowledged writes) and reports the fault instant, the service stays down ``down_for``
    seconds more while inject runs, recover promotes the standby (timeline + 1)."""
    return {
        PhaseName.INJECT: Play(effect=partial(endpoint.fail, lose_last=lose_last),
                               reports_fault_instant=True, takes=down_for),
        PhaseName.RECOVER: Play(effect=endpoint.recover),
    }


@dataclass(frozen=True)
class Run:
    """One finished run: what the engine returned, what the store kept, what ran."""

    result: RunResult
    stored: RunResult
    runner: FakePlaybookRunner
    evidence: Path

    def phase(self, name: PhaseName) -> PhaseRecord:
        found = [p for p in self.result.phases if p.phase is name]
        assert found, f"no {name} phase in {[p.phase.value for p in self.result.phases]}"
        return found[-1]

    def verdict(self, objective: str) -> ObjectiveVerdict:
        (found,) = [v for v in self.result.verdicts if v.objective == objective]
        return found

    def journal_kinds(self) -> list[str]:
        files = sorted((self.evidence / "journal").glob("*.json"))
        return [json.loads(f.read_text())["kind"] for f in files]


@dataclass(frozen=True)
class Refusal:
    error: GuardrailRefused
    stored: RunResult
    runner: FakePlaybookRunner


@dataclass
class EngineHarness:
    root: Path
    make_engine: EngineFactory
    summarize: Callable[[RunResult], str] = brief_summary
    endpoint: InMemoryEndpoint = field(default_factory=InMemoryEndpoint)
    old_primary: InMemoryEndpoint = field(default_factory=InMemoryEndpoint)
    """what the population of a partitioned drill (``site-a``) writes to"""
    cancel: CancelToken = field(default_factory=CancelToken)
    disks: Disks = LOCAL_DISKS
    """where the engine reads free space (``tests.fakes.FakeDisks``: filesystems set full)"""

    def __post_init__(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self.results = self.root / "results"
        self.store = open_store(f"sqlite:///{self.root / 'history.sqlite'}",
                                results_dir=self.results)

    def close(self) -> None:
        self.store.close()

    def interrupt(self) -> None:
        """What the CLI's signal handler does."""
        self.cancel.request("SIGINT")

    def _engine(self, runner: FakePlaybookRunner,
                at: Mapping[PhaseName, Callable[[], None]]) -> Engine:
        def observer(kind: str, body: dict[str, Any]) -> None:
            if kind == "phase.started":
                hook = at.get(PhaseName(body["phase"]))
                if hook is not None:
                    hook()

        return self.make_engine(runner=runner, results_dir=self.results,
                                endpoint_factory=self._endpoint_for,
                                observer=observer, summarize=self.summarize,
                                disks=self.disks)

    def _endpoint_for(self, _dsn: str, _redactor: Redactor, table: str) -> InMemoryEndpoint:
        return self.old_primary if table == OLD_PRIMARY_TABLE else self.endpoint

    def run(self, plays: Mapping[PhaseName, Play] | None = None,
            shape: DrillShape = DrillShape(), *,
            at: Mapping[PhaseName, Callable[[], None]] | None = None,
            store: HistoryStore | None = None, clocks: Mapping[str, float] | None = None
            ) -> Run:
        """Run the drill of ``shape`` with ``plays``; ``at`` hooks run as a phase starts;
        ``store``: what the engine records in instead of the harness's own store;
        ``clocks``: the targets' clocks (host -> seconds ahead, FakePlaybookRunner)."""
        runner = FakePlaybookRunner(plays, clocks)
        engine = self._engine(runner, at or {})
        prepared = engine.prepare(write_drill(self.root / "drill", shape))
        result = engine.run(prepared, store=store or self.store, trigger=Trigger.CLI,
                            operator=OPERATOR, cancel=self.cancel)
        return Run(result=result, stored=self.store.get(result.run_id), runner=runner,
                   evidence=Path(result.evidence_dir))

    def unrecorded(self, plays: Mapping[PhaseName, Play],
                   store: HistoryStore | None = None) -> RunResult:
        """Run ``plays`` recording in ``store`` (default the harness's) through a store that
        does not take the result; the result the run kept (ResultNotRecorded)."""
        try:
            self.run(plays, store=cast(HistoryStore,
                                       StoreThatCannotFinish(store or self.store)))
        except ResultNotRecorded as exc:
            kept: RunResult = exc.result
            return kept
        raise AssertionError("the store took the result")

    def refused(self, shape: DrillShape, trigger: Trigger) -> Refusal:
        """Run a drill a guardrail refuses; what it raised and what the store kept."""
        runner = FakePlaybookRunner()
        engine = self._engine(runner, {})
        prepared = engine.prepare(write_drill(self.root / "drill", shape))
        try:
            engine.run(prepared, store=self.store, trigger=trigger, operator=OPERATOR,
                       cancel=self.cancel)
        except GuardrailRefused as exc:
            (row,) = self.store.list_runs()
            return Refusal(error=exc, stored=self.store.get(row.run_id), runner=runner)
        raise AssertionError("the guardrail did not refuse the run")


NewHarness = Callable[..., EngineHarness]
"""the ``new_harness`` fixture: a fresh EngineHarness (keyword arguments: its fields)"""
