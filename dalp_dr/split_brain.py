"""Split brain from the client's side: writes the old primary still acknowledged after the
new primary was promoted, and whether the old primary was fenced.

Every acknowledged heartbeat write carries the WAL timeline of the server that took it
(``HeartbeatSample.timeline``). For one client population:

* the old primary's timeline is that of the population's newest write acknowledged before
  the fault (none, or without a timeline: not measurable);
* the promotion instant is the earliest "new primary promoted" on the recovery timeline (the
  hot-warm recover playbook and the cloud-native observer report it; none: not measurable),
  or, when earlier, the first write any population had acknowledged on another timeline
  (``first_ack_elsewhere``, the controller's clock): a late report or a host clock behind
  the controller's cannot hide split-brain writes;
* split-brain writes are the population's writes acknowledged on the old timeline after the
  promotion instant: their count, the first and the last, and the span between them;
* the old primary was fenced when the population kept attempting after the old timeline's
  last acknowledged write and none of those attempts was accepted there. A population that
  stopped attempting (or whose last attempt the old primary took) proves nothing: not
  fenced, as far as the evidence goes.

A write acknowledged on the new timeline after the promotion is the new primary's, never
split brain. The promotion instant is the reporting host's clock and the acknowledgement
the controller's: writes within the clock difference of the promotion can fall either side.
The resolution is one heartbeat interval. Missing evidence gives None with a reason, never
a guess.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime

from dalp_dr.results import HeartbeatSample, SplitBrain, TimelineEvent

PROMOTION_EVENTS = frozenset({"new primary promoted"})
"""recovery-timeline events that mark the new primary's promotion: the hot-warm recover
playbook's and the cloud-native observer's (dalp_dr/patroni_watch.py), both by this name"""


def promotion_instant(events: Iterable[TimelineEvent]) -> datetime | None:
    """The earliest promotion reported on the recovery timeline, or None."""
    return min((e.at for e in events if e.name in PROMOTION_EVENTS), default=None)


def _seconds(later: datetime, earlier: datetime) -> float:
    return round((later - earlier).total_seconds(), 6)


def split_brain(samples: Sequence[HeartbeatSample], *, fault_at: datetime | None,
                promoted_at: datetime | None) -> SplitBrain:
    """One population's split-brain figures from its heartbeat samples."""
    if fault_at is None:
        return SplitBrain(promoted_at=promoted_at, old_timeline=None, writes=None,
                          reason="no fault instant")
    ordered = sorted(samples, key=lambda s: s.seq)
    acked = [s for s in ordered if s.acked]
    before = [s for s in acked if s.ended_at <= fault_at]
    if not before:
        return SplitBrain(promoted_at=promoted_at, old_timeline=None, writes=None,
                          reason="no write acknowledged before the fault: the old primary "
                                 "is not known")
    reference = max(before, key=lambda s: s.ended_at)
    old = reference.timeline
    if old is None:
        return SplitBrain(promoted_at=promoted_at, old_timeline=None, writes=None,
                          reason="the heartbeat samples carry no server timeline")
    fenced, last_old, fence_reason = _fencing(ordered, old)
    base = SplitBrain(promoted_at=promoted_at, old_timeline=old, old_server=reference.server,
                      writes=None, fenced=fenced, last_old_primary_ack=last_old,
                      reason=fence_reason)
    if promoted_at is None:
        return base.model_copy(update={"reason": _join(
            'no promotion instant reported (no "new primary promoted" on the recovery '
            "timeline, no write acknowledged on another timeline)", fence_reason)})
    after = [s for s in acked if s.ended_at > promoted_at]
    unknown = sum(1 for s in after if s.timeline is None)
    if unknown:
        return base.model_copy(update={"reason": _join(
            f"{unknown} writes acknowledged after the promotion carry no server timeline",
            fence_reason)})
    # the old primary: its timeline, and its address where both are known (two servers can
    # share a timeline number without sharing a history)
    split = [s for s in after if s.timeline == old
             and (reference.server is None or s.server is None or s.server == reference.server)]
    if not split:
        return base.model_copy(update={"writes": 0})
    first = min(s.ended_at for s in split)
    last = max(s.ended_at for s in split)
    return base.model_copy(update={"writes": len(split), "first_at": first, "last_at": last,
                                   "span": _seconds(last, first)})


def first_ack_elsewhere(samples: Sequence[HeartbeatSample], *, fault_at: datetime | None
                        ) -> datetime | None:
    """The first write this population had acknowledged after the fault on a timeline other
    than its old primary's (the controller's clock): the new primary was promoted by then,
    whatever the reporting host's clock says. None when not known."""
    if fault_at is None:
        return None
    acked = [s for s in samples if s.acked]
    before = [s for s in acked if s.ended_at <= fault_at]
    if not before:
        return None
    old = max(before, key=lambda s: s.ended_at).timeline
    if old is None:
        return None
    return min((s.ended_at for s in acked if s.ended_at > fault_at
                and s.timeline is not None and s.timeline != old), default=None)


def _fencing(ordered: Sequence[HeartbeatSample], old: int
             ) -> tuple[bool | None, datetime | None, str | None]:
    """(fenced, the old timeline's last acknowledged write, why fenced is not known)."""
    last = max((s for s in ordered if s.acked and s.timeline == old),
               key=lambda s: s.ended_at)  # the reference write at least
    later = [s for s in ordered if s.seq > last.seq]
    if not later:
        return False, last.ended_at, None
    if any(s.acked and s.timeline is None for s in later):
        return None, last.ended_at, ("writes acknowledged after the old primary's last one "
                                     "carry no server timeline: fencing not known")
    return True, last.ended_at, None


def _join(*reasons: str | None) -> str:
    return "; ".join(r for r in reasons if r)
