"""Crash recovery: a run whose orchestrator died (SIGKILL, host reboot) is found, its
environment put back, and the run recorded ``aborted`` with everything it had written.

A run is *interrupted* when the history shows it ``running`` but nobody holds its
environment's drill lock for it any more (its holder renewed the lease until it died; the
lease then expired); one whose lock a crash recovery of it holds is being recovered, not
interrupted (``dalp_dr.locks.running_runs``). The next dalp-dr process that opens the
history (``drill run``, the scheduler) recovers it: it takes the environment's lock, reads
the run's journal (written as it happened) for the phases it finished and the one it died
in, runs the drill's steady-state playbook when a fault may have been injected, and records
the run as ``aborted`` with the phase it died in. When that cannot be automatic (the drill
file is gone or no longer loads), it says which command does it:
``dalp-dr drill recover RUN_ID``.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from dalp_dr.adapters.base import PlaybookRunner
from dalp_dr.clock import utcnow
from dalp_dr.drill.engine import DrillEngine
from dalp_dr.drill.steps import handed_on
from dalp_dr.errors import EnvironmentBusy, HintKey, InvalidInput, StoreError, words
from dalp_dr.history.base import HistoryStore
from dalp_dr.integrity import evidence_location
from dalp_dr.inventory import Inventory
from dalp_dr.journal import EventKind, Journal, read_journal
from dalp_dr.kept import kept_result
from dalp_dr.locks import (
    RunState,
    lock_environment,
    process_label,
    recovery_holder,
    running_runs,
)
from dalp_dr.redact import Redactor
from dalp_dr.render import summary_text
from dalp_dr.results import Outcome, PhaseRecord, RunResult
from dalp_dr.spec import PhaseName, load_drill


class Recovery(BaseModel, frozen=True):
    run_id: str
    drill: str
    died_in: str | None
    steady_state_restored: bool | None
    message: str
    recorded: bool


def interrupted_runs(store: HistoryStore, now: datetime | None = None) -> list[str]:
    """Runs recorded as running whose drill lock is held neither for them nor for their
    crash recovery any more."""
    return [r.run.run_id for r in running_runs(store, now)
            if r.state is RunState.INTERRUPTED]


def _facts(phases: list[PhaseRecord]) -> dict[str, Any]:
    facts: dict[str, Any] = {}
    for phase in phases:
        facts.update(handed_on(phase.report))
    return facts


def recover(store: HistoryStore, run_id: str, runner: PlaybookRunner, *,
            progress: Callable[[str], None], lock_ttl: float = 60.0,
            force: bool = False) -> Recovery:
    """Recover one interrupted run. Raises EnvironmentBusy when another live run holds the
    environment (try again later) and InvalidInput when the run is not interrupted."""
    base = store.get(run_id)
    if base.outcome is not Outcome.RUNNING:
        raise InvalidInput(f"run {base.run_id} is {base.outcome.value}, nothing to recover",
                           field="RUN_ID")
    if not force:
        found = next((r for r in running_runs(store) if r.run.run_id == base.run_id), None)
        if found is not None and found.state is RunState.RECOVERING and found.lease:
            raise InvalidInput(f"run {base.run_id} is being recovered: {found.lease.info} "
                               f"holds the lock of environment '{base.environment}'",
                               field="RUN_ID", hint="wait for that recovery to end")
        if found is None or found.state is not RunState.INTERRUPTED:
            raise InvalidInput(f"run {base.run_id} is still alive (it holds the lock of "
                               f"environment '{base.environment}')", field="RUN_ID",
                               hint="wait for it to end, or for its lease to expire if it died")
    evidence = evidence_location(base.evidence_dir, store.results_dir) or \
        Path(base.evidence_dir)
    records = read_journal(evidence)
    finished = [PhaseRecord.model_validate({k: v for k, v in r.items()
                                            if k not in ("seq", "at", "run_id", "kind")})
                for r in records if r.get("kind") == EventKind.PHASE_FINISHED]
    started = [str(r.get("phase")) for r in records if r.get("kind") == EventKind.PHASE_STARTED]
    done = [p.phase.value for p in finished]
    open_phases = [p for p in started if p not in done]
    died_in = open_phases[-1] if open_phases else (started[-1] if started else None)
    injected = PhaseName.INJECT.value in started
    lock = lock_environment(store, base.environment, holder=recovery_holder(base.run_id),
                            info=f"crash recovery of run {base.run_id} on {process_label()}",
                            ttl=lock_ttl, on_problem=progress,
                            # forced: the operator says the run's process is dead
                            replacing=base.run_id if force else None)
    try:
        kept = kept_result(evidence, base, records, store.observer)
        if isinstance(kept, RunResult):  # the run ended; only its record is missing
            late = (f"recorded late (crash recovery on {process_label()}): the history store "
                    "did not take the result when the run ended")
            result = kept.model_copy(update={
                "message": (kept.message + "; " if kept.message else "") + late})
            store.finish(result)
            progress(f"run {base.run_id}: recorded {result.outcome.value} from the result it "
                     "kept (the history store did not take it when the run ended)")
            return Recovery(run_id=base.run_id, drill=base.drill, died_in=None,
                            steady_state_restored=result.steady_state_restored,
                            message=result.message or late, recorded=True)
        if kept is not None:
            progress(f"run {base.run_id}: its kept result is set aside ({kept}); it is "
                     "recorded by its journal")
        phases = list(finished)
        restored: bool | None = None
        how = "no fault had been injected: nothing to restore"
        if injected:
            try:
                loaded = load_drill(base.drill_file or "")
                inventory = Inventory(loaded.inventory)
            except InvalidInput as exc:
                message = (f"the orchestrator died during phase {died_in}; steady state NOT "
                           f"restored: the drill cannot be loaded ({exc}). Fix it, then run "
                           + words(HintKey.DRILL_RECOVER, run_id=base.run_id))
                progress(message)
                return Recovery(run_id=base.run_id, drill=base.drill, died_in=died_in,
                                steady_state_restored=None, message=message, recorded=False)
            journal = Journal.resume(evidence, base.run_id, Redactor(inventory.secret_values()))
            try:
                journal.record(EventKind.RUN_RECOVERING, died_in=died_in, by=process_label())
                progress(f"run {base.run_id} ({base.drill}) died during phase {died_in}: "
                         "restoring steady state")
                engine = DrillEngine(runner=runner, results_dir=evidence.parent,
                                     progress=progress, lock_ttl=lock_ttl)
                phase, restored = engine.restore_after_crash(loaded, journal, _facts(finished))
                if phase is not None:
                    phases.append(phase)
                how = "steady state restored" if restored else \
                    "return to steady state FAILED: the environment needs attention"
            finally:
                journal.close()
        else:
            journal = None
        message = (f"aborted: the orchestrator died during phase {died_in or 'start-up'}; "
                   f"{how} (crash recovery on {process_label()})")
        result = base.model_copy(update={
            "outcome": Outcome.ABORTED, "ended_at": utcnow(), "phases": phases,
            "steady_state_restored": restored, "message": message})
        _write(evidence, result, progress)
        store.finish(result)
        progress(f"run {base.run_id}: recorded aborted ({how})")
        return Recovery(run_id=base.run_id, drill=base.drill, died_in=died_in,
                        steady_state_restored=restored, message=message, recorded=True)
    finally:
        lock.release()


def _write(evidence: Path, result: RunResult, progress: Callable[[str], None]) -> None:
    """The recovered run's result.json and summary.txt. A failure writing them (a full disk,
    a rendering bug) is said, never raised: the run is recorded regardless."""
    from dalp_dr.private_files import atomic_write

    if not evidence.is_dir():
        return
    documents: list[tuple[str, Callable[[], str]]] = [
        ("result.json", lambda: result.model_dump_json(indent=2)),
        ("summary.txt", lambda: summary_text(result))]
    for name, render in documents:
        try:
            atomic_write(evidence / name, render())
        except Exception as exc:
            progress(f"warning: run {result.run_id}: {name} not written "
                     f"({type(exc).__name__}); the run is recorded regardless")


def recover_all(store: HistoryStore, runner: PlaybookRunner, *,
                progress: Callable[[str], None], lock_ttl: float = 60.0,
                environment: str | None = None) -> list[Recovery]:
    """Recover every interrupted run this process can (busy environments are left for
    later, with a note). With ``environment``, only that environment's runs are recovered;
    the others are named with the command that recovers them."""
    done = []
    for run_id in interrupted_runs(store):
        if environment is not None:
            other = store.get(run_id)
            if other.environment != environment:
                progress(f"note: run {run_id} ({other.drill}, environment "
                         f"{other.environment}) was interrupted; "
                         + words(HintKey.DRILL_RECOVER, run_id=run_id)
                         + " or the scheduler restores its environment")
                continue
        try:
            done.append(recover(store, run_id, runner, progress=progress, lock_ttl=lock_ttl))
        except EnvironmentBusy as exc:
            progress(f"interrupted run {run_id} not recovered yet: {exc}")
        except (InvalidInput, StoreError) as exc:
            progress(f"interrupted run {run_id} not recovered: {exc}")
    return done
