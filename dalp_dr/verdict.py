"""Comparing measurements with declared objectives. No evidence, no pass."""

from __future__ import annotations

from dalp_dr.durations import format_duration
from dalp_dr.results import Measurements, ObjectiveVerdict, Outcome, Status
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
    rto = objectives.rto.total_seconds()
    rpo = objectives.rpo.total_seconds()
    if m is None:
        return [_judge("rto", rto, None, None, "recovery time"),
                _judge("rpo", rpo, None, None, "data-loss window")]
    return [
        _judge("rto", rto, m.recovery_time, m.recovery_time_lower_bound, "recovery time"),
        _judge("rpo", rpo, m.data_loss_window, m.data_loss_window_lower_bound,
               "data-loss window"),
    ]


def outcome_of(verdicts: list[ObjectiveVerdict], *, phase_failed: bool) -> Outcome:
    if phase_failed:
        return Outcome.FAILED
    statuses = {v.status for v in verdicts}
    if Status.MISSED in statuses:
        return Outcome.MISSED
    if Status.UNKNOWN in statuses or not verdicts:
        return Outcome.INCONCLUSIVE
    return Outcome.PASSED
