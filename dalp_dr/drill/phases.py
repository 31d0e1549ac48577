"""The phases of a drill, in order, each a small unit over the run context:

    preflight -> baseline -> inject -> recover -> verify -> measure -> divergence
    -> steady_state

* preflight fails closed: no fault is injected and nothing is changed (steady_state skipped:
  there is nothing of ours to undo). It first checks the room the run needs (``room``), and
  runs no playbook without it.
* Once inject has started, steady_state runs whatever happens, interrupts included
  (``DrillEngine`` calls ``steady_state`` in a ``finally``).
* Each client population runs its own heartbeat into its own marker table and is measured on
  its own.
"""

from __future__ import annotations

import threading
from datetime import datetime
from typing import Any

from dalp_dr.adapters.base import ServerIdentity
from dalp_dr.checks import run_checks
from dalp_dr.converge import converge as run_converge
from dalp_dr.drill import steps
from dalp_dr.drill.clocks import ClockReads, locate_fault
from dalp_dr.drill.clocks import settle as settle_clocks
from dalp_dr.drill.context import DEADLINE, RunContext
from dalp_dr.drill.held import HeldPhase, waits_for_fault
from dalp_dr.drill.probe import probe
from dalp_dr.durations import format_duration, format_offset
from dalp_dr.errors import EndpointError
from dalp_dr.journal import EventKind
from dalp_dr.measure import pitr_check, recovery_target_time
from dalp_dr.reserve import STORE_WRITTEN, check
from dalp_dr.results import ConvergeOutcome, PhaseStatus
from dalp_dr.spec import PhaseName, Scenario
from dalp_dr.spec.parts import CLIENTS_MOVE_TO_RESTORED
from dalp_dr.target_clocks import AFTER_VERIFY, PREFLIGHT
from dalp_dr.timefmt import format_time

HELD_SLACK_SECONDS = 30.0
"""what a held recover waits beyond inject's timeout (the engine's own steps after it)"""


def drive(ctx: RunContext) -> None:
    """Every phase up to measure; returns early where the drill cannot go on."""
    state = ctx.state
    if not preflight(ctx):
        return
    reads = ClockReads(ctx, PREFLIGHT)  # the targets' clocks, while the baseline settles
    try:
        settled = baseline(ctx)
    finally:
        state.clock_offsets = reads.join()
    if not settled:
        return
    state.check()
    ctx.journal.flush()
    problem = ctx.journal.problem
    if problem is not None:  # no fault whose evidence cannot be kept
        state.refuse(f"no fault injected: {problem}")
        return
    state.injected = True  # from here on, steady_state always runs
    held = hold_recover(ctx)
    try:
        if not inject(ctx, held):
            return
        arm_deadline(ctx)
        state.check()
        recover(ctx, held)
    finally:
        if held is not None:  # not released: it must end, having done nothing
            held.abandon("the drill did not go on to recover (inject failed or was "
                         "interrupted)")
    if not verify(ctx):
        return
    reads = ClockReads(ctx, AFTER_VERIFY)  # again, while the drill observes
    try:
        converge(ctx)
        state.check()
        ctx.clients.pause(ctx.drill.spec.workload.observe.total_seconds())
        state.check()
        measure(ctx)
        state.check()
        probe(ctx)
    finally:
        state.clock_offsets = [*state.clock_offsets, *reads.join()]
        settle_clocks(ctx)


def preflight(ctx: RunContext) -> bool:
    """Fail closed: no fault unless there is room for the run and the preflight playbook
    proved it safe."""
    state = ctx.state
    if not room(ctx):
        return False
    pre = steps.run_phase(ctx, PhaseName.PREFLIGHT)
    state.check()
    if pre.ok:
        return True
    if pre.unreachable_hosts:
        state.unreachable_hosts = pre.unreachable_hosts
        state.refuse("preflight: unreachable " + ", ".join(pre.unreachable_hosts))
    else:
        state.refuse("preflight could not prove it is safe to inject the fault")
    return False


