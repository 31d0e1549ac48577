"""SQLite history store (embedded default)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from dalp_dr.errors import StoreError, UnknownRun
from dalp_dr.history.base import (
    INSERT_COLUMNS,
    SUMMARY_COLUMNS,
    RunSummary,
    begin_row,
    summary_from_row,
)
from dalp_dr.results import RunResult

SCHEMA_VERSION = 1

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


class SqliteHistory:
    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(str(path), timeout=30, isolation_level=None)
            self._db.execute("pragma journal_mode=wal")
            self._db.execute("pragma synchronous=full")
            self._db.executescript(_DDL)
            row = self._db.execute("select version from schema_version").fetchone()
            if row is None:
                self._db.execute("insert into schema_version values (?)", (SCHEMA_VERSION,))
            elif row[0] > SCHEMA_VERSION:
                raise StoreError(f"{path}: schema version {row[0]} is newer than this dalp-dr "
                                 f"({SCHEMA_VERSION}); upgrade dalp-dr")
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open history {path}: {exc}") from None

    def describe(self) -> str:
        return f"sqlite {self.path} (schema version {SCHEMA_VERSION})"

    def _write(self, sql: str, args: tuple[object, ...]) -> None:
        try:
            with self._db:
                self._db.execute(sql, args)
        except sqlite3.Error as exc:
            raise StoreError(f"cannot write history {self.path}: {exc}") from None

    def begin(self, result: RunResult, spec_json: str) -> None:
        row = list(begin_row(result, spec_json))
        row[INSERT_COLUMNS.index("started_at")] = result.started_at.isoformat()
        self._write(f"insert into runs ({', '.join(INSERT_COLUMNS)})"
                    f" values ({', '.join('?' * len(INSERT_COLUMNS))})", tuple(row))

    def finish(self, result: RunResult) -> None:
        m = result.measurements
        self._write(
            "update runs set ended_at = ?, outcome = ?, recovery_time = ?, data_loss_window = ?,"
            " result_json = ? where run_id = ?",
            (result.ended_at.isoformat() if result.ended_at else None, result.outcome.value,
             m.recovery_time if m else None, m.data_loss_window if m else None,
             result.model_dump_json(), result.run_id),
        )

    def list_runs(self, *, drill: str | None = None, limit: int = 50) -> list[RunSummary]:
        sql = f"select {', '.join(SUMMARY_COLUMNS)} from runs"
        args: tuple[object, ...] = ()
        if drill:
            sql += " where drill = ?"
            args = (drill,)
        sql += " order by started_at desc limit ?"
        try:
            rows = self._db.execute(sql, (*args, limit)).fetchall()
        except sqlite3.Error as exc:
            raise StoreError(f"cannot read history {self.path}: {exc}") from None
        return [summary_from_row(r) for r in rows]

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

    def get(self, run_id: str) -> RunResult:
        return RunResult.model_validate_json(self._row(run_id, "result_json"))

    def spec_snapshot(self, run_id: str) -> str:
        return self._row(run_id, "spec_json")

    def close(self) -> None:
        self._db.close()

