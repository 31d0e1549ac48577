"""The history store contract (``dalp_dr.history.base.HistoryStore``), one test per behaviour,
each run against every kind of store (conftest.py: SQLite and a real PostgreSQL)."""

from __future__ import annotations

import contextlib
import shutil
import stat
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from dalp_dr import integrity
from dalp_dr.errors import StoreError, UnknownRun
from dalp_dr.history import HistoryStore
from dalp_dr.integrity import ChainEntry
from dalp_dr.results import Outcome, RunResult, Status, Trigger
from dalp_dr.spec import Scenario, Topology
from tests.factories import at, run, split_brain_run, timeline
from tests.history.stores import PASSWORD, Kind, Place

A, B, C = "20261126T120000Z-aaaaaa", "20261126T120100Z-bbbbbb", "20261126T120200Z-cccccc"


def running(run_id: str, started: float, drill: str = "hot-warm-failover",
            evidence_dir: str | None = None) -> RunResult:
    """A run as ``begin`` records it: outcome RUNNING, ``started`` seconds after T0."""
    return RunResult(
        run_id=run_id, drill=drill, topology=Topology.HOT_WARM, scenario=Scenario.FAILOVER,
        environment="lab", owner="sre", trigger=Trigger.CLI, operator="tester",
        spec_hash="ab" * 32, started_at=at(started), ended_at=None, outcome=Outcome.RUNNING,
        objectives={"rto": 1800.0, "rpo": 300.0}, measurements=None, verdicts=[], phases=[],
        steady_state_restored=None, evidence_dir=evidence_dir or f"/tmp/{run_id}")


def ended(begun: RunResult, outcome: Outcome, after: float = 30) -> RunResult:
    """``begun`` as ``finish`` records it: ``outcome``, ``after`` seconds after it started."""
    return begun.model_copy(update={"outcome": outcome,
                                    "ended_at": begun.started_at + timedelta(seconds=after)})


def measured(begun: RunResult) -> RunResult:
    """``begun`` passed, with measurements."""
    samples = timeline(acked_until=2.0, down_until=3.0, end=4.0)
    return ended(begun, Outcome.PASSED).model_copy(
        update={"measurements": run(samples, 2.05, {s.seq for s in samples})})


@pytest.fixture
def three(store: HistoryStore) -> HistoryStore:
    """Runs A and B of hot-warm-failover and C of another drill, begun one minute apart."""
    store.begin(running(A, 0), '{"name": "x"}')
    store.begin(running(B, 60), '{"name": "x"}')
    store.begin(running(C, 120, drill="other"), '{"name": "o"}')
    return store


# -- runs ------------------------------------------------------------------------------------


def test_a_begun_run_is_listed_as_running(three: HistoryStore) -> None:
    assert [(r.run_id, r.outcome) for r in three.list_runs(drill="hot-warm-failover")] == \
        [(B, Outcome.RUNNING), (A, Outcome.RUNNING)]


def test_finish_replaces_the_record_with_the_final_result(three: HistoryStore) -> None:
    done = measured(running(A, 0))
    three.finish(done)
    assert three.get(A) == done
    [row] = [r for r in three.list_runs() if r.run_id == A]
    assert row.outcome is Outcome.PASSED and row.ended_at == at(30)
    assert done.measurements is not None
    assert row.recovery_time == pytest.approx(done.measurements.recovery_time)


def test_a_split_brain_verdict_and_its_figures_are_kept_and_sealed(
        three: HistoryStore) -> None:
    done = split_brain_run(measured(running(A, 0)))
    three.finish(done)
    assert three.get(A) == done
    assert [(v.objective, v.status) for v in three.get(A).verdicts][-1] == \
        ("split_brain", Status.MISSED)
    report = integrity.verify(three.sealed_records(), three.unsealed_runs(), running=2)
    assert report.problems == []


def test_runs_survive_reopening(place: Place, three: HistoryStore) -> None:
    three.finish(ended(running(A, 0), Outcome.PASSED))
    three.close()
    again = place.open()
    assert {r.run_id: r.outcome for r in again.list_runs()} == \
        {A: Outcome.PASSED, B: Outcome.RUNNING, C: Outcome.RUNNING}
    again.close()


def test_a_second_connection_sees_a_run_as_soon_as_it_began(place: Place,
                                                           store: HistoryStore) -> None:
    reader = place.open()
    store.begin(running(A, 0), "{}")
    assert reader.get(A).outcome is Outcome.RUNNING
    reader.close()


