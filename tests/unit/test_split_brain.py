"""Split brain from the client's side (100 ms heartbeat, acks 5 ms after each attempt): writes
the old primary acknowledged after the promotion, fencing, and the split_brain verdict."""

from __future__ import annotations

import pytest

from dalp_dr.results import SplitBrain, Status, TimelineEvent
from dalp_dr.split_brain import first_ack_elsewhere, promotion_instant, split_brain
from dalp_dr.verdict import judge_split_brain
from tests.factories import DOWN, UNTOLD, at, attempts

FAULT = 2.05
PROMOTED = 3.0


def figures(*spans: tuple[float, float, int | str], promoted: float | None = PROMOTED
            ) -> SplitBrain:
    return split_brain(attempts(*spans), fault_at=at(FAULT),
                       promoted_at=at(promoted) if promoted is not None else None)


def test_an_old_primary_that_takes_nothing_after_the_promotion_was_fenced() -> None:
    sb = figures((0, 2.0, 1), (2.1, 3.4, DOWN), (3.5, 5.0, 2))
    assert sb.old_timeline == 1 and sb.old_server == "tl1:5432"
    assert sb.writes == 0 and sb.first_at is None and sb.span is None
    assert sb.fenced is True and sb.last_old_primary_ack == at(2.005)
    assert sb.reason is None
    assert judge_split_brain(0, sb).status is Status.MET


def test_writes_the_old_primary_takes_after_the_promotion_are_counted() -> None:
    """partitioned: the old primary keeps taking this population's writes until 4.0 s,
    then refuses them (fenced at last)"""
    sb = figures((0, 4.0, 1), (4.1, 5.0, DOWN))
    assert sb.writes == 11  # acknowledged at 3.005, 3.105, ... 4.005
    assert (sb.first_at, sb.last_at) == (at(3.005), at(4.005))
    assert sb.span == pytest.approx(1.0)
    assert sb.fenced is True and sb.last_old_primary_ack == at(4.005)
    verdict = judge_split_brain(0, sb)
    assert verdict.status is Status.MISSED
    assert (verdict.measured, verdict.margin) == (11, -11)
    assert "split-brain writes 11 > 0" in verdict.reason and "1.000s" in verdict.reason
    assert judge_split_brain(11, sb).status is Status.MET


def test_writes_the_new_primary_takes_after_the_promotion_are_not_split_brain() -> None:
    """a client that reaches either server (a multi-host DSN): only the old timeline's
    acknowledgements after the promotion count"""
    sb = figures((0, 2.0, 1), (2.1, 3.4, 2), (3.5, 3.7, 1), (3.8, 5.0, 2))
    assert sb.writes == 3 and (sb.first_at, sb.last_at) == (at(3.505), at(3.705))
    assert sb.fenced is True and sb.last_old_primary_ack == at(3.705)


def test_a_write_acknowledged_just_before_the_promotion_is_not_counted() -> None:
    sb = figures((0, 4.0, 1), promoted=3.105)  # the attempt sent at 3.1 was acked at 3.105
    assert sb.writes == 9 and sb.first_at == at(3.205)


def test_a_population_that_stopped_attempting_is_not_shown_fenced() -> None:
    """the old primary took every write it was sent: nothing shows it would refuse the next"""
    sb = figures((0, 4.0, 1))
    assert sb.writes == 11 and sb.fenced is False and sb.last_old_primary_ack == at(4.005)


def test_without_a_promotion_instant_the_count_is_unknown_and_fencing_still_shown() -> None:
    sb = figures((0, 2.0, 1), (2.1, 5.0, DOWN), promoted=None)
    assert sb.writes is None and "no promotion instant reported" in (sb.reason or "")
    assert sb.old_timeline == 1 and sb.fenced is True
    verdict = judge_split_brain(0, sb)
    assert verdict.status is Status.UNKNOWN and verdict.measured is None
    assert verdict.margin is None and "no promotion instant reported" in verdict.reason


def test_samples_without_a_server_timeline_are_not_measurable() -> None:
    sb = figures((0, 2.0, UNTOLD), (2.1, 5.0, UNTOLD))
    assert sb.old_timeline is None and sb.writes is None and sb.fenced is None
    assert sb.reason == "the heartbeat samples carry no server timeline"
    assert judge_split_brain(0, sb).status is Status.UNKNOWN


def test_untold_acknowledgements_after_the_promotion_make_the_count_unknown() -> None:
    sb = figures((0, 2.0, 1), (2.1, 5.0, UNTOLD))
    assert sb.writes is None and sb.fenced is None
    assert "21 writes acknowledged after the promotion carry no server timeline" in \
        (sb.reason or "")


def test_without_a_write_acknowledged_before_the_fault_the_old_primary_is_unknown() -> None:
    sb = figures((0, 2.0, DOWN), (2.1, 5.0, 2))
    assert sb.old_timeline is None and sb.writes is None and sb.fenced is None
    assert "no write acknowledged before the fault" in (sb.reason or "")


def test_without_a_fault_instant_nothing_is_measured() -> None:
    sb = split_brain(attempts((0, 5.0, 1)), fault_at=None, promoted_at=at(PROMOTED))
    assert sb.writes is None and sb.reason == "no fault instant"


def test_without_figures_the_verdict_is_unknown() -> None:
    verdict = judge_split_brain(0, None)
    assert verdict.status is Status.UNKNOWN and verdict.objective == "split_brain"
    assert verdict.reason == "split-brain writes not measured: evidence missing"


def test_the_promotion_is_the_earliest_reported() -> None:
    def event(name: str, seconds: float) -> TimelineEvent:
        return TimelineEvent(name=name, at=at(seconds), source="recover playbook")

    assert promotion_instant([event("new primary promoted", 5.0),
                              event("new leader elected", 2.0),
                              event("new primary promoted", 3.0)]) == at(3.0)
    assert promotion_instant([event("new leader elected", 2.0)]) is None


def test_another_server_on_the_old_timeline_number_is_not_the_old_primary() -> None:
    """two servers can share a timeline number without sharing a history: only the old
    primary's address counts where both are known"""
    samples = attempts((0, 2.0, 1), (2.1, 5.0, DOWN))
    elsewhere = [s.model_copy(update={"acked": True, "error": None, "timeline": 1,
                                      "server": "other:5432"})
                 for s in attempts((3.5, 4.0, 1))]
    renumbered = [s.model_copy(update={"seq": len(samples) + i + 1})
                  for i, s in enumerate(elsewhere)]
    sb = split_brain(samples + renumbered, fault_at=at(FAULT), promoted_at=at(PROMOTED))
    assert sb.writes == 0


def test_the_first_write_acknowledged_on_another_timeline_bounds_the_promotion() -> None:
    samples = attempts((0, 2.0, 1), (2.1, 3.4, DOWN), (3.5, 5.0, 2))
    assert first_ack_elsewhere(samples, fault_at=at(FAULT)) == at(3.505)
    # on the old timeline all along (cut off with the old primary): it cannot tell
    assert first_ack_elsewhere(attempts((0, 5.0, 1)), fault_at=at(FAULT)) is None
    assert first_ack_elsewhere(samples, fault_at=None) is None
