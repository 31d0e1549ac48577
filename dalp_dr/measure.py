"""The measurement arithmetic, from heartbeat samples to recovery time and data-loss window.

Definitions (docs: shared dalp-ha.md, README "What is measured"):

* recovery time = first write acknowledged again after the fault - fault instant. "Again"
  means an attempt started after the client first saw the outage, so a late acknowledgement
  from the dying primary is not mistaken for recovery. No outage seen: first ack after fault.
* write outage = first write acknowledged again - last write acknowledged before the client
  first saw the outage: how long clients could not write. For a sudden fault it is close to
  the recovery time; for a planned switchover, whose request precedes the moment writes
  stop, it is the figure that matters. No outage seen: 0.
* longest write wait = the longest any one attempt under way between the fault and recovery
  waited for its answer: the stall of a client whose write a route held (no failure seen,
  so no write outage) rather than failed.
* RTT = the later of verify passed and the last converge probe met - fault instant. A probe
  that never converged leaves the RTT unmeasured, at least (its giving up - fault instant).
* data-loss window = acknowledgement time of the newest write acknowledged before recovery
  minus that of the newest such write that survived on the recovered primary; 0 when every
  acknowledged write survived. Lost writes = acknowledged writes absent after recovery.
* Resolution is one heartbeat interval: no figure is finer than that.

Missing evidence gives None, never a guess; lower bounds are reported where they exist.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from dalp_dr.adapters.base import PlaybookResult
from dalp_dr.results import Basis, HeartbeatSample, Measurements
from dalp_dr.spec import LoadedDrill


def _seconds(later: datetime, earlier: datetime) -> float:
    return round((later - earlier).total_seconds(), 6)


def measure(samples: Sequence[HeartbeatSample], *, fault_at: datetime | None,
            surviving: set[int] | None, verified_at: datetime | None, interval: float,
            observed_until: datetime, converged_at: datetime | None = None,
            unconverged_at: datetime | None = None) -> Measurements:
    """``converged_at``: when the last converge probe was met (all were); ``unconverged_at``:
    when a probe gave up, not met."""
    ordered = sorted(samples, key=lambda s: s.seq)
    acked = [s for s in ordered if s.acked]
    unacked = sum(1 for s in ordered if not s.acked)
    if fault_at is None:
        return Measurements(
            fault_at=None, recovered_at=None, verified_at=verified_at, recovery_time=None,
            rtt=None, data_loss_window=None, lost_writes=None, acked_before_fault=len(acked),
            unacknowledged_attempts=unacked, resolution=interval,
        )

    # Recovery: first acknowledgement of an attempt sent after the first failure seen after
    # the fault (or, with no failure at all, the first acknowledgement after the fault).
    failures = [s for s in ordered if not s.acked and s.ended_at >= fault_at]
    outage_seen = min((s.ended_at for s in failures), default=None)
    if outage_seen is not None:
        candidates = [s for s in acked if s.sent_at >= outage_seen]
    else:
        candidates = [s for s in acked if s.ended_at >= fault_at]
    recovered = min(candidates, key=lambda s: s.ended_at, default=None)
    recovered_at = recovered.ended_at if recovered else None
    recovery_time = _seconds(recovered_at, fault_at) if recovered_at else None
    write_outage: float | None = None
    if recovered_at is not None:
        if outage_seen is None:
            write_outage = 0.0
        else:
            last_good = max((s.ended_at for s in acked if s.ended_at <= outage_seen),
                            default=None)
            write_outage = _seconds(recovered_at, last_good) if last_good else None
    lower_bound = None if recovered_at else max(0.0, _seconds(observed_until, fault_at))
    under_way = [s for s in ordered if s.ended_at >= fault_at
                 and (recovered_at is None or s.sent_at <= recovered_at)]
    longest_wait = max((_seconds(s.ended_at, s.sent_at) for s in under_way), default=None)

    # Data loss: writes acknowledged before recovery (the old primary's era).
    era = [s for s in acked if recovered_at is None or s.ended_at < recovered_at]
    before_fault = sum(1 for s in acked if s.ended_at <= fault_at)
    window: float | None = None
    window_lb: float | None = None
    lost: int | None = None
    last_ack = max((s.ended_at for s in era), default=None)
    newest_surviving: datetime | None = None
    if surviving is not None:
        lost = sum(1 for s in acked if s.seq not in surviving)
        survivors = [s.ended_at for s in era if s.seq in surviving]
        newest_surviving = max(survivors, default=None)
        if last_ack is None:
            window = 0.0
        elif newest_surviving is not None:
            window = max(0.0, _seconds(last_ack, newest_surviving))
        else:
            first_ack = min(s.ended_at for s in era)
            window_lb = _seconds(last_ack, first_ack)

    rtt_end = max(verified_at, converged_at) if verified_at and converged_at else verified_at
    rtt = _seconds(rtt_end, fault_at) if rtt_end and unconverged_at is None else None
    return Measurements(
        fault_at=fault_at, recovered_at=recovered_at, verified_at=verified_at,
        recovery_time=recovery_time, recovery_time_lower_bound=lower_bound,
        write_outage=write_outage, longest_write_wait=longest_wait, rtt=rtt,
        # never verified: at least as long as the outage the client saw (or what it saw of it)
        rtt_lower_bound=_seconds(unconverged_at, fault_at) if unconverged_at else
        (recovery_time if recovery_time is not None else lower_bound) if verified_at is None
        else None,
        data_loss_window=window, data_loss_window_lower_bound=window_lb, lost_writes=lost,
        acked_before_fault=before_fault, unacknowledged_attempts=unacked, resolution=interval,
        last_ack_before_fault=last_ack, newest_surviving_ack=newest_surviving,
        surviving_checked=surviving is not None,
    )


# A reported fault instant must lie within the inject playbook's run, seen from the controller,
# give or take this much clock difference; otherwise the controller's own bound is used.
CLOCK_TOLERANCE = timedelta(seconds=1)


def reported_instant(reported: Any, earliest: datetime, latest: datetime) -> datetime | None:
    """A reported ``dalp_fault_instant`` (epoch seconds) when it is a number within the
    controller's window for inject, give or take CLOCK_TOLERANCE; None otherwise."""
    try:
        at = datetime.fromtimestamp(float(reported), UTC)
    except (TypeError, ValueError, OverflowError):
        return None
    return at if earliest - CLOCK_TOLERANCE <= at <= latest + CLOCK_TOLERANCE else None


