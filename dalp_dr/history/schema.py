"""The history's tables, for every store, and how an older schema is upgraded.

One description serves SQLite and PostgreSQL; what differs is named in :class:`Dialect`:
the table names' prefix (a shared PostgreSQL database holds other applications' tables),
and how an instant, a lease time and a JSON document are stored. The tables are exactly the
ones earlier dalp-dr versions made (same names, columns and column order), so every
existing store opens unchanged.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    REAL,
    BigInteger,
    Column,
    Connection,
    Index,
    Integer,
    MetaData,
    Table,
    Text,
    inspect,
    select,
    text,
    update,
)
from sqlalchemy.dialects.postgresql import DOUBLE_PRECISION, TIMESTAMP
from sqlalchemy.types import TypeDecorator, TypeEngine, UserDefinedType

from dalp_dr import integrity

SCHEMA_VERSION = 5


class StoreKind(StrEnum):
    SQLITE = "sqlite"
    POSTGRESQL = "postgresql"


class IsoText(TypeDecorator[Any]):
    """SQLite: an instant as ISO 8601 text, as dalp-dr has always written it. Read back as
    stored: a value someone wrote into the table is refused by the model that reads the
    row (TamperedHistory), not by the driver."""

    impl = Text
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Any) -> Any:
        return value.isoformat() if isinstance(value, datetime) else value

    def process_result_value(self, value: Any, dialect: Any) -> Any:
        return value


class EpochSeconds(TypeDecorator[datetime]):
    """SQLite: a lease time as seconds since the epoch (REAL)."""

    impl = REAL
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Any) -> Any:
        return value.timestamp() if isinstance(value, datetime) else value

    def process_result_value(self, value: Any, dialect: Any) -> Any:
        return None if value is None else datetime.fromtimestamp(value, UTC)


class JsonbText(UserDefinedType[str]):
    """PostgreSQL: a JSON document in a jsonb column, written and read as text (the record's
    digest is of the text dalp-dr wrote, parsed: jsonb's own spelling does not matter)."""

    cache_ok = True

    def get_col_spec(self, **_kw: Any) -> str:
        return "JSONB"

    def column_expression(self, colexpr: Any) -> Any:
        return colexpr.cast(Text)


@dataclass(frozen=True)
class Dialect:
    """What one kind of store stores differently; everything else is shared."""

    kind: StoreKind
    prefix: str
    """of every table and index name"""
    instant: Callable[[], TypeEngine[Any]]
    lease_instant: Callable[[], TypeEngine[Any]]
    json: Callable[[], TypeEngine[Any]]
    number: Callable[[], TypeEngine[Any]]
    seq: Callable[[], TypeEngine[Any]]
    server_now: str | None
    """the server's clock as a column default (fires.claimed_at), where there is one"""


SQLITE = Dialect(kind=StoreKind.SQLITE, prefix="", instant=IsoText,
                 lease_instant=EpochSeconds, json=Text, number=REAL, seq=Integer,
                 server_now=None)
POSTGRES = Dialect(kind=StoreKind.POSTGRESQL, prefix="dalp_dr_",
                   instant=lambda: TIMESTAMP(timezone=True),
                   lease_instant=lambda: TIMESTAMP(timezone=True), json=JsonbText,
                   number=DOUBLE_PRECISION, seq=BigInteger, server_now="clock_timestamp()")


class Tables:
    """The history's tables in one dialect."""

    def __init__(self, d: Dialect) -> None:
        self.metadata = MetaData()
        m, p = self.metadata, d.prefix
        self.version = Table(f"{p}schema_version", m,
                             Column("version", Integer, nullable=False))
        self.runs = Table(
            f"{p}runs", m,
            # nullable as the earlier versions' "primary key" columns (PostgreSQL refuses a
            # null key anyway; SQLite's legacy rule allows one)
            Column("run_id", Text, primary_key=True, nullable=True),
            *(Column(name, Text, nullable=False) for name in (
                "drill", "topology", "scenario", "environment", "owner", "trigger",
                "operator", "spec_hash", "spec_json")),
            Column("started_at", d.instant(), nullable=False),
            Column("ended_at", d.instant()),
            Column("outcome", Text, nullable=False),
            Column("recovery_time", d.number()),
            Column("data_loss_window", d.number()),
            Column("result_json", d.json(), nullable=False),
            Column("evidence_dir", Text, nullable=False),
            Column("planned_at", d.instant()),  # schema 2
        )
        Index(f"{p}runs_drill_started", self.runs.c.drill, self.runs.c.started_at)
        self.leases = Table(
            f"{p}leases", m,
            Column("name", Text, primary_key=True, nullable=True),
            Column("holder", Text, nullable=False),
            Column("info", Text, nullable=False),
            Column("acquired_at", d.lease_instant(), nullable=False),
            Column("expires_at", d.lease_instant(), nullable=False),
        )
        self.fires = Table(
            f"{p}fires", m,
            Column("drill", Text, primary_key=True),
            Column("planned_at", d.instant(), primary_key=True),
            Column("claimed_by", Text, nullable=False),
            Column("claimed_at", d.instant(), nullable=False,
                   server_default=text(d.server_now) if d.server_now else None),
        )
        self.chain = Table(
            f"{p}chain", m,
            Column("seq", d.seq(), primary_key=True, nullable=True, autoincrement=False),
            Column("run_id", Text, nullable=False, unique=True),
            *(Column(name, Text, nullable=False) for name in (
                "record_digest", "evidence_json", "evidence_digest", "prev_digest",
                "digest")),
            Column("sealed_at", d.instant(), nullable=False),
        )
        self.approvals = Table(  # schema 5: reviewer sign-off (dalp_dr.history.approvals)
            f"{p}approvals", m,
            Column("approval_id", Text, primary_key=True),
            Column("run_id", Text, nullable=False),
            Column("approved_at", d.instant(), nullable=False),
            Column("record_json", d.json(), nullable=False),
        )

    def create(self, conn: Connection) -> None:
        """The current schema, in a database that has none."""
        self.metadata.create_all(conn)
        conn.execute(self.version.insert().values(version=SCHEMA_VERSION))

    def found_version(self, conn: Connection) -> int | None:
        """The schema version of the store (None: it has no history tables yet)."""
        if not inspect(conn).has_table(self.version.name):
            return None
        found = conn.scalar(select(self.version.c.version))
        return 1 if found is None else int(found)

    def final_unsealed(self, conn: Connection) -> list[tuple[str, str]]:
        """(run id, evidence dir) of the final records a schema older than 3 holds: the
        chain did not exist when they finished, so upgrading seals them, in this order."""
        runs = self.runs.c
        rows = conn.execute(select(runs.run_id, runs.evidence_dir)
                            .where(runs.outcome != "running")
                            .order_by(runs.started_at, runs.run_id))
        return [(str(r[0]), str(r[1])) for r in rows]

    def upgrade(self, conn: Connection, found: int, seal: Callable[[str], object]) -> None:
        """From schema ``found`` to SCHEMA_VERSION, in the caller's transaction. ``seal``
        appends a final record to the chain (schema 3)."""
        if found < 2:  # environment locks, scheduler leadership, scheduled fires claimed once
            present = {c["name"] for c in inspect(conn).get_columns(self.runs.name)}
            if "planned_at" not in present:
                kind = self.runs.c.planned_at.type.compile(dialect=conn.dialect)
                conn.exec_driver_sql(f"alter table {self.runs.name} add column planned_at"
                                     f" {kind}")
            self.leases.create(conn, checkfirst=True)
            self.fires.create(conn, checkfirst=True)
        if found < 3:  # the hash chain sealing every final record (dalp_dr.integrity)
            self.chain.create(conn, checkfirst=True)
            for run_id, _evidence_dir in self.final_unsealed(conn):
                seal(run_id)
        if found < 4:  # runs.evidence_dir relative to the results directory; the sealed
            # records keep the absolute path they were written to (their digests stay)
            runs = self.runs.c
            for run_id, evidence_dir in conn.execute(
                    select(runs.run_id, runs.evidence_dir)
                    .where(runs.evidence_dir.startswith("/"))).all():
                conn.execute(update(self.runs).where(runs.run_id == run_id).values(
                    evidence_dir=integrity.relative_evidence(evidence_dir)))
        if found < 5:  # reviewer sign-off, each approval sealed into the chain
            self.approvals.create(conn, checkfirst=True)
        conn.execute(update(self.version).values(version=SCHEMA_VERSION))
