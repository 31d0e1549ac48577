"""ServiceEndpoint on psycopg 3: the database as clients reach it (through the route).

psycopg errors are translated into EndpointError here, with credentials masked.
"""

from __future__ import annotations

import contextlib
import os
import re
import socket
import threading
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import psycopg
from psycopg import conninfo

from dalp_dr.adapters.base import ServerIdentity, WriteAck
from dalp_dr.errors import EndpointError, MarkerTableMissing
from dalp_dr.redact import Redactor
from dalp_dr.spec import DEFAULT_MARKER_TABLE

HEARTBEAT_TABLE = DEFAULT_MARKER_TABLE
# The lab playbooks (playbooks/roles/dalp_lab/tasks/primary.yml) create the same table when they
# provision a primary, so that it is part of every base backup from the start. A population
# of a multi-population drill (hot-hot) has its own table of the same shape; table names are
# validated identifiers (spec.Population.marker_table), never user text in SQL otherwise.

_SCHEMA = """
create table if not exists {table} (
    run_id       text        not null,
    seq          bigint      not null,
    sent_at      timestamptz not null,
    committed_at timestamptz not null default clock_timestamp(),
    primary key (run_id, seq)
)
"""

# A primary's WAL timeline: the first 8 hex digits of a WAL file name are its timeline, and
# pg_walfile_name names it with the server's current insertion timeline whatever the LSN.
# Only on a primary (both functions refuse to run during recovery).
_TIMELINE = "('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::int"
_ADDRESS = "host(inet_server_addr()) || ':' || inet_server_port()"
"""the server's address:port as it took this connection (NULL over a Unix socket)"""

# The heartbeat write, answered with the accepting server's timeline and address (a server
# in recovery refuses the INSERT before RETURNING is evaluated). Which server took a write
# tells an old primary that still accepts writes after the new one was promoted (split
# brain) from the new one.
_INSERT_MARKER = ("insert into {table} (run_id, seq, sent_at) values (%s, %s, %s)"
                  f" returning {_TIMELINE}, {_ADDRESS}")

_READ_ONLY = "-c default_transaction_read_only=on"

# Fail fast on a dead or silent peer: keepalives and a TCP user timeout bound every call.
_CLIENT_OPTIONS: dict[str, Any] = {
    "autocommit": True,
    "application_name": "dalp-dr",
    "keepalives": 1,
    "keepalives_idle": 1,
    "keepalives_interval": 1,
    "keepalives_count": 2,
    "tcp_user_timeout": 2000,
}


class _AnswerDeadline:
    """Every call of a session is answered in time or its connection is severed. libpq
    waits for a reply for as long as the peer keeps the connection open, and a peer that
    stops forwarding without closing (a hung pooler or proxy) keeps it open: keepalives and
    ``tcp_user_timeout`` see a healthy connection. A timer shuts the socket down when the
    deadline passes; the waiting call then fails and the session is dropped, as a client
    with a request timeout would. (A session is used, and closed, by one thread: the socket
    is only shut down while a call of that thread waits on it, never after its close.)"""

    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self._conn = conn
        self._lock = threading.Lock()
        self._armed = False
        self.fired = False

    @contextlib.contextmanager
    def within(self, seconds: float) -> Iterator[None]:
        timer = threading.Timer(seconds, self._sever)
        timer.daemon = True
        with self._lock:
            self._armed, self.fired = True, False
        timer.start()
        try:
            yield
        finally:
            with self._lock:
                self._armed = False
            timer.cancel()

    def _sever(self) -> None:
        with self._lock:
            if not self._armed:  # answered meanwhile: the socket may be closed or reused
                return
            self.fired = True
            # (the connection is already gone if the socket cannot be had: nothing to sever)
            with contextlib.suppress(psycopg.Error, OSError), \
                    socket.socket(fileno=os.dup(self._conn.pgconn.socket)) as sock:
                sock.shutdown(socket.SHUT_RDWR)


