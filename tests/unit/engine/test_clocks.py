"""The targets' clocks (``drill/clocks.py``, ``target_clocks.py``): read at preflight and after
verify, and the fault instant a target reports mapped through its offset, so a target's clock
never biases the figures; an offset too uncertain, or a clock that moved during the run,
never makes a recovery look faster than the controller can vouch for."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from functools import partial

import pytest

from dalp_dr.results import ClockOffset
from dalp_dr.spec import PhaseName
from dalp_dr.target_clocks import map_instant
from tests.fakes import Play
from tests.unit.engine.harness import DrillShape, EngineHarness, Run, failover

SHAPE = DrillShape()


def skewed_failover(harness: EngineHarness, ahead: float, **shape: object) -> Run:
    """A failover whose inject stamps the fault on db1's clock, ``ahead`` seconds ahead."""
    plays = failover(harness.endpoint)
    plays[PhaseName.INJECT] = Play(effect=partial(harness.endpoint.fail),
                                   reports_fault_instant=True,
                                   report={"dalp_fault_host": "db1"}, takes=0.05)
    return harness.run(plays, SHAPE, clocks={"db1": ahead})


def test_a_target_clock_ahead_does_not_shorten_the_recovery(harness: EngineHarness) -> None:
    run = skewed_failover(harness, 0.8)

    m, inject = run.result.measurements, run.phase(PhaseName.INJECT)
    assert m is not None and m.fault_at is not None and m.recovery_time is not None
    # the instant is where db1 stamped it, less its offset: inside inject's own run
    assert inject.started_at <= m.fault_at <= inject.ended_at
    reported = run.runner.call(PhaseName.INJECT).artifact_data["dalp_fault_instant"]
    offset = (datetime.fromtimestamp(reported, UTC) - m.fault_at).total_seconds()
    assert offset == pytest.approx(0.8, abs=0.01)
    # the offsets read, both times, are in the result
    read = {(o.host, o.when): o for o in run.result.clock_offsets}
    assert set(read) == {("db1", "preflight"), ("db1", "after verify")}
    assert all(o.offset == pytest.approx(0.8, abs=0.01) for o in read.values())
    assert all(o.uncertainty < 0.01 for o in read.values())
    assert run.runner.clock_reads == ["clock-preflight", "clock-after-verify"]
    fault = next(e for e in run.result.timeline if e.name == "fault injected")
    assert fault.source == "inject playbook" and "reported by db1, its clock +0.80" in (
        fault.detail or "")
    assert run.result.clock_note is None


def test_a_clock_behind_maps_the_same_way(harness: EngineHarness) -> None:
    run = skewed_failover(harness, -2.5)
    m, inject = run.result.measurements, run.phase(PhaseName.INJECT)
    assert m is not None and m.fault_at is not None
    assert inject.started_at <= m.fault_at <= inject.ended_at
    reported = run.runner.call(PhaseName.INJECT).artifact_data["dalp_fault_instant"]
    offset = (datetime.fromtimestamp(reported, UTC) - m.fault_at).total_seconds()
    assert offset == pytest.approx(-2.5, abs=0.01)  # mapped, not the playbook's start
    fault = next(e for e in run.result.timeline if e.name == "fault injected")
    assert "reported by db1, its clock -2.50" in (fault.detail or "")


def test_an_instant_stamped_on_the_controller_is_its_own_wall_clock(
        harness: EngineHarness) -> None:
    plays = failover(harness.endpoint)
    plays[PhaseName.INJECT] = Play(effect=harness.endpoint.fail, reports_fault_instant=True,
                                   report={"dalp_fault_host": "controller"}, takes=0.05)
    run = harness.run(plays, SHAPE, clocks={"db1": 3.0})  # db1's clock plays no part
    m, inject = run.result.measurements, run.phase(PhaseName.INJECT)
    reported = run.runner.call(PhaseName.INJECT).artifact_data["dalp_fault_instant"]
    assert m is not None and m.fault_at is not None
    assert abs((datetime.fromtimestamp(reported, UTC) - m.fault_at).total_seconds()) < 0.01
    assert inject.started_at <= m.fault_at <= inject.ended_at
    assert "on the controller" in (next(e for e in run.result.timeline
                                        if e.name == "fault injected").detail or "")


def test_an_unknown_offset_is_said(harness: EngineHarness) -> None:
    plays = failover(harness.endpoint)
    plays[PhaseName.INJECT] = Play(effect=harness.endpoint.fail, reports_fault_instant=True,
                                   report={"dalp_fault_host": "db9"})
    run = harness.run(plays, SHAPE, clocks={"db1": 0.0})
    assert "offset is unknown" in (run.result.clock_note or "")


NOW = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)
START, END = NOW, NOW + timedelta(seconds=1)


def offsets(*items: tuple[str, float, float]) -> list[ClockOffset]:
    return [ClockOffset(host="db1", when=when, offset=offset, uncertainty=u)
            for when, offset, u in items]


def test_an_uncertain_offset_takes_the_earliest_instant_it_allows() -> None:
    reported = (NOW + timedelta(seconds=0.5 + 0.8)).timestamp()
    mapped = map_instant(reported, "db1", offsets(("preflight", 0.8, 0.3)),
                         earliest=START, latest=END, interval=0.1)
    assert mapped is not None
    assert mapped.at == NOW + timedelta(seconds=0.2)  # 0.5 - 0.3: never later
    assert "more than the heartbeat interval" in (mapped.note or "")


def test_a_clock_that_moved_during_the_run_widens_the_uncertainty() -> None:
    reported = (NOW + timedelta(seconds=0.5 + 0.8)).timestamp()
    moved = offsets(("preflight", 0.8, 0.01), ("after verify", 1.3, 0.01))
    mapped = map_instant(reported, "db1", moved, earliest=START, latest=END, interval=0.1)
    assert mapped is not None and mapped.note is not None
    assert mapped.at == START  # 0.5 - 0.5 (the move), and never before inject started


def test_an_instant_that_does_not_fit_is_the_playbook_start() -> None:
    reported = (NOW + timedelta(seconds=30)).timestamp()
    mapped = map_instant(reported, "db1", offsets(("preflight", 0.0, 0.01)),
                         earliest=START, latest=END, interval=0.1)
    assert mapped is not None and mapped.at == START and "outside" in mapped.source


@pytest.mark.parametrize("junk", [True, "soon", "nan", None, {"a": 1}, 1e300])
def test_junk_is_no_instant(junk: object) -> None:
    assert map_instant(junk, "db1", offsets(("preflight", 0.0, 0.01)), earliest=START,
                       latest=END, interval=0.1) is None
