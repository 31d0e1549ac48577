"""Measurement arithmetic on synthetic heartbeat timelines (100 ms interval)."""

from datetime import timedelta
from pathlib import Path

import pytest

from dalp_dr.measure import measure
from dalp_dr.render import summary_text
from dalp_dr.results import HeartbeatSample, Outcome, Status
from dalp_dr.spec import Objectives
from dalp_dr.verdict import judge, outcome_of
from tests.factories import INTERVAL, T0, at, make_run, run, timeline


def test_no_loss_recovery_time_and_rtt() -> None:
    samples = timeline(acked_until=2.0, down_until=3.5, end=5.0)
    everything = {s.seq for s in samples}
    m = run(samples, fault=2.05, surviving=everything, verified=4.0)
    # first ack again: attempt sent at 3.5, acked at 3.505
    assert m.recovery_time == pytest.approx(3.505 - 2.05)
    # the last ack before the outage came at 2.005: writes were impossible for 1.5 s
    assert m.write_outage == pytest.approx(3.505 - 2.005)
    assert m.rtt == pytest.approx(4.0 - 2.05)
    assert m.data_loss_window == 0
    assert m.lost_writes == 0
    assert m.acked_before_fault == 21
    assert m.unacknowledged_attempts == 14  # attempts sent at 2.1 ... 3.4
    assert m.resolution == INTERVAL


def test_lost_tail_gives_window_and_count() -> None:
    samples = timeline(acked_until=2.0, down_until=3.5, end=5.0)
    # markers acknowledged in the last 0.5 s before the fault never reached the standby
    lost = {s.seq for s in samples if at(1.55) <= s.sent_at <= at(2.0)}
    surviving = {s.seq for s in samples if s.acked} - lost
    m = run(samples, fault=2.05, surviving=surviving)
    assert m.lost_writes == len(lost) == 5
    # newest survivor acked at 1.505, last acked before the fault at 2.005
    assert m.data_loss_window == pytest.approx(0.5)
    rpo_missed = judge(Objectives(rto=timedelta(minutes=1), rpo=timedelta(milliseconds=400)), m)
    assert [v.status for v in rpo_missed] == [Status.MET, Status.MISSED]
    assert rpo_missed[1].margin == pytest.approx(-0.1)
    rpo_met = judge(Objectives(rto=timedelta(minutes=1), rpo=timedelta(seconds=1)), m)
    assert outcome_of(rpo_met, phase_failed=False).value == "passed"


def test_late_ack_from_dying_primary_is_not_recovery() -> None:
    samples = timeline(acked_until=2.0, down_until=3.0, end=4.0)
    # an attempt sent just before the fault whose ack arrives just after it
    samples.append(HeartbeatSample(seq=999, sent_at=at(2.04), ended_at=at(2.06), acked=True))
    m = run(samples, fault=2.05, surviving={s.seq for s in samples})
    assert m.recovery_time == pytest.approx(3.005 - 2.05)


def test_never_recovered_gives_lower_bound_and_missed_rto() -> None:
    samples = timeline(acked_until=2.0, down_until=99, end=6.0)
    m = run(samples, fault=2.05, surviving=None)
    assert m.recovery_time is None
    assert m.recovery_time_lower_bound == pytest.approx(6.005 - 2.05)
    verdicts = judge(Objectives(rto=timedelta(seconds=2), rpo=timedelta(seconds=1)), m)
    assert verdicts[0].status is Status.MISSED  # at least 3.95 s > 2 s
    assert verdicts[1].status is Status.UNKNOWN  # markers never read back: no evidence
    long_rto = judge(Objectives(rto=timedelta(minutes=5), rpo=timedelta(seconds=1)), m)
    assert long_rto[0].status is Status.UNKNOWN  # down 4 s so far: cannot call it either way
    assert outcome_of(long_rto, phase_failed=False).value == "inconclusive"


def test_nothing_survived_gives_lower_bound() -> None:
    samples = timeline(acked_until=2.0, down_until=3.0, end=4.0)
    post = {s.seq for s in samples if s.sent_at >= at(3.0)}
    m = run(samples, fault=2.05, surviving=post)
    assert m.data_loss_window is None
    assert m.data_loss_window_lower_bound == pytest.approx(2.0)
    verdicts = judge(Objectives(rto=timedelta(minutes=1), rpo=timedelta(seconds=1)), m)
    assert verdicts[1].status is Status.MISSED


def test_no_outage_seen() -> None:
    samples = timeline(acked_until=10, down_until=10, end=3.0)
    m = run(samples, fault=1.02, surviving={s.seq for s in samples})
    assert m.recovery_time == pytest.approx(1.105 - 1.02)
    assert m.lost_writes == 0


