"""The drill engine: explicit phases, evidence as it happens, steady state always restored.

    preflight -> baseline -> inject -> recover -> verify -> measure -> steady_state

* Before anything is recorded, every endpoint must answer (else TargetUnreachable: exit 2).
* Each client population (one 'service' endpoint, or several ``populations``: hot-hot's
  sites) runs its own heartbeat into its own marker table, and is measured and judged on
  its own; the result's headline figures are the first judged population's.
* preflight fails closed: no fault is injected and nothing is changed (steady_state skipped,
  because there is nothing of ours to undo and "repairing" an environment we did not break
  is not a drill's business).
* Once inject has started, steady_state runs whatever happens, interrupts included.
* Every phase playbook gets ``dalp_run_id``, ``dalp_phase``, ``dalp_rto_seconds``,
  ``dalp_rpo_seconds``, ``dalp_evidence_dir`` (where it may fetch files to keep as
  evidence) and the phase's ``vars`` as extra vars, and reports back to the engine
  through ``set_stats`` (``dalp_fault_instant`` from inject, ``dalp_timeline`` events;
  anything else is kept as the phase report in the evidence).
"""

from __future__ import annotations

import contextlib
import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

from dalp_dr import guardrails, private_files, timeline
from dalp_dr.adapters.base import PlaybookResult, PlaybookRunner, ServerIdentity, ServiceEndpoint
from dalp_dr.adapters.postgres import PostgresEndpoint
from dalp_dr.cancel import CancelToken, RunCancelled
from dalp_dr.checks import run_checks
from dalp_dr.durations import format_duration
from dalp_dr.errors import (
    EndpointError,
    GuardrailRefused,
    PlaybookFailed,
    ResultNotRecorded,
    StoreError,
    TargetUnreachable,
)
from dalp_dr.heartbeat import Heartbeat
from dalp_dr.history import HistoryStore
from dalp_dr.history.base import record_final
from dalp_dr.inventory import Inventory
from dalp_dr.journal import Journal, Observer
from dalp_dr.locks import DEFAULT_LOCK_TTL, lock_environment, process_label
from dalp_dr.measure import measure
from dalp_dr.provenance import OperatorSource, Provenance, operator_and_source, run_provenance
from dalp_dr.redact import Redactor
from dalp_dr.render import summary_text
from dalp_dr.results import (
    CheckOutcome,
    HeartbeatSample,
    Measurements,
    ObjectiveVerdict,
    Outcome,
    PhaseRecord,
    PhaseStatus,
    RunResult,
    Status,
    Trigger,
)
from dalp_dr.spec import LoadedDrill, PhaseName, Scenario
from dalp_dr.verdict import judge, outcome_of

Progress = Callable[[str], None]
EndpointFactory = Callable[[str, Redactor, str], ServiceEndpoint]
"""(dsn, redactor, marker table) -> endpoint"""

# What a phase reports only about itself; everything else a playbook publishes as dalp_* with
# set_stats is handed to the phases after it as extra vars (e.g. the leader inject killed).
LOCAL_REPORT_KEYS = frozenset({"dalp_notes", "dalp_phase_timings", "dalp_timeline"})

# A reported fault instant must lie within the inject playbook's run, seen from the controller,
# give or take this much clock difference; otherwise the controller's own bound is used.
CLOCK_TOLERANCE = timedelta(seconds=1)


def fault_instant(inject: PlaybookResult) -> tuple[datetime | None, str | None]:
    """The fault instant and where it came from, from the inject playbook's result."""
    reported = inject.artifact_data.get("dalp_fault_instant")
    if reported is not None:
        try:
            at = datetime.fromtimestamp(float(reported), UTC)
        except (TypeError, ValueError, OverflowError):
            at = None
        if at is not None and (inject.started_at - CLOCK_TOLERANCE <= at
                               <= inject.ended_at + CLOCK_TOLERANCE):
            return at, "reported by the inject playbook, within the controller's window"
    # The playbook succeeded but its report is unusable (missing, or a clock far off):
    # its start is the earliest the fault can have happened, which can only make the
    # recovery time look longer, never shorter. A failed inject without a report may not
    # have injected anything: no instant, no figures.
    if inject.ok:
        return inject.started_at, "controller: inject playbook start (conservative)"
    return None, None


def recovery_target_time(drill: LoadedDrill, fault_at: datetime) -> datetime | None:
    """The point-in-time target of a restore drill, or None for the latest point."""
    restore = drill.spec.restore
    if restore is None or restore.target.latest:
        return None
    if restore.target.time is not None:
        return restore.target.time
    assert restore.target.before_fault is not None
    return fault_at - restore.target.before_fault


# Commit times and client acknowledgements straddle the target by this much at most on one
# host; markers this close to the target are not judged either way.
PITR_SLACK = timedelta(milliseconds=50)


