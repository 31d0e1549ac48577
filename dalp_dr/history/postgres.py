"""PostgreSQL history store (production), psycopg 3. Same contract and schema as SQLite.

Selected by a ``postgresql://`` URL (``DALP_DR_STORE``). psycopg errors become StoreError
here, with credentials masked. Every write is its own transaction; reads see committed
runs only, so a second dalp-dr process (another operator, the scheduler) sees a run as
``running`` from the moment it began.
"""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg import conninfo

from dalp_dr.errors import StoreError, UnknownRun
from dalp_dr.history.base import (
    INSERT_COLUMNS,
    SUMMARY_COLUMNS,
    RunSummary,
    begin_row,
    summary_from_row,
)
from dalp_dr.redact import Redactor
from dalp_dr.results import RunResult

SCHEMA_VERSION = 1

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


class PostgresHistory:
    def __init__(self, url: str) -> None:
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
        try:
            self._db = psycopg.connect(url, autocommit=True, connect_timeout=10,
                                       application_name="dalp-dr history")
            with self._db.transaction():
                # one migrator at a time (two processes opening a fresh store at once)
                self._db.execute("select pg_advisory_xact_lock(hashtext('dalp_dr_schema'))")
                self._db.execute(_DDL)
                row = self._db.execute("select version from dalp_dr_schema_version").fetchone()
                if row is None:
                    self._db.execute("insert into dalp_dr_schema_version values (%s)",
                                     (SCHEMA_VERSION,))
                elif row[0] > SCHEMA_VERSION:
                    raise StoreError(f"{self.display}: schema version {row[0]} is newer than "
                                     f"this dalp-dr ({SCHEMA_VERSION}); upgrade dalp-dr")
        except (psycopg.Error, OSError) as exc:
            raise self._error("cannot open history", exc) from None

    def describe(self) -> str:
        return f"postgresql {self.display} (schema version {SCHEMA_VERSION})"

    def _error(self, what: str, exc: Exception) -> StoreError:
        text = " ".join(str(exc).split()) or type(exc).__name__
        return StoreError(self._redactor.text(f"{what} {self.display}: {text}"))

    def _execute(self, what: str, sql: str, args: tuple[object, ...]) -> list[Any]:
        try:
            cur = self._db.execute(sql, args)
            return cur.fetchall() if cur.description else []
        except (psycopg.Error, OSError) as exc:
            raise self._error(what, exc) from None

    def begin(self, result: RunResult, spec_json: str) -> None:
        self._execute("cannot write history",
                      f"insert into dalp_dr_runs ({', '.join(INSERT_COLUMNS)})"
                      f" values ({', '.join(['%s'] * len(INSERT_COLUMNS))})",
                      begin_row(result, spec_json))

    def finish(self, result: RunResult) -> None:
        m = result.measurements
        self._execute(
            "cannot write history",
            "update dalp_dr_runs set ended_at = %s, outcome = %s, recovery_time = %s,"
            " data_loss_window = %s, result_json = %s where run_id = %s",
            (result.ended_at, result.outcome.value, m.recovery_time if m else None,
             m.data_loss_window if m else None, result.model_dump_json(), result.run_id),
        )

    def list_runs(self, *, drill: str | None = None, limit: int = 50) -> list[RunSummary]:
        sql = f"select {', '.join(SUMMARY_COLUMNS)} from dalp_dr_runs"
        args: tuple[object, ...] = ()
        if drill:
            sql += " where drill = %s"
            args = (drill,)
        sql += " order by started_at desc limit %s"
        rows = self._execute("cannot read history", sql, (*args, limit))
        return [summary_from_row(r) for r in rows]

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

    def get(self, run_id: str) -> RunResult:
        return RunResult.model_validate_json(self._row(run_id, "result_json::text"))

    def spec_snapshot(self, run_id: str) -> str:
        return self._row(run_id, "spec_json")

    def close(self) -> None:
        try:
            self._db.close()
        except (psycopg.Error, OSError) as exc:
            raise self._error("cannot close history", exc) from None
