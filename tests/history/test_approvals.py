"""Reviewer sign-off on every kind of store: an approval is sealed into the hash chain, so
an edited, deleted or forged approval is named by verification, and readers take
approvals from the chain only."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from dalp_dr import integrity
from dalp_dr.errors import InvalidInput
from dalp_dr.history import HistoryStore
from dalp_dr.history.approvals import Approval, approvals_of, is_approval
from dalp_dr.results import Outcome
from tests.factories import make_run
from tests.history.stores import Place

RUN = "20260115T030000Z-approved"
WHEN = datetime(2026, 2, 1, 9, 30, tzinfo=UTC)


@pytest.fixture
def approved(place: Place, store: HistoryStore) -> Approval:
    """One sealed run and one approval of it."""
    done = make_run(place.results, RUN, "hot-warm-failover",
                    datetime(2026, 1, 15, 3, tzinfo=UTC), Outcome.PASSED, 1.2)
    store.begin(done.model_copy(update={"outcome": Outcome.RUNNING, "ended_at": None}), "{}")
    store.finish(done)
    approval = Approval.new(RUN, "  Jane Doe (audit) ", "reviewed evidence; RTO met", WHEN)
    store.approve(approval)
    return approval


def verify(place: Place, store: HistoryStore) -> list[str]:
    report = integrity.verify(store.sealed_records(), store.unsealed_runs(), running=0,
                              results_dir=place.results)
    return [str(p) for p in report.problems]


def test_an_approval_is_sealed_after_its_run_and_read_back_from_the_chain(
        place: Place, store: HistoryStore, approved: Approval) -> None:
    entries = [s.entry for s in store.sealed_records()]
    assert [e.run_id for e in entries] == [RUN, approved.approval_id]
    assert is_approval(entries[1].run_id) and entries[1].prev_digest == entries[0].digest
    found = approvals_of(store.sealed_records())
    assert found == {RUN: [approved]}
    assert found[RUN][0].reviewer == "Jane Doe (audit)" and found[RUN][0].approved_at == WHEN
    assert verify(place, store) == []
    assert [r.run_id for r in store.list_runs()] == [RUN]  # an approval is not a run


def test_an_edited_approval_is_named_by_verify(place: Place, store: HistoryStore,
                                               approved: Approval) -> None:
    place.sql("update {approvals} set record_json = ?",
              approved.model_copy(update={"note": "all fine"}).model_dump_json())
    assert verify(place, store) == [f"#2 run {approved.approval_id}: record content changed "
                                    "after it was sealed"]


def test_a_deleted_approval_is_named_by_verify(place: Place, store: HistoryStore,
                                               approved: Approval) -> None:
    place.sql("delete from {approvals}")
    assert verify(place, store) == [f"#2 run {approved.approval_id}: record deleted (its "
                                    "chain entry is still there)"]
    assert approvals_of(store.sealed_records()) == {}


def test_an_approval_inserted_behind_the_stores_back_is_unsealed_and_never_read(
        place: Place, store: HistoryStore, approved: Approval) -> None:
    forged = Approval.new(RUN, "Mallory", "looks good", datetime(2026, 3, 1, tzinfo=UTC))
    place.sql("insert into {approvals} values (?, ?, ?, ?)", forged.approval_id, RUN,
              forged.approved_at.isoformat(), forged.model_dump_json())
    assert verify(place, store) == [f"run {forged.approval_id}: final record not in the "
                                    "chain (inserted behind the store's back, or its chain "
                                    "entry deleted)"]
    assert approvals_of(store.sealed_records()) == {RUN: [approved]}


def test_a_run_that_is_not_sealed_cannot_be_approved(place: Place,
                                                     store: HistoryStore) -> None:
    begun = make_run(place.results, RUN, "hot-warm-failover",
                     datetime(2026, 1, 15, 3, tzinfo=UTC), Outcome.PASSED, 1.2)
    store.begin(begun.model_copy(update={"outcome": Outcome.RUNNING, "ended_at": None}), "{}")
    with pytest.raises(InvalidInput, match="is not sealed"):
        store.approve(Approval.new(RUN, "Jane", "", WHEN))
    assert list(store.sealed_records()) == []


@pytest.mark.parametrize(("reviewer", "note", "field"), [
    ("  ", "ok", "--reviewer"), ("a\nb", "ok", "--reviewer"), ("Jane", "x" * 4001, "--note")])
def test_a_bad_reviewer_or_note_is_invalid_input(reviewer: str, note: str,
                                                 field: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        Approval.new(RUN, reviewer, note, WHEN)
    assert refused.value.where() == field
