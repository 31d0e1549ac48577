"""The divergence phase (``drill/probe.py``): what the probe read from the old primary's WAL
decides the data-loss window when it could read it (exact), and never otherwise; a probe that
fails or reports junk never fails the drill and never becomes a figure."""

from __future__ import annotations

import json
from dataclasses import replace
from functools import partial
from typing import Any

import pytest

from dalp_dr.render import summary_text
from dalp_dr.results import LossBasis, Measurements, Outcome, PhaseStatus, Status
from dalp_dr.spec import PhaseName
from tests.fakes import Play, RunnerStatus
from tests.unit.engine.harness import DrillShape, EngineHarness, failover

PROBED = DrillShape(divergence=True, rpo="500ms")


def lost(xid: int, at: str, *relations: str) -> dict[str, Any]:
    return {"xid": xid, "committed_at": at, "lsn": "0/3000200",
            "relations": list(relations), "records": 2}


def probe_report(**over: Any) -> dict[str, Any]:
    """A probe that read two transactions committed past the fork, 0.8 s after the newest
    commit that survived (the heartbeat saw nothing lost: its sampled window is 0)."""
    report = {"available": True, "reason": "", "fork_lsn": "0/3000100", "old_timeline": 1,
              "new_timeline": 2, "old_primary": "site-a", "new_primary": "site-b",
              "lost": [lost(901, "2026-12-04T10:00:00.500000+00:00", "1663/5/16400"),
                       lost(902, "2026-12-04T10:00:01.200000+00:00", "1663/5/16400",
                            "1663/5/16500")],
              "aborted_after_fork": 1, "unfinished_after_fork": 0,
              "newest_surviving_commit_at": "2026-12-04T10:00:00.400000+00:00",
              "names": {"1663/5/16400": "app.public.ledger"}}
    report.update(over)
    return report


def probed(harness: EngineHarness, report: Any, *, status: RunnerStatus =
           RunnerStatus.SUCCESSFUL) -> dict[PhaseName, Play]:
    plays = failover(harness.endpoint)
    plays[PhaseName.DIVERGENCE] = Play(status=status, report={"dalp_divergence": report},
                                       failure_message=None if status is
                                       RunnerStatus.SUCCESSFUL else "pg_waldump: boom")
    return plays


def test_an_exact_window_from_the_wal_is_judged_and_the_sampled_one_kept(
        harness: EngineHarness) -> None:
    run = harness.run(probed(harness, probe_report()), PROBED)

    m = run.result.measurements
    assert m is not None and m.data_loss_basis is LossBasis.EXACT
    assert m.data_loss_window == 0.8  # 10:00:01.2 - 10:00:00.4
    assert m.sampled_data_loss_window == 0.0  # the heartbeat lost nothing of its own
    assert m.divergence is not None and m.divergence.lost_transactions == 2
    assert [(t.table, t.commits) for t in m.divergence.tables] == [
        ("app.public.ledger", 2), ("1663/5/16500", 1)]  # a name the catalog lost: its number
    rpo = run.verdict("rpo")
    assert rpo.status is Status.MISSED and rpo.measured == 0.8
    assert "exact" in rpo.reason
    assert run.result.outcome is Outcome.MISSED
    # every lost transaction in the evidence, oldest first, with table names
    lines = (run.evidence / "lost-transactions.jsonl").read_text().splitlines()
    assert [json.loads(line)["xid"] for line in lines] == [901, 902]
    assert json.loads(lines[1])["tables"] == ["1663/5/16500", "app.public.ledger"]


def test_nothing_lost_past_the_fork_is_an_exact_zero(harness: EngineHarness) -> None:
    run = harness.run(probed(harness, probe_report(lost=[])), PROBED)

    m = run.result.measurements
    assert m is not None and m.data_loss_basis is LossBasis.EXACT
    assert m.data_loss_window == 0.0 and m.divergence is not None
    assert m.divergence.lost_transactions == 0
    assert run.result.outcome is Outcome.PASSED
    assert (run.evidence / "lost-transactions.jsonl").read_text() == ""


def test_wal_unavailable_keeps_the_sampled_window_and_says_why(
        harness: EngineHarness) -> None:
    report = {"available": False, "reason": "the old primary's data directory cannot be read"}
    run = harness.run(probed(harness, report), PROBED)

    m = run.result.measurements
    assert m is not None and m.data_loss_basis is LossBasis.SAMPLED
    assert m.divergence is not None and not m.divergence.available
    assert "cannot be read" in (m.divergence.reason or "")
    assert m.data_loss_window == 0.0 and m.sampled_data_loss_window is None
    assert "sampled" in run.verdict("rpo").reason
    assert run.result.outcome is Outcome.PASSED
    assert not (run.evidence / "lost-transactions.jsonl").exists()