def pitr_check(samples: list[HeartbeatSample], surviving: set[int], target: datetime,
               fault_at: datetime | None) -> dict[str, Any]:
    """A point-in-time restore keeps every marker acknowledged before the target and none
    written after it (before the fault; writes after recovery are the new site's own)."""
    before = [s for s in samples if s.acked and s.ended_at <= target - PITR_SLACK]
    after = [s for s in samples if s.sent_at >= target + PITR_SLACK
             and (fault_at is None or s.sent_at < fault_at)]
    return {
        "target": target.isoformat(),
        "before_target": len(before),
        "missing_before_target": [s.seq for s in before if s.seq not in surviving],
        "after_target": len(after),
        "present_after_target": [s.seq for s in after if s.seq in surviving],
    }


def phase_extravars(drill: LoadedDrill, phase: PhaseName, run_id: str, evidence_dir: Path,
                    facts: dict[str, Any] | None = None,
                    recovery_target: datetime | None = None) -> dict[str, Any]:
    """What every phase playbook receives as extra vars (README 'Drill format')."""
    spec = drill.spec
    phase_spec = drill.phase(phase)
    extra: dict[str, Any] = {
        "dalp_run_id": run_id,
        "dalp_phase": phase.value,
        "dalp_rto_seconds": spec.objectives.rto.total_seconds(),
        "dalp_rpo_seconds": spec.objectives.rpo.total_seconds(),
        "dalp_baseline_seconds": spec.workload.baseline.total_seconds(),
        "dalp_heartbeat_interval_seconds": spec.workload.heartbeat_interval.total_seconds(),
        "dalp_evidence_dir": str(evidence_dir),
    }
    extra.update(facts or {})
    if recovery_target is not None:
        extra["dalp_recovery_target_time"] = recovery_target.isoformat(sep=" ")
    if phase_spec is not None:
        extra.update(phase_spec.vars)
    return extra


def not_started(drill: LoadedDrill, run_id: str, trigger: Trigger, operator: str,
                at: datetime, outcome: Outcome, message: str,
                planned_at: datetime | None = None,
                provenance: Provenance | None = None) -> RunResult:
    """The record of a run that did not start (refused by a guardrail)."""
    spec = drill.spec
    return RunResult(
        run_id=run_id, drill=spec.name, topology=spec.topology, scenario=spec.scenario,
        environment=spec.environment, owner=spec.owner, trigger=trigger, operator=operator,
        spec_hash=drill.spec_hash, started_at=planned_at or at, ended_at=at, outcome=outcome,
        objectives={"rto": spec.objectives.rto.total_seconds(),
                    "rpo": spec.objectives.rpo.total_seconds()},
        measurements=None, verdicts=[], phases=[], steady_state_restored=None,
        evidence_dir="", message=message, planned_at=planned_at, provenance=provenance)


def new_run_id(now: datetime) -> str:
    return f"{now:%Y%m%dT%H%M%SZ}-{secrets.token_hex(3)}"


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class PreparedDrill:
    """A drill whose inventory and endpoints resolved and whose endpoints answered."""

    drill: LoadedDrill
    endpoints: dict[str, ServiceEndpoint]
    """one per client population, in the drill's order (a single 'service' by default)"""
    redactor: Redactor

    @property
    def endpoint(self) -> ServiceEndpoint:
        """The first population's endpoint (the only one of a single-endpoint drill)."""
        return next(iter(self.endpoints.values()))


@dataclass
class _RunState:
    phases: list[PhaseRecord] = field(default_factory=list)
    fault_at: datetime | None = None
    fault_source: str | None = None
    injected: bool = False
    failed: bool = False
    preflight_failed: bool = False
    verified_at: datetime | None = None
    baseline_identity: dict[str, ServerIdentity] = field(default_factory=dict)
    surviving: dict[str, set[int]] = field(default_factory=dict)
    message: str | None = None
    steady_state_ok: bool | None = None
    cancel: CancelToken = field(default_factory=CancelToken)
    recovery_target: datetime | None = None
    facts: dict[str, Any] = field(default_factory=dict)
    """dalp_* facts earlier phases published with set_stats, forwarded to later phases"""
    checks: list[CheckOutcome] = field(default_factory=list)
    deadline: threading.Timer | None = None
    deadline_hit: str | None = None
    """why the recovery deadline aborted the drill (its RTO is then missed)"""

    def check(self) -> None:
        if self.cancel.is_set():
            raise RunCancelled(self.cancel.reason)


@dataclass
class _Clients:
    """The client populations of one run: endpoint and heartbeat by population name."""

    endpoints: dict[str, ServiceEndpoint]
    heartbeats: dict[str, Heartbeat]

    @property
    def several(self) -> bool:
        return len(self.endpoints) > 1

    def label(self, name: str, text: str) -> str:
        return f"{name}: {text}" if self.several else text

    def pause(self, seconds: float) -> None:
        next(iter(self.heartbeats.values())).pause(seconds)

    def stop(self) -> None:
        for beat in self.heartbeats.values():
            beat.stop()