def room(ctx: RunContext) -> bool:
    """Free space for what the run writes, on each filesystem it writes to, and a history
    store that takes writes (proven by the run's record, begun just before: see
    ``dalp_dr.reserve``). Short of space: the run is refused in one line and preflight
    fails without running its playbook."""
    spaces = check(ctx.needs, ctx.disks)
    ctx.journal.record(EventKind.RESERVE_CHECKED, store=STORE_WRITTEN,
                       spaces=[{**s.model_dump(mode="json"), "short": s.short}
                               for s in spaces])
    short = next((s for s in spaces if s.short), None)
    if short is None:
        for space in spaces:
            ctx.progress(f"free space: {space.describe()}")
        return True
    started = ctx.clock.now()
    steps.begin(ctx, PhaseName.PREFLIGHT)
    steps.end(ctx, PhaseName.PREFLIGHT, PhaseStatus.FAILED, started, message=short.refusal())
    ctx.state.refuse(short.refusal())
    return False


def baseline(ctx: RunContext) -> bool:
    """Every population's heartbeat must flow through its endpoint before any fault."""
    state, clients = ctx.state, ctx.clients
    steps.begin(ctx, PhaseName.BASELINE)
    started = ctx.clock.now()
    for name, endpoint in clients.endpoints.items():
        try:
            endpoint.ensure_schema()
            session = endpoint.connect(timeout=5)
            try:
                state.baseline_identity[name] = session.identity()
            finally:
                session.close()
        except EndpointError as exc:
            steps.end(ctx, PhaseName.BASELINE, PhaseStatus.FAILED, started,
                      message=clients.label(name, f"endpoint failed during baseline: {exc}"))
            state.refuse("baseline: the service endpoint did not take writes")
            return False
    for beat in clients.heartbeats.values():
        beat.start()
    if ctx.drill.phase(PhaseName.BASELINE) is not None:
        result = steps.run_playbook(ctx, PhaseName.BASELINE, state.cancel.is_set)
        if not result.ok:
            steps.end(ctx, PhaseName.BASELINE, steps.status_of(result), started,
                      playbook=result, message=result.describe_failure())
            state.refuse("baseline playbook failed: no fault injected")
            return False
    wait_until = started + ctx.drill.spec.workload.baseline
    while ctx.clock.now() < wait_until:
        state.check()
        clients.pause(0.05)
    report: dict[str, Any] = {}
    for name, beat in clients.heartbeats.items():
        samples = beat.samples
        recent = samples[-5:]
        if not samples or not all(s.acked for s in recent):
            errors = [s.error for s in recent if s.error]
            steps.end(ctx, PhaseName.BASELINE, PhaseStatus.FAILED, started,
                      message=clients.label(name, "heartbeat writes are not acknowledged: "
                                            + (errors[-1] if errors else "no samples")))
            state.refuse("baseline: heartbeat not healthy, no fault injected")
            return False
        identity = state.baseline_identity.get(name)
        entry = {"acknowledged_writes": sum(1 for s in samples if s.acked),
                 "identity": identity.model_dump() if identity else None}
        if clients.several:
            report.setdefault("populations", {})[name] = entry
        else:
            report.update(entry)
    steps.end(ctx, PhaseName.BASELINE, PhaseStatus.OK, started, report=report)
    for name, beat in clients.heartbeats.items():
        acked = sum(1 for s in beat.samples if s.acked)
        ctx.progress("baseline: " + clients.label(name, f"{acked} heartbeat writes "
                                                        "acknowledged"))
    return True


def inject(ctx: RunContext, held: HeldPhase | None = None) -> bool:
    """The fault. A held recover is released as soon as inject reports it."""
    state, journal = ctx.state, ctx.journal
    watch = held.watch_inject(ctx.clock.now()) if held is not None else None
    result = steps.run_phase(ctx, PhaseName.INJECT, watch=watch)
    state.inject_result = result
    state.fault_at, state.fault_source = locate_fault(ctx, result)
    state.fault_simulated = result.artifact_data.get("dalp_fault_simulated") is True
    if state.fault_at is None:
        state.fail("inject failed before reporting a fault instant: the fault may not have "
                   "been injected; no figures")
        return False
    journal.record(EventKind.FAULT_INJECTED, at=state.fault_at.isoformat(),
                   source=state.fault_source)
    state.recovery_target = recovery_target_time(ctx.drill, state.fault_at)
    zone = ctx.drill.spec.schedule.timezone
    if state.recovery_target is not None:
        journal.record(EventKind.RECOVERY_TARGET, at=state.recovery_target.isoformat())
        ctx.progress("point-in-time target "
                     + format_time(state.recovery_target, zone, millis=True))
    ctx.progress(f"fault injected at {format_time(state.fault_at, zone, millis=True)} "
                 f"({state.fault_source})")
    if not result.ok:
        state.fail("inject phase failed")
        return False
    return True


