"""The history store contract and what every view of it reads (dalp_dr.history.store
implements it for SQLite and PostgreSQL)."""

from __future__ import annotations

import functools
import json
import threading
from collections.abc import Callable, Collection, Iterator
from contextlib import AbstractContextManager
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar, cast

from pydantic import BaseModel, ValidationError

from dalp_dr import integrity, private_files
from dalp_dr.errors import HintKey, StoreError, TamperedHistory
from dalp_dr.integrity import ChainEntry, SealedRecord
from dalp_dr.results import Outcome, RunResult

if TYPE_CHECKING:
    from dalp_dr.history.approvals import Approval


class Seal(StrEnum):
    """What the hash chain says about a listed run (``dalp_dr.history.views``)."""

    SEALED = "sealed"
    """final, in the chain, and its row agrees with what was sealed"""
    RUNNING = "running"
    """in progress: sealed when it ends"""
    ROW_EDITED = "row_edited"
    """its summary columns were changed after the seal: the sealed values are shown"""
    TAMPERED = "tampered"
    """its record no longer matches its seal (or a final record nobody sealed)"""
    UNCHECKED = "unchecked"
    """not held against the chain (``list_runs``; ``views.list_checked`` holds it)"""


SUMMARY_COLUMNS = ("run_id", "drill", "topology", "environment", "trigger", "operator",
                   "started_at", "ended_at", "outcome", "recovery_time", "data_loss_window",
                   "evidence_dir", "planned_at")
"""the runs-table columns a RunSummary is made of, in this order (every store's schema)"""


class RunSummary(BaseModel, frozen=True):
    """One run as the history lists it: its summary columns, not its whole record."""

    run_id: str
    drill: str
    topology: str
    environment: str
    trigger: str
    operator: str
    started_at: datetime
    ended_at: datetime | None
    outcome: Outcome
    recovery_time: float | None
    data_loss_window: float | None
    evidence_dir: str
    """where the run's evidence is under the configured results directory (the store keeps
    it relative to the results directory)"""
    planned_at: datetime | None = None
    """the schedule's fire time (scheduled runs and missed schedules)"""
    seal: Seal = Seal.UNCHECKED
    seal_problem: str | None = None


class RunFilter(BaseModel, frozen=True):
    """Which runs a listing wants (``history list``): every field given narrows it; the
    store turns it into its query (parameters, never text)."""

    drill: str | None = None
    environment: str | None = None
    outcomes: tuple[Outcome, ...] = ()
    """any of these (none: every outcome)"""
    start: datetime | None = None
    """started at or after (inclusive)"""
    end: datetime | None = None
    """started before (exclusive)"""


_F = TypeVar("_F", bound=Callable[..., Any])


def serialized(method: _F) -> _F:
    """One call at a time per store object: a drill's lock keeper renews from its own thread
    while the run writes from another. The object needs a ``_lock`` (threading.RLock)."""

    @functools.wraps(method)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        lock: threading.RLock = self._lock
        with lock:
            return method(self, *args, **kwargs)

    return cast(_F, wrapper)


def evidence_for_seal(evidence_dir: str, results_dir: Path | None) -> dict[str, str]:
    """The evidence manifest of a run about to be sealed, computed before the store's
    transaction opens; its files are brought to the private modes first."""
    location = integrity.evidence_location(evidence_dir, results_dir)
    if location is None or not location.is_dir():
        return {}
    try:
        private_files.tighten(location)
        return integrity.evidence_manifest(location)
    except OSError as exc:
        raise StoreError(f"cannot read the evidence of {location} to seal it: {exc}"
                         ) from None


