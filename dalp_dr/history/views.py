"""One truth for every view of the history.

* ``audit``: does this history verify? The chain, every record and its evidence under the
  results directory, every signed checkpoint that can be read, a head someone wrote down.
  ``history verify``, ``history checkpoint --sign`` and every export use it, so an export
  never signs what ``history verify`` rejects.
* ``list_checked``: the runs as their seals say they were. A row whose summary columns no
  longer match what was sealed shows the sealed values and is marked tampered; a record
  whose own content changed is marked tampered too (history list, metrics).
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Collection, Iterable, Iterator

from dalp_dr import checkpoints, integrity
from dalp_dr.checkpoints import Checkpointer
from dalp_dr.errors import InvalidInput
from dalp_dr.history.base import HistoryStore, RunFilter, RunSummary, Seal
from dalp_dr.integrity import Problem, SealedRecord, VerifyReport
from dalp_dr.results import Outcome, RunResult

_HEAD = re.compile(r"^(?:#?(\d+):)?([0-9a-f]{64})$")
_FETCH_ALL_ABOVE = 500
"""past this many listed runs, read every seal instead of naming each run in the query"""


def parse_expected_head(text: str) -> tuple[int | None, str]:
    """``DIGEST`` or ``SEQ:DIGEST`` (as ``history checkpoint`` prints it)."""
    match = _HEAD.match(text.strip().lower())
    if match is None:
        raise InvalidInput(f"'{text}' is not a chain head", field="expect-head",
                           hint="the 64 hex digits of a head, optionally prefixed by its "
                                "sequence number as SEQ:DIGEST")
    return (int(match.group(1)) if match.group(1) else None), match.group(2)


def audit(store: HistoryStore, checkpointer: Checkpointer | None, *,
          check_evidence: bool = True, expect_head: str | None = None,
          evidence_checked_elsewhere: Collection[str] = ()) -> VerifyReport:
    """Verify the whole history: what ``history verify`` prints and every export relies
    on. ``checkpointer`` None checks the chain alone (and says it is not pinned).
    ``evidence_checked_elsewhere``: runs whose evidence the caller hashes against their
    seal itself (a bundle writer, as it copies each file once)."""
    expected = parse_expected_head(expect_head) if expect_head else None
    digests: dict[int, str] = {}

    def tap(records: Iterable[SealedRecord]) -> Iterator[SealedRecord]:
        for record in records:
            digests[record.entry.seq] = record.entry.digest
            yield record

    # under the checkpoint log's shared lock: a seal holds it exclusively from its
    # transaction until its checkpoint is written, so the chain read here never runs ahead
    # of the log read with it
    with checkpointer.reading() if checkpointer is not None else contextlib.nullcontext():
        running = len(store.list_runs(outcome=Outcome.RUNNING, limit=1_000_000))
        report = integrity.verify(tap(store.sealed_records()), store.unsealed_runs(), running,
                                  check_evidence=check_evidence,
                                  results_dir=store.results_dir,
                                  evidence_checked_elsewhere=evidence_checked_elsewhere)
        reads, unreadable = checkpointer.sources() if checkpointer is not None else ([], [])
    problems = list(report.problems)
    notes: list[str] = []
    checked, latest_seq = 0, None
    if checkpointer is None:
        notes.append("NOT PINNED: signed checkpoints were not checked")
    else:
        problems.extend(unreadable)
        verdict = checkpoints.check(reads, digests, report.head_seq, checkpointer.trusted(),
                                    checkpointer.revoked())
        problems.extend(verdict.problems)
        notes.extend(verdict.notes)
        checked = verdict.checked
        latest_seq = verdict.latest.seq if verdict.latest is not None else None
    if expected is not None:
        seq, digest = expected
        if seq is not None and digests.get(seq) != digest:
            problems.append(Problem(run_id=None, seq=seq, what=(
                f"the expected head {seq}:{digest} is not in this chain (it has "
                f"{digests.get(seq, 'no entry')} at #{seq}): rewritten, or another history")))
        elif seq is None and digest not in digests.values():
            problems.append(Problem(run_id=None, seq=None, what=(
                f"the expected head {digest} is not in this chain: rewritten, or another "
                "history")))
    return report.model_copy(update={"problems": problems, "notes": notes,
                                     "checkpoints": checked,
                                     "latest_checkpoint_seq": latest_seq})


def summary_of(result: RunResult, evidence_dir: str) -> RunSummary:
    m = result.measurements
    return RunSummary(run_id=result.run_id, drill=result.drill, topology=result.topology.value,
                      environment=result.environment, trigger=result.trigger.value,
                      operator=result.operator, started_at=result.started_at,
                      ended_at=result.ended_at, outcome=result.outcome,
                      recovery_time=m.recovery_time if m else None,
                      data_loss_window=m.data_loss_window if m else None,
                      evidence_dir=evidence_dir, planned_at=result.planned_at)


def _content_intact(sealed: SealedRecord) -> bool:
    """The record itself is what was sealed (only its summary columns may have changed)."""
    if sealed.result_json is None or sealed.spec_json is None:
        return False
    try:
        return integrity.record_digest(sealed.result_json, sealed.spec_json) == \
            sealed.entry.record_digest
    except ValueError:  # not even JSON
        return False


def seal_of(store: HistoryStore, run_id: str, outcome: Outcome) -> tuple[Seal, str | None]:
    """What the chain says about one run (no evidence hashing): its state and, when its
    record or row no longer matches its seal, the problem."""
    sealed = next(iter(store.sealed_records([run_id])), None)
    if sealed is None:
        if outcome is Outcome.RUNNING:
            return Seal.RUNNING, None
        return Seal.TAMPERED, "final record not in the chain"
    problem = integrity.check_record(sealed, check_evidence=False)
    if problem is None:
        return Seal.SEALED, None
    return (Seal.ROW_EDITED if _content_intact(sealed) else Seal.TAMPERED), problem.what


def list_checked(store: HistoryStore, *, drill: str | None = None,
                 outcome: Outcome | None = None, limit: int = 50,
                 where: RunFilter | None = None) -> list[RunSummary]:
    """``store.list_runs`` with every row held against its seal (no evidence hashing). The
    rows are chosen by their columns, which an edit can change to hide a run from a page:
    callers that show a page also run ``audit`` and say when the history does not verify."""
    return [row for row, _record in
            check_rows(store, store.list_runs(drill=drill, outcome=outcome, limit=limit,
                                              where=where))]


def check_rows(store: HistoryStore, rows: list[RunSummary]
               ) -> list[tuple[RunSummary, str | None]]:
    """Each row held against its seal, with the sealed record's JSON when its content is
    what was sealed (None for a run in progress or a tampered record)."""
    ids = [r.run_id for r in rows]
    seals = {s.entry.run_id: s for s in
             store.sealed_records(ids if len(ids) <= _FETCH_ALL_ABOVE else None)}
    checked: list[tuple[RunSummary, str | None]] = []
    for row in rows:
        sealed = seals.get(row.run_id)
        if sealed is None:
            if row.outcome is Outcome.RUNNING:
                checked.append((row.model_copy(update={"seal": Seal.RUNNING}), None))
            else:
                checked.append((row.model_copy(update={
                    "seal": Seal.TAMPERED,
                    "seal_problem": "final record not in the chain"}), None))
            continue
        problem = integrity.check_record(sealed, check_evidence=False)
        if problem is not None and not _content_intact(sealed):
            checked.append((row.model_copy(update={"seal": Seal.TAMPERED,
                                                   "seal_problem": problem.what}), None))
            continue
        if problem is None:
            checked.append((row.model_copy(update={"seal": Seal.SEALED}), sealed.result_json))
        else:  # only the row was edited: the sealed values are the truth
            shown = summary_of(RunResult.model_validate_json(sealed.result_json or "{}"),
                               row.evidence_dir)
            checked.append((shown.model_copy(update={"seal": Seal.ROW_EDITED,
                                                     "seal_problem": problem.what}),
                            sealed.result_json))
    return checked
