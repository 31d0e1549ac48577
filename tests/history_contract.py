"""The history store contract, as one check every store implementation must pass.

tests/unit/test_history_sqlite.py runs it against SQLite, tests/lab/test_60_history_postgres.py
against a real PostgreSQL server the test starts.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pytest

from dalp_dr.errors import UnknownRun
from dalp_dr.history import HistoryStore
from dalp_dr.results import Outcome, RunResult, Trigger
from dalp_dr.spec import Scenario, Topology
from tests.unit.test_measure import at, run, timeline


def result(run_id: str, started: float, outcome: Outcome = Outcome.RUNNING,
           drill: str = "hot-warm-failover") -> RunResult:
    return RunResult(
        run_id=run_id, drill=drill, topology=Topology.HOT_WARM,
        scenario=Scenario.FAILOVER, environment="lab", owner="sre", trigger=Trigger.CLI,
        operator="tester", spec_hash="ab" * 32, started_at=at(started), ended_at=None,
        outcome=outcome, objectives={"rto": 1800.0, "rpo": 300.0}, measurements=None,
        verdicts=[], phases=[], steady_state_restored=None, evidence_dir=f"/tmp/{run_id}",
    )


def check_store_contract(open_store: Callable[[], HistoryStore]) -> None:
    store = open_store()
    store.begin(result("20261126T120000Z-aaaaaa", 0), '{"name": "x"}')
    store.begin(result("20261126T120100Z-bbbbbb", 60), '{"name": "x"}')
    store.begin(result("20261126T120200Z-cccccc", 120, drill="other"), '{"name": "o"}')
    samples = timeline(acked_until=2.0, down_until=3.0, end=4.0)
    measured = run(samples, 2.05, {s.seq for s in samples})
    done = result("20261126T120000Z-aaaaaa", 0).model_copy(update={
        "outcome": Outcome.PASSED, "ended_at": at(30), "measurements": measured})
    store.finish(done)
    store.close()

    store = open_store()  # survives reopening
    rows = store.list_runs(drill="hot-warm-failover")
    assert [r.run_id for r in rows] == ["20261126T120100Z-bbbbbb", "20261126T120000Z-aaaaaa"]
    assert rows[0].outcome is Outcome.RUNNING  # a run that never finished stays visible
    assert rows[1].outcome is Outcome.PASSED
    assert rows[1].recovery_time == pytest.approx(measured.recovery_time)
    assert [r.run_id for r in store.list_runs(limit=1)] == ["20261126T120200Z-cccccc"]
    got = store.get("20261126T120000")  # unique prefix
    assert got == done
    assert got.ended_at is not None and got.ended_at - got.started_at == timedelta(seconds=30)
    assert store.spec_snapshot("20261126T120100Z-bbbbbb") == '{"name": "x"}'
    with pytest.raises(UnknownRun, match="ambiguous"):
        store.get("20261126T12")
    with pytest.raises(UnknownRun, match="no run"):
        store.get("nope")
    with pytest.raises(UnknownRun, match="no run"):
        store.get("%")  # a LIKE wildcard is not a prefix of every run
    store.close()