class SealObserver(Protocol):
    """Around every seal (the signed checkpoints, ``dalp_dr.checkpoints.Checkpointer``):
    ``sealing()`` is held from before the store's transaction until ``sealed(entry)``
    returned, which is called once the seal committed; it never raises."""

    def sealing(self) -> AbstractContextManager[None]: ...

    def sealed(self, entry: ChainEntry) -> None: ...

    def vouch(self, data: bytes) -> bytes | None:
        """The history key's signature over ``data`` (a result the store did not take,
        ``dalp_dr.kept``); None when the history has no key."""
        ...

    def vouches(self, data: bytes, signature: bytes | None) -> bool:
        """Whether ``signature`` is a trusted key's over ``data``; True for a history with
        no key (it trusts its results directory as it trusts its store)."""
        ...


def record_final(store: HistoryStore, result: RunResult, spec_json: str = "{}") -> None:
    """Record a run that is final from the start (missed, refused, not started): begin and
    finish, which seals it."""
    store.begin(result, spec_json)
    store.finish(result)


def summary_from_row(row: tuple[object, ...], results_dir: Path | None = None) -> RunSummary:
    """A runs row as a summary; a row whose values are not what dalp-dr writes (someone
    edited the store) raises TamperedHistory naming it."""
    values = dict(zip(SUMMARY_COLUMNS, row, strict=True))
    location = integrity.evidence_location(str(values["evidence_dir"] or ""), results_dir)
    values["evidence_dir"] = str(location) if location is not None else ""
    try:
        return RunSummary.model_validate(values)
    except ValidationError as exc:
        raise _tampered(str(values["run_id"]), "row", exc) from None


def result_from_json(run_id: str, text: str) -> RunResult:
    """A stored record; TamperedHistory when it is not one dalp-dr wrote."""
    try:
        return RunResult.model_validate_json(text)
    except ValidationError as exc:
        raise _tampered(run_id, "record", exc) from None


def _tampered(run_id: str, what: str, exc: ValidationError) -> TamperedHistory:
    """A stored row or record holds what dalp-dr never writes: someone edited the store."""
    return TamperedHistory(f"run {run_id[:80]!r}: its {what} holds values dalp-dr never "
                           f"writes ({_first_error(exc)})", hint_key=HintKey.VERIFY_HISTORY)


def entry_from_row(row: tuple[Any, ...]) -> SealedRecord:
    """A chain row (seq, run id, digests, evidence JSON, sealed at) joined with its runs
    row (result, spec, SUMMARY_COLUMNS); TamperedHistory when it cannot even be read."""
    try:
        sealed_at = row[7] if isinstance(row[7], datetime) else \
            datetime.fromisoformat(str(row[7]))
        entry = ChainEntry(seq=row[0], run_id=row[1], record_digest=row[2],
                           evidence=json.loads(row[3]), evidence_digest=row[4],
                           prev_digest=row[5], digest=row[6], sealed_at=sealed_at)
    # pydantic's ValidationError is a ValueError; JSON nested absurdly deep: RecursionError
    except (ValueError, TypeError, RecursionError) as exc:
        text = _first_error(exc) if isinstance(exc, ValidationError) else str(exc)[:200]
        raise TamperedHistory(f"chain entry #{str(row[0])[:20]}: unreadable ({text}); the "
                              "chain table was edited") from None
    columns = dict(zip(SUMMARY_COLUMNS, row[10:], strict=True)) if row[8] is not None \
        else None
    return SealedRecord(entry=entry, result_json=row[8], spec_json=row[9], columns=columns)


def _first_error(exc: ValidationError) -> str:
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first.get("loc", ()))
    return f"{where}: {first.get('msg')}"


class Lease(BaseModel, frozen=True):
    """Who holds a named lease (an environment lock, the scheduler leadership) until when."""

    name: str
    holder: str
    """an opaque token unique to the holding process (or run)"""
    info: str
    """for humans: what holds it (drill, run id, operator, host, pid)"""
    acquired_at: datetime
    expires_at: datetime


class FireClaim(BaseModel, frozen=True):
    """Who claimed a scheduled fire (``claim_fire``), and when (the store's clock)."""

    drill: str
    planned_at: datetime
    claimed_by: str
    claimed_at: datetime


