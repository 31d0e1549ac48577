"""From what a run found to its record: the one ``RunResult`` factory, the figures and
verdicts per population, and the outcome's precedence.

Precedence: interrupted (aborted) > the recovery deadline passed (missed) > preflight failed
> the verdicts and phase failures (``verdict.outcome_of``).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime

from dalp_dr import divergence, timeline
from dalp_dr.adapters.http import ApiEndpoint
from dalp_dr.drill.context import RunContext
from dalp_dr.measure import from_restore, measure
from dalp_dr.provenance import Provenance
from dalp_dr.redact import Redactor
from dalp_dr.results import (
    Basis,
    Measurements,
    ObjectiveVerdict,
    Outcome,
    RunResult,
    Status,
    Trigger,
)
from dalp_dr.spec import LoadedDrill, PhaseName, Scenario, Topology
from dalp_dr.split_brain import first_ack_elsewhere, promotion_instant, split_brain
from dalp_dr.verdict import judge, judge_split_brain, outcome_of


def new_run_id(now: datetime) -> str:
    return f"{now:%Y%m%dT%H%M%SZ}-{secrets.token_hex(3)}"


@dataclass(frozen=True)
class RunHead:
    """What every record of one drill carries, whether it ran or not."""

    drill: str
    topology: Topology
    scenario: Scenario
    environment: str
    owner: str
    spec_hash: str
    rto: float
    rpo: float
    split_brain: int | None = None
    """the most split-brain writes allowed, when the drill declares it"""
    rtt: float | None = None
    """the RTT objective (seconds), when the drill declares it"""

    @classmethod
    def of(cls, drill: LoadedDrill) -> RunHead:
        spec = drill.spec
        return cls(drill=spec.name, topology=spec.topology, scenario=spec.scenario,
                   environment=spec.environment, owner=spec.owner, spec_hash=drill.spec_hash,
                   rto=spec.objectives.rto.total_seconds(),
                   rpo=spec.objectives.rpo.total_seconds(),
                   split_brain=spec.objectives.split_brain,
                   rtt=spec.objectives.rtt.total_seconds() if spec.objectives.rtt else None)


def new_record(head: RunHead, *, run_id: str, trigger: Trigger, operator: str,
               started_at: datetime, outcome: Outcome, ended_at: datetime | None = None,
               message: str | None = None, planned_at: datetime | None = None,
               provenance: Provenance | None = None, evidence_dir: str = "",
               drill_file: str | None = None) -> RunResult:
    """The one way a run record is made: a run starting (``running``) or one that did not
    start (refused, missed schedule, not run)."""
    objectives = {"rto": head.rto, "rpo": head.rpo}
    if head.split_brain is not None:
        objectives["split_brain"] = float(head.split_brain)
    if head.rtt is not None:
        objectives["rtt"] = head.rtt
    return RunResult(
        run_id=run_id, drill=head.drill, topology=head.topology, scenario=head.scenario,
        environment=head.environment, owner=head.owner, trigger=trigger, operator=operator,
        spec_hash=head.spec_hash, started_at=started_at, ended_at=ended_at, outcome=outcome,
        objectives=objectives, measurements=None, verdicts=[],
        phases=[], steady_state_restored=None, evidence_dir=evidence_dir, message=message,
        planned_at=planned_at, drill_file=drill_file, provenance=provenance)


def not_started(drill: LoadedDrill, run_id: str, trigger: Trigger, operator: str,
                at: datetime, outcome: Outcome, message: str,
                planned_at: datetime | None = None,
                provenance: Provenance | None = None) -> RunResult:
    """The record of a run that did not start (refused by a guardrail)."""
    return new_record(RunHead.of(drill), run_id=run_id, trigger=trigger, operator=operator,
                      started_at=planned_at or at, ended_at=at, outcome=outcome,
                      message=message, planned_at=planned_at, provenance=provenance)


def redacted(result: RunResult, redactor: Redactor) -> RunResult:
    """The record with every secret the run knows masked: what a playbook printed or
    published (failure messages, set_stats reports) reaches the store and the console only
    through this."""
    return RunResult.model_validate(redactor.scrub(result.model_dump(mode="json")))


def decide(ctx: RunContext, verdicts: list[ObjectiveVerdict], *, interrupted: bool) -> Outcome:
    state = ctx.state
    if interrupted:
        return Outcome.ABORTED
    if state.deadline_hit is not None:
        return Outcome.MISSED
    if state.preflight_failed:
        return Outcome.PREFLIGHT_FAILED
    return outcome_of(verdicts, phase_failed=state.failed)


def figures(ctx: RunContext) -> tuple[dict[str, Measurements], list[ObjectiveVerdict]]:
    """Each population's figures (once a fault was injected) and the judged ones' verdicts,
    then, when the drill declares it, the split-brain verdict of every population (split
    brain anywhere is the failure, judged or not); a passed deadline makes the RTO missed
    whatever was measured."""
    spec, state, clients = ctx.drill.spec, ctx.state, ctx.clients
    populations = spec.client_populations()
    measured: dict[str, Measurements] = {}
    verdicts: list[ObjectiveVerdict] = []
    split_target = spec.objectives.split_brain
    promoted_at = min(
        (at for at in (promotion_instant(timeline.reported_events(state.phases)),
                       *(first_ack_elsewhere(beat.samples, fault_at=state.fault_at)
                         for beat in clients.heartbeats.values())) if at is not None),
        default=None)
    # Fenced is the question of the clients cut off with the old primary: where a drill has
    # such (isolated) populations, the others (which lost their way to it) do not answer it.
    has_isolated = any(p.isolated for p in populations.values())

    def labelled(verdict: ObjectiveVerdict, name: str) -> ObjectiveVerdict:
        return verdict.model_copy(update={"population": name}) if clients.several else verdict

    met = [o.at for o in state.convergence if o.met and o.at is not None]
    unmet = [o.at for o in state.convergence if not o.met and o.at is not None]
    if state.checks_failed_at is not None:  # converged, but the platform is not right
        unmet.append(state.checks_failed_at)
    restored = next((dict(p.report.get("dalp_restore") or {}) for p in state.phases
                     if p.phase is PhaseName.RECOVER), {})
    # a restore never verified was down at least until verify gave up (not until steady
    # state's clean-up, which may take an hour of deleting)
    verify_ended = next((p.ended_at for p in state.phases if p.phase is PhaseName.VERIFY),
                        None)
    if state.injected:
        for name, beat in clients.heartbeats.items():
            samples = beat.samples
            measured[name] = measure(
                samples, fault_at=state.fault_at, surviving=state.surviving.get(name),
                verified_at=state.verified_at,
                interval=spec.workload.heartbeat_interval.total_seconds(),
                observed_until=max((s.ended_at for s in samples), default=ctx.clock.now()),
                converged_at=max(met) if met and not unmet else None,
                unconverged_at=max(unmet) if unmet else None,
            )
            if state.fault_simulated:
                measured[name] = from_restore(
                    measured[name], verified_at=state.verified_at,
                    data_loss_bound=restored.get("data_loss_bound"),
                    observed_until=verify_ended or ctx.clock.now())
            if state.divergence is not None and not populations[name].isolated \
                    and measured[name].basis is Basis.CLIENTS:
                found = state.divergence if not has_isolated else state.divergence.model_copy(
                    update={"contradicted": "the old primary was cut off with clients of its "
                            "own: its WAL past the fork holds their writes too (split brain is "
                            "the figure for them)"})
                measured[name] = divergence.applied(measured[name], found,
                                                    populations[name].marker_table)
            if split_target is not None:
                figures = split_brain(samples, fault_at=state.fault_at,
                                      promoted_at=promoted_at)
                if has_isolated and not populations[name].isolated:
                    figures = figures.model_copy(update={"fenced": None})
                measured[name] = measured[name].model_copy(update={"split_brain": figures})
            if populations[name].judged:
                verdicts.extend(labelled(v, name)
                                for v in judge(spec.objectives, measured[name]))
        if split_target is not None:  # after the judged ones: the first verdict stays RTO's
            verdicts.extend(labelled(judge_split_brain(split_target, m.split_brain), name)
                            for name, m in measured.items())
    if state.deadline_hit is not None:
        verdicts = [v.model_copy(update={
            "status": Status.MISSED, "reason": state.deadline_hit,
            "measured": v.measured if v.measured is not None else
            spec.recovery_deadline().total_seconds(), "margin": None})
            if v.objective == "rto" and v.status is not Status.MISSED else v
            for v in verdicts]
    return measured, verdicts


def final_result(ctx: RunContext, base: RunResult, *, interrupted: bool
                 ) -> tuple[RunResult, dict[str, Measurements]]:
    """The run's final record (not yet stored) and every population's figures."""
    state, clients, spec = ctx.state, ctx.clients, ctx.drill.spec
    measured, verdicts = figures(ctx)
    populations = spec.client_populations()
    primary = next((measured[n] for n, p in populations.items()
                    if p.judged and n in measured), None)
    outcome = decide(ctx, verdicts, interrupted=interrupted)
    for name, beat in clients.heartbeats.items():
        if beat.sink_error is not None:
            state.message = (state.message or "") + " (" + clients.label(
                name, f"heartbeat evidence write failed: {beat.sink_error}") + ")"
    events = timeline.build(
        fault_at=state.fault_at, fault_source=state.fault_source,
        clients={name: (beat.samples, measured[name].recovered_at if name in measured
                        else None) for name, beat in clients.heartbeats.items()},
        labelled=clients.several, verified_at=state.verified_at, phases=state.phases,
        extra=[*timeline.converged(state.convergence),
               *timeline.resolved({name: e.resolver.changes
                                   for name, e in clients.endpoints.items()
                                   if isinstance(e, ApiEndpoint)},
                                  fault_at=state.fault_at, labelled=clients.several)])
    return base.model_copy(update={
        "timeline": events, "ended_at": ctx.clock.now(), "outcome": outcome,
        "measurements": primary, "populations": measured if clients.several else {},
        "verdicts": verdicts, "phases": list(state.phases),
        "steady_state_restored": state.steady_state_ok, "message": state.message,
        "checks": list(state.checks), "convergence": list(state.convergence),
        "clock_offsets": list(state.clock_offsets), "clock_note": state.clock_note,
    }), measured
