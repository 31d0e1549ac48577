"""``run_drill`` (the use case behind ``drill run``) over the engine harness's fakes: the
harness's drill files, in-memory endpoint and fake playbook runner, recorded in a real
SQLite history (by default the harness's own file, opened for the run as a controller
would)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from dalp_dr.drill.run import RunReport, RunRequest, run_drill
from dalp_dr.history import HistoryStore, open_store
from dalp_dr.redact import Redactor
from dalp_dr.spec import PhaseName, load_drill
from tests.fakes import FakePlaybookRunner, InMemoryEndpoint, Play
from tests.unit.engine.harness import (
    ENVIRONMENT,
    OPERATOR,
    DrillShape,
    EngineHarness,
    failover,
    write_drill,
)


@dataclass
class Said:
    """What a run said: progress lines and warnings."""

    progress: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def has(self, words: str) -> bool:
        return any(words in line for line in self.progress + self.warnings)


def request(harness: EngineHarness, said: Said, *, store_of: EngineHarness | None = None,
            plays: Mapping[PhaseName, Play] | None = None,
            at: Mapping[PhaseName, Callable[[], None]] | None = None,
            runner: FakePlaybookRunner | None = None, environment: str | None = None,
            **fields: Any) -> RunRequest:
    """A request to run the harness's drill against its endpoint (a sudden failover unless
    ``plays`` say otherwise), recorded in ``store_of``'s history (default: the harness's);
    ``at``: hooks run as a phase starts; ``environment``: another than the harness drill's;
    ``fields``: the request's others (lock_wait, evidence)."""
    recorded_in = store_of or harness
    endpoint: InMemoryEndpoint = harness.endpoint
    hooks = dict(at or {})

    def observer(kind: str, body: dict[str, Any]) -> None:
        if kind == "phase.started" and PhaseName(body["phase"]) in hooks:
            hooks[PhaseName(body["phase"])]()

    def open_history() -> HistoryStore:
        return open_store(f"sqlite:///{recorded_in.root / 'history.sqlite'}",
                          results_dir=recorded_in.results)

    def endpoint_for(_dsn: str, _redactor: Redactor, _table: str) -> InMemoryEndpoint:
        return endpoint

    drill = write_drill(harness.root / "drill", DrillShape())
    if environment is not None:
        drill.path.write_text(drill.path.read_text().replace(
            f"environment: {ENVIRONMENT}\n", f"environment: {environment}\n"))
        drill = load_drill(drill.path)
        assert drill.spec.environment == environment
    return RunRequest(
        drill=drill, results_dir=harness.results,
        open_store=open_history, operator=OPERATOR, cancel=harness.cancel,
        progress=said.progress.append, warn=said.warnings.append, observer=observer,
        runner=runner or FakePlaybookRunner(plays if plays is not None
                                            else failover(endpoint)),
        endpoint_factory=endpoint_for, notify_targets=(), **fields)


def run(harness: EngineHarness, said: Said, **options: Any) -> RunReport:
    return run_drill(request(harness, said, **options))