def test_a_failed_probe_never_fails_the_drill(harness: EngineHarness) -> None:
    run = harness.run(probed(harness, probe_report(), status=RunnerStatus.FAILED), PROBED)

    assert run.result.outcome is Outcome.PASSED
    assert run.phase(PhaseName.DIVERGENCE).status is PhaseStatus.FAILED
    m = run.result.measurements
    assert m is not None and m.data_loss_basis is LossBasis.SAMPLED
    assert m.divergence is not None and "the probe failed" in (m.divergence.reason or "")


def test_junk_from_a_target_is_no_figure(harness: EngineHarness) -> None:
    for junk in ({**probe_report(), "lost": [lost(True, "2026-12-04T10:00:00Z")]},
                 probe_report(newest_surviving_commit_at="yesterday"),
                 probe_report(lost="{{ lookup('pipe', 'id') }}"), "available", None):
        run = harness.run(probed(harness, junk), replace(PROBED, rpo="5s"))
        m = run.result.measurements
        assert m is not None and m.data_loss_basis is LossBasis.SAMPLED, junk
        assert m.divergence is not None and not m.divergence.available


def test_the_lost_list_stays_in_the_evidence_not_in_the_record_or_later_phases(
        harness: EngineHarness) -> None:
    run = harness.run(probed(harness, probe_report()), PROBED)

    report = run.phase(PhaseName.DIVERGENCE).report["dalp_divergence"]
    assert "lost" not in report and report["lost_transactions"] == 2
    steady = [c for c in run.runner.calls if c.phase is PhaseName.STEADY_STATE]
    assert steady and "dalp_divergence" not in steady[0].extravars


def test_a_heartbeat_that_lost_more_than_the_wal_shows_keeps_the_sampled_window(
        harness: EngineHarness) -> None:
    """Writes acknowledged before they reached the old primary's disk (synchronous_commit
    off) are in no WAL: the heartbeat's loss contradicts an exact 0, and wins."""
    plays = probed(harness, probe_report(lost=[], lost_total=0))
    plays[PhaseName.INJECT] = Play(effect=partial(harness.endpoint.fail, lose_last=3),
                                   reports_fault_instant=True)
    run = harness.run(plays, replace(PROBED, rpo="5s"))

    m = run.result.measurements
    assert m is not None and m.lost_writes == 3
    assert m.data_loss_basis is LossBasis.SAMPLED and m.divergence is not None
    assert "shows 0 lost transactions" in (m.divergence.contradicted or "")
    assert m.data_loss_window is not None and m.data_loss_window > 0
    assert "exact window not used" in summary_text(run.result)


def test_the_heartbeat_s_lost_writes_must_be_among_its_table_s_lost_transactions(
        harness: EngineHarness) -> None:
    """Two of the heartbeat's three lost writes are in the WAL: contradicted. All three (and
    a window the heartbeat's stall made longer than the WAL's): exact."""
    def run_with(heartbeat_commits: int) -> Measurements:
        report = probe_report(lost_total=10 + heartbeat_commits, relation_sets=[
            [["1663/5/16400"], 10], [["1663/5/16600"], heartbeat_commits]],
            names={"1663/5/16400": "app.public.ledger",
                   "1663/5/16600": "app.public.dalp_dr_heartbeat"})
        plays = probed(harness, report)
        plays[PhaseName.INJECT] = Play(effect=partial(harness.endpoint.fail, lose_last=3),
                                       reports_fault_instant=True)
        m = harness.run(plays, replace(PROBED, rpo="5s")).result.measurements
        assert m is not None and m.lost_writes == 3 and m.divergence is not None
        return m

    short = run_with(2)
    assert short.data_loss_basis is LossBasis.SAMPLED and short.divergence is not None
    assert "2 lost transactions for dalp_dr_heartbeat" in (short.divergence.contradicted or "")
    whole = run_with(3)
    assert whole.data_loss_basis is LossBasis.EXACT and whole.data_loss_window == 0.8


def test_lost_commits_older_than_the_fork_give_a_lower_bound_only(
        harness: EngineHarness) -> None:
    """The old primary's clock went back between its last surviving commit and the lost
    ones: a window that would be negative is no exact 0."""
    report = probe_report(newest_surviving_commit_at="2026-12-04T10:00:05+00:00")
    run = harness.run(probed(harness, report), PROBED)

    m = run.result.measurements
    assert m is not None and m.divergence is not None
    assert m.divergence.window is None and m.divergence.window_lower_bound == 0.7
    assert m.data_loss_basis is LossBasis.SAMPLED


def test_the_tables_count_every_lost_transaction_not_only_the_listed(
        harness: EngineHarness) -> None:
    report = probe_report(lost_total=30000, relation_sets=[
        [["1663/5/16400", "1663/5/16401"], 29990], [["1663/5/16500"], 10]],
        names={"1663/5/16400": "app.public.ledger", "1663/5/16401": "app.public.ledger"})
    run = harness.run(probed(harness, report), PROBED)

    m = run.result.measurements
    assert m is not None and m.divergence is not None
    assert m.divergence.lost_transactions == 30000 and m.divergence.listed == 2
    assert [(t.table, t.commits) for t in m.divergence.tables] == [
        ("app.public.ledger", 29990), ("1663/5/16500", 10)]  # index and heap: one table
    lines = (run.evidence / "lost-transactions.jsonl").read_text().splitlines()
    assert json.loads(lines[-1]) == {"not_listed": 29998}


