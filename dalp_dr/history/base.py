"""The history store contract. SQLite (embedded, default) and PostgreSQL implement it."""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from pydantic import BaseModel, ConfigDict

from dalp_dr.results import Outcome, RunResult


class RunSummary(BaseModel):
    model_config = ConfigDict(frozen=True)

    run_id: str
    drill: str
    topology: str
    environment: str
    trigger: str
    operator: str
    started_at: datetime
    ended_at: datetime | None
    outcome: Outcome
    recovery_time: float | None
    data_loss_window: float | None
    evidence_dir: str


class HistoryStore(Protocol):
    """Durable record of every drill run.

    Contract: ``begin`` is called before any fault, with outcome RUNNING, so a run that dies
    halfway is still on record; ``finish`` replaces it with the final result once. Reads
    never return secrets because nothing written here contains them (callers redact).
    Every failure raises StoreError. Opening a store creates or migrates its schema (one
    process at a time) and refuses a schema newer than this dalp-dr.
    """

    def describe(self) -> str:
        """Where the store is and its schema version, without credentials."""
        ...

    def begin(self, result: RunResult, spec_json: str) -> None: ...

    def finish(self, result: RunResult) -> None: ...

    def list_runs(self, *, drill: str | None = None, limit: int = 50) -> list[RunSummary]: ...

    def get(self, run_id: str) -> RunResult:
        """Exact id or a unique prefix; raises UnknownRun."""
        ...

    def spec_snapshot(self, run_id: str) -> str: ...

    def close(self) -> None: ...