def arm_deadline(ctx: RunContext) -> None:
    """From the fault on, the service has the drill's recovery deadline to be verified back;
    past it the running phase is stopped, the RTO recorded missed and steady state
    restored."""
    state = ctx.state
    limit = ctx.drill.spec.recovery_deadline()
    start = state.fault_at or ctx.clock.now()
    remaining = (start + limit - ctx.clock.now()).total_seconds()

    def expire() -> None:
        # recovered in time, or already stopping for an interrupt: the deadline says nothing
        if state.verified_at is None and not state.cancel.is_set():
            state.deadline_hit = (f"not recovered within the drill's deadline of "
                                  f"{format_duration(limit)} after the fault")
            ctx.journal.record(EventKind.RUN_DEADLINE, deadline_s=limit.total_seconds())
            ctx.progress(f"DEADLINE: {state.deadline_hit}; stopping the running phase")
            state.cancel.request(DEADLINE)

    state.deadline = threading.Timer(max(remaining, 0.0), expire)
    state.deadline.daemon = True
    state.deadline.start()


def hold_recover(ctx: RunContext) -> HeldPhase | None:
    """The recover playbook started now, before inject, held at the fault barrier, when it
    declares that it waits for the fault (``drill/held.py``); None otherwise."""
    drill = ctx.drill
    inject_spec, recover_spec = drill.phase(PhaseName.INJECT), drill.phase(PhaseName.RECOVER)
    if recover_spec is None or inject_spec is None \
            or not waits_for_fault(drill.playbooks[PhaseName.RECOVER]):
        return None
    # it waits at most as long as inject may take, and a little for the engine after it
    return HeldPhase(ctx, PhaseName.RECOVER,
                     wait_seconds=inject_spec.timeout.total_seconds() + HELD_SLACK_SECONDS)


def recover(ctx: RunContext, held: HeldPhase | None = None) -> None:
    """The recovery procedure, if the drill has one: the held playbook released, or the
    playbook started now. A failure is kept, and the drill goes on watching: verify still
    tells whether the service came back by itself."""
    if ctx.drill.phase(PhaseName.RECOVER) is None:
        return
    state = ctx.state
    if held is not None:
        assert state.fault_at is not None
        result = held.run({**state.facts, "dalp_fault_instant": state.fault_at.timestamp()})
    else:
        result = steps.run_phase(ctx, PhaseName.RECOVER)
    if not result.ok:
        state.fail("recover phase failed")


def verify(ctx: RunContext) -> bool:
    """The verify playbook (server side), then every population's view through its endpoint:
    writes acknowledged again, reads work, a writable server."""
    state, clients = ctx.state, ctx.clients
    verify_spec = ctx.drill.phase(PhaseName.VERIFY)
    assert verify_spec is not None and state.fault_at is not None
    state.check()
    result = steps.run_phase(ctx, PhaseName.VERIFY)
    state.check()
    if not result.ok:
        state.fail("verify playbook failed", keep_first=True)
        return False
    started = ctx.clock.now()
    deadline = started + verify_spec.timeout
    problems: list[str] = []
    reports: dict[str, dict[str, Any]] = {}
    populations = ctx.drill.spec.client_populations()
    for name, beat in clients.heartbeats.items():
        left = max(1.0, (deadline - ctx.clock.now()).total_seconds())
        if populations[name].isolated:
            reports[name] = isolated_view(ctx, name, timeout=min(5.0, left))
            continue
        recovered = beat.wait_for_recovery(state.fault_at, timeout=left,
                                           cancel=state.cancel.is_set)
        state.check()
        found, reports[name] = client_view(ctx, name, recovered)
        problems.extend(clients.label(name, p) for p in found)
    report: dict[str, Any] = ({"populations": reports} if clients.several
                              else next(iter(reports.values())))
    # with converge probes the checks come after them: "every workflow started before the
    # fault completed exactly once" means something only once the platform converged
    if not problems and ctx.drill.spec.checks and not ctx.drill.spec.converge:
        problems.extend(checks(ctx))
        report["checks"] = [c.model_dump(mode="json") for c in state.checks]
    if problems:
        state.fail("; ".join(problems))
        steps.end(ctx, PhaseName.VERIFY, PhaseStatus.FAILED, started, message=state.message,
                  report=report, replace=True)
        return False
    state.verified_at = ctx.clock.now()
    state.stop_deadline()
    steps.end(ctx, PhaseName.VERIFY, PhaseStatus.OK, started, report=report, replace=True)
    ctx.progress("verify: writes and reads through the endpoint"
                 + ("s" if clients.several else "") + " succeed")
    return True


