"""PostgreSQL history store (production), psycopg 3. Same contract and schema as SQLite.

Selected by a ``postgresql://`` URL (``DALP_DR_STORE``). psycopg errors become StoreError
here, with credentials masked. Every write is its own transaction; reads see committed
runs only, so a second dalp-dr process (another operator, the scheduler) sees a run as
``running`` from the moment it began. A connection the server dropped (restart, failover)
is replaced on the next call, so a long-running scheduler survives the store's outages.

Schema: a new database gets the current schema. An older one is upgraded only by
``dalp-dr store migrate`` (``migrate=True``), never behind the back of other dalp-dr
processes that share it; until then opening it says so. Lease times use the server's clock,
so scheduler hosts with skewed clocks still agree on who holds a lease.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Collection, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import psycopg
from psycopg import conninfo

from dalp_dr import integrity
from dalp_dr.errors import StoreError, UnknownRun
from dalp_dr.history.base import (
    INSERT_COLUMNS,
    SUMMARY_COLUMNS,
    Lease,
    RunSummary,
    SealingFinish,
    SealObserver,
    begin_row,
    entry_from_row,
    evidence_for_seal,
    result_from_json,
    serialized,
    summary_from_row,
)
from dalp_dr.redact import Redactor
from dalp_dr.results import Outcome, RunResult

SCHEMA_VERSION = 4

_DDL = """
create table if not exists dalp_dr_schema_version (version integer not null);
create table if not exists dalp_dr_runs (
    run_id       text primary key,
    drill        text not null,
    topology     text not null,
    scenario     text not null,
    environment  text not null,
    owner        text not null,
    trigger      text not null,
    operator     text not null,
    spec_hash    text not null,
    spec_json    text not null,
    started_at   timestamptz not null,
    ended_at     timestamptz,
    outcome      text not null,
    recovery_time    double precision,
    data_loss_window double precision,
    result_json  jsonb not null,
    evidence_dir text not null
);
create index if not exists dalp_dr_runs_drill_started on dalp_dr_runs (drill, started_at);
"""

MIGRATIONS: dict[int, str] = {
    # 2: environment locks and scheduler leadership (leases), scheduled fires claimed once
    2: """
create table if not exists dalp_dr_leases (
    name        text primary key,
    holder      text not null,
    info        text not null,
    acquired_at timestamptz not null,
    expires_at  timestamptz not null
);
alter table dalp_dr_runs add column if not exists planned_at timestamptz;
create table if not exists dalp_dr_fires (
    drill       text not null,
    planned_at  timestamptz not null,
    claimed_by  text not null,
    claimed_at  timestamptz not null default clock_timestamp(),
    primary key (drill, planned_at)
);
""",
    # 3: the hash chain sealing every final record (dalp_dr.integrity)
    3: """
create table if not exists dalp_dr_chain (
    seq             bigint primary key,
    run_id          text not null unique,
    record_digest   text not null,
    evidence_json   text not null,
    evidence_digest text not null,
    prev_digest     text not null,
    digest          text not null,
    sealed_at       timestamptz not null
);
""",
    # 4: runs.evidence_dir relative to the results directory (the sealed records keep the
    # absolute path they were written to; their digests do not change)
    4: """
update dalp_dr_runs set evidence_dir = regexp_replace(rtrim(evidence_dir, '/'), '^.*/', '')
 where evidence_dir like '/%';