def test_no_fault_no_figures() -> None:
    samples = timeline(acked_until=1.0, down_until=1.0, end=1.0)
    m = measure(samples, fault_at=None, surviving=None, verified_at=None, interval=INTERVAL,
                observed_until=at(1))
    assert m.recovery_time is None and m.data_loss_window is None
    assert [v.status for v in judge(Objectives(rto=timedelta(1), rpo=timedelta(1)), m)] == \
        [Status.UNKNOWN, Status.UNKNOWN]


def test_phase_failure_dominates() -> None:
    samples = timeline(acked_until=2.0, down_until=3.0, end=4.0)
    m = run(samples, fault=2.05, surviving={s.seq for s in samples})
    verdicts = judge(Objectives(rto=timedelta(minutes=1), rpo=timedelta(minutes=1)), m)
    assert outcome_of(verdicts, phase_failed=True).value == "failed"
    assert outcome_of(verdicts, phase_failed=False).value == "passed"


def test_rpo_zero_met_only_without_loss() -> None:
    samples = timeline(acked_until=2.0, down_until=3.0, end=4.0)
    everything = {s.seq for s in samples}
    zero = Objectives(rto=timedelta(minutes=1), rpo=timedelta(0))
    assert judge(zero, run(samples, 2.05, everything))[1].status is Status.MET
    one_lost = everything - {21}
    assert judge(zero, run(samples, 2.05, one_lost))[1].status is Status.MISSED


def test_planned_switchover_outage_starts_when_writes_stop_not_at_the_request() -> None:
    # switchover requested at 1.0; writes keep working until 2.0, fail until 3.0
    samples = timeline(acked_until=2.0, down_until=3.0, end=4.0)
    m = run(samples, fault=1.0, surviving={s.seq for s in samples})
    assert m.recovery_time == pytest.approx(3.005 - 1.0)
    assert m.write_outage == pytest.approx(3.005 - 2.005)


def test_no_outage_seen_is_a_zero_write_outage() -> None:
    samples = timeline(acked_until=10, down_until=10, end=3.0)
    m = run(samples, fault=1.02, surviving={s.seq for s in samples})
    assert m.write_outage == 0.0 and m.recovery_time == pytest.approx(1.105 - 1.02)


def test_a_write_held_through_the_switch_is_a_wait_not_an_outage() -> None:
    """A route that holds the write sent at 2.0 until the new primary answers at 2.8: no
    write failed (write outage 0), and the clients' stall shows as the longest wait."""
    samples = [HeartbeatSample(seq=n + 1, sent_at=at(n / 10), ended_at=at(n / 10 + 0.005),
                               acked=True) for n in range(20)]
    held = HeartbeatSample(seq=21, sent_at=at(2.0), ended_at=at(2.8), acked=True)
    after = [HeartbeatSample(seq=22 + n, sent_at=at(2.8 + n / 10),
                             ended_at=at(2.805 + n / 10), acked=True) for n in range(10)]
    m = run([*samples, held, *after], fault=2.05, surviving=set(range(1, 32)))
    assert m.write_outage == 0.0
    assert m.recovery_time == pytest.approx(2.8 - 2.05)
    assert m.longest_write_wait == pytest.approx(0.8)


def test_the_summary_says_a_held_write_waited_where_no_write_failed(tmp_path: Path) -> None:
    made = make_run(tmp_path, "20261205T000000Z-aaaaaa", "hot-warm-failover", T0,
                    Outcome.PASSED, 0.75)
    assert made.measurements is not None
    line = [" ".join(x.split()) for x in summary_text(made.model_copy(update={
        "measurements": made.measurements.model_copy(update={
            "write_outage": 0.0, "longest_write_wait": 0.8})})).splitlines()
        if "write outage" in x]
    assert line == ["write outage (client) 0.000s (no write failed; one waited 0.800s)"]
    # a wait no longer than a heartbeat interval is no stall worth a word
    plain = summary_text(made.model_copy(update={"measurements": made.measurements.model_copy(
        update={"write_outage": 0.0, "longest_write_wait": 0.05})}))
    assert "no write failed" not in plain


def test_the_longest_wait_counts_only_writes_under_way_from_the_fault_to_recovery() -> None:
    samples = timeline(acked_until=2.0, down_until=3.5, end=5.0)
    slow_before = HeartbeatSample(seq=99, sent_at=at(0.5), ended_at=at(1.9), acked=True)
    m = run([*samples, slow_before], fault=2.05, surviving={s.seq for s in samples})
    assert m.longest_write_wait == pytest.approx(0.005)  # errors came back at once
