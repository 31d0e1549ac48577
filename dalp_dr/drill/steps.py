"""How one phase is run and recorded: its playbook with the drill's extra vars, its events
into the journal, its record (``PhaseRecord``) into the run state.

Every phase playbook gets ``dalp_run_id``, ``dalp_phase``, ``dalp_rto_seconds``,
``dalp_rpo_seconds``, ``dalp_evidence_dir`` (where it may fetch files to keep as evidence)
and the phase's ``vars`` as extra vars, and reports back through ``set_stats``
(``dalp_fault_instant`` from inject, ``dalp_timeline`` events; anything else is kept as the
phase report in the evidence). What a phase publishes as ``dalp_*`` is handed to the phases
after it (e.g. the leader inject killed).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from dalp_dr.adapters.base import CancelCheck, PlaybookResult
from dalp_dr.drill.context import RunContext
from dalp_dr.durations import format_duration
from dalp_dr.errors import PlaybookFailed
from dalp_dr.journal import EventKind
from dalp_dr.results import PhaseRecord, PhaseStatus
from dalp_dr.spec import LoadedDrill, PhaseName
from dalp_dr.timeline import HELD_SINCE

# What a phase reports only about itself; everything else a playbook publishes as dalp_* with
# set_stats is handed to the phases after it as extra vars.
LOCAL_REPORT_KEYS = frozenset({"dalp_notes", "dalp_phase_timings", "dalp_timeline",
                               "dalp_divergence"})

_STATUS = {"successful": PhaseStatus.OK, "timeout": PhaseStatus.TIMEOUT,
           "canceled": PhaseStatus.CANCELED}


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


def extravars_now(ctx: RunContext, phase: PhaseName) -> dict[str, Any]:
    """The phase's extra vars with what the run knows now."""
    evidence_dir = (ctx.results_dir / ctx.run_id / "files" / phase.value).resolve()
    target = ctx.state.recovery_target
    restore = ctx.drill.spec.restore
    if target is not None and restore is not None and restore.target.before_fault is not None:
        # the server compares it with commit times on its own clock, the one that stamped
        # the fault: the run's timeline turned back into that clock
        target += timedelta(seconds=ctx.state.fault_clock_offset)
    return phase_extravars(ctx.drill, phase, ctx.run_id, evidence_dir, ctx.state.facts,
                           target)


def run_playbook(ctx: RunContext, phase: PhaseName, cancel: CancelCheck | None, *,
                 extravars: Mapping[str, Any] | None = None,
                 extra_timeout: float = 0.0,
                 watch: Callable[[dict[str, Any]], None] | None = None) -> PlaybookResult:
    """The phase's playbook, to its end (a playbook that could not start is a failed
    result, not an exception). ``extravars``: given (a held phase's, fixed when it was
    started), else ``extravars_now``; ``extra_timeout``: seconds on top of the phase's
    timeout (a held phase's wait for the fault); ``watch`` sees each event after the
    journal."""
    drill = ctx.drill
    phase_spec = drill.phase(phase)
    assert phase_spec is not None
    started = ctx.clock.now()
    try:
        result = ctx.runner.run(
            drill.playbooks[phase], drill.inventory,
            extravars=extravars if extravars is not None else extravars_now(ctx, phase),
            timeout=phase_spec.timeout.total_seconds() + extra_timeout,
            on_event=lambda event: _journal_then(ctx, phase, event, watch),
            cancel=cancel,
        )
    except PlaybookFailed as exc:
        now = ctx.clock.now()
        return PlaybookResult(playbook=drill.playbooks[phase].name, status=exc.status, rc=-1,
                              started_at=now, ended_at=now, artifact_data={},
                              failure_message=str(exc))
    # the playbook's window on the run's timeline (the runner stamps the wall clock)
    return result.model_copy(update={"started_at": started, "ended_at": ctx.clock.now()})


def _journal_then(ctx: RunContext, phase: PhaseName, event: dict[str, Any],
                  watch: Callable[[dict[str, Any]], None] | None) -> None:
    ctx.journal.ansible_event(phase.value, event)
    if watch is not None:
        watch(event)


def run_phase(ctx: RunContext, phase: PhaseName, *,
              watch: Callable[[dict[str, Any]], None] | None = None) -> PlaybookResult:
    """A phase that is its playbook: run it, keep its files and facts, record the phase."""
    begin(ctx, phase)
    started = ctx.clock.now()
    # steady state is never canceled by a first interrupt: it is what makes stopping safe
    cancel = None if phase is PhaseName.STEADY_STATE else ctx.state.cancel.is_set
    return finish(ctx, phase, started, run_playbook(ctx, phase, cancel, watch=watch))


def finish(ctx: RunContext, phase: PhaseName, started: datetime, result: PlaybookResult, *,
           held_since: datetime | None = None) -> PlaybookResult:
    """After a phase's playbook: keep its files, hand its dalp_* facts on, record it.
    ``held_since``: the phase was held at the fault barrier from then (drill/held.py); only
    the engine says so, a playbook publishing that key does not."""
    ctx.journal.adopt_files(phase.value)
    ctx.state.facts.update(handed_on(result.artifact_data))
    report = {k: v for k, v in result.artifact_data.items() if k != HELD_SINCE}
    if held_since is not None:
        report[HELD_SINCE] = held_since.isoformat()
    end(ctx, phase, status_of(result), started, playbook=result,
        message=None if result.ok else result.describe_failure(), report=report)
    return result


def handed_on(published: Mapping[str, Any]) -> dict[str, Any]:
    """What a phase published that the phases after it receive: its dalp_* facts, less
    what it reports only about itself."""
    return {k: v for k, v in published.items()
            if k.startswith("dalp_") and k not in LOCAL_REPORT_KEYS}


def status_of(result: PlaybookResult) -> PhaseStatus:
    """A phase's status from its playbook's (a playbook that ended well but returned a
    non-zero rc failed)."""
    status = _STATUS.get(result.status, PhaseStatus.FAILED)
    return PhaseStatus.FAILED if status is PhaseStatus.OK and not result.ok else status


def begin(ctx: RunContext, phase: PhaseName) -> None:
    ctx.journal.record(EventKind.PHASE_STARTED, phase=phase.value)
    ctx.progress(f"phase {phase.value} ...")


def end(ctx: RunContext, phase: PhaseName, status: PhaseStatus, started: datetime, *,
        playbook: PlaybookResult | None = None, message: str | None = None,
        report: dict[str, Any] | None = None, replace: bool = False) -> None:
    """Record the phase. ``replace``: the client side of a phase whose playbook was
    recorded already (verify): one record for both, the playbook's start kept."""
    phases = ctx.state.phases
    if replace and phases and phases[-1].phase is phase:
        previous = phases.pop()
        started = previous.started_at
        report = {**previous.report, **(report or {})}
        playbook_name = previous.playbook
    else:
        playbook_name = playbook.playbook if playbook else None
    record = PhaseRecord(phase=phase, status=status, started_at=started,
                         ended_at=ctx.clock.now(), playbook=playbook_name, message=message,
                         report=report or {})
    phases.append(record)
    ctx.journal.record(EventKind.PHASE_FINISHED, **record.model_dump(mode="json"))
    label = f"{phase.value} (client side)" if replace else phase.value
    ctx.progress(f"phase {label}: {status.value} in {format_duration(record.duration)}"
                 + (f" - {message}" if message else ""))


def skipped(phase: PhaseName, at: datetime, message: str) -> PhaseRecord:
    """The record of a phase that did not run."""
    return PhaseRecord(phase=phase, status=PhaseStatus.SKIPPED, started_at=at, ended_at=at,
                       message=message)
