"""Lab fixture: a stand-in for DALP's platform API (lab support, not product code).

It offers exactly the calls docs/platform-drills.md names, over the site's own PostgreSQL:

* ``POST /dr/heartbeat`` with JSON ``{"run_id": str, "seq": int, "sent_at": ISO 8601}``:
  inserts the marker into ``dalp_dr_api_heartbeat`` (dalp-dr's marker columns; created when
  missing) and answers 200 ``{"seq": n, "timeline": <WAL timeline>, "server": "<site>"}``;
  400 on bad input, 503 ``{"error": ...}`` when the database does not take it.
* ``GET /dr/heartbeat?run_id=X``: 200 ``{"seqs": [...]}``, the markers the site holds.
* ``GET /health``: ``{"status": "ok"}`` when the database takes writes, ``"degraded"`` when
  it answers but is read-only or in recovery, ``"no_data"`` when it cannot tell (unreachable,
  too slow). The body is the answer (DALP's platform-status semantics): HTTP 200 whatever the
  status, unless ``--unhealthy-code`` says which code degraded and no_data get (a load
  balancer's health check may want 503). With ``--health-override-file`` present, its
  stripped content is the status: how a test makes the site report no_data.
* ``HEAD`` (any path): 204, no body, the connection kept (dalp-dr's client opens each new
  connection with a HEAD).

``--table`` names the table the writes go to (default ``dalp_dr_api_heartbeat``) and
``--read-tables`` the tables ``GET`` reads (default: that one): a hot-hot site writes into a
table it owns (logical replication carries it to the peer) and reads back across every site's.

HTTP/1.1 with keep-alive (a client keeps its connection, as real clients do; it looks the
name up again only when it opens a new one). A database error is an answer (503), never a
closed connection. Database calls have short deadlines (connect 2 s, statement 2 s, and a
client-side watchdog for a server that does not answer at all); a failed connection is
dropped and the next request connects again. SIGTERM stops it cleanly (its PID file removed).

Run it with the Ansible controller's Python (it needs psycopg 3)::

    platform_api.py --listen 198.18.6.11:55680 --site a \\
        --dsn 'host=/var/tmp/.../run port=55600 dbname=dalp user=dalp_app passfile=...' \\
        --pid-file .../api.pid [--health-override-file .../health-override]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import socket
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import psycopg
from psycopg import errors as pg_errors

TABLE = "dalp_dr_api_heartbeat"
_IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
CONNECT_TIMEOUT = 2
STATEMENT_TIMEOUT_MS = 2000
WATCHDOG_SECONDS = 3.0
"""a call that has not returned by then (a stopped server answers nothing, and statement_timeout
is the server's own) has its socket shut down: the call fails, the request answers 503"""
MAX_BODY = 64 * 1024

CREATE = """
create table if not exists {table} (
    run_id       text        not null,
    seq          bigint      not null,
    sent_at      timestamptz not null,
    committed_at timestamptz not null default clock_timestamp(),
    primary key (run_id, seq))
"""
# One round trip: the marker (a repeated seq is the same marker: kept once) and the timeline
# of the server that took it.
INSERT = """
with marker as (
    insert into {table} (run_id, seq, sent_at) values (%s, %s, %s)
    on conflict (run_id, seq) do nothing)
select ('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::int
"""
SELECT = "select seq from {table} where run_id = %(run_id)s"
HEALTH = "select pg_is_in_recovery(), current_setting('transaction_read_only')"


class Database:
    """A small pool of autocommit connections: a connection that failed is closed, never
    reused; the next call connects again."""

    def __init__(self, dsn: str) -> None:
        self._dsn = dsn
        self._idle: list[psycopg.Connection[Any]] = []
        self._lock = threading.Lock()

    def _connect(self) -> psycopg.Connection[Any]:
        return psycopg.connect(self._dsn, autocommit=True, connect_timeout=CONNECT_TIMEOUT,
                               options=f"-c statement_timeout={STATEMENT_TIMEOUT_MS}",
                               application_name="dalp-lab-platform-api")

    @contextmanager
    def connection(self) -> Iterator[psycopg.Connection[Any]]:
        with self._lock:
            conn = self._idle.pop() if self._idle else None
        if conn is None or conn.closed:
            conn = self._connect()
        watchdog = threading.Timer(WATCHDOG_SECONDS, _shut_down, args=(conn,))
        watchdog.daemon = True
        watchdog.start()
        try:
            yield conn
        except BaseException:
            conn.close()
            raise
        finally:
            watchdog.cancel()
        if conn.closed or conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
            conn.close()
            return
        with self._lock:
            self._idle.append(conn)

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()


def _shut_down(conn: psycopg.Connection[Any]) -> None:
    """Unblock a call waiting on a server that answers nothing: shut its socket down."""
    try:
        fd = conn.pgconn.socket
        sock = socket.socket(fileno=os.dup(fd))
    except (OSError, psycopg.Error):
        return
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    finally:
        sock.close()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "dalp-lab-platform-api"
    server: PlatformServer

    def log_message(self, format: str, *args: Any) -> None:
        """No line per request (ten a second in a drill)."""

    def _answer(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(data)

    def _body(self) -> bytes | None:
        """The request's body; None (answered, the connection closed) when its length is
        missing or too large: the stream cannot be read past it."""
        try:
            length = int(self.headers.get("Content-Length", ""))
        except ValueError:
            length = -1
        if not 0 <= length <= MAX_BODY:
            self.close_connection = True
            self._answer(411 if length < 0 else 413, {"error": "a JSON body with Content-Length"
                                                      f" up to {MAX_BODY} bytes is required"})
            return None
        return self.rfile.read(length)

    def do_HEAD(self) -> None:
        self.send_response(204)
        self.send_header("Cache-Control", "no-store")
        self.end_headers()

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        if url.path == "/health":
            status = self.server.health()
            self._answer(200 if status == "ok" else self.server.unhealthy_code,
                         {"status": status})
        elif url.path == "/dr/heartbeat":
            run_id = (parse_qs(url.query).get("run_id") or [""])[0]
            if not run_id:
                self._answer(400, {"error": "run_id is required"})
                return
            try:
                seqs = self.server.read(run_id)
            except psycopg.Error as exc:
                self._answer(503, {"error": _describe(exc)})
                return
            self._answer(200, {"seqs": seqs})
        else:
            self._answer(404, {"error": f"no such resource: {url.path}"})

    def do_POST(self) -> None:
        body = self._body()
        if body is None:
            return
        if urlsplit(self.path).path != "/dr/heartbeat":
            self._answer(404, {"error": f"no such resource: {urlsplit(self.path).path}"})
            return
        try:
            marker = _marker(body)
        except ValueError as exc:
            self._answer(400, {"error": str(exc)})
            return
        try:
            timeline = self.server.write(*marker)
        except psycopg.Error as exc:
            self._answer(503, {"error": _describe(exc)})
            return
        self._answer(200, {"seq": marker[1], "timeline": timeline, "server": self.server.site})


def _marker(body: bytes) -> tuple[str, int, datetime]:
    try:
        data = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ValueError("a JSON object is required")
    run_id, seq, sent_at = data.get("run_id"), data.get("seq"), data.get("sent_at")
    if not isinstance(run_id, str) or not run_id or len(run_id) > 200:
        raise ValueError("run_id: a non-empty string is required")
    if not isinstance(seq, int) or isinstance(seq, bool) or not 0 <= seq < 2**63:
        raise ValueError("seq: a non-negative integer is required")
    if not isinstance(sent_at, str):
        raise ValueError("sent_at: an ISO 8601 instant is required")
    try:
        at = datetime.fromisoformat(sent_at)
    except ValueError:
        raise ValueError("sent_at: an ISO 8601 instant is required") from None
    if at.tzinfo is None:
        raise ValueError("sent_at: an instant with its UTC offset is required")
    return run_id, seq, at


def _describe(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else 'database error'}"


class PlatformServer(ThreadingHTTPServer):
    daemon_threads = True  # kept-alive connections do not hold the process at exit
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], db: Database, site: str,
                 health_override: Path | None, unhealthy_code: int = 200, table: str = TABLE,
                 read_tables: tuple[str, ...] = ()) -> None:
        super().__init__(address, Handler)
        self.db, self.site, self._override = db, site, health_override
        self.unhealthy_code = unhealthy_code
        # identifiers checked by _table (plain lower-case names): safe in the SQL text
        self._create = CREATE.format(table=table)
        self._insert = INSERT.format(table=table)
        self._select = " union ".join(SELECT.format(table=t) for t in read_tables or (table,))

    def write(self, run_id: str, seq: int, sent_at: datetime) -> int:
        with self.db.connection() as conn:
            try:
                row = conn.execute(self._insert, (run_id, seq, sent_at)).fetchone()
            except pg_errors.UndefinedTable:
                conn.execute(self._create)
                row = conn.execute(self._insert, (run_id, seq, sent_at)).fetchone()
        if row is None:
            raise psycopg.DataError("the insert returned no timeline")
        return int(row[0])

    def read(self, run_id: str) -> list[int]:
        with self.db.connection() as conn:
            try:
                rows = conn.execute(self._select, {"run_id": run_id}).fetchall()
                return sorted(int(r[0]) for r in rows)
            except pg_errors.UndefinedTable:
                return []

    def health(self) -> str:
        if self._override is not None:
            try:
                return self._override.read_text(encoding="utf-8").strip()
            except FileNotFoundError:
                pass
            except OSError:
                return "no_data"
        try:
            with self.db.connection() as conn:
                row = conn.execute(HEALTH).fetchone()
        except psycopg.Error:
            return "no_data"
        if row is None:
            return "no_data"
        in_recovery, read_only = row
        return "degraded" if in_recovery or read_only == "on" else "ok"


