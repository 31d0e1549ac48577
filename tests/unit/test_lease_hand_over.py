"""Handing the environment lock from a waiting run to the run it became (``locks.handed_over``):
in one step when the store takes it, and never leaving the environment locked when it does
not."""

from __future__ import annotations

from typing import Any

import pytest

from dalp_dr.errors import StoreError
from dalp_dr.history import HistoryStore
from dalp_dr.locks import environment_lock_name, handed_over, lock_environment

ENV = "lab-hot-warm"


class HandOverFails:
    """FailingHandOverStore: a real store whose hand-over (an acquire that replaces a holder)
    fails as a store that went away would; everything else is the real store's."""

    def __init__(self, store: HistoryStore) -> None:
        self._store = store

    def acquire_lease(self, *args: Any, replacing: str | None = None, **kw: Any) -> Any:
        if replacing is not None:
            raise StoreError("cannot take lease in the history: connection lost")
        return self._store.acquire_lease(*args, **kw)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)


def test_the_lock_passes_to_the_new_holder_in_one_step(sqlite_store: HistoryStore) -> None:
    waiting = lock_environment(sqlite_store, ENV, "wait-1", "run waiting", ttl=60)
    new = handed_over(waiting, "run-1", "run run-1")
    try:
        lease = sqlite_store.get_lease(environment_lock_name(ENV))
        assert lease is not None and lease.holder == "run-1" and lease.info == "run run-1"
    finally:
        new.release()
    assert sqlite_store.get_lease(environment_lock_name(ENV)) is None


def test_a_failed_hand_over_leaves_the_environment_free_not_locked_for_its_ttl(
        sqlite_store: HistoryStore) -> None:
    store: Any = HandOverFails(sqlite_store)
    waiting = lock_environment(store, ENV, "wait-1", "run waiting", ttl=600)
    with pytest.raises(StoreError):
        handed_over(waiting, "run-1", "run run-1")
    # let go at once: the next run takes it without waiting out the 600 s lease
    assert sqlite_store.get_lease(environment_lock_name(ENV)) is None
    after = lock_environment(sqlite_store, ENV, "run-2", "run run-2", ttl=60)
    after.release()