class PostgresSession:
    def __init__(self, conn: psycopg.Connection[Any], redactor: Redactor,
                 table: str = HEARTBEAT_TABLE, *, answer_within: float = 2.0) -> None:
        """``answer_within``: seconds each call may wait for the server's answer (a
        verify query: its own timeout on top) before the connection is severed."""
        self._conn = conn
        self._redactor = redactor
        self._table = table
        self._answer_within = answer_within
        self._deadline = _AnswerDeadline(conn)

    def _bounded(self, extra: float = 0.0) -> contextlib.AbstractContextManager[None]:
        return self._deadline.within(self._answer_within + extra)

    def _fail(self, exc: Exception) -> EndpointError:
        self.close()
        if self._deadline.fired:
            return EndpointError(f"no answer within {self._answer_within:g}s: connection "
                                 "severed (the server or something on the way stopped "
                                 "answering)")
        text = " ".join(str(exc).split()) or type(exc).__name__
        return EndpointError(self._redactor.text(text))

    def write_marker(self, run_id: str, seq: int, sent_at: datetime) -> WriteAck:
        try:
            with self._bounded():
                row = self._conn.execute(
                    _INSERT_MARKER.format(table=self._table), (run_id, seq, sent_at),
                ).fetchone()
        except psycopg.errors.UndefinedTable:
            # the marker table itself did not survive (e.g. restored from a backup older than
            # it): recreate it so the service can be measured again; the lost markers show in
            # the measurement
            self.close()
            raise MarkerTableMissing(f"{self._table} does not exist on the server") from None
        except (psycopg.Error, OSError) as exc:
            raise self._fail(exc) from None
        if row is None:  # an INSERT ... RETURNING of one row returns it
            return WriteAck()
        return WriteAck(timeline=row[0], server=row[1])

    def surviving_markers(self, run_id: str) -> set[int]:
        try:
            with self._bounded():
                rows = self._conn.execute(
                    f"select seq from {self._table} where run_id = %s", (run_id,)
                ).fetchall()
        except (psycopg.Error, OSError) as exc:
            raise self._fail(exc) from None
        return {int(r[0]) for r in rows}

    def _one_row(self, sql: str) -> tuple[Any, ...]:
        """The row of a query that always returns one (errors translated)."""
        try:
            with self._bounded():
                row = self._conn.execute(sql).fetchone()
        except (psycopg.Error, OSError) as exc:
            raise self._fail(exc) from None
        if row is None:
            raise EndpointError(f"{sql.split()[1]}...: the server returned no row")
        return tuple(row)

    def identity(self) -> ServerIdentity:
        row = self._one_row(
            "select inet_server_port(), pg_is_in_recovery(), case when pg_is_in_recovery()"
            f" then null else {_TIMELINE} end")
        return ServerIdentity(port=row[0], in_recovery=bool(row[1]), timeline=row[2])

    def query_value(self, sql: str, *, timeout: float | None = None,
                    params: tuple[Any, ...] = ()) -> Any:
        """The first column of the first row of one query (a verify check: it can look,
        never change). ``sql`` is a single SELECT without a trailing ';' (checks.check_query
        gives it so). The server is given it as a subquery, so PostgreSQL's own grammar
        refuses anything that is not a query (COPY, a data-modifying WITH, a second
        statement); through the extended query protocol (pipeline mode: one statement per
        message, whatever the text holds); in a READ ONLY transaction. ``timeout`` bounds
        the query on the server (statement_timeout), so a slow check cannot hold verify.
        ``params`` are PostgreSQL's own ``$1``, ``$2``... (a raw cursor: no client-side
        placeholders, so a ``%`` in the text stays a ``%``)."""
        wrapped = f"select * from (\n{sql}\n) as dalp_check"
        try:
            with self._bounded(timeout or 0.0), self._conn.transaction():
                self._conn.execute("set transaction read only")
                if timeout is not None:
                    self._conn.execute("select set_config('statement_timeout', %s, true)",
                                       (f"{max(1, round(timeout * 1000))}ms",))
                with self._conn.pipeline():
                    cursor = psycopg.RawCursor(self._conn).execute(wrapped, params or None)
                row = cursor.fetchone()
        except (psycopg.Error, OSError) as exc:
            raise self._fail(exc) from None
        return row[0] if row else None

    def role_powers(self) -> tuple[str, list[str]]:
        """The role this session runs as, and what it may do beyond reading: superuser, or
        membership of a role that signals other backends or reaches the server's files and
        programs (none of which a read-only transaction stops)."""
        row = self._one_row(
            "select current_user::text, rolsuper,"
            " pg_has_role(current_user, 'pg_signal_backend', 'MEMBER'),"
            " pg_has_role(current_user, 'pg_execute_server_program', 'MEMBER'),"
            " pg_has_role(current_user, 'pg_write_server_files', 'MEMBER'),"
            " pg_has_role(current_user, 'pg_read_server_files', 'MEMBER')"
            " from pg_roles where rolname = current_user")
        if row[1]:
            return str(row[0]), ["superuser"]
        names = ("pg_signal_backend", "pg_execute_server_program", "pg_write_server_files",
                 "pg_read_server_files")
        return str(row[0]), [name for name, member in zip(names, row[2:], strict=True)
                             if member]

    def close(self) -> None:
        # closing a broken connection: nothing is left to release, so errors are moot
        with contextlib.suppress(psycopg.Error, OSError):
            self._conn.close()