class DrillEngine:
    def __init__(self, *, runner: PlaybookRunner, results_dir: Path,
                 endpoint_factory: EndpointFactory = PostgresEndpoint,
                 progress: Progress | None = None,
                 lock_ttl: float = DEFAULT_LOCK_TTL,
                 observer: Observer | None = None,
                 summarize: Callable[[RunResult], str] = summary_text) -> None:
        """``summarize`` renders the run's summary.txt (a seam: tests give one that fails,
        to show a failing rendering never keeps a run from being recorded)."""
        self._runner = runner
        self._summarize = summarize
        self._observer = observer
        self._lock_ttl = lock_ttl
        self._results_dir = results_dir
        self._endpoint_factory = endpoint_factory
        self._progress = progress or (lambda _msg: None)

    # -- set-up that must succeed before anything is recorded or touched ---------------------

    def prepare(self, drill: LoadedDrill) -> PreparedDrill:
        """Resolve the inventory and every population's endpoint and prove each answers. No
        side effects: raises InvalidInput (TargetUnreachable, InventoryError) before anything
        is written."""
        inventory = Inventory(drill.inventory)
        redactor = Redactor(inventory.secret_values())
        # guardrail settings must be readable (every host, not mixed) before any connection
        inventory.is_production()
        guardrails.freezes(inventory)
        populations = drill.spec.client_populations()
        several = drill.spec.populations is not None
        endpoints: dict[str, ServiceEndpoint] = {}
        for name, population in populations.items():
            where = f"populations.{name}.endpoint" if several else "endpoint"
            endpoint_spec = population.endpoint
            if endpoint_spec.dsn is not None:
                dsn = endpoint_spec.dsn
            else:
                assert endpoint_spec.from_inventory is not None
                value = inventory.variable(endpoint_spec.from_inventory, host=endpoint_spec.host)
                if not isinstance(value, str) or not value.strip():
                    raise TargetUnreachable(
                        f"inventory variable '{endpoint_spec.from_inventory}' is not a DSN "
                        "string", source=str(drill.path), field=f"{where}.from_inventory")
                dsn = " ".join(value.split())
            try:
                endpoint = self._endpoint_factory(dsn, redactor, population.marker_table)
            except EndpointError as exc:
                raise TargetUnreachable(str(exc), source=str(drill.path), field=where) from None
            try:
                endpoint.connect(timeout=5).close()
            except EndpointError as exc:
                raise TargetUnreachable(
                    f"service endpoint {endpoint.display} does not answer: {exc}",
                    source=str(drill.path), field=where,
                    hint=f"is the environment up? for the lab: dalp-dr lab up "
                         f"{drill.spec.topology}",
                ) from None
            endpoints[name] = endpoint
        return PreparedDrill(drill=drill, endpoints=endpoints, redactor=redactor)

    # -- the run ---------------------------------------------------------------------------

    def run(self, prepared: PreparedDrill, *, store: HistoryStore,
            trigger: Trigger = Trigger.CLI, operator: str | None = None,
            cancel: CancelToken | None = None,
            planned_at: datetime | None = None, confirm: str | None = None) -> RunResult:
        """Run the drill. An interrupt is requested through ``cancel``: the running playbook
        is stopped, steady state restored if a fault was injected, outcome ``aborted``.

        The environment's drill lock is taken first (EnvironmentBusy, with nothing written,
        when another run holds it) and held, renewed, until the run is recorded."""
        spec = prepared.drill.spec
        started = utcnow()
        run_id = new_run_id(started)
        if trigger is Trigger.SCHEDULE:
            who, source = operator or "scheduler", OperatorSource.SCHEDULER
        else:  # --operator, DALP_DR_OPERATOR, SUDO_USER, the OS user
            who, source = operator_and_source(operator)
        provenance = run_provenance(prepared.drill, who, source)  # once, before anything runs
        reason = guardrails.refusal(Inventory(prepared.drill.inventory), spec.name, trigger,
                                    confirm, started)
        if reason is not None:
            refused = not_started(prepared.drill, run_id, trigger, who, started,
                                  Outcome.REFUSED, f"refused: {reason}", planned_at,
                                  provenance)
            record_final(store, refused)
            raise GuardrailRefused(reason, source=str(prepared.drill.path),
                                   hint=f"recorded as run {run_id} (refused)")
        lock = lock_environment(
            store, spec.environment, holder=run_id,
            info=f"drill {spec.name} run {run_id} ({trigger.value}) by {who} on "
                 f"{process_label()}",
            ttl=self._lock_ttl, on_problem=self._progress)
        try:
            return self._run_locked(prepared, store, trigger, who, cancel, planned_at,
                                    run_id, started, provenance)
        finally:
            lock.release()

    def _run_locked(self, prepared: PreparedDrill, store: HistoryStore, trigger: Trigger,
                    who: str, cancel: CancelToken | None, planned_at: datetime | None,
                    run_id: str, started: datetime,
                    provenance: Provenance | None = None) -> RunResult:
        drill, redactor = prepared.drill, prepared.redactor
        spec = drill.spec
        private_files.make_dir(self._results_dir)
        evidence = self._results_dir / run_id
        journal = Journal(evidence, run_id, redactor, observer=self._observer)
        base = RunResult(
            run_id=run_id, drill=spec.name, topology=spec.topology, scenario=spec.scenario,
            environment=spec.environment, owner=spec.owner, trigger=trigger, operator=who,
            spec_hash=drill.spec_hash, started_at=started, ended_at=None,
            outcome=Outcome.RUNNING,
            objectives={"rto": spec.objectives.rto.total_seconds(),
                        "rpo": spec.objectives.rpo.total_seconds()},
            measurements=None, verdicts=[], phases=[], steady_state_restored=None,
            evidence_dir=str(evidence), planned_at=planned_at,
            drill_file=str(drill.path.resolve()), provenance=provenance,
        )
        spec_json = redactor.text(spec.model_dump_json(indent=2, exclude_none=True))
        journal.write_document("spec.json", spec_json)
        store.begin(base, spec_json)
        shown = ", ".join(f"{name} via {e.display}" if len(prepared.endpoints) > 1
                          else e.display for name, e in prepared.endpoints.items())
        journal.record("run.started", drill=spec.name, spec_hash=drill.spec_hash,
                       endpoint=shown, trigger=trigger.value, operator=who)
        self._progress(f"run {run_id}: {spec.name} ({spec.topology}/{spec.scenario}) "
                       f"via {shown}")

        state = _RunState(cancel=cancel or CancelToken())
        interval = spec.workload.heartbeat_interval.total_seconds()
        several = len(prepared.endpoints) > 1
        clients = _Clients(endpoints=dict(prepared.endpoints), heartbeats={
            name: Heartbeat(endpoint, run_id, interval=interval,
                            sink=partial(journal.heartbeat,
                                         population=name if several else None))
            for name, endpoint in prepared.endpoints.items()})
        interrupted = False
        try:
            self._drive(drill, clients, journal, state)
            state.check()
        except RunCancelled:
            interrupted = state.deadline_hit is None
            state.message = state.deadline_hit or f"interrupted ({state.cancel.reason})"
            journal.record("run.interrupted", reason=state.cancel.reason,
                           phase=state.phases[-1].phase.value if state.phases else None)
            self._progress(f"interrupted ({state.cancel.reason}): "
                           + ("restoring steady state" if state.injected
                              else "no fault was injected"))
        finally:
            if state.deadline is not None:
                state.deadline.cancel()
            clients.stop()
            if state.injected:
                self._steady_state(drill, journal, state)
            else:
                now = utcnow()
                state.phases.append(PhaseRecord(
                    phase=PhaseName.STEADY_STATE, status=PhaseStatus.SKIPPED, started_at=now,
                    ended_at=now, message="no fault was injected: nothing to restore"))
            journal.close()

        try:
            return self._finish(drill, base, journal, clients, state, store,
                                interrupted=interrupted)
        except (ResultNotRecorded, StoreError):
            raise
        except Exception as exc:  # a bug computing the result: the run is still recorded
            self._record_anyway(base, journal, state, store, exc, interrupted)
            raise

    def _record_anyway(self, base: RunResult, journal: Journal, state: _RunState,
                       store: HistoryStore, exc: Exception, interrupted: bool) -> None:
        """The last resort when the result could not be computed: record the run as failed
        (aborted when interrupted) with its phases, so it is never left ``running``."""
        problem = journal.redactor.text(f"{type(exc).__name__}: {exc}")[:300]
        message = (state.message + "; " if state.message else "") + \
            f"dalp-dr could not compute the result ({problem})"
        try:
            if store.get(base.run_id).outcome is not Outcome.RUNNING:
                return  # recorded before the failure
            store.finish(base.model_copy(update={
                "ended_at": utcnow(), "outcome": Outcome.ABORTED if interrupted
                else Outcome.FAILED, "phases": list(state.phases), "message": message,
                "steady_state_restored": state.steady_state_ok}))
        except Exception as again:  # the store is not there: crash recovery records it
            self._progress(f"run {base.run_id} not recorded ({type(again).__name__}); "
                           "crash recovery will record it")

    def _derived(self, journal: Journal, name: str, render: Callable[[], str]) -> bool:
        """Write an evidence document derived from the result. A failure (a rendering
        bug, a full disk) is logged and said, never raised: it must not keep the run from
        being recorded. Whether it was written."""
        try:
            journal.write_document(name, render())
            return True
        except Exception as exc:
            problem = journal.redactor.text(f"{type(exc).__name__}: {exc}")[:300]
            self._progress(f"warning: {name} not written ({problem}); the run is recorded "
                           "regardless")
            with contextlib.suppress(Exception):
                journal.record("evidence.not_written", document=name, error=problem)
            return False

    def _drive(self, drill: LoadedDrill, clients: _Clients, journal: Journal,
               state: _RunState) -> None:
        if not self._preflight(drill, journal, state):
            return
        if not self._baseline(drill, clients, journal, state):
            return
        state.check()
        state.injected = True  # from here on, steady_state always runs
        if not self._inject(drill, journal, state):
            return
        self._arm_deadline(drill, journal, state)
        state.check()
        if drill.phase(PhaseName.RECOVER) is not None:
            recover = self._phase(drill, PhaseName.RECOVER, journal, state)
            if recover is None or not recover.ok:
                state.failed = True
                state.message = "recover phase failed"
                # keep watching: verify still tells whether the service came back by itself
        if not self._verify(drill, clients, journal, state):
            return
        clients.pause(drill.spec.workload.observe.total_seconds())
        state.check()
        self._measure(clients, journal, state)

    def _arm_deadline(self, drill: LoadedDrill, journal: Journal, state: _RunState) -> None:
        """From the fault on, the service has the drill's recovery deadline to be verified
        back; past it the running phase is stopped, the RTO recorded missed and steady state
        restored."""
        limit = drill.spec.recovery_deadline()
        start = state.fault_at or utcnow()
        remaining = (start + limit - utcnow()).total_seconds()

        def expire() -> None:
            if state.verified_at is None:
                state.deadline_hit = (f"not recovered within the drill's deadline of "
                                      f"{format_duration(limit)} after the fault")
                journal.record("run.deadline", deadline_s=limit.total_seconds())
                self._progress(f"DEADLINE: {state.deadline_hit}; stopping the running phase")
                state.cancel.request("deadline")

        state.deadline = threading.Timer(max(remaining, 0.0), expire)
        state.deadline.daemon = True
        state.deadline.start()

    def _preflight(self, drill: LoadedDrill, journal: Journal, state: _RunState) -> bool:
        """Fail closed: no fault unless the preflight playbook proved it safe."""
        pre = self._phase(drill, PhaseName.PREFLIGHT, journal, state)
        state.check()
        if pre is not None and pre.ok:
            return True
        state.preflight_failed = True
        if pre is not None and pre.unreachable_hosts:
            state.message = "preflight: unreachable " + ", ".join(pre.unreachable_hosts)
        else:
            state.message = "preflight could not prove it is safe to inject the fault"
        return False

    def _baseline(self, drill: LoadedDrill, clients: _Clients, journal: Journal,
                  state: _RunState) -> bool:
        """Every population's heartbeat must flow through its endpoint before any fault."""
        spec = drill.spec
        self._begin_phase(journal, PhaseName.BASELINE)
        started = utcnow()
        for name, endpoint in clients.endpoints.items():
            try:
                endpoint.ensure_schema()
                session = endpoint.connect(timeout=5)
                try:
                    state.baseline_identity[name] = session.identity()
                finally:
                    session.close()
            except EndpointError as exc:
                self._end_phase(journal, state, PhaseName.BASELINE, PhaseStatus.FAILED,
                                started, message=clients.label(
                                    name, f"endpoint failed during baseline: {exc}"))
                state.preflight_failed = True
                state.message = "baseline: the service endpoint did not take writes"
                return False
        for beat in clients.heartbeats.values():
            beat.start()
        if drill.phase(PhaseName.BASELINE) is not None:
            result = self._run_playbook(drill, PhaseName.BASELINE, journal, state, state.cancel)
            if not result.ok:
                self._end_phase(journal, state, PhaseName.BASELINE, PhaseStatus.FAILED, started,
                                playbook=result, message=result.describe_failure())
                state.preflight_failed = True
                state.message = "baseline playbook failed: no fault injected"
                return False
        wait_until = started + spec.workload.baseline
        while utcnow() < wait_until:
            state.check()
            clients.pause(0.05)
        report: dict[str, Any] = {}
        for name, beat in clients.heartbeats.items():
            samples = beat.samples
            recent = samples[-5:]
            if not samples or not all(s.acked for s in recent):
                errors = [s.error for s in recent if s.error]
                self._end_phase(journal, state, PhaseName.BASELINE, PhaseStatus.FAILED, started,
                                message=clients.label(name, "heartbeat writes are not "
                                                      "acknowledged: " + (errors[-1] if errors
                                                                          else "no samples")))
                state.preflight_failed = True
                state.message = "baseline: heartbeat not healthy, no fault injected"
                return False
            identity = state.baseline_identity.get(name)
            entry = {"acknowledged_writes": sum(1 for s in samples if s.acked),
                     "identity": identity.model_dump() if identity else None}
            if clients.several:
                report.setdefault("populations", {})[name] = entry
            else:
                report.update(entry)
        self._end_phase(journal, state, PhaseName.BASELINE, PhaseStatus.OK, started,
                        report=report)
        for name, beat in clients.heartbeats.items():
            acked = sum(1 for s in beat.samples if s.acked)
            self._progress("baseline: " + clients.label(
                name, f"{acked} heartbeat writes acknowledged"))
        return True

    def _inject(self, drill: LoadedDrill, journal: Journal, state: _RunState) -> bool:
        inject = self._phase(drill, PhaseName.INJECT, journal, state)
        if inject is not None:
            state.fault_at, state.fault_source = fault_instant(inject)
        if state.fault_at is None:
            state.failed = True
            state.message = ("inject failed before reporting a fault instant: the fault may "
                             "not have been injected; no figures")
            return False
        journal.record("fault.injected", at=state.fault_at.isoformat(), source=state.fault_source)
        state.recovery_target = recovery_target_time(drill, state.fault_at)
        if state.recovery_target is not None:
            journal.record("recovery.target", at=state.recovery_target.isoformat())
            self._progress(f"point-in-time target {state.recovery_target:%H:%M:%S.%f}")
        self._progress(f"fault injected at {state.fault_at:%H:%M:%S.%f} ({state.fault_source})")
        if inject is None or not inject.ok:
            state.failed = True
            state.message = "inject phase failed"
            return False
        return True

    def _verify(self, drill: LoadedDrill, clients: _Clients, journal: Journal,
                state: _RunState) -> bool:
        """The verify playbook (server side), then every population's view through its
        endpoint: writes acknowledged again, reads work, a writable server."""
        verify_spec = drill.phase(PhaseName.VERIFY)
        assert verify_spec is not None and state.fault_at is not None
        state.check()
        verify = self._phase(drill, PhaseName.VERIFY, journal, state)
        state.check()
        if verify is None or not verify.ok:
            state.failed = True
            state.message = state.message or "verify playbook failed"
            return False
        started = utcnow()
        deadline = started + verify_spec.timeout
        problems: list[str] = []
        reports: dict[str, dict[str, Any]] = {}
        for name, beat in clients.heartbeats.items():
            left = max(1.0, (deadline - utcnow()).total_seconds())
            recovered = beat.wait_for_recovery(state.fault_at, timeout=left,
                                               cancel=state.cancel.is_set)
            state.check()
            found, report = self._client_view(drill, name, clients, recovered, journal, state)
            problems.extend(clients.label(name, p) for p in found)
            reports[name] = report
        report = ({"populations": reports} if clients.several
                  else next(iter(reports.values())))
        if not problems and drill.spec.checks:
            state.checks = run_checks(drill.spec.checks, clients.endpoints, journal.redactor)
            for outcome in state.checks:
                journal.record("check", check=outcome.model_dump(mode="json"))
                self._progress(f"check {outcome.name}: {'ok' if outcome.ok else 'FAILED'} "
                               f"({outcome.detail})")
            problems.extend(f"check '{c.name}' failed: {c.detail}" for c in state.checks
                            if not c.ok)
            report["checks"] = [c.model_dump(mode="json") for c in state.checks]
        if problems:
            state.failed = True
            state.message = "; ".join(problems)
            self._end_phase(journal, state, PhaseName.VERIFY, PhaseStatus.FAILED, started,
                            message=state.message, report=report, replace=True)
            return False
        state.verified_at = utcnow()
        if state.deadline is not None:
            state.deadline.cancel()
        self._end_phase(journal, state, PhaseName.VERIFY, PhaseStatus.OK, started, report=report,
                        replace=True)
        self._progress("verify: writes and reads through the endpoint"
                       + ("s" if clients.several else "") + " succeed")
        return True

    def _client_view(self, drill: LoadedDrill, name: str, clients: _Clients,
                     recovered: datetime | None, journal: Journal, state: _RunState
                     ) -> tuple[list[str], dict[str, Any]]:
        problems: list[str] = []
        identity: ServerIdentity | None = None
        markers_seen = 0
        if recovered is None:
            problems.append("no write was acknowledged through the endpoint after the fault")
        else:
            journal.record("recovery.observed", at=recovered.isoformat(),
                           population=name if clients.several else None)
            try:
                session = clients.endpoints[name].connect(timeout=5)
                try:
                    identity = session.identity()
                    markers_seen = len(session.surviving_markers(journal.run_id))
                finally:
                    session.close()
            except EndpointError as exc:
                problems.append(f"read through the endpoint failed: {exc}")
        if identity is not None:
            if identity.in_recovery:
                problems.append("the endpoint reaches a server that is still in recovery")
            before = state.baseline_identity.get(name)
            if (drill.spec.scenario in (Scenario.FAILOVER, Scenario.SWITCHOVER)
                    and before is not None and before.timeline is not None
                    and identity.timeline is not None and identity.timeline <= before.timeline):
                problems.append(f"timeline did not advance ({before.timeline} -> "
                                f"{identity.timeline})")
        return problems, {"recovered_at": recovered.isoformat() if recovered else None,
                          "identity": identity.model_dump() if identity else None,
                          "markers_read_back": markers_seen}

    def _measure(self, clients: _Clients, journal: Journal, state: _RunState) -> None:
        """Stop writing, then read back which acknowledged markers survived, per population
        through its own endpoint (hot-hot: the lost site's clients now reach the survivor)."""
        self._begin_phase(journal, PhaseName.MEASURE)
        started = utcnow()
        clients.stop()
        for name, endpoint in clients.endpoints.items():
            try:
                session = endpoint.connect(timeout=5)
                try:
                    state.surviving[name] = session.surviving_markers(journal.run_id)
                finally:
                    session.close()
            except EndpointError as exc:
                self._end_phase(journal, state, PhaseName.MEASURE, PhaseStatus.FAILED, started,
                                message=clients.label(name, f"cannot read markers back: {exc}"))
                return
        if clients.several:
            report: dict[str, Any] = {"markers_read_back": {
                name: len(found) for name, found in state.surviving.items()}}
        else:
            report = {"markers_on_recovered_primary": len(next(iter(state.surviving.values())))}
        status = PhaseStatus.OK
        message = None
        if state.recovery_target is not None:
            name, beat = next(iter(clients.heartbeats.items()))
            pitr = pitr_check(beat.samples, state.surviving[name], state.recovery_target,
                              state.fault_at)
            report["point_in_time"] = pitr
            if pitr["missing_before_target"] or pitr["present_after_target"]:
                status = PhaseStatus.FAILED
                message = (f"point-in-time restore wrong: {len(pitr['missing_before_target'])} "
                           f"markers before the target missing, "
                           f"{len(pitr['present_after_target'])} after it present")
                state.failed = True
                state.message = message
        self._end_phase(journal, state, PhaseName.MEASURE, status, started, report=report,
                        message=message)

    # -- phases ----------------------------------------------------------------------------

    def _extravars(self, drill: LoadedDrill, phase: PhaseName, run_id: str,
                   state: _RunState) -> dict[str, Any]:
        return phase_extravars(drill, phase, run_id,
                               (self._results_dir / run_id / "files" / phase.value).resolve(),
                               state.facts, state.recovery_target)

    def _run_playbook(self, drill: LoadedDrill, phase: PhaseName, journal: Journal,
                      state: _RunState, cancel: CancelToken | None) -> PlaybookResult:
        phase_spec = drill.phase(phase)
        assert phase_spec is not None
        try:
            return self._runner.run(
                drill.playbooks[phase], drill.inventory,
                extravars=self._extravars(drill, phase, journal.run_id, state),
                timeout=phase_spec.timeout.total_seconds(),
                on_event=lambda event: journal.ansible_event(phase.value, event),
                cancel=cancel.is_set if cancel is not None else None,
            )
        except PlaybookFailed as exc:
            now = utcnow()
            return PlaybookResult(playbook=drill.playbooks[phase].name, status=exc.status, rc=-1,
                                  started_at=now, ended_at=now, artifact_data={},
                                  failure_message=str(exc))

    def _phase(self, drill: LoadedDrill, phase: PhaseName, journal: Journal,
               state: _RunState) -> PlaybookResult | None:
        self._begin_phase(journal, phase)
        started = utcnow()
        # steady state is never canceled by a first interrupt: it is what makes stopping safe
        cancel = None if phase is PhaseName.STEADY_STATE else state.cancel
        result = self._run_playbook(drill, phase, journal, state, cancel)
        journal.adopt_files(phase.value)
        state.facts.update({k: v for k, v in result.artifact_data.items()
                            if k.startswith("dalp_") and k not in LOCAL_REPORT_KEYS})
        status = {"successful": PhaseStatus.OK, "timeout": PhaseStatus.TIMEOUT,
                  "canceled": PhaseStatus.CANCELED}.get(result.status, PhaseStatus.FAILED)
        if status is PhaseStatus.OK and not result.ok:
            status = PhaseStatus.FAILED
        self._end_phase(journal, state, phase, status, started, playbook=result,
                        message=None if result.ok else result.describe_failure(),
                        report=result.artifact_data)
        return result

    def _begin_phase(self, journal: Journal, phase: PhaseName) -> None:
        journal.record("phase.started", phase=phase.value)
        self._progress(f"phase {phase.value} ...")

    def _end_phase(self, journal: Journal, state: _RunState, phase: PhaseName,
                   status: PhaseStatus, started: datetime, *,
                   playbook: PlaybookResult | None = None, message: str | None = None,
                   report: dict[str, Any] | None = None, replace: bool = False) -> None:
        if replace and state.phases and state.phases[-1].phase is phase:
            previous = state.phases.pop()
            started = previous.started_at
            report = {**previous.report, **(report or {})}
            playbook_name = previous.playbook
        else:
            playbook_name = playbook.playbook if playbook else None
        record = PhaseRecord(phase=phase, status=status, started_at=started, ended_at=utcnow(),
                             playbook=playbook_name, message=message, report=report or {})
        state.phases.append(record)
        journal.record("phase.finished", **record.model_dump(mode="json"))
        label = f"{phase.value} (client side)" if replace else phase.value
        self._progress(f"phase {label}: {status.value} in "
                       f"{format_duration(record.duration)}"
                       + (f" - {message}" if message else ""))

    def restore_after_crash(self, drill: LoadedDrill, journal: Journal,
                            facts: dict[str, Any]) -> tuple[PhaseRecord | None, bool]:
        """Run the steady-state phase for a run whose orchestrator died (crash recovery),
        with the facts its finished phases had published. Returns the phase and whether
        steady state is restored."""
        state = _RunState(facts=facts)
        self._steady_state(drill, journal, state)
        return (state.phases[-1] if state.phases else None), bool(state.steady_state_ok)

    def _steady_state(self, drill: LoadedDrill, journal: Journal, state: _RunState) -> None:
        try:
            result = self._phase(drill, PhaseName.STEADY_STATE, journal, state)
        except KeyboardInterrupt:
            state.steady_state_ok = False
            journal.record("steady_state.interrupted")
            raise
        state.steady_state_ok = bool(result and result.ok)
        if not state.steady_state_ok:
            state.failed = True
            state.message = (state.message + "; " if state.message else "") + \
                "return to steady state FAILED: the environment needs attention"

    # -- result ----------------------------------------------------------------------------

    def _finish(self, drill: LoadedDrill, base: RunResult, journal: Journal,
                clients: _Clients, state: _RunState, store: HistoryStore, *,
                interrupted: bool) -> RunResult:
        spec = drill.spec
        populations = spec.client_populations()
        measured: dict[str, Measurements] = {}
        verdicts: list[ObjectiveVerdict] = []
        if state.injected:
            for name, beat in clients.heartbeats.items():
                samples = beat.samples
                measured[name] = measure(
                    samples, fault_at=state.fault_at, surviving=state.surviving.get(name),
                    verified_at=state.verified_at,
                    interval=spec.workload.heartbeat_interval.total_seconds(),
                    observed_until=max((s.ended_at for s in samples), default=utcnow()),
                )
                if populations[name].judged:
                    verdicts.extend(
                        v.model_copy(update={"population": name}) if clients.several else v
                        for v in judge(spec.objectives, measured[name]))
        primary = next((measured[n] for n, p in populations.items()
                        if p.judged and n in measured), None)
        if state.deadline_hit is not None:
            verdicts = [v.model_copy(update={
                "status": Status.MISSED, "reason": state.deadline_hit,
                "measured": v.measured if v.measured is not None else
                spec.recovery_deadline().total_seconds(), "margin": None})
                if v.objective == "rto" and v.status is not Status.MISSED else v
                for v in verdicts]
        if interrupted:
            outcome = Outcome.ABORTED
        elif state.deadline_hit is not None:
            outcome = Outcome.MISSED
        elif state.preflight_failed:
            outcome = Outcome.PREFLIGHT_FAILED
        else:
            outcome = outcome_of(verdicts, phase_failed=state.failed)
        for name, beat in clients.heartbeats.items():
            if beat.sink_error is not None:
                state.message = (state.message or "") + " (" + clients.label(
                    name, f"heartbeat evidence write failed: {beat.sink_error}") + ")"
        events = timeline.build(
            fault_at=state.fault_at, fault_source=state.fault_source,
            clients={name: (beat.samples, measured[name].recovered_at if name in measured
                            else None) for name, beat in clients.heartbeats.items()},
            labelled=clients.several, verified_at=state.verified_at, phases=state.phases)
        result = base.model_copy(update={
            "timeline": events,
            "ended_at": utcnow(), "outcome": outcome, "measurements": primary,
            "populations": measured if clients.several else {},
            "verdicts": verdicts, "phases": list(state.phases),
            "steady_state_restored": state.steady_state_ok, "message": state.message,
            "checks": list(state.checks),
        })
        for name, m in measured.items():
            journal.record("measurement", population=name if clients.several else None,
                           **m.model_dump(mode="json"))
        journal.record("run.finished", outcome=outcome.value,
                       verdicts=[v.model_dump(mode="json") for v in verdicts],
                       steady_state_restored=state.steady_state_ok, message=state.message)
        # evidence first (sealed with the record), then the record: derived documents that
        # fail are said, never raised, so the run is always finished in the store
        kept = self._derived(journal, "result.json", lambda: result.model_dump_json(indent=2))
        self._derived(journal, "summary.txt", lambda: self._summarize(result))
        try:
            store.finish(result)
        except StoreError as exc:
            raise ResultNotRecorded(
                f"run {result.run_id} ended ({outcome.value}) but the history store did not "
                f"take its result: {exc}. " + (f"It is kept in {journal.root / 'result.json'}"
                                               if kept else "Its result.json could not be "
                                               "written either (see the journal)"),
                result=result) from None
        return result