def from_restore(clients: Measurements, *, verified_at: datetime | None,
                 data_loss_bound: Any, observed_until: datetime) -> Measurements:
    """The figures of a run whose fault was simulated (a managed database's restore drill:
    the source is not touched, so its clients never lose it and their heartbeat says about
    nothing): recovery time = fault instant -> the restored database verified (at least
    until ``observed_until`` when it never was); data-loss window = the restore's own bound,
    the fault instant minus the point the restored database holds (None when the recover
    playbook did not report one as a finite number of seconds >= 0). The clients' own
    figures that stay (``recovered_at``, the write counts) are what they saw."""
    fault_at = clients.fault_at
    recovery = _seconds(verified_at, fault_at) if verified_at and fault_at else None
    bound: float | None = None
    if isinstance(data_loss_bound, (int, float, str)) and not isinstance(data_loss_bound, bool):
        try:
            bound = float(data_loss_bound)
        except ValueError:
            bound = None
    if bound is not None and not (math.isfinite(bound) and bound >= 0):
        bound = None
    return clients.model_copy(update={
        "basis": Basis.RESTORE, "recovery_time": recovery,
        "recovery_time_lower_bound": _seconds(observed_until, fault_at)
        if recovery is None and fault_at else None,
        "write_outage": None, "lost_writes": None, "data_loss_window_lower_bound": None,
        "data_loss_window": round(bound, 6) if bound is not None else None})


def fault_instant(inject: PlaybookResult) -> tuple[datetime | None, str | None]:
    """The fault instant and where it came from, from the inject playbook's result."""
    reported = inject.artifact_data.get("dalp_fault_instant")
    if reported is not None:
        at = reported_instant(reported, inject.started_at, inject.ended_at)
        if at is not None:
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