class PostgresEndpoint:
    """A libpq DSN clients use. ``display`` never contains the password."""

    def __init__(self, dsn: str, redactor: Redactor, table: str = HEARTBEAT_TABLE) -> None:
        if not re.fullmatch(r"[a-z_][a-z0-9_]{0,62}", table):
            raise EndpointError(f"invalid marker table name {table!r}")
        self._table = table
        try:
            params = conninfo.conninfo_to_dict(dsn)
        except psycopg.ProgrammingError as exc:
            raise EndpointError(f"invalid DSN: {redactor.text(str(exc))}") from None
        password = params.get("password")
        if isinstance(password, str):
            redactor.add(password)
        self._dsn = dsn
        self._options = str(params.get("options") or os.environ.get("PGOPTIONS", ""))
        self._target_session_attrs = str(params.get("target_session_attrs")
                                         or os.environ.get("PGTARGETSESSIONATTRS", ""))
        self._redactor = redactor
        shown = {k: v for k, v in params.items() if k not in ("password", "passfile")}
        self._display = conninfo.make_conninfo(**{k: str(v) for k, v in shown.items()})

    @property
    def display(self) -> str:
        return self._display

    def connect(self, *, timeout: float, read_only: bool = False) -> PostgresSession:
        """A session; ``read_only``: every transaction of it is read-only from the start
        (libpq ``options=-c default_transaction_read_only=on``, added to the DSN's own
        options; a DSN's ``target_session_attrs=read-write`` becomes ``primary``). A pooler
        that refuses the startup option (pgbouncer without
        ``ignore_startup_parameters = options``) gets a plain session instead: query_value
        sets its transaction read only in any case."""
        options = dict(_CLIENT_OPTIONS)
        options["connect_timeout"] = max(2, round(timeout))
        if read_only:
            options["options"] = f"{self._options} {_READ_ONLY}".strip()
            if self._target_session_attrs == "read-write":
                # libpq judges read-write by the session's read-only setting, which this
                # session sets itself: 'primary' picks the same server (not in recovery)
                options["target_session_attrs"] = "primary"
        try:
            conn = psycopg.connect(self._dsn, **options)
        except (psycopg.Error, OSError) as exc:
            text = " ".join(str(exc).split()) or type(exc).__name__
            # a timed-out attempt's socket stays open as long as its frames live (psycopg
            # #565: the connection is finalized, not closed): let them go now, not at the
            # next garbage collection (a heartbeat retries every tick)
            exc.__traceback__ = None
            del exc
            if read_only and "unsupported startup parameter" in text:
                return self.connect(timeout=timeout)
            raise EndpointError(self._redactor.text(text)) from None
        return PostgresSession(conn, self._redactor, self._table,
                               answer_within=timeout)

    def ensure_schema(self) -> None:
        session = self.connect(timeout=5)
        try:
            with session._bounded():
                session._conn.execute(_SCHEMA.format(table=self._table))
        except (psycopg.Error, OSError) as exc:
            raise session._fail(exc) from None
        finally:
            session.close()