def test_list_is_newest_first_filtered_and_limited(three: HistoryStore) -> None:
    three.finish(ended(running(B, 60), Outcome.FAILED))
    assert [r.run_id for r in three.list_runs()] == [C, B, A]
    assert [r.run_id for r in three.list_runs(drill="other")] == [C]
    assert [r.run_id for r in three.list_runs(outcome=Outcome.FAILED)] == [B]
    assert [r.run_id for r in three.list_runs(limit=2)] == [C, B]


def test_list_filters_by_topology(store: HistoryStore) -> None:
    store.begin(running(A, 0), "{}")
    store.begin(running(B, 60).model_copy(update={"topology": Topology.HOT_COLD}), "{}")
    store.begin(running(C, 120), "{}")
    assert [r.run_id for r in store.list_runs(topology="hot-warm")] == [C, A]
    assert [r.run_id for r in store.list_runs(topology="hot-cold", drill="other")] == []
    assert [r.run_id for r in store.list_runs(topology="hot-hot")] == []


def test_get_takes_a_unique_prefix(three: HistoryStore) -> None:
    assert three.get("20261126T1200").run_id == A


def test_an_ambiguous_prefix_is_refused(three: HistoryStore) -> None:
    with pytest.raises(UnknownRun, match="ambiguous"):
        three.get("20261126T12")


@pytest.mark.parametrize("wanted", ["nope", "%", "_0261126T120000Z-aaaaaa", ""])
def test_an_unknown_run_is_refused_and_like_wildcards_match_literally(
        three: HistoryStore, wanted: str) -> None:
    with pytest.raises(UnknownRun, match="no run"):
        three.get(wanted)


def test_the_spec_snapshot_is_what_begin_stored(three: HistoryStore) -> None:
    assert three.spec_snapshot(C) == '{"name": "o"}'


def test_finishing_a_run_never_begun_is_a_store_error(store: HistoryStore) -> None:
    with pytest.raises(StoreError, match="never begun"):
        store.finish(ended(running(A, 0), Outcome.PASSED))


def test_describe_names_the_store_and_schema_without_the_password(
        place: Place, store: HistoryStore) -> None:
    described = store.describe()
    assert described.startswith(f"{place.kind.value} ") and "schema version 5" in described
    assert PASSWORD not in described


def test_an_embedded_store_names_its_file_and_a_server_none(place: Place,
                                                            store: HistoryStore) -> None:
    assert store.file == (Path(place.url.removeprefix("sqlite://")).resolve()
                          if place.kind is Kind.SQLITE else None)


# -- leases and fire claims ------------------------------------------------------------------


LEASE = "environment:lab"


def test_nobody_holds_a_lease_never_taken(store: HistoryStore) -> None:
    assert store.get_lease(LEASE) is None


def test_a_lease_is_taken_for_its_ttl_from_one_instant(store: HistoryStore) -> None:
    lease = store.acquire_lease(LEASE, "holder-1", "drill a run 1 by sre@host pid 1", ttl=30)
    assert (lease.holder, lease.info) == ("holder-1", "drill a run 1 by sre@host pid 1")
    assert lease.expires_at - lease.acquired_at == pytest.approx(
        timedelta(seconds=30), abs=timedelta(milliseconds=1))
    assert store.get_lease(LEASE) == lease


def test_a_held_lease_is_refused_to_another_holder(place: Place, store: HistoryStore) -> None:
    first = store.acquire_lease(LEASE, "holder-1", "drill a", ttl=30)
    other = place.open()
    refused = other.acquire_lease(LEASE, "holder-2", "drill b", ttl=30)
    assert refused == first
    other.close()


def test_only_the_holder_renews_a_lease(store: HistoryStore) -> None:
    first = store.acquire_lease(LEASE, "holder-1", "drill a", ttl=30)
    assert not store.renew_lease(LEASE, "holder-2", 3600)
    assert store.renew_lease(LEASE, "holder-1", 3600)
    renewed = store.get_lease(LEASE)
    assert renewed is not None and renewed.holder == "holder-1"
    assert renewed.expires_at - first.expires_at > timedelta(seconds=3000)


def test_taking_a_lease_again_extends_it_and_keeps_when_it_was_acquired(
        store: HistoryStore) -> None:
    first = store.acquire_lease(LEASE, "holder-1", "drill a", ttl=30)
    again = store.acquire_lease(LEASE, "holder-1", "drill a, again", ttl=3600)
    assert again.holder == "holder-1" and again.info == "drill a, again"
    assert again.acquired_at == first.acquired_at
    assert again.expires_at - first.expires_at > timedelta(seconds=3000)


