"""The split_brain objective through a whole run: each acknowledged write carries the
timeline of the server that took it, the recover playbook reports the promotion, and every
population (judged or not) gets a split-brain verdict, kept in the stored result."""

from __future__ import annotations

import json
from datetime import timedelta

from dalp_dr.results import Status
from dalp_dr.spec import PhaseName
from tests.fakes import Play
from tests.unit.engine.harness import DrillShape, EngineHarness, Run, promoting


def test_an_old_primary_that_took_nothing_after_the_promotion_meets_it(
        harness: EngineHarness) -> None:
    plays = {PhaseName.INJECT: Play(effect=harness.endpoint.fail, reports_fault_instant=True),
             PhaseName.RECOVER: promoting(harness.endpoint)}
    run = harness.run(plays, DrillShape(split_brain=0))

    assert [(v.objective, v.status) for v in run.result.verdicts] == [
        ("rto", Status.MET), ("rpo", Status.MET), ("split_brain", Status.MET)]
    assert run.verdict("split_brain").measured == 0
    assert run.result.objectives["split_brain"] == 0
    m = run.result.measurements
    assert m is not None and m.split_brain is not None
    figures = m.split_brain
    assert figures.old_timeline == 1 and figures.writes == 0 and figures.fenced is True
    assert figures.promoted_at is not None and m.fault_at is not None
    # the old primary's last write was acknowledged before the fault (it was lost at once)
    assert figures.last_old_primary_ack is not None
    assert figures.last_old_primary_ack <= m.fault_at < figures.promoted_at
    assert run.stored == run.result
    # the evidence says which server took each write
    beats = [json.loads(line) for line in
             (run.evidence / "heartbeat.jsonl").read_text().splitlines()]
    assert {b["timeline"] for b in beats if b["acked"]} == {1, 2}
    assert {b["server"] for b in beats if b["acked"]} == {"in-memory:5432"}


def test_writes_the_cut_off_old_primary_took_after_the_promotion_miss_it(
        harness: EngineHarness) -> None:
    """site-a's clients reach the old primary straight, and it keeps taking their writes
    while the routed clients fail over to the promoted standby."""
    plays = {PhaseName.INJECT: Play(effect=harness.endpoint.fail, reports_fault_instant=True),
             PhaseName.RECOVER: promoting(harness.endpoint)}
    run = harness.run(plays, DrillShape(split_brain=0, partitioned=True))

    # judged on every population, after the judged ones' RTO and RPO
    assert [(v.objective, v.population) for v in run.result.verdicts] == [
        ("rto", "clients"), ("rpo", "clients"), ("split_brain", "clients"),
        ("split_brain", "site-a")]
    routed, cut_off = run.result.verdicts[2:]
    assert routed.status is Status.MET and routed.measured == 0
    assert cut_off.status is Status.MISSED
    figures = run.result.populations["site-a"].split_brain
    assert figures is not None and figures.writes is not None and figures.writes > 0
    assert cut_off.measured == figures.writes and cut_off.margin == -figures.writes
    assert figures.old_timeline == 1 and figures.fenced is False  # it took writes to the end
    assert figures.promoted_at is not None and figures.first_at is not None
    assert figures.promoted_at < figures.first_at <= figures.last_at  # type: ignore[operator]
    assert run.stored.verdicts == run.result.verdicts
    assert run.stored.populations == run.result.populations
    # verify did not ask the isolated clients to reach the recovered primary: it reported
    # what they reach (the old primary, still on timeline 1), and nothing was read back there
    report = run.phase(PhaseName.VERIFY).report
    assert report is not None
    isolated = report["populations"]["site-a"]
    assert isolated["isolated"] is True and isolated["reachable"] is True
    assert isolated["identity"]["timeline"] == 1
    assert "site-a" not in run.phase(PhaseName.MEASURE).report["markers_read_back"]
    assert run.result.populations["site-a"].lost_writes is None
    assert run.result.outcome.value == "missed"