""",
}
"""schema version -> DDL that upgrades the previous version to it"""

_LEASE_COLUMNS = "name, holder, info, acquired_at, expires_at"


class PostgresHistory(SealingFinish):
    def __init__(self, url: str, *, migrate: bool = False, results_dir: Path | None = None,
                 observer: SealObserver | None = None) -> None:
        self.results_dir = results_dir
        self.observer = observer
        self._lock = threading.RLock()
        self._redactor = Redactor()
        try:
            params = conninfo.conninfo_to_dict(url)
        except psycopg.ProgrammingError as exc:
            raise StoreError(f"invalid history store URL: {self._redactor.text(str(exc))}"
                             ) from None
        password = params.get("password")
        if isinstance(password, str):
            self._redactor.add(password)
        shown = {k: str(v) for k, v in params.items() if k not in ("password", "passfile")}
        self.display = conninfo.make_conninfo(**shown)
        self._url = url
        try:
            self._db = self._connect()
            with self._db.transaction():
                # one migrator at a time (two processes opening a fresh store at once)
                self._db.execute("select pg_advisory_xact_lock(hashtext('dalp_dr_schema'))")
                self.migrated_from = self._migrate(migrate)
        except (psycopg.Error, OSError) as exc:
            raise self._error("cannot open history", exc) from None

    def _connect(self) -> psycopg.Connection[Any]:
        return psycopg.connect(self._url, autocommit=True, connect_timeout=10,
                               application_name="dalp-dr history")

    def _migrate(self, migrate: bool) -> int | None:
        fresh = self._db.execute(
            "select to_regclass('dalp_dr_schema_version') is null").fetchone()
        if fresh is not None and fresh[0]:
            self._db.execute(_DDL)
            for version in range(2, SCHEMA_VERSION + 1):
                self._db.execute(MIGRATIONS[version])
            self._db.execute("insert into dalp_dr_schema_version values (%s)",
                             (SCHEMA_VERSION,))
            return None
        row = self._db.execute("select version from dalp_dr_schema_version").fetchone()
        found = int(row[0]) if row is not None else 1
        if found > SCHEMA_VERSION:
            raise StoreError(f"{self.display}: schema version {found} is newer than this "
                             f"dalp-dr ({SCHEMA_VERSION}); upgrade dalp-dr")
        if found == SCHEMA_VERSION:
            return None
        if not migrate:
            raise StoreError(f"{self.display}: schema version {found} is older than this "
                             f"dalp-dr ({SCHEMA_VERSION}); run 'dalp-dr store migrate' once "
                             "(other dalp-dr processes on this store should be upgraded too)")
        for version in range(found + 1, SCHEMA_VERSION + 1):
            self._db.execute(MIGRATIONS[version])
            if version == 3:  # records finished before the chain existed: sealed now
                for (run_id,) in self._db.execute(
                        "select run_id from dalp_dr_runs where outcome <> 'running'"
                        " order by started_at, run_id").fetchall():
                    self._seal(run_id)
        self._db.execute("update dalp_dr_schema_version set version = %s", (SCHEMA_VERSION,))
        return found

    @serialized
    def describe(self) -> str:
        return f"postgresql {self.display} (schema version {SCHEMA_VERSION})"

    def _error(self, what: str, exc: Exception) -> StoreError:
        text = " ".join(str(exc).split()) or type(exc).__name__
        return StoreError(self._redactor.text(f"{what} {self.display}: {text}"))

    def _execute(self, what: str, sql: str, args: tuple[object, ...]) -> list[Any]:
        try:
            if self._db.closed or self._db.broken:  # the server went away since: reconnect
                self._db = self._connect()
            cur = self._db.execute(sql, args)
            return cur.fetchall() if cur.description else []
        except (psycopg.Error, OSError) as exc:
            raise self._error(what, exc) from None

    @serialized
    def begin(self, result: RunResult, spec_json: str) -> None:
        self._execute("cannot write history",
                      f"insert into dalp_dr_runs ({', '.join(INSERT_COLUMNS)})"
                      f" values ({', '.join(['%s'] * len(INSERT_COLUMNS))})",
                      begin_row(result, spec_json))

    @serialized
    def _finish(self, result: RunResult) -> integrity.ChainEntry | None:
        """The final result and its seal, in one transaction."""
        m = result.measurements
        final = result.outcome is not Outcome.RUNNING
        evidence = evidence_for_seal(result.evidence_dir, self.results_dir) if final else {}
        entry = None
        try:
            if self._db.closed or self._db.broken:
                self._db = self._connect()
            with self._db.transaction():
                cur = self._db.execute(
                    "update dalp_dr_runs set ended_at = %s, outcome = %s, recovery_time = %s,"
                    " data_loss_window = %s, result_json = %s where run_id = %s",
                    (result.ended_at, result.outcome.value, m.recovery_time if m else None,
                     m.data_loss_window if m else None, result.model_dump_json(),
                     result.run_id))
                if cur.rowcount != 1:
                    raise StoreError(f"cannot finish run {result.run_id}: it was never begun")
                if final:
                    entry = self._seal(result.run_id, result.model_dump_json(), evidence)
        except (psycopg.Error, OSError) as exc:
            raise self._error("cannot write history", exc) from None
        return entry

    def _seal(self, run_id: str, result_json: str | None = None,
              evidence: dict[str, str] | None = None) -> integrity.ChainEntry:
        """Append the chain entry for a final record (inside the caller's transaction; one
        sealer at a time). ``evidence``: its manifest, computed before the transaction
        (else read here: the migration that seals records older than the chain)."""
        self._db.execute("select pg_advisory_xact_lock(hashtext('dalp_dr_chain'))")
        row = self._db.execute("select result_json::text, spec_json, evidence_dir from"
                               " dalp_dr_runs where run_id = %s", (run_id,)).fetchone()
        assert row is not None
        last = self._db.execute("select seq, digest from dalp_dr_chain order by seq desc"
                                " limit 1").fetchone()
        if evidence is None:
            evidence = integrity.evidence_manifest(
                integrity.evidence_location(row[2], self.results_dir))
        entry = integrity.seal(last[0] + 1 if last else 1, run_id, result_json or row[0],
                               row[1], evidence, last[1] if last else integrity.GENESIS,
                               datetime.now(UTC))
        self._db.execute("insert into dalp_dr_chain values (%s, %s, %s, %s, %s, %s, %s, %s)",
                         (entry.seq, entry.run_id, entry.record_digest,
                          json.dumps(entry.evidence, sort_keys=True), entry.evidence_digest,
                          entry.prev_digest, entry.digest, entry.sealed_at))
        return entry

    @serialized
    def sealed_records(self, run_ids: Collection[str] | None = None
                       ) -> Iterator[integrity.SealedRecord]:
        cols = ", ".join(f"r.{c}" for c in SUMMARY_COLUMNS)
        where, args = "", cast(tuple[object, ...], ())
        if run_ids is not None:
            where, args = " where c.run_id = any(%s)", (list(run_ids),)
        rows = self._execute(
            "cannot read history",
            "select c.seq, c.run_id, c.record_digest, c.evidence_json, c.evidence_digest,"
            f" c.prev_digest, c.digest, c.sealed_at, r.result_json::text, r.spec_json, {cols}"
            " from dalp_dr_chain c left join dalp_dr_runs r on r.run_id = c.run_id"
            f"{where} order by c.seq", args)
        for row in rows:
            yield entry_from_row(row)

    @serialized
    def unsealed_runs(self) -> list[str]:
        rows = self._execute(
            "cannot read history",
            "select run_id from dalp_dr_runs where outcome <> 'running' and run_id not in"
            " (select run_id from dalp_dr_chain) order by started_at", ())
        return [r[0] for r in rows]

    @serialized
    def list_runs(self, *, drill: str | None = None, outcome: Outcome | None = None,
                  limit: int = 50) -> list[RunSummary]:
        sql = f"select {', '.join(SUMMARY_COLUMNS)} from dalp_dr_runs where true"
        args: tuple[object, ...] = ()
        if drill:
            sql += " and drill = %s"
            args += (drill,)
        if outcome is not None:
            sql += " and outcome = %s"
            args += (outcome.value,)
        sql += " order by started_at desc limit %s"
        rows = self._execute("cannot read history", sql, (*args, limit))
        return [summary_from_row(r, self.results_dir) for r in rows]

    def _row(self, run_id: str, column: str) -> str:
        rows = self._execute(
            "cannot read history",
            # a plain prefix, not LIKE: '%' and '_' in what the user typed match literally
            f"select {column} from dalp_dr_runs where run_id = %s"
            " or (%s <> '' and starts_with(run_id, %s)) limit 3",
            (run_id, run_id, run_id),
        )
        if not rows:
            raise UnknownRun(f"no run '{run_id}' in the history", source=self.display,
                             hint="'dalp-dr history list' shows run ids")
        if len(rows) > 1:
            raise UnknownRun(f"run id prefix '{run_id}' is ambiguous", source=self.display,
                             hint="give more characters")
        return str(rows[0][0])

    @serialized
    def get(self, run_id: str) -> RunResult:
        return result_from_json(run_id, self._row(run_id, "result_json::text"))

    @serialized
    def spec_snapshot(self, run_id: str) -> str:
        return self._row(run_id, "spec_json")

    # -- leases and fire claims (server clock) -------------------------------------------

    @serialized
    def acquire_lease(self, name: str, holder: str, info: str, ttl: float) -> Lease:
        rows = self._execute(
            f"cannot take lease {name} in",
            "insert into dalp_dr_leases as l values (%s, %s, %s, clock_timestamp(),"
            " clock_timestamp() + make_interval(secs => %s)) on conflict (name) do update"
            " set holder = excluded.holder, info = excluded.info, expires_at ="
            " excluded.expires_at, acquired_at = case when l.holder = excluded.holder"
            " then l.acquired_at else excluded.acquired_at end"
            " where l.holder = excluded.holder or l.expires_at < clock_timestamp()"
            f" returning {_LEASE_COLUMNS}", (name, holder, info, ttl))
        if not rows:  # somebody else holds it and it has not expired
            rows = self._execute(f"cannot read lease {name} in",
                                 f"select {_LEASE_COLUMNS} from dalp_dr_leases where name = %s",
                                 (name,))
        return _lease(rows[0])

    @serialized
    def renew_lease(self, name: str, holder: str, ttl: float) -> bool:
        rows = self._execute(
            f"cannot renew lease {name} in",
            "update dalp_dr_leases set expires_at = clock_timestamp() + make_interval(secs =>"
            " %s) where name = %s and holder = %s returning name", (ttl, name, holder))
        return bool(rows)

    @serialized
    def release_lease(self, name: str, holder: str) -> None:
        self._execute(f"cannot release lease {name} in",
                      "delete from dalp_dr_leases where name = %s and holder = %s",
                      (name, holder))

    @serialized
    def get_lease(self, name: str) -> Lease | None:
        rows = self._execute(f"cannot read lease {name} in",
                             f"select {_LEASE_COLUMNS} from dalp_dr_leases where name = %s",
                             (name,))
        return _lease(rows[0]) if rows else None

    @serialized
    def claim_fire(self, drill: str, planned_at: datetime, claimed_by: str) -> bool:
        rows = self._execute(
            f"cannot claim {drill} at {planned_at:%Y-%m-%d %H:%M:%S} in",
            "insert into dalp_dr_fires (drill, planned_at, claimed_by) values (%s, %s, %s)"
            " on conflict do nothing returning drill",
            (drill, planned_at.astimezone(UTC), claimed_by))
        return bool(rows)

    @serialized
    def close(self) -> None:
        try:
            self._db.close()
        except (psycopg.Error, OSError) as exc:
            raise self._error("cannot close history", exc) from None


def _lease(row: tuple[Any, ...]) -> Lease:
    return Lease(name=row[0], holder=row[1], info=row[2], acquired_at=row[3],
                 expires_at=row[4])
