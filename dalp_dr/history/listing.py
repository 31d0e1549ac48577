"""``history list``'s page: the runs a filter selects (the store's query does the
selecting), each held against its seal, with its RTO and RPO verdicts and margins as sealed,
and how many runs the filter selects in all (so a page can say it hides some)."""

from __future__ import annotations

from pydantic import BaseModel

from dalp_dr.history.base import HistoryStore, RunFilter, RunSummary
from dalp_dr.history.views import check_rows
from dalp_dr.results import ObjectiveVerdict, RunResult, Status

_WORST = {Status.MISSED: 0, Status.UNKNOWN: 1, Status.MET: 2}


class ListedRun(RunSummary, frozen=True):
    """A listed run: its summary and its recovery-time (RTO) and data-loss (RPO) verdicts;
    None where the run has none (in progress, not measured, or its record was tampered)."""

    rto_verdict: Status | None = None
    rto_margin: float | None = None
    """seconds of headroom (negative: by how much it was missed)"""
    rpo_verdict: Status | None = None
    rpo_margin: float | None = None


class RunPage(BaseModel, frozen=True):
    runs: tuple[ListedRun, ...]
    total: int
    """how many runs the filter selects, shown or not"""

    @property
    def hidden(self) -> int:
        return max(self.total - len(self.runs), 0)


def objective_verdict(result: RunResult, objective: str) -> tuple[Status | None, float | None]:
    """The run's verdict on one objective: the drill's own, else (a drill of several client
    populations) the worst population's, with the smallest margin."""
    verdicts = [v for v in result.verdicts if v.objective == objective]
    if not verdicts:
        return None, None
    whole = next((v for v in verdicts if v.population is None), None)
    if whole is not None:
        return whole.status, whole.margin
    worst: ObjectiveVerdict = min(verdicts, key=lambda v: _WORST[v.status])
    margins = [v.margin for v in verdicts if v.margin is not None]
    return worst.status, (min(margins) if margins else None)


def list_page(store: HistoryStore, where: RunFilter, limit: int) -> RunPage:
    """The newest ``limit`` runs ``where`` selects, checked against their seals."""
    rows = store.list_runs(where=where, limit=limit)
    listed: list[ListedRun] = []
    for row, record_json in check_rows(store, rows):
        figures: dict[str, object] = {}
        if record_json is not None:
            record = RunResult.model_validate_json(record_json)
            for objective in ("rto", "rpo"):
                status, margin = objective_verdict(record, objective)
                figures[f"{objective}_verdict"] = status
                figures[f"{objective}_margin"] = margin
        listed.append(ListedRun.model_validate({**row.model_dump(), **figures}))
    total = len(rows) if len(rows) < limit else store.count_runs(where)
    return RunPage(runs=tuple(listed), total=max(total, len(listed)))
