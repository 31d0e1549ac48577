"""SQLite history store (embedded default)."""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Collection, Iterator
from datetime import UTC, datetime
from pathlib import Path

from dalp_dr import integrity, private_files
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
from dalp_dr.results import Outcome, RunResult

SCHEMA_VERSION = 4

_DDL = """
create table if not exists schema_version (version integer not null);
create table if not exists runs (
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
    started_at   text not null,
    ended_at     text,
    outcome      text not null,
    recovery_time    real,
    data_loss_window real,
    result_json  text not null,
    evidence_dir text not null
);
create index if not exists runs_drill_started on runs (drill, started_at);
"""

MIGRATIONS: dict[int, str] = {
    # 2: environment locks and scheduler leadership (leases), scheduled fires claimed once
    2: """
create table if not exists leases (
    name        text primary key,
    holder      text not null,
    info        text not null,
    acquired_at real not null,
    expires_at  real not null
);
alter table runs add column planned_at text;
create table if not exists fires (
    drill       text not null,
    planned_at  text not null,
    claimed_by  text not null,
    claimed_at  text not null,
    primary key (drill, planned_at)
);
""",
    # 3: the hash chain sealing every final record (dalp_dr.integrity)
    3: """
create table if not exists chain (
    seq             integer primary key,
    run_id          text not null unique,
    record_digest   text not null,
    evidence_json   text not null,
    evidence_digest text not null,
    prev_digest     text not null,
    digest          text not null,
    sealed_at       text not null
);
""",
    # 4: runs.evidence_dir relative to the results directory (data only: _relativize)
    4: "",
}
"""schema version -> DDL that upgrades the previous version to it (the embedded store
applies them when it is opened)"""


def _ts(value: float) -> datetime:
    return datetime.fromtimestamp(value, UTC)


