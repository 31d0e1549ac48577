"""Comparing measurements with declared objectives. No evidence, no pass."""

from __future__ import annotations

from dalp_dr.durations import format_duration
from dalp_dr.results import (
    Basis,
    LossBasis,
    Measurements,
    ObjectiveVerdict,
    Outcome,
    SplitBrain,
    Status,
)
from dalp_dr.spec import Objectives


def _judge(name: str, target: float, measured: float | None, lower_bound: float | None,
           what: str) -> ObjectiveVerdict:
    if measured is not None:
        met = measured <= target
        return ObjectiveVerdict(
            objective=name, target=target, measured=measured,
            status=Status.MET if met else Status.MISSED, margin=round(target - measured, 6),
            reason=f"{what} {format_duration(measured)} {'<=' if met else '>'} "
                   f"{name.upper()} {format_duration(target)}",
        )
    if lower_bound is not None and lower_bound > target:
        return ObjectiveVerdict(
            objective=name, target=target, measured=None, status=Status.MISSED,
            margin=round(target - lower_bound, 6),
            reason=f"{what} at least {format_duration(lower_bound)} > {name.upper()} "
                   f"{format_duration(target)}",
        )
    return ObjectiveVerdict(
        objective=name, target=target, measured=None, status=Status.UNKNOWN, margin=None,
        reason=f"{what} not measured: evidence missing",
    )


def judge(objectives: Objectives, m: Measurements | None) -> list[ObjectiveVerdict]:
    """RTO and RPO, then RTT when the drill declares it."""
    rto = objectives.rto.total_seconds()
    rpo = objectives.rpo.total_seconds()
    restore = m is not None and m.basis is Basis.RESTORE
    out = [
        _judge("rto", rto, m.recovery_time if m else None,
               m.recovery_time_lower_bound if m else None,
               "restore time (fault -> restored database verified; fault simulated)"
               if restore else "recovery time"),
        _judge("rpo", rpo, m.data_loss_window if m else None,
               m.data_loss_window_lower_bound if m else None,
               "data-loss bound (restored point -> fault; fault simulated)"
               if restore else "data-loss window (exact, from the old primary's WAL)"
               if m is not None and m.data_loss_basis is LossBasis.EXACT
               else "data-loss window (sampled by the heartbeat)"),
    ]
    if objectives.rtt is not None:
        out.append(_judge("rtt", objectives.rtt.total_seconds(), m.rtt if m else None,
                          m.rtt_lower_bound if m else None, "time to fully recovered"))
    return out


SPLIT_BRAIN = "split_brain"


def judge_split_brain(target: int, figures: SplitBrain | None) -> ObjectiveVerdict:
    """At most ``target`` writes acknowledged by the old primary after the promotion."""
    if figures is None or figures.writes is None:
        why = figures.reason if figures is not None and figures.reason else "evidence missing"
        return ObjectiveVerdict(objective=SPLIT_BRAIN, target=target, measured=None,
                                status=Status.UNKNOWN, margin=None,
                                reason=f"split-brain writes not measured: {why}")
    met = figures.writes <= target
    during = (f" (the old primary took them over {format_duration(figures.span)})"
              if figures.span else "")
    return ObjectiveVerdict(
        objective=SPLIT_BRAIN, target=target, measured=figures.writes,
        status=Status.MET if met else Status.MISSED, margin=target - figures.writes,
        reason=f"split-brain writes {figures.writes} {'<=' if met else '>'} {target}{during}")


def outcome_of(verdicts: list[ObjectiveVerdict], *, phase_failed: bool) -> Outcome:
    if phase_failed:
        return Outcome.FAILED
    statuses = {v.status for v in verdicts}
    if Status.MISSED in statuses:
        return Outcome.MISSED
    if Status.UNKNOWN in statuses or not verdicts:
        return Outcome.INCONCLUSIVE
    return Outcome.PASSED
