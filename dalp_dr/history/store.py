"""The history store: one implementation over SQLAlchemy Core, for SQLite (embedded,
default) and PostgreSQL (production). What the two do differently is in
``dalp_dr.history.backends`` (connecting, write locks, lease clock, migration policy) and
``dalp_dr.history.schema`` (table names and column types).

Every write is its own transaction; reads see committed runs only, so a second dalp-dr
process (another operator, the scheduler) sees a run as ``running`` from the moment it
began. Evidence files are hashed before a transaction opens, never inside one. Database
errors become StoreError here, with credentials masked.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Collection, Iterator
from contextlib import contextmanager, nullcontext
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import ColumnElement, Connection, and_, case, func, literal, or_, select, update
from sqlalchemy.exc import SQLAlchemyError

from dalp_dr import integrity
from dalp_dr.clock import utcnow
from dalp_dr.errors import HintKey, InvalidInput, StoreError, UnknownRun
from dalp_dr.history.approvals import APPROVAL_SPEC, Approval
from dalp_dr.history.backends import WRITE, Backend
from dalp_dr.history.base import (
    SUMMARY_COLUMNS,
    FireClaim,
    Lease,
    RunFilter,
    RunSummary,
    SealObserver,
    entry_from_row,
    evidence_for_seal,
    result_from_json,
    serialized,
    summary_from_row,
)
from dalp_dr.history.schema import SCHEMA_VERSION, Tables
from dalp_dr.results import Outcome, RunResult
from dalp_dr.timefmt import format_time


class _FinishedMeanwhile(StoreError):
    """An upgrade found a final record whose evidence was not hashed before it began
    (never leaves this module: the upgrade starts again)."""


class SqlHistory:
    """A HistoryStore (``dalp_dr.history.base``) on one SQL database."""

    def __init__(self, backend: Backend, *, migrate: bool = False,
                 results_dir: Path | None = None, observer: SealObserver | None = None
                 ) -> None:
        self.backend = backend
        self.results_dir = results_dir
        self.observer = observer
        self.file = backend.file
        self.t = Tables(backend.dialect)
        self._lock = threading.RLock()
        try:
            self._engine = backend.engine()
            self.migrated_from = self._migrate(migrate)
        except (SQLAlchemyError, OSError) as exc:
            raise self._error("cannot open history", exc) from None

    def _error(self, what: str, exc: BaseException) -> StoreError:
        return StoreError(f"{what} {self.backend.where}: {self.backend.message(exc)}")

    @contextmanager
    def _tx(self, what: str, write: bool = False) -> Iterator[Connection]:
        """One transaction; a database error becomes StoreError("<what> <store>: ...")."""
        try:
            with self._engine.connect() as conn:
                conn.execution_options(**{WRITE: write})
                with conn.begin():
                    yield conn
        except (SQLAlchemyError, OSError) as exc:
            raise self._error(what, exc) from None

    # -- schema ---------------------------------------------------------------------------

    def _migrate(self, migrate: bool) -> int | None:
        """Create the schema, or bring it to SCHEMA_VERSION as the backend's migration
        policy allows, in one transaction. Returns the version it upgraded from (None: new
        or current)."""
        for _attempt in range(3):
            with self._tx("cannot open history") as conn:
                found = self.t.found_version(conn)
                upgrading = found is not None and found < SCHEMA_VERSION and \
                    (migrate or self.backend.upgrades_on_open)
                # what an upgrade to schema 3 seals, its evidence hashed before the upgrade
                unsealed = self.t.final_unsealed(conn) if upgrading and found is not None \
                    and found < 3 else []
            try:
                manifests = {run_id: integrity.evidence_manifest(
                    integrity.evidence_location(evidence_dir, self.results_dir))
                    for run_id, evidence_dir in unsealed}
            except OSError as exc:
                raise self._error("cannot read the evidence to seal in", exc) from None
            try:
                return self._migrate_with(migrate, manifests)
            except _FinishedMeanwhile:
                continue  # a run finished since: hash its evidence too, then again
        raise StoreError(f"cannot upgrade {self.backend.where}: runs keep finishing while it "
                         "upgrades; stop the older dalp-dr processes that write to it")

    def _migrate_with(self, migrate: bool, manifests: dict[str, dict[str, str]]
                      ) -> int | None:
        with self._tx("cannot open history", write=True) as conn:
            self.backend.lock(conn, "dalp_dr_schema")  # one migrator at a time
            found = self.t.found_version(conn)
            if found is None:
                self.t.create(conn)
                return None
            if found > SCHEMA_VERSION:
                raise StoreError(f"{self.backend.where}: schema version {found} is newer "
                                 f"than this dalp-dr ({SCHEMA_VERSION}); upgrade dalp-dr")
            if found == SCHEMA_VERSION:
                return None
            if not (migrate or self.backend.upgrades_on_open):
                raise StoreError(
                    f"{self.backend.where}: schema version {found} is older than this "
                    f"dalp-dr ({SCHEMA_VERSION})", hint_key=HintKey.MIGRATE_STORE)

            def seal(run_id: str) -> None:
                if run_id not in manifests:
                    raise _FinishedMeanwhile(run_id)
                self._seal(conn, run_id, None, manifests[run_id])

            self.t.upgrade(conn, found, seal)
        return found

    @serialized
    def describe(self) -> str:
        kind = self.backend.dialect.kind.value
        return f"{kind} {self.backend.where} (schema version {SCHEMA_VERSION})"

    # -- runs -----------------------------------------------------------------------------

    @serialized
    def begin(self, result: RunResult, spec_json: str) -> None:
        with self._tx("cannot write history", write=True) as conn:
            conn.execute(self.t.runs.insert().values(
                run_id=result.run_id, drill=result.drill, topology=result.topology.value,
                scenario=result.scenario.value, environment=result.environment,
                owner=result.owner, trigger=result.trigger.value, operator=result.operator,
                spec_hash=result.spec_hash, spec_json=spec_json,
                started_at=result.started_at, ended_at=None, outcome=result.outcome.value,
                recovery_time=None, data_loss_window=None,
                result_json=result.model_dump_json(),
                evidence_dir=integrity.relative_evidence(result.evidence_dir),
                planned_at=result.planned_at))

    def finish(self, result: RunResult) -> None:
        """The final result and its seal in one transaction, inside the observer's
        ``sealing()``; the observer is told once it committed."""
        with self.observer.sealing() if self.observer is not None else nullcontext():
            entry = self._finish(result)
            if entry is not None and self.observer is not None:
                self.observer.sealed(entry)

    @serialized
    def _finish(self, result: RunResult) -> integrity.ChainEntry | None:
        m = result.measurements
        final = result.outcome is not Outcome.RUNNING
        evidence = evidence_for_seal(result.evidence_dir, self.results_dir) if final else {}
        result_json = result.model_dump_json()
        runs = self.t.runs
        with self._tx("cannot write history", write=True) as conn:
            done = conn.execute(update(runs).where(runs.c.run_id == result.run_id).values(
                ended_at=result.ended_at, outcome=result.outcome.value,
                recovery_time=m.recovery_time if m else None,
                data_loss_window=m.data_loss_window if m else None, result_json=result_json))
            if done.rowcount != 1:
                raise StoreError(f"cannot finish run {result.run_id}: it was never begun")
            return self._seal(conn, result.run_id, result_json, evidence) if final else None

    def _seal(self, conn: Connection, run_id: str, result_json: str | None,
              evidence: dict[str, str], spec_json: str | None = None
              ) -> integrity.ChainEntry:
        """Append the chain entry for a final record, in the caller's transaction.
        ``evidence``: its manifest, computed before the transaction. ``spec_json`` given
        (an approval): the record is ``result_json`` itself, not a runs row."""
        self.backend.lock(conn, "dalp_dr_chain")  # one sealer at a time
        runs, chain = self.t.runs.c, self.t.chain
        if spec_json is None or result_json is None:
            row = conn.execute(select(runs.result_json, runs.spec_json)
                               .where(runs.run_id == run_id)).one()
            result_json, spec_json = result_json or row.result_json, row.spec_json
        last = conn.execute(select(chain.c.seq, chain.c.digest)
                            .order_by(chain.c.seq.desc()).limit(1)).first()
        entry = integrity.seal(last[0] + 1 if last else 1, run_id, result_json, spec_json,
                               evidence, last[1] if last else integrity.GENESIS, utcnow())
        conn.execute(chain.insert().values(
            seq=entry.seq, run_id=entry.run_id, record_digest=entry.record_digest,
            evidence_json=json.dumps(entry.evidence, sort_keys=True),
            evidence_digest=entry.evidence_digest, prev_digest=entry.prev_digest,
            digest=entry.digest, sealed_at=entry.sealed_at))
        return entry

    def approve(self, approval: Approval) -> integrity.ChainEntry:
        """Append a reviewer's approval of a sealed run and seal it into the chain, in one
        transaction inside the observer's ``sealing()`` (as ``finish``). InvalidInput when
        the run is not sealed (still running, or not in the history)."""
        with self.observer.sealing() if self.observer is not None else nullcontext():
            entry = self._approve(approval)
            if self.observer is not None:
                self.observer.sealed(entry)
        return entry

    @serialized
    def _approve(self, approval: Approval) -> integrity.ChainEntry:
        record_json = approval.model_dump_json()
        with self._tx("cannot write history", write=True) as conn:
            sealed = conn.execute(select(self.t.chain.c.seq)
                                  .where(self.t.chain.c.run_id == approval.run_id)).first()
            if sealed is None:
                raise InvalidInput(f"run {approval.run_id} is not sealed (still running?)",
                                   field="RUN", hint="approve a run once it has ended")
            conn.execute(self.t.approvals.insert().values(
                approval_id=approval.approval_id, run_id=approval.run_id,
                approved_at=approval.approved_at, record_json=record_json))
            return self._seal(conn, approval.approval_id, record_json, {}, APPROVAL_SPEC)

    @serialized
    def sealed_records(self, run_ids: Collection[str] | None = None
                       ) -> Iterator[integrity.SealedRecord]:
        c, r, a = self.t.chain.c, self.t.runs.c, self.t.approvals.c
        query = (select(c.seq, c.run_id, c.record_digest, c.evidence_json, c.evidence_digest,
                        c.prev_digest, c.digest, c.sealed_at, r.result_json, r.spec_json,
                        *(r[name] for name in SUMMARY_COLUMNS), a.record_json)
                 .select_from(self.t.chain.outerjoin(self.t.runs, r.run_id == c.run_id)
                              .outerjoin(self.t.approvals, a.approval_id == c.run_id))
                 .order_by(c.seq))
        if run_ids is not None:
            query = query.where(c.run_id.in_(list(run_ids)))
        with self._tx("cannot read history") as conn:
            rows = conn.execute(query).all()
        return iter([_sealed_from_row(tuple(row)) for row in rows])

    @serialized
    def unsealed_runs(self) -> list[str]:
        """Final runs, and approvals, that no chain entry seals."""
        r, a, sealed = self.t.runs.c, self.t.approvals.c, select(self.t.chain.c.run_id)
        with self._tx("cannot read history") as conn:
            return list(conn.scalars(
                select(r.run_id).where(r.outcome != "running", r.run_id.not_in(sealed))
                .order_by(r.started_at))) + list(conn.scalars(
                    select(a.approval_id).where(a.approval_id.not_in(sealed))
                    .order_by(a.approved_at)))

    @serialized
    def list_runs(self, *, drill: str | None = None, outcome: Outcome | None = None,
                  topology: str | None = None, limit: int = 50,
                  where: RunFilter | None = None) -> list[RunSummary]:
        r = self.t.runs.c
        query = select(*(r[name] for name in SUMMARY_COLUMNS))
        if drill:
            query = query.where(r.drill == drill)
        if topology:
            query = query.where(r.topology == topology)
        if outcome is not None:
            query = query.where(r.outcome == outcome.value)
        query = query.where(*self._conditions(where))
        with self._tx("cannot read history") as conn:
            rows = conn.execute(query.order_by(r.started_at.desc()).limit(limit)).all()
        return [summary_from_row(tuple(row), self.results_dir) for row in rows]

    @serialized
    def count_runs(self, where: RunFilter | None = None) -> int:
        query = select(func.count()).select_from(self.t.runs).where(*self._conditions(where))
        with self._tx("cannot read history") as conn:
            return int(conn.scalar(query) or 0)

    def _conditions(self, where: RunFilter | None) -> list[ColumnElement[bool]]:
        """A listing's filter as bound conditions on the runs table."""
        if where is None:
            return []
        r = self.t.runs.c
        conditions: list[ColumnElement[bool]] = []
        if where.drill:
            conditions.append(r.drill == where.drill)
        if where.environment:
            conditions.append(r.environment == where.environment)
        if where.outcomes:
            conditions.append(r.outcome.in_([o.value for o in where.outcomes]))
        if where.start is not None:
            conditions.append(r.started_at >= where.start)
        if where.end is not None:
            conditions.append(r.started_at < where.end)
        return conditions

    def _one(self, run_id: str, column: str) -> str:
        """``column`` of the run ``run_id`` names exactly or as a unique prefix (a plain
        prefix, not LIKE: '%' and '_' in what the user typed match literally)."""
        r = self.t.runs.c
        prefix = and_(literal(run_id) != "",
                      func.substr(r.run_id, 1, func.length(literal(run_id))) == run_id)
        with self._tx("cannot read history") as conn:
            rows = conn.execute(select(r[column]).where(or_(r.run_id == run_id, prefix))
                                .limit(3)).all()
        if not rows:
            raise UnknownRun(f"no run '{run_id}' in the history", source=self.backend.where,
                             hint_key=HintKey.LIST_RUNS)
        if len(rows) > 1:
            raise UnknownRun(f"run id prefix '{run_id}' is ambiguous",
                             source=self.backend.where, hint="give more characters")
        return str(rows[0][0])

    @serialized
    def get(self, run_id: str) -> RunResult:
        return result_from_json(run_id, self._one(run_id, "result_json"))

    @serialized
    def spec_snapshot(self, run_id: str) -> str:
        return self._one(run_id, "spec_json")

    # -- leases and fire claims (the backend's lease clock) ------------------------------

    def _lease(self, conn: Connection, name: str) -> Lease | None:
        row = conn.execute(select(self.t.leases).where(self.t.leases.c.name == name)).first()
        return None if row is None else Lease.model_validate(row._asdict())

    @serialized
    def acquire_lease(self, name: str, holder: str, info: str, ttl: float, *,
                      replacing: str | None = None) -> Lease:
        leases = self.t.leases
        with self._tx(f"cannot take lease {name} in", write=True) as conn:
            now = self.backend.now(conn)  # one instant: acquired_at and expires_at agree
            new = self.backend.insert(leases).values(
                name=name, holder=holder, info=info, acquired_at=now,
                expires_at=now + timedelta(seconds=ttl))
            ours = leases.c.holder == new.excluded.holder
            free = [ours, leases.c.expires_at < now]
            if replacing is not None:
                free.append(leases.c.holder == replacing)
            conn.execute(new.on_conflict_do_update(
                index_elements=[leases.c.name],
                set_={"holder": new.excluded.holder, "info": new.excluded.info,
                      "expires_at": new.excluded.expires_at,
                      "acquired_at": case((ours, leases.c.acquired_at),
                                          else_=new.excluded.acquired_at)},
                where=or_(*free)))
            current = self._lease(conn, name)
        assert current is not None
        return current

    @serialized
    def renew_lease(self, name: str, holder: str, ttl: float) -> bool:
        leases = self.t.leases
        with self._tx(f"cannot renew lease {name} in", write=True) as conn:
            done = conn.execute(
                update(leases).where(leases.c.name == name, leases.c.holder == holder)
                .values(expires_at=self.backend.now(conn) + timedelta(seconds=ttl)))
            return done.rowcount == 1

    @serialized
    def release_lease(self, name: str, holder: str) -> None:
        leases = self.t.leases
        with self._tx(f"cannot release lease {name} in", write=True) as conn:
            conn.execute(leases.delete().where(leases.c.name == name,
                                               leases.c.holder == holder))

    @serialized
    def get_lease(self, name: str) -> Lease | None:
        with self._tx(f"cannot read lease {name} in") as conn:
            return self._lease(conn, name)

    @serialized
    def claim_fire(self, drill: str, planned_at: datetime, claimed_by: str) -> bool:
        with self._tx(f"cannot claim {drill} at {format_time(planned_at)} in",
                      write=True) as conn:
            done = conn.execute(self.backend.insert(self.t.fires).values(
                drill=drill, planned_at=planned_at.astimezone(UTC), claimed_by=claimed_by,
                claimed_at=self.backend.now(conn)).on_conflict_do_nothing()
                # an INSERT's row count is kept only when asked for (psycopg drops it)
                .execution_options(preserve_rowcount=True))
            return done.rowcount == 1

    @serialized
    def unrecorded_fires(self, older_than: float) -> list[FireClaim]:
        fires, runs = self.t.fires, self.t.runs
        with self._tx("cannot read the claimed fires in") as conn:
            cutoff = self.backend.now(conn) - timedelta(seconds=older_than)
            recorded = select(literal(1)).where(runs.c.drill == fires.c.drill,
                                                runs.c.planned_at == fires.c.planned_at)
            rows = conn.execute(select(fires).where(fires.c.claimed_at < cutoff,
                                                    ~recorded.exists())
                                .order_by(fires.c.planned_at, fires.c.drill)).all()
        return [FireClaim.model_validate(row._asdict()) for row in rows]

    @serialized
    def close(self) -> None:
        self._engine.dispose()


def _sealed_from_row(row: tuple[object, ...]) -> integrity.SealedRecord:
    """A chain row joined with its runs row, or with its approval (the last column)."""
    sealed = entry_from_row(row[:-1])
    approval_json = row[-1]
    if sealed.result_json is None and approval_json is not None:
        return sealed.model_copy(update={"result_json": str(approval_json),
                                         "spec_json": APPROVAL_SPEC, "columns": None})
    return sealed