def converge(ctx: RunContext) -> None:
    """The drill's converge probes after verify, the heartbeat still writing: each polled
    until met or timed out, then the drill's checks. A probe not met fails the drill (the
    platform did not converge; the RTT then has a lower bound only), as a failed check
    does."""
    probes = ctx.drill.spec.converge
    if not probes:
        return
    state, journal = ctx.state, ctx.journal
    assert state.fault_at is not None
    steps.begin(ctx, PhaseName.CONVERGE)
    started = ctx.clock.now()

    def clean(outcome: ConvergeOutcome) -> ConvergeOutcome:  # what a target said is data
        text = journal.redactor.text
        return outcome.model_copy(update={
            "detail": text(outcome.detail),
            "value": text(outcome.value) if outcome.value else None,
            "reference": text(outcome.reference) if outcome.reference else None})

    def done(outcome: ConvergeOutcome) -> None:
        outcome = clean(outcome)
        journal.record(EventKind.CONVERGED, probe=outcome.model_dump(mode="json"))
        ctx.progress(f"converge {outcome.name}: "
                     + (f"met at {format_offset(outcome.seconds)}" if outcome.met else "NOT MET")
                     + f" ({outcome.detail})")

    outcomes = run_converge(probes, ctx.clients.endpoints, ctx.web, fault_at=state.fault_at,
                            clock=ctx.clock, pause=ctx.clients.pause,
                            cancelled=state.cancel.is_set, on_done=done)
    state.convergence = [clean(o) for o in outcomes]
    state.check()
    report: dict[str, Any] = {
        "probes": [o.model_dump(mode="json") for o in state.convergence]}
    problems = [f"converge probe '{o.name}' {o.detail}" for o in state.convergence
                if not o.met]
    if ctx.drill.spec.checks:  # converged or not: what they find is evidence either way
        failed = checks(ctx)
        if failed:  # the platform is not right: not fully recovered, the RTT not measured
            state.checks_failed_at = ctx.clock.now()
        problems.extend(failed)
        report["checks"] = [c.model_dump(mode="json") for c in state.checks]
    if problems:
        message = "; ".join(problems)
        state.fail(message, keep_first=True)
        steps.end(ctx, PhaseName.CONVERGE, PhaseStatus.FAILED, started, report=report,
                  message=message)
        return
    steps.end(ctx, PhaseName.CONVERGE, PhaseStatus.OK, started, report=report)


def checks(ctx: RunContext) -> list[str]:
    """The drill's declarative checks, each journaled; the problems they found."""
    state, journal = ctx.state, ctx.journal
    state.checks = run_checks(ctx.drill.spec.checks, ctx.clients.endpoints, journal.redactor,
                              ctx.web, fault_at=state.fault_at)
    for outcome in state.checks:
        journal.record(EventKind.CHECK, check=outcome.model_dump(mode="json"))
        ctx.progress(f"check {outcome.name}: {'ok' if outcome.ok else 'FAILED'} "
                     f"({outcome.detail})")
    return [f"check '{c.name}' failed: {c.detail}" for c in state.checks if not c.ok]


