"""``dalp-dr doctor`` reports what preflight checks before a fault (issue 18): free space for
a run of each topology in use, and a history store that takes a write."""

from __future__ import annotations

import json
import sqlite3
from datetime import timedelta
from pathlib import Path

import pytest

from dalp_dr.doctor import Health, diagnose, free_space, store_writes
from dalp_dr.history import HistoryStore
from dalp_dr.reserve import KiB, MiB
from dalp_dr.results import Outcome
from dalp_dr.spec import Topology
from tests.factories import MINIMAL_DRILL, T0, make_run
from tests.fakes import FakeDisks

DRILLS = {"hot-cold": ["restore"], "hot-warm": ["failover", "switchover"]}


@pytest.fixture
def store(tmp_path: Path, sqlite_store: HistoryStore) -> HistoryStore:
    """A SQLite history in tmp_path/results holding one passed hot-warm run whose evidence
    is 1 MiB and a little."""
    opened = sqlite_store
    run = make_run(tmp_path, "20260101T030000Z-aaaaaa", "failover", T0, Outcome.PASSED, 1.0,
                   Topology.HOT_WARM)
    (Path(run.evidence_dir) / "heartbeat.jsonl").write_bytes(b"x" * MiB)
    opened.begin(run.model_copy(update={"outcome": Outcome.RUNNING, "ended_at": None}), "{}")
    opened.finish(run.model_copy(update={"ended_at": T0 + timedelta(seconds=30)}))
    return opened


def test_free_space_is_held_against_the_largest_need_of_the_drills(
        tmp_path: Path, store: HistoryStore) -> None:
    (found,) = free_space(store, tmp_path / "results", DRILLS, FakeDisks())

    assert (found.check, found.status, found.fix) == ("results space", Health.OK, "")
    assert "needed (the last hot-warm run: 1.0 MiB x 4 + the SQLite history store: 1.0 " \
           "MiB per run)" in found.detail
    assert found.needed_by == ["restore", "failover", "switchover"]


def test_too_little_free_space_names_the_drills_preflight_would_refuse(
        tmp_path: Path, store: HistoryStore) -> None:
    """hot-cold has no past run (2 MiB floor + 1 MiB for the store): it fits in 3.5 MiB;
    hot-warm needs four times its 1 MiB run and the store's 1 MiB."""
    results = tmp_path / "results"
    (found,) = free_space(store, results, DRILLS, FakeDisks({results: 3584 * KiB}))

    assert (found.check, found.status) == ("results space", Health.MISSING)
    assert found.needed_by == ["failover", "switchover"]
    assert found.detail.startswith(f"{results}: 3.5 MiB free, 5.")
    assert "MiB needed (the last hot-warm run: 1.0 MiB x 4 + the SQLite" in found.detail
    assert "point DALP_DR_RESULTS or DALP_DR_STORE at one with more room" in found.fix


def test_a_store_that_takes_a_write_keeps_no_trace_of_it(tmp_path: Path,
                                                         store: HistoryStore) -> None:
    found = store_writes(store)

    assert (found.check, found.status) == ("history store writes", Health.OK)
    with sqlite3.connect(tmp_path / "results" / "history.sqlite") as db:
        assert db.execute("select count(*) from leases").fetchone() == (0,)


def test_a_store_that_refuses_writes_is_missing(tmp_path: Path, store: HistoryStore) -> None:
    with sqlite3.connect(tmp_path / "results" / "history.sqlite") as db:  # as its admin would
        db.execute("create trigger frozen before insert on leases "
                   "begin select raise(abort, 'the history is frozen'); end")

    found = store_writes(store)

    assert (found.check, found.status) == ("history store writes", Health.MISSING)
    assert "the history is frozen" in found.detail
    assert "make the store writable" in found.fix


def test_doctor_reports_both(tmp_path: Path) -> None:
    drills = tmp_path / "drills"
    (drills / "parts").mkdir(parents=True)
    (drills / "x.yaml").write_text(MINIMAL_DRILL.replace("inv.yml", "parts/inv.yml")
                                   .replace("p.yml", "parts/p.yml"))
    (drills / "parts" / "inv.yml").write_text(json.dumps({"all": {"vars": {"dsn": "host=x"},
                                                                  "hosts": {"db1": {}}}}))
    (drills / "parts" / "p.yml").write_text("")
    results = tmp_path / "results"

    rows = {f.check: f for f in diagnose(drills, f"sqlite:///{results / 'history.sqlite'}",
                                         results, disks=FakeDisks({results: MiB}))}

    assert rows["history store writes"].status is Health.OK
    assert rows["results space"].status is Health.MISSING
    assert rows["results space"].needed_by == ["x"]
