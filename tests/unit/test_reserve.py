"""What a run needs free (``dalp_dr.reserve``): measured from the evidence of recent runs of
its topology, with headroom, a floor when there is none, the SQLite store beside it, and
each filesystem's free space read through the Disks seam (``tests.fakes.FakeDisks``)."""

from __future__ import annotations

import json
import shutil
from datetime import timedelta
from pathlib import Path

import pytest

from dalp_dr.config import EnvVar
from dalp_dr.history import HistoryStore, open_store
from dalp_dr.reserve import (
    FLOOR_BYTES,
    HEADROOM,
    STORE_BYTES,
    KiB,
    LocalDisks,
    MiB,
    Space,
    check,
    evidence_bytes,
    evidence_need,
    run_needs,
)
from dalp_dr.results import Outcome
from dalp_dr.spec import Topology
from tests.factories import T0, make_run
from tests.fakes import FakeDisks

SLACK = 64 * KiB
"""what a run's small files and folders take besides its payload (blocks of the filesystem
tmp_path is on)"""


@pytest.fixture
def store(sqlite_store: HistoryStore) -> HistoryStore:
    return sqlite_store


def past(base: Path, store: HistoryStore, n: int, payload: int, *,
         topology: Topology = Topology.HOT_WARM, outcome: Outcome = Outcome.PASSED) -> Path:
    """Record run number ``n`` (later numbers are newer) whose evidence holds ``payload``
    bytes besides its journal; its evidence directory."""
    run = make_run(base, f"20260101T{n:02d}0000Z-{n:06x}", f"{topology.value}-drill",
                   T0 + timedelta(hours=n), outcome, 1.0, topology)
    evidence = Path(run.evidence_dir)
    (evidence / "heartbeat.jsonl").write_bytes(b"x" * payload)
    store.begin(run.model_copy(update={"outcome": Outcome.RUNNING, "ended_at": None}),
                json.dumps({"name": run.drill}))
    if outcome is not Outcome.RUNNING:
        store.finish(run)
    return evidence


def test_a_run_needs_the_largest_recent_run_of_its_topology_times_the_headroom(
        tmp_path: Path, store: HistoryStore) -> None:
    past(tmp_path, store, 1, 256 * KiB)
    past(tmp_path, store, 2, MiB)
    past(tmp_path, store, 3, 8 * MiB, topology=Topology.HOT_COLD)
    past(tmp_path, store, 4, 512 * KiB)

    need = evidence_need(store, "hot-warm", tmp_path / "results")

    assert HEADROOM * MiB <= need.bytes <= HEADROOM * (MiB + SLACK)
    assert need.basis == f"largest of the last 3 hot-warm runs: 1.0 MiB x {HEADROOM}"
    assert need.directory == tmp_path / "results" and need.variable is EnvVar.RESULTS


def test_only_the_last_runs_are_measured(tmp_path: Path, store: HistoryStore) -> None:
    for n in range(12):
        past(tmp_path, store, n, 4 * MiB if n < 2 else 128 * KiB)

    need = evidence_need(store, "hot-warm", tmp_path / "results", recent=10)

    assert need.bytes <= HEADROOM * (128 * KiB + SLACK)
    assert need.basis.startswith("largest of the last 10 hot-warm runs: ")


def test_without_a_past_run_of_its_topology_the_floor_applies(
        tmp_path: Path, store: HistoryStore) -> None:
    past(tmp_path, store, 1, MiB, topology=Topology.HOT_COLD)

    need = evidence_need(store, "hot-warm", tmp_path / "results")

    assert need.bytes == FLOOR_BYTES
    assert need.basis == "no past hot-warm run: default floor 2.0 MiB"


@pytest.mark.parametrize("outcome", [Outcome.RUNNING, Outcome.PREFLIGHT_FAILED,
                                     Outcome.REFUSED])
def test_runs_not_past_preflight_or_not_done_are_not_measured(
        tmp_path: Path, store: HistoryStore, outcome: Outcome) -> None:
    past(tmp_path, store, 1, 16 * MiB, outcome=outcome)

    assert evidence_need(store, "hot-warm", tmp_path / "results").bytes == FLOOR_BYTES