def test_without_a_reported_promotion_the_first_write_on_the_new_timeline_stands_in(
        harness: EngineHarness) -> None:
    plays = {PhaseName.INJECT: Play(effect=harness.endpoint.fail, reports_fault_instant=True),
             PhaseName.RECOVER: Play(effect=harness.endpoint.recover)}
    run = harness.run(plays, DrillShape(split_brain=0))

    verdict = run.verdict("split_brain")
    assert verdict.status is Status.MET and verdict.measured == 0
    m = run.result.measurements
    assert m is not None and m.split_brain is not None and m.recovered_at is not None
    assert m.split_brain.promoted_at == m.recovered_at  # its first write on timeline 2


def test_without_any_sign_of_a_promotion_it_is_unknown(harness: EngineHarness) -> None:
    """no promotion reported and no write on another timeline (the old server came back)"""
    plays = {PhaseName.INJECT: Play(effect=harness.endpoint.fail, reports_fault_instant=True),
             PhaseName.RECOVER: Play(effect=lambda: harness.endpoint.recover(
                 advance_timeline=False))}
    run = harness.run(plays, DrillShape(split_brain=0))

    verdict = run.verdict("split_brain")
    assert verdict.status is Status.UNKNOWN and verdict.measured is None
    assert "no promotion instant reported" in verdict.reason


def test_a_drill_without_the_objective_measures_and_judges_no_split_brain(
        passed_run: Run) -> None:
    assert set(passed_run.result.objectives) == {"rto", "rpo"}
    assert passed_run.result.measurements is not None
    assert passed_run.result.measurements.split_brain is None
    assert "split_brain" not in {v.objective for v in passed_run.result.verdicts}


def test_fencing_is_the_isolated_clients_question_and_a_fenced_old_primary_passes(
        harness: EngineHarness) -> None:
    """the recover playbook fences the old primary (its clients are refused from then on):
    verify does not need the isolated clients to reach anything, and passes"""
    plays = {PhaseName.INJECT: Play(effect=harness.endpoint.fail, reports_fault_instant=True),
             PhaseName.RECOVER: promoting(harness.endpoint, then=harness.old_primary.fail)}
    run = harness.run(plays, DrillShape(split_brain=0, partitioned=True))

    assert run.result.outcome.value == "passed", run.result.message
    isolated = run.phase(PhaseName.VERIFY).report["populations"]["site-a"]
    assert isolated["isolated"] is True and isolated["reachable"] is False
    site_a = run.result.populations["site-a"].split_brain
    clients = run.result.populations["clients"].split_brain
    assert site_a is not None and site_a.writes == 0 and site_a.fenced is True
    # the routed clients lost their way to the old primary: not theirs to answer
    assert clients is not None and clients.writes == 0 and clients.fenced is None


def test_a_promotion_reported_late_is_bounded_by_the_first_write_on_the_new_timeline(
        harness: EngineHarness) -> None:
    """the promoted host's clock runs 30 s ahead: the old primary's writes after the real
    promotion still count, from the routed clients' first write on the new timeline"""
    plays = {PhaseName.INJECT: Play(effect=harness.endpoint.fail, reports_fault_instant=True),
             PhaseName.RECOVER: promoting(harness.endpoint, clock_ahead=30.0)}
    # (observed a while after verify: the old primary's clients keep writing after the
    # routed clients' first write on the new timeline, however busy the machine)
    run = harness.run(plays, DrillShape(split_brain=0, partitioned=True, observe="300ms"))

    site_a = run.result.populations["site-a"].split_brain
    assert site_a is not None and site_a.writes is not None and site_a.writes > 0
    fault_at = run.result.populations["clients"].fault_at
    (reported,) = [e.at for e in run.result.timeline if e.name == "new primary promoted"]
    assert site_a.promoted_at is not None and fault_at is not None
    assert fault_at < site_a.promoted_at < reported - timedelta(seconds=25)
    (verdict,) = [v for v in run.result.verdicts
                  if v.objective == "split_brain" and v.population == "site-a"]
    assert verdict.status is Status.MISSED