def client_view(ctx: RunContext, name: str, recovered: datetime | None
                ) -> tuple[list[str], dict[str, Any]]:
    """One population's view after the fault: problems found and the report."""
    state, clients = ctx.state, ctx.clients
    problems: list[str] = []
    identity: ServerIdentity | None = None
    markers_seen = 0
    if recovered is None:
        problems.append("no write was acknowledged through the endpoint after the fault")
    else:
        ctx.journal.record(EventKind.RECOVERY_OBSERVED, at=recovered.isoformat(),
                           population=name if clients.several else None)
        try:
            session = clients.endpoints[name].connect(timeout=5)
            try:
                identity = session.identity()
                markers_seen = len(session.surviving_markers(ctx.run_id))
            finally:
                session.close()
        except EndpointError as exc:
            problems.append(f"read through the endpoint failed: {exc}")
    if identity is not None:
        if identity.in_recovery:
            problems.append("the endpoint reaches a server that is still in recovery")
        before = state.baseline_identity.get(name)
        if (ctx.drill.spec.scenario in (Scenario.FAILOVER, Scenario.SWITCHOVER)
                and before is not None and before.timeline is not None
                and identity.timeline is not None and identity.timeline <= before.timeline):
            problems.append(f"timeline did not advance ({before.timeline} -> "
                            f"{identity.timeline})")
    return problems, {"recovered_at": recovered.isoformat() if recovered else None,
                      "identity": identity.model_dump() if identity else None,
                      "markers_read_back": markers_seen}


def isolated_view(ctx: RunContext, name: str, *, timeout: float) -> dict[str, Any]:
    """What an isolated population's clients reach (the old primary, still up, or nothing
    once it was fenced): reported, never a problem; its figure is split brain."""
    try:
        session = ctx.clients.endpoints[name].connect(timeout=timeout)
        try:
            identity = session.identity()
        finally:
            session.close()
    except EndpointError as exc:
        return {"isolated": True, "identity": None, "reachable": False, "error": str(exc)}
    return {"isolated": True, "identity": identity.model_dump(), "reachable": True}


def measure(ctx: RunContext) -> None:
    """Stop writing, then read back which acknowledged markers survived, per population
    through its own endpoint (hot-hot: the lost site's clients now reach the survivor)."""
    state, clients = ctx.state, ctx.clients
    steps.begin(ctx, PhaseName.MEASURE)
    started = ctx.clock.now()
    clients.stop()
    populations = ctx.drill.spec.client_populations()
    for name, endpoint in clients.endpoints.items():
        if populations[name].isolated:  # it reaches the old primary: nothing to read back
            continue
        try:
            session = endpoint.connect(timeout=5)
            try:
                state.surviving[name] = session.surviving_markers(ctx.run_id)
            finally:
                session.close()
        except EndpointError as exc:
            steps.end(ctx, PhaseName.MEASURE, PhaseStatus.FAILED, started,
                      message=clients.label(name, f"cannot read markers back: {exc}"))
            return
    if clients.several:
        report: dict[str, Any] = {"markers_read_back": {
            name: len(found) for name, found in state.surviving.items()}}
    else:
        report = {"markers_on_recovered_primary": len(next(iter(state.surviving.values())))}
    status, message = PhaseStatus.OK, None
    if state.recovery_target is not None \
            and ctx.drill.spec.topology in CLIENTS_MOVE_TO_RESTORED:
        name, beat = next(iter(clients.heartbeats.items()))
        pitr = pitr_check(beat.samples, state.surviving[name], state.recovery_target,
                          state.fault_at)
        report["point_in_time"] = pitr
        if pitr["missing_before_target"] or pitr["present_after_target"]:
            status = PhaseStatus.FAILED
            message = (f"point-in-time restore wrong: {len(pitr['missing_before_target'])} "
                       f"markers before the target missing, "
                       f"{len(pitr['present_after_target'])} after it present")
            state.fail(message)
    steps.end(ctx, PhaseName.MEASURE, status, started, report=report, message=message)


def steady_state(ctx: RunContext) -> None:
    """Put the environment back. Never canceled by a first interrupt."""
    state = ctx.state
    try:
        result = steps.run_phase(ctx, PhaseName.STEADY_STATE)
    except KeyboardInterrupt:
        state.steady_state_ok = False
        ctx.journal.record(EventKind.STEADY_STATE_INTERRUPTED)
        raise
    state.steady_state_ok = result.ok
    if not state.steady_state_ok:
        state.add_problem("return to steady state FAILED: the environment needs attention")


def skip_steady_state(ctx: RunContext) -> None:
    """No fault was injected: nothing of ours to undo."""
    now = ctx.clock.now()
    ctx.state.phases.append(steps.skipped(PhaseName.STEADY_STATE, now,
                                          "no fault was injected: nothing to restore"))