def test_only_the_holder_releases_a_lease(store: HistoryStore) -> None:
    store.acquire_lease(LEASE, "holder-1", "drill a", ttl=30)
    store.release_lease(LEASE, "holder-2")
    assert store.get_lease(LEASE) is not None
    store.release_lease(LEASE, "holder-1")
    assert store.get_lease(LEASE) is None


def test_an_expired_lease_is_taken_over_and_its_holder_cannot_come_back(
        store: HistoryStore) -> None:
    store.acquire_lease(LEASE, "dead-holder", "drill a (died)", ttl=-1)  # already expired
    taken = store.acquire_lease(LEASE, "holder-2", "drill b", ttl=30)
    assert (taken.holder, taken.info) == ("holder-2", "drill b")
    assert not store.renew_lease(LEASE, "dead-holder", 30)


def test_a_live_lease_is_taken_over_only_from_the_holder_named_dead(
        store: HistoryStore) -> None:
    store.acquire_lease(LEASE, "dead-holder", "drill a (killed)", ttl=3600)
    refused = store.acquire_lease(LEASE, "holder-2", "recovery", ttl=30, replacing="other")
    assert refused.holder == "dead-holder"
    taken = store.acquire_lease(LEASE, "holder-2", "recovery", ttl=30, replacing="dead-holder")
    assert (taken.holder, taken.info) == ("holder-2", "recovery")
    assert taken.expires_at - taken.acquired_at == pytest.approx(
        timedelta(seconds=30), abs=timedelta(milliseconds=1))
    assert not store.renew_lease(LEASE, "dead-holder", 30)


def test_a_scheduled_fire_is_claimed_exactly_once(place: Place, store: HistoryStore) -> None:
    other = place.open()
    planned = at(3600)
    assert store.claim_fire("hot-warm-failover", planned, "scheduler-1")
    assert not other.claim_fire("hot-warm-failover", planned, "scheduler-2")
    assert not store.claim_fire("hot-warm-failover", planned, "scheduler-1")  # even for us
    same_instant = planned.astimezone(timezone(timedelta(hours=2)))
    assert not other.claim_fire("hot-warm-failover", same_instant, "scheduler-2")
    assert other.claim_fire("hot-warm-failover", planned + timedelta(seconds=1), "s-2")
    assert other.claim_fire("other", planned, "scheduler-2")
    other.close()


def test_claimed_fires_no_record_names_are_unrecorded(store: HistoryStore) -> None:
    planned = at(3600)
    for drill in ("hot-warm-failover", "scheduled", "missed", "elsewhere"):
        assert store.claim_fire(drill, planned, "scheduler-1")
    store.begin(running("20261201T000001Z-sched", 3600, drill="scheduled").model_copy(
        update={"planned_at": planned}), "{}")
    store.begin(running("20261201T000002Z-missd", 3600, drill="missed").model_copy(
        update={"planned_at": planned + timedelta(seconds=1)}), "{}")  # another fire
    store.begin(running("20261201T000003Z-other", 3600, drill="other").model_copy(
        update={"planned_at": planned}), "{}")  # another drill's record
    assert store.unrecorded_fires(older_than=3600) == []  # claimed just now
    found = store.unrecorded_fires(older_than=-60)
    assert [(c.drill, c.planned_at, c.claimed_by) for c in found] == [
        (drill, planned, "scheduler-1") for drill in ("elsewhere", "hot-warm-failover",
                                                     "missed")]
    assert all(abs((c.claimed_at - datetime.now(UTC)).total_seconds()) < 60 for c in found)


# -- sealing ---------------------------------------------------------------------------------


def chained(store: HistoryStore) -> list[str]:
    """Three final records and one still running; the final ones' run ids, in order."""
    ids = [f"20261201T00000{i}Z-chain{i}" for i in range(3)]
    for i, (run_id, outcome) in enumerate(zip(ids, [Outcome.PASSED, Outcome.MISSED,
                                                    Outcome.ABORTED], strict=True)):
        store.begin(running(run_id, 1000 + i, drill="chained"), '{"name": "chained"}')
        store.finish(ended(running(run_id, 1000 + i, drill="chained"), outcome))
    store.begin(running("20261201T000009Z-chain9", 1009, drill="chained"), "{}")
    return ids


