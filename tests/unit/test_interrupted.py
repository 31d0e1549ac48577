"""Runs whose orchestrator died: what says a running run is interrupted (its environment's
lock), on a real SQLite history."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from dalp_dr.adapters.ansible import AnsibleRunner
from dalp_dr.errors import InvalidInput
from dalp_dr.history import HistoryStore, open_store
from dalp_dr.history.base import Lease
from dalp_dr.locks import RunState, environment_lock_name, recovery_holder, running_runs
from dalp_dr.recovery import interrupted_runs, recover
from dalp_dr.results import Outcome
from tests.factories import make_run

ENV = "lab-hot-warm"  # make_run's environment


@pytest.fixture
def store(tmp_path: Path) -> Iterator[HistoryStore]:
    opened = open_store(f"sqlite:///{tmp_path / 'results' / 'history.sqlite'}",
                        results_dir=tmp_path / "results")
    yield opened
    opened.close()


def begin(store: HistoryStore, tmp_path: Path, run_id: str, environment: str = ENV) -> str:
    """A run recorded running (as the engine begins one), its evidence on disk."""
    run = make_run(tmp_path, run_id, "hot-warm-failover", datetime(2026, 5, 1, 3, tzinfo=UTC),
                   Outcome.RUNNING, None)
    store.begin(run.model_copy(update={"ended_at": None, "steady_state_restored": None,
                                       "environment": environment}),
                json.dumps({"name": run.drill}))
    return run_id


def lock(store: HistoryStore, holder: str, ttl: float, environment: str = ENV,
         replacing: str | None = None) -> Lease:
    lease = store.acquire_lease(environment_lock_name(environment), holder, f"held by {holder}",
                                ttl, replacing=replacing)
    assert lease.holder == holder
    return lease


def test_who_holds_the_lock_says_whether_a_running_run_is_interrupted(
        store: HistoryStore, tmp_path: Path) -> None:
    run = begin(store, tmp_path, "20260501T030000Z-aaaaaa")

    def state(now: datetime | None = None) -> RunState:
        [found] = running_runs(store, now)
        return found.state

    assert state() is RunState.INTERRUPTED  # nobody holds the lock
    lease = lock(store, run, ttl=60)
    assert state() is RunState.ALIVE and interrupted_runs(store) == []
    after = lease.expires_at + timedelta(seconds=1)
    assert state(after) is RunState.INTERRUPTED  # its holder stopped renewing
    # a crash recovery of the run holds the lock: being recovered, not interrupted again
    lock(store, recovery_holder(run), ttl=60, replacing=run)
    assert state() is RunState.RECOVERING and interrupted_runs(store) == []
    with pytest.raises(InvalidInput, match="is being recovered: held by recover-"):
        recover(store, run, AnsibleRunner(), progress=lambda _m: None)
    # another run holds the environment: this one's orchestrator let it go (or died)
    store.release_lease(environment_lock_name(ENV), recovery_holder(run))
    lock(store, "20260501T040000Z-bbbbbb", ttl=60)
    assert state() is RunState.INTERRUPTED and interrupted_runs(store) == [run]
