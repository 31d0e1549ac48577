"""The drill engine: one run of one prepared drill, evidence as it happens, the environment's
lock held, steady state restored whenever a fault was injected, the run always recorded.

* Before anything is recorded, every endpoint must answer (``prepare``: TargetUnreachable).
* A guardrail refusal is recorded (``refused``) and raised; a busy environment raises
  EnvironmentBusy with nothing written.
* What the run needs free (``reserve.py``) is measured from past runs before it writes
  anything; preflight checks it first.
* The phases are ``phases.py``; the record is ``outcome.py``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Any

from dalp_dr import guardrails, private_files
from dalp_dr.adapters.base import PlaybookRunner
from dalp_dr.adapters.dns import Resolution
from dalp_dr.adapters.http import ApiEndpoint
from dalp_dr.adapters.postgres import PostgresEndpoint
from dalp_dr.cancel import CancelToken, RunCancelled
from dalp_dr.clock import SYSTEM_CLOCK, Clock, RunClock
from dalp_dr.drill import outcome, phases
from dalp_dr.drill.context import (
    DEADLINE,
    Clients,
    PreparedDrill,
    Progress,
    RunContext,
    RunState,
)
from dalp_dr.drill.outcome import RunHead, new_record, new_run_id, not_started, redacted
from dalp_dr.drill.prepare import EndpointFactory, prepare
from dalp_dr.errors import (
    EnvironmentNeedsRecovery,
    GuardrailRefused,
    ResultNotRecorded,
    StoreError,
)
from dalp_dr.heartbeat import Heartbeat
from dalp_dr.history import HistoryStore
from dalp_dr.history.base import record_final
from dalp_dr.journal import EventKind, Journal, Observer
from dalp_dr.kept import vouch_for
from dalp_dr.locks import (
    DEFAULT_LOCK_TTL,
    handed_over,
    lock_environment,
    process_label,
    running_runs,
)
from dalp_dr.provenance import OperatorSource, Provenance, operator_and_source, run_provenance
from dalp_dr.render import summary_text
from dalp_dr.reserve import LOCAL_DISKS, Disks, Need, run_needs
from dalp_dr.results import Outcome, PhaseRecord, RunResult, Trigger
from dalp_dr.spec import LoadedDrill


@dataclass(frozen=True)
class DrillRun:
    """A run's record and what the record alone does not type."""

    result: RunResult
    unreachable_hosts: tuple[str, ...] = ()
    """hosts preflight could not reach: the drill proved nothing (invalid input, not a miss)"""


def _resolved(journal: Journal, population: str | None, resolution: Resolution) -> None:
    journal.record(EventKind.NAME_RESOLVED, population=population,
                   **resolution.model_dump(mode="json"))


