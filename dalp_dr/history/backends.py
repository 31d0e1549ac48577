"""Where SQLite and PostgreSQL stores differ in behaviour, as small named hooks.

* **connecting**: SQLite opens (creating) a file of the owner's alone, in WAL mode, with a
  full fsync per commit; PostgreSQL takes any libpq URL as libpq reads it (``.pgpass``,
  ``PGPASSWORD``, several hosts), its password masked in every message.
* **write transactions**: SQLite takes the database's write lock when a writing
  transaction begins (``BEGIN IMMEDIATE``), so its reads and writes never interleave with
  another process's; PostgreSQL serializes what must be serial by advisory locks.
* **lease clock**: the database server's on PostgreSQL (scheduler hosts with skewed clocks
  still agree on who holds a lease), this host's on SQLite (one host).
* **migration policy**: the embedded SQLite store upgrades its schema when it is opened; a
  shared PostgreSQL store only with ``migrate=True`` (``dalp-dr store migrate``), never
  behind the back of the other dalp-dr processes that share it.
"""

from __future__ import annotations

import sqlite3
from abc import ABC, abstractmethod
from datetime import datetime
from pathlib import Path
from typing import Any

import psycopg
from psycopg import conninfo
from sqlalchemy import Connection, Engine, Table, create_engine, event, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import URL
from sqlalchemy.pool import QueuePool

from dalp_dr import private_files
from dalp_dr.clock import utcnow
from dalp_dr.errors import StoreError
from dalp_dr.history.schema import POSTGRES, SQLITE, Dialect
from dalp_dr.redact import Redactor

WRITE = "dalp_dr_write"
"""execution option: the connection's transaction writes (SQLite takes the write lock)"""


class Backend(ABC):
    dialect: Dialect
    where: str
    """the store for messages, without credentials"""
    upgrades_on_open: bool
    """the migration policy: upgrade an older schema whenever the store is opened"""
    file: Path | None = None
    """the file the store is kept in (an embedded store); None for a database server"""

    @abstractmethod
    def engine(self) -> Engine: ...

    @abstractmethod
    def lock(self, conn: Connection, name: str) -> None:
        """Hold ``name`` until the transaction ends (one schema migrator, one sealer)."""

    @abstractmethod
    def now(self, conn: Connection) -> datetime:
        """The lease clock: one instant, read once per operation."""

    @abstractmethod
    def insert(self, table: Table) -> Any:
        """An INSERT that can say ON CONFLICT."""

    def message(self, exc: BaseException) -> str:
        """A database error for one line: the driver's own message, not the statement."""
        orig = getattr(exc, "orig", None)
        return " ".join(str(orig if orig is not None else exc).split()) or type(exc).__name__


class SqliteBackend(Backend):
    """The embedded store: one file, the owner's alone."""

    dialect = SQLITE
    upgrades_on_open = True

    def __init__(self, path: Path) -> None:
        self.path = path
        self.file = path.resolve()  # ("sqlite:////abs" leaves "//abs": the same file)
        self.where = str(path)

    def engine(self) -> Engine:
        path = self.path
        if not path.parent.is_dir():
            private_files.make_dir(path.parent)
        engine = create_engine(URL.create("sqlite", database=str(path)), poolclass=QueuePool,
                               connect_args={"timeout": 30, "check_same_thread": False})

        @event.listens_for(engine, "connect")
        def connected(dbapi: sqlite3.Connection, _record: Any) -> None:
            dbapi.isolation_level = None  # transactions are begun below, not by the driver
            for name in (path.name, f"{path.name}-wal", f"{path.name}-shm"):
                if (path.parent / name).is_file():  # the owner's alone, before any row
                    private_files.chmod_file(path.parent / name)
            dbapi.execute("pragma journal_mode=wal")
            dbapi.execute("pragma synchronous=full")

        @event.listens_for(engine, "begin")
        def begin(conn: Connection) -> None:
            write = conn.get_execution_options().get(WRITE, False)
            conn.exec_driver_sql("begin immediate" if write else "begin")

        return engine

    def lock(self, conn: Connection, name: str) -> None:
        """Nothing more to take: a writing transaction holds the database's write lock."""

    def now(self, conn: Connection) -> datetime:
        return utcnow()

    def insert(self, table: Table) -> Any:
        return sqlite.insert(table)


class PostgresBackend(Backend):
    """A shared database (any libpq URL), its password never shown."""

    dialect = POSTGRES
    upgrades_on_open = False

    def __init__(self, url: str) -> None:
        self.redactor = Redactor()
        self.url = url
        try:
            params = conninfo.conninfo_to_dict(url)
        except psycopg.ProgrammingError as exc:
            raise StoreError(f"invalid history store URL: {self.redactor.text(str(exc))}"
                             ) from None
        password = params.get("password")
        if isinstance(password, str):
            self.redactor.add(password)
        shown = {k: str(v) for k, v in params.items() if k not in ("password", "passfile")}
        self.where = conninfo.make_conninfo(**shown)

    def engine(self) -> Engine:
        def connect() -> psycopg.Connection[Any]:
            return psycopg.connect(self.url, connect_timeout=10,
                                   application_name="dalp-dr history")

        # no pre-ping: a connection the server dropped (restart, failover) fails the one
        # call that finds it gone and is replaced on the next
        return create_engine("postgresql+psycopg://", creator=connect, poolclass=QueuePool)

    def lock(self, conn: Connection, name: str) -> None:
        conn.execute(select(func.pg_advisory_xact_lock(func.hashtext(name))))

    def now(self, conn: Connection) -> datetime:
        instant = conn.scalar(select(func.clock_timestamp()))
        assert isinstance(instant, datetime)
        return instant

    def insert(self, table: Table) -> Any:
        return postgresql.insert(table)

    def message(self, exc: BaseException) -> str:
        return self.redactor.text(super().message(exc))
