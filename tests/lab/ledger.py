"""An application workload with its own ledger, beside a drill's heartbeat: the independent
check of the divergence probe's exact figures.

One row per transaction through the route, as fast as the route takes them; in each
transaction the writer reads its own transaction id (the 32-bit id pg_waldump prints), and
after the commit records when the acknowledgement came. A commit sent without an answer (the
primary died under it) is "in doubt": it may or may not be in the old primary's WAL.
"""

from __future__ import annotations

import contextlib
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime

import psycopg

TABLE = "dalp_ledger"


@dataclass(frozen=True)
class Entry:
    n: int
    xid: int
    acked_at: datetime | None
    """None: the commit was sent and no answer came (in doubt)"""


@dataclass
class LedgerWriter:
    dsn: str
    entries: list[Entry] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    """errors that are not the outage (a bad statement): the test fails on any"""
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            conn.execute(f"drop table if exists {TABLE}")
            conn.execute(f"create table {TABLE} (n bigint primary key, "
                         "at timestamptz not null default clock_timestamp())")
        self._thread = threading.Thread(target=self._loop, name="ledger", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)

    def _loop(self) -> None:
        n = 0
        conn: psycopg.Connection | None = None
        while not self._stop.is_set():
            try:
                if conn is None:
                    conn = psycopg.connect(self.dsn, connect_timeout=2)
                n += 1
                row = conn.execute(
                    f"insert into {TABLE} (n) values (%s) "
                    "returning (pg_current_xact_id()::text::bigint %% 4294967296)",
                    (n,)).fetchone()
                assert row is not None
                xid = int(row[0])
            except psycopg.ProgrammingError as exc:  # the statement, not the outage
                self.unexpected.append(f"{type(exc).__name__}: {exc}")
                break
            except psycopg.Error:  # the outage (pgbouncer's answers on a dead server vary)
                _closed(conn)
                conn = None
                time.sleep(0.02)
                continue
            try:
                conn.commit()
            except psycopg.Error:
                self.entries.append(Entry(n, xid, None))
                _closed(conn)
                conn = None
                time.sleep(0.02)
                continue
            self.entries.append(Entry(n, xid, datetime.now(UTC)))
            time.sleep(0.001)
        _closed(conn)

    def surviving(self) -> set[int]:
        with psycopg.connect(self.dsn) as conn:
            return {int(r[0]) for r in conn.execute(f"select n from {TABLE}").fetchall()}


def _closed(conn: psycopg.Connection | None) -> None:
    """Drop a connection that failed (closing a dead one may fail too: it is gone either
    way)."""
    if conn is not None:
        with contextlib.suppress(psycopg.Error):
            conn.close()