class HistoryStore(Protocol):
    """Durable record of every drill run.

    Contract: ``begin`` is called before any fault, with outcome RUNNING, so a run that dies
    halfway is still on record; ``finish`` replaces it with the final result once. Reads
    never return secrets because nothing written here contains them (callers redact).
    Every failure raises StoreError. Opening a store creates or migrates its schema (one
    process at a time) and refuses a schema newer than this dalp-dr.
    """

    results_dir: Path | None
    """the results directory evidence is found under (None: where it was first written)"""
    observer: SealObserver | None
    """told of every seal (None: nothing but the store records it)"""
    file: Path | None
    """the file an embedded store (SQLite) keeps the history in; None for a database server
    (what a run needs free beside it: ``dalp_dr.reserve``)"""

    def describe(self) -> str:
        """Where the store is and its schema version, without credentials."""
        ...

    def begin(self, result: RunResult, spec_json: str) -> None: ...

    def finish(self, result: RunResult) -> None: ...

    def list_runs(self, *, drill: str | None = None, outcome: Outcome | None = None,
                  topology: str | None = None, limit: int = 50,
                  where: RunFilter | None = None) -> list[RunSummary]:
        """Newest first (by started_at; a missed schedule by its planned time); only those
        of ``drill``, ending in ``outcome``, of ``topology`` when given, and those ``where``
        selects."""
        ...

    def count_runs(self, where: RunFilter | None = None) -> int:
        """How many runs ``where`` selects (all of them: no limit)."""
        ...

    def get(self, run_id: str) -> RunResult:
        """Exact id or a unique prefix; raises UnknownRun."""
        ...

    def spec_snapshot(self, run_id: str) -> str: ...

    def approve(self, approval: Approval) -> ChainEntry:
        """Append a reviewer's approval of a sealed run, sealed into the chain
        (``dalp_dr.history.approvals``)."""
        ...

    # -- coordination between dalp-dr processes sharing this store ------------------------

    def acquire_lease(self, name: str, holder: str, info: str, ttl: float, *,
                      replacing: str | None = None) -> Lease:
        """Take the lease ``name`` for ``ttl`` seconds if it is free, expired or already
        ``holder``'s (then it is extended, keeping its acquired_at), or held by ``replacing``:
        a holder the caller knows is dead (an operator's ``drill recover --force``). Atomic
        across processes. Returns the lease as it stands afterwards: compare ``holder`` to
        know who has it."""
        ...

    def renew_lease(self, name: str, holder: str, ttl: float) -> bool:
        """Extend our lease by ``ttl`` seconds from now; False if it is no longer ours."""
        ...

    def release_lease(self, name: str, holder: str) -> None:
        """Give the lease up if it is ours (nothing happens otherwise)."""
        ...

    def get_lease(self, name: str) -> Lease | None:
        """The lease's current row, expired or not; None if nobody ever took it or it was
        released."""
        ...

    def claim_fire(self, drill: str, planned_at: datetime, claimed_by: str) -> bool:
        """Record that ``claimed_by`` handles the scheduled fire (drill, planned_at): True
        exactly once per pair across every process, False to whoever comes second."""
        ...

    def unrecorded_fires(self, older_than: float) -> list[FireClaim]:
        """Fires claimed more than ``older_than`` seconds ago (the store's clock) that no
        run record names (drill and planned time), oldest first: their claimer stopped
        between the claim and its record."""
        ...

    # -- tamper evidence (dalp_dr.integrity) -----------------------------------------------

    def sealed_records(self, run_ids: Collection[str] | None = None
                       ) -> Iterator[SealedRecord]:
        """Every chain entry in order with the record it seals (left join: a deleted
        record comes back with no content); only those of ``run_ids`` when given."""
        ...

    def unsealed_runs(self) -> list[str]:
        """Final records that are not in the chain (there should be none)."""
        ...

    def close(self) -> None: ...
