"""Every call through the service endpoint is answered in time or its connection is severed
(``PostgresSession``'s answer deadline): a peer that completes the handshake and then stops
answering, without closing (a hung pooler or proxy), cannot hold the heartbeat or verify.

The peer is a socket server that speaks the server side of PostgreSQL's start-up exchange
(protocol 3.0: authentication ok, ready for query) and then reads and never answers. It is
not a fake PostgreSQL: nothing here is a drill, and it answers no query at all."""

from __future__ import annotations

import socket
import struct
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from dalp_dr.adapters.postgres import PostgresEndpoint
from dalp_dr.errors import EndpointError
from dalp_dr.redact import Redactor


def _message(kind: bytes, body: bytes) -> bytes:
    return kind + struct.pack("!I", len(body) + 4) + body


def _serve_silently(conn: socket.socket, stop: threading.Event) -> None:
    with conn:
        length = struct.unpack("!I", conn.recv(4))[0]
        conn.recv(length - 4)  # the startup message (no SSL asked: sslmode=disable)
        conn.sendall(_message(b"R", struct.pack("!I", 0))
                     + _message(b"S", b"server_version\x0015.0\x00")
                     + _message(b"S", b"client_encoding\x00UTF8\x00")
                     + _message(b"K", struct.pack("!II", 1, 2))
                     + _message(b"Z", b"I"))
        conn.settimeout(0.1)
        # read whatever comes; answer nothing, close nothing (for 10 s: a deadline that does
        # not work fails the test then, with a closed connection, instead of hanging it)
        until = time.monotonic() + 10
        while not stop.is_set() and time.monotonic() < until:
            try:
                if not conn.recv(65536):
                    return
            except TimeoutError:
                continue
            except OSError:
                return


@pytest.fixture
def silent_server() -> Iterator[int]:
    """A port where a server takes the connection and then never answers."""
    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()
    threads: list[threading.Thread] = []

    def accept() -> None:
        listener.settimeout(0.1)
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            thread = threading.Thread(target=_serve_silently, args=(conn, stop), daemon=True)
            thread.start()
            threads.append(thread)

    acceptor = threading.Thread(target=accept, daemon=True)
    acceptor.start()
    try:
        yield listener.getsockname()[1]
    finally:
        stop.set()
        acceptor.join(5)
        for thread in threads:
            thread.join(5)
        listener.close()


def test_a_write_nobody_answers_fails_at_the_deadline(silent_server: int) -> None:
    endpoint = PostgresEndpoint(f"host=127.0.0.1 port={silent_server} dbname=x user=x "
                                "sslmode=disable", Redactor())
    session = endpoint.connect(timeout=0.5)
    started = time.monotonic()
    with pytest.raises(EndpointError, match=r"no answer within 0\.5s"):
        session.write_marker("run", 1, datetime.now(UTC))
    assert 0.45 < time.monotonic() - started < 2


def test_a_verify_query_gets_its_own_timeout_on_top(silent_server: int) -> None:
    endpoint = PostgresEndpoint(f"host=127.0.0.1 port={silent_server} dbname=x user=x "
                                "sslmode=disable", Redactor())
    session = endpoint.connect(timeout=0.5)
    started = time.monotonic()
    with pytest.raises(EndpointError, match="no answer within"):
        session.query_value("select 1", timeout=0.5)
    assert 0.95 < time.monotonic() - started < 3


def test_a_connect_that_times_out_leaves_no_socket_open() -> None:
    # a peer that takes the connection and never answers the startup message
    with socket.create_server(("127.0.0.1", 0)) as listener:
        endpoint = PostgresEndpoint(f"host=127.0.0.1 port={listener.getsockname()[1]} "
                                    "dbname=x user=x sslmode=disable", Redactor())
        with pytest.raises(EndpointError, match="timeout"):
            endpoint.connect(timeout=2)  # (libpq's least connect timeout)
        accepted, _ = listener.accept()
        with accepted:
            accepted.settimeout(0.5)
            while accepted.recv(65536):  # the startup message, then the end: closed
                pass