def test_a_time_no_clock_can_hold_is_no_figure(harness: EngineHarness) -> None:
    report = probe_report(lost=[lost(901, "0001-01-01T00:00:00+01:00", "1663/5/16400")])
    run = harness.run(probed(harness, report), replace(PROBED, rpo="5s"))
    m = run.result.measurements
    assert run.result.outcome is Outcome.PASSED
    assert m is not None and m.divergence is not None and not m.divergence.available


def guard(**over: Any) -> dict[str, Any]:
    """What the old primary said just before the fault: it waited for site-b by name."""
    return {"synchronous_commit": "on",
            "synchronous_commit_source": "configuration file",
            "synchronous_standby_names": "site-b",
            "standbys": [{"name": "site-b", "sync_state": "sync"},
                         {"name": "site-c", "sync_state": "potential"}],
            "overrides": [], "statement_timeouts": ["0"], **over}


def test_commits_the_synchronous_standby_never_confirmed_were_never_acknowledged(
        harness: EngineHarness) -> None:
    """The old primary waited for site-b, which took over: its two commits past the fork
    reached its WAL but no client was told they succeeded. Counted, listed and their span
    kept; the acknowledged loss judged is 0 (CI saw this: the heartbeat's in-flight write)."""
    run = harness.run(probed(harness, probe_report(commit_guard=guard())), PROBED)

    m = run.result.measurements
    assert m is not None and m.data_loss_basis is LossBasis.EXACT
    assert m.data_loss_window == 0.0 and run.result.outcome is Outcome.PASSED
    found = m.divergence
    assert found is not None and found.lost_transactions == 2 and found.window == 0.8
    assert "site-b was a synchronous standby site-a waited for" in (found.never_acknowledged
                                                                     or "")
    lines = (run.evidence / "lost-transactions.jsonl").read_text().splitlines()
    assert [json.loads(line)["xid"] for line in lines] == [901, 902]
    text = summary_text(run.result)
    assert "none acknowledged" in text and "(they span 0.800s)" in " ".join(text.split())


@pytest.mark.parametrize("said", [
    # a quorum (ANY 1 (site-b, site-c)): a commit waited for one of them, maybe not site-b
    guard(standbys=[{"name": "site-b", "sync_state": "quorum"},
                    {"name": "site-c", "sync_state": "quorum"}]),
    guard(standbys=[{"name": "site-c", "sync_state": "sync"}]),  # another was waited for
    guard(standbys=[{"name": "site-b", "sync_state": "async"}]),  # asynchronous at the fault
    guard(standbys=[]),
    guard(synchronous_commit="local"),
    guard(synchronous_commit_source="user"),  # the guard's own role's value, not the server's
    guard(overrides=[{"database": "app", "role": None, "value": "off"}]),
    guard(overrides=[{"database": None, "role": "batch", "value": "LOCAL"}]),
    guard(statement_timeouts=["0", "30s"]),  # a timeout cancels a commit's wait: acknowledged
    guard(statement_timeouts=["5000"]),
    guard(overrides=["off"]), guard(standbys="site-b"), guard(statement_timeouts=None),
    {"synchronous_commit": "on"}, "site-b", None])
def test_no_word_of_waiting_for_the_promoted_node_makes_no_claim(
        harness: EngineHarness, said: Any) -> None:
    run = harness.run(probed(harness, probe_report(commit_guard=said)), PROBED)

    m = run.result.measurements
    assert m is not None and m.data_loss_basis is LossBasis.EXACT
    assert m.data_loss_window == 0.8 and run.result.outcome is Outcome.MISSED
    assert m.divergence is not None and m.divergence.never_acknowledged is None


def test_a_heartbeat_loss_behind_a_synchronous_standby_withdraws_the_claim(
        harness: EngineHarness) -> None:
    """Acknowledged writes lost although the promoted node confirmed every commit before it
    was acknowledged: something lowered the guarantee. The claim is withdrawn (the summary
    does not make it) and the sampled window is judged."""
    plays = probed(harness, probe_report(commit_guard=guard()))
    plays[PhaseName.INJECT] = Play(effect=partial(harness.endpoint.fail, lose_last=3),
                                   reports_fault_instant=True)
    run = harness.run(plays, replace(PROBED, rpo="5s"))

    m = run.result.measurements
    assert m is not None and m.lost_writes == 3 and m.divergence is not None
    assert m.data_loss_basis is LossBasis.SAMPLED
    assert "yet site-b was a synchronous standby" in (m.divergence.contradicted or "")
    assert m.divergence.never_acknowledged is None
    assert m.data_loss_window is not None and m.data_loss_window > 0
    assert "none acknowledged" not in summary_text(run.result)