class SqliteHistory(SealingFinish):
    def __init__(self, path: Path, *, results_dir: Path | None = None,
                 observer: SealObserver | None = None) -> None:
        self.path = path
        self.results_dir = results_dir
        self.observer = observer
        self._lock = threading.RLock()
        try:
            if not path.parent.is_dir():
                private_files.make_dir(path.parent)
            self._db = sqlite3.connect(str(path), timeout=30, isolation_level=None,
                                       check_same_thread=False)  # see serialized
            for name in (path.name, f"{path.name}-wal", f"{path.name}-shm"):
                if (path.parent / name).is_file():  # the owner's alone, before any row
                    private_files.chmod_file(path.parent / name)
            self._db.execute("pragma journal_mode=wal")
            self._db.execute("pragma synchronous=full")
            self.migrated_from = self._migrate()
        except (sqlite3.Error, OSError) as exc:
            raise StoreError(f"cannot open history {path}: {exc}") from None

    def _migrate(self) -> int | None:
        """Bring the schema to SCHEMA_VERSION in one transaction. Returns the version it
        upgraded from, None when it was new or current."""
        self._db.execute("begin immediate")  # one migrator at a time
        try:
            for statement in _DDL.split(";"):
                if statement.strip():
                    self._db.execute(statement)
            row = self._db.execute("select version from schema_version").fetchone()
            if row is None:  # a new store: version 1 tables, then every migration
                self._db.execute("insert into schema_version values (1)")
            found = 1 if row is None else int(row[0])
            if found > SCHEMA_VERSION:
                raise StoreError(f"{self.path}: schema version {found} is newer than this "
                                 f"dalp-dr ({SCHEMA_VERSION}); upgrade dalp-dr")
            for version in range(found + 1, SCHEMA_VERSION + 1):
                for statement in MIGRATIONS[version].split(";"):
                    if statement.strip():
                        self._db.execute(statement)
            if found < 3:  # records finished before the chain existed: sealed now
                for (run_id,) in self._db.execute(
                        "select run_id from runs where outcome <> 'running'"
                        " order by started_at, run_id").fetchall():
                    self._seal(run_id)
            if found < 4:  # evidence paths relative to the results directory
                for run_id, evidence_dir in self._db.execute(
                        "select run_id, evidence_dir from runs where evidence_dir like '/%'"
                        ).fetchall():
                    self._db.execute("update runs set evidence_dir = ? where run_id = ?",
                                     (integrity.relative_evidence(evidence_dir), run_id))
            self._db.execute("update schema_version set version = ?", (SCHEMA_VERSION,))
            self._db.execute("commit")
        except BaseException:
            self._db.execute("rollback")
            raise
        return found if row is not None and found < SCHEMA_VERSION else None

    @serialized
    def describe(self) -> str:
        return f"sqlite {self.path} (schema version {SCHEMA_VERSION})"

    def _write(self, sql: str, args: tuple[object, ...]) -> None:
        try:
            with self._db:
                self._db.execute(sql, args)
        except sqlite3.Error as exc:
            raise StoreError(f"cannot write history {self.path}: {exc}") from None

    @serialized
    def begin(self, result: RunResult, spec_json: str) -> None:
        row = list(begin_row(result, spec_json))
        row[INSERT_COLUMNS.index("started_at")] = result.started_at.isoformat()
        if result.planned_at is not None:
            row[INSERT_COLUMNS.index("planned_at")] = result.planned_at.isoformat()
        self._write(f"insert into runs ({', '.join(INSERT_COLUMNS)})"
                    f" values ({', '.join('?' * len(INSERT_COLUMNS))})", tuple(row))

    @serialized
    def _finish(self, result: RunResult) -> integrity.ChainEntry | None:
        """The final result and its seal, in one transaction."""
        m = result.measurements
        final = result.outcome is not Outcome.RUNNING
        evidence = evidence_for_seal(result.evidence_dir, self.results_dir) if final else {}
        entry = None
        try:
            self._db.execute("begin immediate")
            try:
                cur = self._db.execute(
                    "update runs set ended_at = ?, outcome = ?, recovery_time = ?,"
                    " data_loss_window = ?, result_json = ? where run_id = ?",
                    (result.ended_at.isoformat() if result.ended_at else None,
                     result.outcome.value, m.recovery_time if m else None,
                     m.data_loss_window if m else None, result.model_dump_json(),
                     result.run_id))
                if cur.rowcount != 1:
                    raise StoreError(f"cannot finish run {result.run_id}: it was never begun")
                if final:
                    entry = self._seal(result.run_id, evidence)
                self._db.execute("commit")
            except BaseException:
                self._db.execute("rollback")
                raise
        except sqlite3.Error as exc:
            raise StoreError(f"cannot write history {self.path}: {exc}") from None
        return entry

    def _seal(self, run_id: str, evidence: dict[str, str] | None = None
              ) -> integrity.ChainEntry:
        """Append the chain entry for a final record (inside the caller's transaction).
        ``evidence``: its manifest, computed before the transaction (else read here: the
        migration that seals records older than the chain)."""
        result_json, spec_json, evidence_dir = self._db.execute(
            "select result_json, spec_json, evidence_dir from runs where run_id = ?",
            (run_id,)).fetchone()
        if evidence is None:
            evidence = integrity.evidence_manifest(
                integrity.evidence_location(evidence_dir, self.results_dir))
        last = self._db.execute("select seq, digest from chain order by seq desc limit 1"
                                ).fetchone()
        entry = integrity.seal(last[0] + 1 if last else 1, run_id, result_json, spec_json,
                               evidence, last[1] if last else integrity.GENESIS,
                               datetime.now(UTC))
        self._db.execute("insert into chain values (?, ?, ?, ?, ?, ?, ?, ?)",
                         (entry.seq, entry.run_id, entry.record_digest,
                          json.dumps(entry.evidence, sort_keys=True), entry.evidence_digest,
                          entry.prev_digest, entry.digest, entry.sealed_at.isoformat()))
        return entry

    @serialized
    def sealed_records(self, run_ids: Collection[str] | None = None
                       ) -> Iterator[integrity.SealedRecord]:
        cols = ", ".join(f"r.{c}" for c in SUMMARY_COLUMNS)
        where, args = "", tuple(run_ids or ())
        if run_ids is not None:
            where = f" where c.run_id in ({', '.join('?' * len(args))})" if args else \
                " where 0"
        try:
            rows = self._db.execute(
                "select c.seq, c.run_id, c.record_digest, c.evidence_json, c.evidence_digest,"
                f" c.prev_digest, c.digest, c.sealed_at, r.result_json, r.spec_json, {cols}"
                f" from chain c left join runs r on r.run_id = c.run_id{where} order by c.seq",
                args).fetchall()
        except sqlite3.Error as exc:
            raise StoreError(f"cannot read history {self.path}: {exc}") from None
        for row in rows:
            yield entry_from_row(row)

    @serialized
    def unsealed_runs(self) -> list[str]:
        try:
            rows = self._db.execute(
                "select run_id from runs where outcome <> 'running' and run_id not in"
                " (select run_id from chain) order by started_at").fetchall()
        except sqlite3.Error as exc:
            raise StoreError(f"cannot read history {self.path}: {exc}") from None
        return [r[0] for r in rows]

    @serialized
    def list_runs(self, *, drill: str | None = None, outcome: Outcome | None = None,
                  limit: int = 50) -> list[RunSummary]:
        sql = f"select {', '.join(SUMMARY_COLUMNS)} from runs where 1 = 1"
        args: tuple[object, ...] = ()
        if drill:
            sql += " and drill = ?"
            args += (drill,)
        if outcome is not None:
            sql += " and outcome = ?"
            args += (outcome.value,)
        sql += " order by started_at desc limit ?"
        try:
            rows = self._db.execute(sql, (*args, limit)).fetchall()
        except sqlite3.Error as exc:
            raise StoreError(f"cannot read history {self.path}: {exc}") from None
        return [summary_from_row(r, self.results_dir) for r in rows]

    def _row(self, run_id: str, column: str) -> str:
        try:
            rows = self._db.execute(
                # a plain prefix, not LIKE: '%' and '_' in what the user typed match literally
                f"select {column} from runs where run_id = ?"
                " or (? <> '' and substr(run_id, 1, length(?)) = ?) limit 3",
                (run_id, run_id, run_id, run_id),
            ).fetchall()
        except sqlite3.Error as exc:
            raise StoreError(f"cannot read history {self.path}: {exc}") from None
        if not rows:
            raise UnknownRun(f"no run '{run_id}' in the history", source=str(self.path),
                             hint="'dalp-dr history list' shows run ids")
        if len(rows) > 1:
            raise UnknownRun(f"run id prefix '{run_id}' is ambiguous", source=str(self.path),
                             hint="give more characters")
        return str(rows[0][0])

    @serialized
    def get(self, run_id: str) -> RunResult:
        return result_from_json(run_id, self._row(run_id, "result_json"))

    @serialized
    def spec_snapshot(self, run_id: str) -> str:
        return self._row(run_id, "spec_json")

    # -- leases and fire claims -----------------------------------------------------------

    def _lease(self, name: str) -> Lease | None:
        row = self._db.execute("select name, holder, info, acquired_at, expires_at from leases"
                               " where name = ?", (name,)).fetchone()
        if row is None:
            return None
        return Lease(name=row[0], holder=row[1], info=row[2], acquired_at=_ts(row[3]),
                     expires_at=_ts(row[4]))

    @serialized
    def acquire_lease(self, name: str, holder: str, info: str, ttl: float) -> Lease:
        try:
            self._db.execute("begin immediate")
            try:
                now = time.time()
                current = self._lease(name)
                if current is None or current.holder == holder or \
                        current.expires_at.timestamp() < now:
                    since = current.acquired_at.timestamp() \
                        if current is not None and current.holder == holder else now
                    self._db.execute(
                        "insert into leases values (?, ?, ?, ?, ?) on conflict (name) do update"
                        " set holder = excluded.holder, info = excluded.info,"
                        " acquired_at = excluded.acquired_at, expires_at = excluded.expires_at",
                        (name, holder, info, since, now + ttl))
                    current = self._lease(name)
                self._db.execute("commit")
            except BaseException:
                self._db.execute("rollback")
                raise
        except sqlite3.Error as exc:
            raise StoreError(f"cannot take lease {name} in {self.path}: {exc}") from None
        assert current is not None
        return current

    @serialized
    def renew_lease(self, name: str, holder: str, ttl: float) -> bool:
        try:
            with self._db:
                cur = self._db.execute("update leases set expires_at = ? where name = ? and"
                                       " holder = ?", (time.time() + ttl, name, holder))
        except sqlite3.Error as exc:
            raise StoreError(f"cannot renew lease {name} in {self.path}: {exc}") from None
        return cur.rowcount == 1

    @serialized
    def release_lease(self, name: str, holder: str) -> None:
        self._write("delete from leases where name = ? and holder = ?", (name, holder))

    @serialized
    def get_lease(self, name: str) -> Lease | None:
        try:
            return self._lease(name)
        except sqlite3.Error as exc:
            raise StoreError(f"cannot read lease {name} in {self.path}: {exc}") from None

    @serialized
    def claim_fire(self, drill: str, planned_at: datetime, claimed_by: str) -> bool:
        try:
            with self._db:
                cur = self._db.execute(
                    "insert into fires values (?, ?, ?, ?) on conflict do nothing",
                    (drill, planned_at.astimezone(UTC).isoformat(), claimed_by,
                     datetime.now(UTC).isoformat()))
        except sqlite3.Error as exc:
            raise StoreError(f"cannot claim {drill} at {planned_at} in {self.path}: {exc}"
                             ) from None
        return cur.rowcount == 1

    @serialized
    def close(self) -> None:
        self._db.close()

