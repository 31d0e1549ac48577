"""The history store contract, as one check every store implementation must pass.

tests/unit/test_history_sqlite.py runs it against SQLite, tests/lab/test_60_history_postgres.py
against a real PostgreSQL server the test starts.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from dalp_dr.errors import UnknownRun
from dalp_dr.history import HistoryStore
from dalp_dr.history.base import SealObserver
from dalp_dr.integrity import ChainEntry
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


def check_coordination_contract(open_store: Callable[[], HistoryStore]) -> None:
    """Leases (environment locks, scheduler leadership) and scheduled-fire claims, seen by two
    connections as two processes would."""
    import time

    one, two = open_store(), open_store()
    name = f"environment:contract-{time.monotonic_ns()}"
    assert one.get_lease(name) is None
    first = one.acquire_lease(name, "holder-1", "drill a run 1 by sre@host pid 1", ttl=30)
    assert first.holder == "holder-1" and first.info.startswith("drill a run 1")
    assert first.expires_at - first.acquired_at == pytest.approx(timedelta(seconds=30),
                                                                 abs=timedelta(seconds=1))
    refused = two.acquire_lease(name, "holder-2", "drill b", ttl=30)
    assert refused.holder == "holder-1"  # held and not expired: the second is refused
    assert refused.acquired_at == first.acquired_at
    assert not two.renew_lease(name, "holder-2", 30)
    assert one.renew_lease(name, "holder-1", 30)
    again = one.acquire_lease(name, "holder-1", "drill a run 1", ttl=30)  # re-entrant
    assert again.holder == "holder-1" and again.acquired_at == first.acquired_at
    two.release_lease(name, "holder-2")  # not theirs: nothing happens
    assert one.get_lease(name) is not None
    one.release_lease(name, "holder-1")
    assert two.get_lease(name) is None
    # a holder that died: its lease expires, then the next one takes it over
    one.acquire_lease(name, "dead-holder", "drill a (died)", ttl=1.5)
    assert two.acquire_lease(name, "holder-2", "drill b", ttl=30).holder == "dead-holder"
    time.sleep(1.7)  # (a short ttl turns a loaded machine's pause into a false expiry)
    taken = two.acquire_lease(name, "holder-2", "drill b", ttl=30)
    assert taken.holder == "holder-2" and taken.info == "drill b"
    assert not one.renew_lease(name, "dead-holder", 30)  # the dead one cannot come back
    two.release_lease(name, "holder-2")

    planned = at(3600)
    assert one.claim_fire("hot-warm-failover", planned, "scheduler-1")
    assert not two.claim_fire("hot-warm-failover", planned, "scheduler-2")
    assert not one.claim_fire("hot-warm-failover", planned, "scheduler-1")  # once, even for us
    assert two.claim_fire("hot-warm-failover", planned + timedelta(seconds=1), "scheduler-2")
    assert two.claim_fire("other", planned, "scheduler-2")
    one.close()
    two.close()


def check_integrity_contract(open_store: Callable[[], HistoryStore],
                             tamper: Callable[[str], None]) -> None:
    """Final records are sealed into one chain, in order; verify finds nothing on an intact
    store and names the record after ``tamper(sql)`` changes one (SQL in the store's dialect
    receives {runs} for the runs table)."""
    from dalp_dr import integrity

    store = open_store()
    for i, outcome in enumerate([Outcome.PASSED, Outcome.MISSED, Outcome.ABORTED]):
        run_id = f"20261201T00000{i}Z-chain{i}"
        store.begin(result(run_id, 1000 + i, drill="chained"), '{"name": "chained"}')
        store.finish(result(run_id, 1000 + i, outcome=outcome, drill="chained").model_copy(
            update={"ended_at": at(1010 + i)}))
    store.begin(result("20261201T000009Z-chain9", 1009, drill="chained"), "{}")  # running
    records = [r for r in store.sealed_records() if r.entry.run_id.endswith(
        ("chain0", "chain1", "chain2"))]
    assert [r.entry.run_id[-6:] for r in records] == ["chain0", "chain1", "chain2"]
    assert [r.entry.prev_digest for r in records[1:]] == [r.entry.digest for r in records[:2]]
    report = integrity.verify(store.sealed_records(), store.unsealed_runs(), running=0)
    assert report.problems == [] and report.head == records[-1].entry.digest
    store.close()

    tamper("update {runs} set recovery_time = 1.5 where run_id = '20261201T000001Z-chain1'")
    store = open_store()
    report = integrity.verify(store.sealed_records(), store.unsealed_runs(), running=0)
    assert [p.run_id for p in report.problems] == ["20261201T000001Z-chain1"]
    assert "recovery_time" in report.problems[0].what
    store.close()


class RecordingObserver:
    """A fake of dalp-dr's own seal seam (the checkpointer): what it was told, in order."""

    def __init__(self) -> None:
        self.events: list[str] = []
        self.entries: list[ChainEntry] = []

    @contextlib.contextmanager
    def sealing(self) -> Iterator[None]:
        self.events.append("sealing")
        yield
        self.events.append("released")

    def sealed(self, entry: ChainEntry) -> None:
        self.events.append(f"sealed #{entry.seq}")
        self.entries.append(entry)


def check_evidence_contract(open_store: Callable[[Path, SealObserver | None], HistoryStore],
                            base: Path) -> None:
    """Evidence is found under the results directory the store is opened with (moved or
    restored elsewhere, it still verifies), a seal tells its observer inside ``sealing()``
    once committed, evidence files are brought to the owner's mode, and seals can be read for
    a few runs."""
    import shutil
    import stat

    from dalp_dr import integrity

    results = base / "results"
    observer = RecordingObserver()
    sealed = observer.entries
    store = open_store(results, observer)
    run_id = f"20261202T000000Z-ev{base.name[-4:]}"
    evidence = results / run_id
    (evidence / "journal").mkdir(parents=True)
    (evidence / "summary.txt").write_text("evidence\n")
    (evidence / "summary.txt").chmod(0o644)
    begun = result(run_id, 2000, drill="evidenced").model_copy(
        update={"evidence_dir": str(evidence)})
    store.begin(begun, "{}")
    assert observer.events == []  # nothing is sealed before the run ends
    store.finish(begun.model_copy(update={"outcome": Outcome.PASSED, "ended_at": at(2010)}))
    assert [e.run_id for e in sealed] == [run_id]
    assert observer.events == ["sealing", f"sealed #{sealed[0].seq}", "released"]
    mine = list(store.sealed_records([run_id]))
    assert [r.entry for r in mine] == sealed
    assert mine[0].entry.evidence == {"summary.txt": integrity.sha256(b"evidence\n")}
    assert mine[0].columns is not None and mine[0].columns["evidence_dir"] == run_id
    assert list(store.sealed_records([])) == []
    assert stat.S_IMODE((evidence / "summary.txt").stat().st_mode) == 0o600
    store.close()

    moved = base / "restored"
    shutil.move(results, moved)
    store = open_store(moved, None)
    row = next(r for r in store.list_runs(drill="evidenced"))
    assert row.evidence_dir == str(moved / run_id)
    [record] = store.sealed_records([run_id])
    assert integrity.check_record(record, results_dir=moved) is None
    (moved / run_id / "summary.txt").write_text("edited\n")
    problem = integrity.check_record(record, results_dir=moved)
    assert problem is not None
    assert problem.what == f"evidence file changed: {moved / run_id / 'summary.txt'}"
    store.close()