def test_final_records_are_sealed_into_one_chain_in_order(store: HistoryStore) -> None:
    ids = chained(store)
    records = list(store.sealed_records())
    assert [r.entry.run_id for r in records] == ids
    assert [r.entry.seq for r in records] == [1, 2, 3]
    assert [r.entry.prev_digest for r in records] == \
        [integrity.GENESIS] + [r.entry.digest for r in records[:2]]
    assert store.unsealed_runs() == []
    report = integrity.verify(store.sealed_records(), store.unsealed_runs(), running=1)
    assert report.problems == [] and report.head == records[-1].entry.digest


def test_sealed_records_can_be_read_for_some_runs(store: HistoryStore) -> None:
    ids = chained(store)
    assert [r.entry.run_id for r in store.sealed_records([ids[2], ids[0], "nope"])] == \
        [ids[0], ids[2]]
    assert list(store.sealed_records([])) == []


def test_an_edited_summary_column_is_named_by_verify(place: Place,
                                                     store: HistoryStore) -> None:
    ids = chained(store)
    place.sql("update {runs} set recovery_time = 1.5 where run_id = ?", ids[1])
    report = integrity.verify(store.sealed_records(), store.unsealed_runs(), running=1)
    assert [p.run_id for p in report.problems] == [ids[1]]
    assert "recovery_time" in report.problems[0].what


def test_a_final_record_missing_from_the_chain_is_unsealed(place: Place,
                                                           store: HistoryStore) -> None:
    ids = chained(store)
    place.sql("delete from {chain} where run_id = ?", ids[2])
    assert store.unsealed_runs() == [ids[2]]


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

    def vouch(self, data: bytes) -> bytes | None:
        return None  # no key: nothing signed

    def vouches(self, data: bytes, signature: bytes | None) -> bool:
        return True


@pytest.fixture
def evidenced(place: Place) -> tuple[RunResult, Path]:
    """A begun run with one evidence file (world-readable) under the results directory."""
    evidence = place.results / "20261202T000000Z-evidnc"
    (evidence / "journal").mkdir(parents=True)
    (evidence / "summary.txt").write_text("evidence\n")
    (evidence / "summary.txt").chmod(0o644)
    return running(evidence.name, 2000, drill="evidenced", evidence_dir=str(evidence)), evidence


def test_a_seal_tells_its_observer_inside_sealing_once_committed(
        place: Place, evidenced: tuple[RunResult, Path]) -> None:
    begun, _evidence = evidenced
    observer = RecordingObserver()
    store = place.open(observer=observer)
    store.begin(begun, "{}")
    assert observer.events == []  # nothing is sealed before the run ends
    store.finish(ended(begun, Outcome.PASSED))
    assert observer.events == ["sealing", f"sealed #{observer.entries[0].seq}", "released"]
    assert [r.entry for r in store.sealed_records([begun.run_id])] == observer.entries
    store.close()


def test_a_seal_holds_the_evidence_files_digests_made_private(
        store: HistoryStore, evidenced: tuple[RunResult, Path]) -> None:
    begun, evidence = evidenced
    store.begin(begun, "{}")
    store.finish(ended(begun, Outcome.PASSED))
    [record] = store.sealed_records([begun.run_id])
    assert record.entry.evidence == {"summary.txt": integrity.sha256(b"evidence\n")}
    assert record.columns is not None and record.columns["evidence_dir"] == begun.run_id
    assert stat.S_IMODE((evidence / "summary.txt").stat().st_mode) == 0o600


def test_evidence_is_found_under_a_moved_results_directory(
        place: Place, tmp_path: Path, store: HistoryStore,
        evidenced: tuple[RunResult, Path]) -> None:
    begun, _evidence = evidenced
    store.begin(begun, "{}")
    store.finish(ended(begun, Outcome.PASSED))
    store.close()
    moved = tmp_path / "restored"
    shutil.move(place.results, moved)
    reopened = place.open(results_dir=moved)
    [row] = reopened.list_runs(drill="evidenced")
    assert row.evidence_dir == str(moved / begun.run_id)
    [record] = reopened.sealed_records([begun.run_id])
    assert integrity.check_record(record, results_dir=moved) is None
    (moved / begun.run_id / "summary.txt").write_text("edited\n")
    problem = integrity.check_record(record, results_dir=moved)
    assert problem is not None
    assert problem.what == f"evidence file changed: {moved / begun.run_id / 'summary.txt'}"
    reopened.close()
