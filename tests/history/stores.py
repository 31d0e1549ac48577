"""The stores the history tests run against, and the schemas earlier dalp-dr versions made,
word for word (dalp-dr 0.1: schema 1, then each upgrade), for each kind of store: the stores
they made must open and work unchanged. Shared by this package's conftest and tests."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

import psycopg

from dalp_dr.history import HistoryStore, open_store
from dalp_dr.history.base import SealObserver

SQLITE_V1 = """
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

SQLITE_UPGRADES: dict[int, str] = {
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
    4: """""",
    5: """
create table if not exists approvals (
    approval_id text primary key not null,
    run_id      text not null,
    approved_at text not null,
    record_json text not null
);
""",
}

POSTGRES_V1 = """
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

POSTGRES_UPGRADES: dict[int, str] = {
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
    4: """
update dalp_dr_runs set evidence_dir = regexp_replace(rtrim(evidence_dir, '/'), '^.*/', '')
 where evidence_dir like '/%';
""",
    5: """
create table if not exists dalp_dr_approvals (
    approval_id text primary key not null,
    run_id      text not null,
    approved_at timestamptz not null,
    record_json jsonb not null
);
""",
}


PASSWORD = "s3cret-contract-pw"
"""in every PostgreSQL URL (the server trusts loopback): no message may show it"""


class Kind(StrEnum):
    SQLITE = "sqlite"
    POSTGRESQL = "postgresql"


@dataclass(frozen=True)
class Place:
    """Where the store under test lives; opens it as dalp-dr does and reaches its tables
    directly, as someone with write access to the database would."""

    kind: Kind
    url: str
    results: Path
    """the results directory the store is opened with"""

    def open(self, *, results_dir: Path | None = None, observer: SealObserver | None = None,
             migrate: bool = False) -> HistoryStore:
        return open_store(self.url, migrate=migrate, observer=observer,
                          results_dir=results_dir or self.results)

    def table(self, name: str) -> str:
        return name if self.kind is Kind.SQLITE else f"dalp_dr_{name}"

    def sql(self, statement: str, *args: object) -> list[tuple[Any, ...]]:
        """Run ``statement`` (its ``{runs}``, ``{chain}``, ... name this store's tables;
        ``?`` marks a parameter) and return its rows."""
        names = {n: self.table(n) for n in ("runs", "chain", "leases", "fires",
                                            "schema_version", "approvals")}
        text = statement.format(**names)
        if self.kind is Kind.SQLITE:
            db = sqlite3.connect(self.url.removeprefix("sqlite://"))
            try:
                with db:
                    return db.execute(text, args).fetchall()
            finally:
                db.close()
        with psycopg.connect(self.url, autocommit=True) as pg:
            cur = pg.execute(text.replace("?", "%s"), args)
            return cur.fetchall() if cur.description else []

    def script(self, ddl: str) -> None:
        """Several statements at once (a schema)."""
        if self.kind is Kind.SQLITE:
            db = sqlite3.connect(self.url.removeprefix("sqlite://"))
            db.executescript(ddl)
            db.close()
        else:
            with psycopg.connect(self.url, autocommit=True) as pg:
                pg.execute(ddl)

    def historic(self, version: int) -> None:
        """Create the tables an earlier dalp-dr made at schema ``version`` (empty)."""
        v1, upgrades = (SQLITE_V1, SQLITE_UPGRADES) \
            if self.kind is Kind.SQLITE else (POSTGRES_V1, POSTGRES_UPGRADES)
        self.script(v1 + "".join(upgrades[v] for v in range(2, version + 1)))
        self.sql("insert into {schema_version} values (?)", version)