class DrillEngine:
    def __init__(self, *, runner: PlaybookRunner, results_dir: Path,
                 endpoint_factory: EndpointFactory = PostgresEndpoint,
                 progress: Progress | None = None,
                 lock_ttl: float = DEFAULT_LOCK_TTL,
                 observer: Observer | None = None,
                 summarize: Callable[[RunResult], str] = summary_text,
                 clock: Clock | None = None, disks: Disks = LOCAL_DISKS,
                 lock_wait: float = 0.0) -> None:
        """``summarize`` renders the run's summary.txt (a seam: tests give one that fails,
        to show a failing rendering never keeps a run from being recorded); ``disks`` reads
        free space (a seam: tests give filesystems that are full); ``clock``: what every run
        measures on (by default each run's own ``RunClock``: monotonic from its start);
        ``lock_wait``: seconds a run waits for its environment's lock while another run
        holds it (0: EnvironmentBusy at once)."""
        self._runner = runner
        self._lock_wait = lock_wait
        self._summarize = summarize
        self._observer = observer
        self._lock_ttl = lock_ttl
        self._results_dir = results_dir
        self._endpoint_factory = endpoint_factory
        self._progress = progress or (lambda _msg: None)
        self._given_clock = clock
        self._disks = disks

    @property
    def _clock(self) -> Clock:
        """Outside a run (crash recovery's steady state): the given clock or the wall's."""
        return self._given_clock or SYSTEM_CLOCK

    def prepare(self, drill: LoadedDrill, *, connect: bool = True) -> PreparedDrill:
        """See ``prepare.prepare``: raises before anything is written."""
        return prepare(drill, self._endpoint_factory, connect=connect)

    def run(self, prepared: PreparedDrill, *, store: HistoryStore,
            trigger: Trigger = Trigger.CLI, operator: str | None = None,
            cancel: CancelToken | None = None,
            planned_at: datetime | None = None, confirm: str | None = None) -> RunResult:
        """Run the drill (see ``execute``); its record."""
        return self.execute(prepared, store=store, trigger=trigger, operator=operator,
                            cancel=cancel, planned_at=planned_at, confirm=confirm).result

    def execute(self, prepared: PreparedDrill, *, store: HistoryStore,
                trigger: Trigger = Trigger.CLI, operator: str | None = None,
                cancel: CancelToken | None = None,
                planned_at: datetime | None = None, confirm: str | None = None,
                lock_wait: float | None = None) -> DrillRun:
        """Run the drill. An interrupt is requested through ``cancel``: the running playbook
        is stopped, steady state restored if a fault was injected, outcome ``aborted``.

        The environment's drill lock is taken first (EnvironmentBusy, with nothing written,
        when another run holds it) and held, renewed, until the run is recorded.
        ``lock_wait``: seconds to wait for it (default: the engine's). A lock got after
        waiting from a holder that died leaves that run's fault in place:
        EnvironmentNeedsRecovery, the lock released, nothing written."""
        spec = prepared.drill.spec
        clock = self._given_clock or RunClock()
        if trigger is Trigger.SCHEDULE:
            who, source = operator or "scheduler", OperatorSource.SCHEDULER
        else:  # --operator, DALP_DR_OPERATOR, SUDO_USER, the OS user
            who, source = operator_and_source(operator)
        provenance = run_provenance(prepared.drill, who, source)  # once, before anything runs
        # the run starts just before it takes the lock (the provenance's hashing done): a
        # run that finds the lock free never starts before the previous holder ended
        started = clock.now()
        run_id = new_run_id(started)
        self._refuse(prepared, store, run_id, trigger, who, started, planned_at, provenance,
                     confirm)
        lock = lock_environment(
            store, spec.environment, holder=run_id, info=self._lock_info(spec.name, run_id,
                                                                         trigger, who),
            ttl=self._lock_ttl, on_problem=self._progress,
            wait=self._lock_wait if lock_wait is None else lock_wait,
            cancel=cancel, waiting=self._progress)
        try:
            # with the lock held, a run still recorded as running here is one whose holder
            # died (its lease expired while this run waited, or since the recovery this run
            # made before): never a drill on top of its fault
            dead = tuple(r.run.run_id for r in running_runs(store)
                         if r.run.environment == spec.environment)
            if dead:
                raise EnvironmentNeedsRecovery(
                    f"environment '{spec.environment}': run(s) {', '.join(dead)} ended "
                    "without being recorded (their holder died before this run took the "
                    "lock): they are recovered first", run_ids=dead)
            if lock.waited:  # the run starts now that it has the lock, under a name of now
                started = clock.now()
                run_id = new_run_id(started)
                lock = handed_over(lock, run_id, self._lock_info(spec.name, run_id, trigger,
                                                                 who))
                self._refuse(prepared, store, run_id, trigger, who, started, planned_at,
                             provenance, confirm)  # a freeze may have begun meanwhile
            return self._run_locked(prepared, store, trigger, who, cancel, planned_at,
                                    run_id, started, provenance, clock)
        finally:
            lock.release()

    @staticmethod
    def _lock_info(drill: str, run_id: str, trigger: Trigger, who: str) -> str:
        return f"drill {drill} run {run_id} ({trigger.value}) by {who} on {process_label()}"

    @staticmethod
    def _refuse(prepared: PreparedDrill, store: HistoryStore, run_id: str, trigger: Trigger,
                who: str, started: datetime, planned_at: datetime | None,
                provenance: Provenance, confirm: str | None) -> None:
        """A production guardrail's refusal, recorded (``refused``) and raised."""
        reason = guardrails.refusal(prepared.inventory, prepared.drill.spec.name, trigger,
                                    confirm, started)
        if reason is None:
            return
        record_final(store, redacted(not_started(
            prepared.drill, run_id, trigger, who, started, Outcome.REFUSED,
            f"refused: {reason}", planned_at, provenance), prepared.redactor))
        raise GuardrailRefused(reason, source=str(prepared.drill.path),
                               hint=f"recorded as run {run_id} (refused)")

    def _run_locked(self, prepared: PreparedDrill, store: HistoryStore, trigger: Trigger,
                    who: str, cancel: CancelToken | None, planned_at: datetime | None,
                    run_id: str, started: datetime, provenance: Provenance,
                    clock: Clock) -> DrillRun:
        drill, redactor = prepared.drill, prepared.redactor
        spec = drill.spec
        private_files.make_dir(self._results_dir)
        # measured before this run writes anything; checked first thing in preflight
        needs = run_needs(store, spec.topology.value, self._results_dir)
        evidence = self._results_dir / run_id
        journal = Journal(evidence, run_id, redactor, observer=self._observer)
        base = new_record(RunHead.of(drill), run_id=run_id, trigger=trigger, operator=who,
                          started_at=started, outcome=Outcome.RUNNING,
                          planned_at=planned_at, provenance=provenance,
                          evidence_dir=str(evidence), drill_file=str(drill.path.resolve()))
        spec_json = redactor.text(spec.model_dump_json(indent=2, exclude_none=True))
        journal.write_document("spec.json", spec_json)
        store.begin(base, spec_json)
        shown = ", ".join(f"{name} via {e.display}" if len(prepared.endpoints) > 1
                          else e.display for name, e in prepared.endpoints.items())
        journal.record(EventKind.RUN_STARTED, drill=spec.name, spec_hash=drill.spec_hash,
                       endpoint=shown, trigger=trigger.value, operator=who)
        self._progress(f"run {run_id}: {spec.name} ({spec.topology}/{spec.scenario}) "
                       f"via {shown}")
        ctx = self._context(prepared, journal, RunState(cancel=cancel or CancelToken()), needs,
                            clock)
        interrupted = False
        try:
            phases.drive(ctx)
            ctx.state.check()
        except RunCancelled:
            interrupted = self._interrupted(ctx)
        finally:
            ctx.state.stop_deadline()
            ctx.clients.stop()
            if ctx.state.injected:
                phases.steady_state(ctx)
            else:
                phases.skip_steady_state(ctx)
            journal.close()
            problem = journal.problem
            if problem is not None and ctx.state.injected:  # a run without its evidence
                ctx.state.add_problem(problem)               # proves nothing: not passed
                self._progress(f"warning: {problem}")
        try:
            result = self._record(ctx, base, store, interrupted=interrupted)
        except (ResultNotRecorded, StoreError):
            raise
        except Exception as exc:  # a bug computing the result: the run is still recorded
            self._record_anyway(ctx, base, store, exc, interrupted)
            raise
        return DrillRun(result=result, unreachable_hosts=ctx.state.unreachable_hosts)

    def _context(self, prepared: PreparedDrill, journal: Journal, state: RunState,
                 needs: tuple[Need, ...], clock: Clock) -> RunContext:
        interval = prepared.drill.spec.workload.heartbeat_interval.total_seconds()
        several = len(prepared.endpoints) > 1
        clients = Clients(endpoints=dict(prepared.endpoints), heartbeats={
            name: Heartbeat(endpoint, journal.run_id, interval=interval,
                            sink=partial(journal.heartbeat,
                                         population=name if several else None), clock=clock)
            for name, endpoint in prepared.endpoints.items()})
        for name, endpoint in prepared.endpoints.items():
            if isinstance(endpoint, ApiEndpoint):  # evidence of each new answer, as it comes
                endpoint.resolver.on_change = partial(
                    _resolved, journal, name if several else None)
        return RunContext(drill=prepared.drill, journal=journal, clients=clients, state=state,
                          runner=self._runner, results_dir=self._results_dir,
                          progress=self._progress, clock=clock, needs=needs,
                          disks=self._disks, web=prepared.web)

    def _interrupted(self, ctx: RunContext) -> bool:
        """An interrupt or the deadline stopped the run; whether it was an interrupt."""
        state = ctx.state
        state.message = state.deadline_hit or f"interrupted ({state.cancel.reason})"
        ctx.journal.record(EventKind.RUN_INTERRUPTED, reason=state.cancel.reason,
                           phase=state.phases[-1].phase.value if state.phases else None)
        self._progress(f"interrupted ({state.cancel.reason}): "
                       + ("restoring steady state" if state.injected
                          else "no fault was injected"))
        return state.cancel.reason != DEADLINE

    def _record(self, ctx: RunContext, base: RunResult, store: HistoryStore, *,
                interrupted: bool) -> RunResult:
        """Evidence first (sealed with the record), then the record: derived documents that
        fail are said, never raised, so the run is always finished in the store."""
        journal = ctx.journal
        result, measured = outcome.final_result(ctx, base, interrupted=interrupted)
        result = redacted(result, journal.redactor)
        for name, m in measured.items():
            journal.record(EventKind.MEASUREMENT, population=name if ctx.clients.several else None,
                           **m.model_dump(mode="json"))
        journal.record(EventKind.RUN_FINISHED, outcome=result.outcome.value,
                       verdicts=[v.model_dump(mode="json") for v in result.verdicts],
                       steady_state_restored=result.steady_state_restored,
                       message=result.message)
        late = journal.settle()
        if late is not None and ctx.state.injected and not ctx.state.failed:
            # its last records could not be written: a run without its evidence is not passed
            self._progress(f"warning: {late}")
            result = result.model_copy(update={
                "outcome": Outcome.FAILED,
                "message": (result.message + "; " if result.message else "") + late})
        kept = self._derived(journal, "result.json", lambda: result.model_dump_json(indent=2))
        self._derived(journal, "summary.txt", lambda: self._summarize(result))
        try:
            store.finish(result)
        except StoreError as exc:
            unsigned = vouch_for(journal.root, result, journal.redactor, store.observer) \
                if kept else None
            raise ResultNotRecorded(
                f"run {result.run_id} ended ({result.outcome.value}) but the history store "
                f"did not take its result: {exc}. "
                + (f"It is kept in {journal.root / 'result.json'}" if kept
                   else "Its result.json could not be written either (see the journal)")
                + (f" ({unsigned}: it will be recorded by its journal)" if unsigned else ""),
                result=result) from None
        return result

    def _record_anyway(self, ctx: RunContext, base: RunResult, store: HistoryStore,
                       exc: Exception, interrupted: bool) -> None:
        """The last resort when the result could not be computed: record the run as failed
        (aborted when interrupted) with its phases, so it is never left ``running``."""
        state = ctx.state
        problem = ctx.journal.redactor.text(f"{type(exc).__name__}: {exc}")[:300]
        message = (state.message + "; " if state.message else "") + \
            f"dalp-dr could not compute the result ({problem})"
        try:
            if store.get(base.run_id).outcome is not Outcome.RUNNING:
                return  # recorded before the failure
            store.finish(redacted(base.model_copy(update={
                "ended_at": ctx.clock.now(),
                "outcome": Outcome.ABORTED if interrupted else Outcome.FAILED,
                "phases": list(state.phases), "message": message,
                "steady_state_restored": state.steady_state_ok}), ctx.journal.redactor))
        except Exception as again:  # the store is not there: crash recovery records it
            self._progress(f"run {base.run_id} not recorded ({type(again).__name__}); "
                           "crash recovery will record it")

    def _derived(self, journal: Journal, name: str, render: Callable[[], str]) -> bool:
        """Write an evidence document derived from the result. A failure (a rendering bug, a
        full disk) is logged and said, never raised: it must not keep the run from being
        recorded. Whether it was written."""
        try:
            journal.write_document(name, render())
            return True
        except Exception as exc:
            problem = journal.redactor.text(f"{type(exc).__name__}: {exc}")[:300]
            self._progress(f"warning: {name} not written ({problem}); the run is recorded "
                           "regardless")
            with contextlib.suppress(Exception):
                journal.record(EventKind.EVIDENCE_NOT_WRITTEN, document=name, error=problem)
            return False

    def restore_after_crash(self, drill: LoadedDrill, journal: Journal,
                            facts: dict[str, Any]) -> tuple[PhaseRecord | None, bool]:
        """Run the steady-state phase for a run whose orchestrator died (crash recovery),
        with the facts its finished phases had published. Returns the phase and whether
        steady state is restored."""
        ctx = RunContext(drill=drill, journal=journal, clients=Clients({}, {}),
                         state=RunState(facts=facts), runner=self._runner,
                         results_dir=self._results_dir, progress=self._progress,
                         clock=self._clock)
        phases.steady_state(ctx)
        return (ctx.state.phases[-1] if ctx.state.phases else None), \
            bool(ctx.state.steady_state_ok)