def test_evidence_is_measured_where_the_results_directory_is_now(tmp_path: Path) -> None:
    """The store keeps evidence directories relative to the results directory: moved, the
    evidence is found under the new one; a run whose evidence is gone is passed over."""
    url = f"sqlite:///{tmp_path / 'history.sqlite'}"
    first = open_store(url, results_dir=tmp_path / "results")
    past(tmp_path, first, 1, MiB)
    gone = past(tmp_path, first, 2, 4 * MiB)
    first.close()
    shutil.rmtree(gone)
    shutil.move(tmp_path / "results", tmp_path / "moved")
    moved = open_store(url, results_dir=tmp_path / "moved")
    try:
        need = evidence_need(moved, "hot-warm", tmp_path / "moved")
    finally:
        moved.close()

    assert HEADROOM * MiB <= need.bytes <= HEADROOM * (MiB + SLACK)
    assert need.basis == "the last hot-warm run: 1.0 MiB x 4"


def test_an_evidence_directory_takes_its_files_but_not_what_links_point_to(
        tmp_path: Path) -> None:
    root = tmp_path / "run"
    (root / "journal").mkdir(parents=True)
    (root / "journal" / "000001-run.started.json").write_bytes(b"x" * 300 * KiB)
    (tmp_path / "big").write_bytes(b"x" * 4 * MiB)
    (root / "link").symlink_to(tmp_path / "big")
    (root / "folder-link").symlink_to(tmp_path, target_is_directory=True)

    size = evidence_bytes(root)

    assert size is not None and 300 * KiB <= size < MiB
    assert evidence_bytes(tmp_path / "nowhere") is None
    assert evidence_bytes(root / "folder-link") is None


def test_needs_on_one_filesystem_add_up(tmp_path: Path, store: HistoryStore) -> None:
    results = tmp_path / "results"
    disks = FakeDisks({results: 2 * MiB + STORE_BYTES})

    (space,) = check(run_needs(store, "hot-warm", results), disks)

    assert space.need == FLOOR_BYTES + STORE_BYTES and not space.short
    assert space.basis == ("no past hot-warm run: default floor 2.0 MiB + "
                           "the SQLite history store: 1.0 MiB per run")
    assert space.variables == (EnvVar.RESULTS, EnvVar.STORE)
    (short,) = check(run_needs(store, "hot-warm", results),
                     FakeDisks({results: FLOOR_BYTES + STORE_BYTES - 1}))
    assert short.short


def test_a_store_on_another_filesystem_is_checked_on_its_own(tmp_path: Path) -> None:
    results, elsewhere = tmp_path / "results", tmp_path / "db"
    store = open_store(f"sqlite:///{elsewhere / 'history.sqlite'}", results_dir=results)
    try:
        needs = run_needs(store, "hot-warm", results)
    finally:
        store.close()
    disks = FakeDisks({results: FLOOR_BYTES, elsewhere: 512 * KiB},
                      devices={elsewhere: 1})

    evidence, beside_store = check(needs, disks)

    assert (evidence.directory, evidence.need, evidence.short) == (results, FLOOR_BYTES, False)
    assert (beside_store.directory, beside_store.need) == (elsewhere, STORE_BYTES)
    assert beside_store.short and beside_store.variables == (EnvVar.STORE,)
    assert "point DALP_DR_STORE at one with more room" in beside_store.fix()


def test_a_filesystem_whose_free_space_cannot_be_read_is_short(tmp_path: Path,
                                                               store: HistoryStore) -> None:
    (space,) = check(run_needs(store, "hot-warm", tmp_path / "results"),
                     FakeDisks(broken=(tmp_path,)))

    assert space.short and space.free is None
    assert "free space unknown (OSError: [Errno 5] Input/output error)" in space.describe()


def test_a_refusal_says_where_how_much_is_free_and_needed_why_and_the_fix() -> None:
    space = Space(directory=Path("/srv/results"), free=1536 * KiB, need=6 * MiB,
                  basis="largest of the last 4 hot-warm runs: 1.5 MiB x 4",
                  variables=(EnvVar.RESULTS,))

    assert space.refusal() == (
        "no fault injected: not enough free space for this run in /srv/results: 1.5 MiB "
        "free, 6.0 MiB needed (largest of the last 4 hot-warm runs: 1.5 MiB x 4); free "
        "space on that filesystem, or point DALP_DR_RESULTS at one with more room")


def test_this_hosts_disks_judge_a_directory_not_made_yet_by_its_parent(
        tmp_path: Path) -> None:
    disks = LocalDisks()
    assert disks.device(tmp_path / "not" / "made") == disks.device(tmp_path)
    assert disks.free(tmp_path / "not" / "made") > 0