def _address(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise argparse.ArgumentTypeError(f"ADDRESS:PORT expected, not {text!r}")
    return host.strip("[]"), int(port)


def _table(text: str) -> str:
    if not _IDENTIFIER.match(text):
        raise argparse.ArgumentTypeError(f"a plain lower-case table name, not {text!r}")
    return text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--listen", type=_address, required=True, metavar="ADDRESS:PORT")
    parser.add_argument("--dsn", required=True, help="the site's PostgreSQL (libpq)")
    parser.add_argument("--site", required=True, help="reported as 'server' with each write")
    parser.add_argument("--pid-file", type=Path)
    parser.add_argument("--health-override-file", type=Path)
    parser.add_argument("--unhealthy-code", type=int, default=200,
                        help="HTTP status of a degraded or no_data /health answer (default 200)")
    parser.add_argument("--table", type=_table, default=TABLE,
                        help=f"the table writes go to (default {TABLE})")
    parser.add_argument("--read-tables", type=lambda v: tuple(_table(t) for t in v.split(",")),
                        default=(), metavar="TABLE,...",
                        help="the tables GET reads the markers from (default: --table)")
    args = parser.parse_args(argv)

    db = Database(args.dsn)
    # The API owns its table, as DALP's own migrations would create it: made at start-up
    # where the database takes writes (a standby's comes by replication; a database that is
    # down gets it with the first write)
    try:
        with db.connection() as conn:
            conn.execute(CREATE.format(table=args.table))
    except psycopg.Error as exc:
        print(f"table {args.table} not created now ({type(exc).__name__}): with the first write",
              file=sys.stderr, flush=True)
    server = PlatformServer(args.listen, db, args.site, args.health_override_file,
                            args.unhealthy_code, args.table, args.read_tables)

    def stop(_signum: int, _frame: object) -> None:
        # serve_forever runs in this (the main) thread: shutdown() must come from another
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    if args.pid_file is not None:
        tmp = args.pid_file.with_name(args.pid_file.name + ".tmp")
        tmp.write_text(f"{os.getpid()}\n")
        tmp.replace(args.pid_file)
    print(f"platform API of site {args.site} on {args.listen[0]}:{args.listen[1]}",
          file=sys.stderr, flush=True)
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        server.server_close()
        db.close()
        if args.pid_file is not None:
            try:
                if args.pid_file.read_text().strip() == str(os.getpid()):
                    args.pid_file.unlink()
            except OSError:
                pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
