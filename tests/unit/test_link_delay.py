"""The lab link's delaying proxy (dalp_dr/link_delay.py) as a process on loopback: every byte
arrives the delay later each way, in order, and what is in flight when a side closes is still
delivered before the other side is closed."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def proxy_to(upstream: int, delay_ms: int, tmp_path: Path) -> Iterator[int]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "dalp_dr" / "link_delay.py"), "--listen",
         f"127.0.0.1:{port}", "--to", f"127.0.0.1:{upstream}", "--delay-ms", str(delay_ms),
         "--pid-file", str(tmp_path / "link.pid"), "--max-seconds", "60"],
        stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "listening"
        assert (tmp_path / "link.pid").read_text().strip() == str(proc.pid)
        yield port
    finally:
        proc.terminate()
        assert proc.wait(timeout=30) == 0  # SIGTERM is a clean stop (10 s was short once in CI)


def serve(handler) -> int:  # type: ignore[no-untyped-def]
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()

    def accept() -> None:
        conn, _ = server.accept()
        with conn, server:
            handler(conn)

    threading.Thread(target=accept, daemon=True).start()
    return int(server.getsockname()[1])


def echo(conn: socket.socket) -> None:
    while data := conn.recv(4096):
        conn.sendall(data)


def test_every_byte_arrives_the_delay_later_each_way_in_order(tmp_path: Path) -> None:
    with proxy_to(serve(echo), 150, tmp_path) as port, \
            socket.create_connection(("127.0.0.1", port), timeout=5) as client:
        started = time.monotonic()
        for i in range(5):
            client.sendall(f"{i};".encode())
        received = b""
        while len(received) < 10:
            chunk = client.recv(100)
            assert chunk, received  # the proxy closed early
            received += chunk
        elapsed = time.monotonic() - started
    assert received == b"0;1;2;3;4;"
    assert 0.3 <= elapsed < 1.2  # 150 ms there, 150 ms back; not once per message (5 x 0.3)


def test_what_is_in_flight_when_the_upstream_closes_is_delivered(tmp_path: Path) -> None:
    def say_and_close(conn: socket.socket) -> None:
        conn.sendall(b"last words")  # then closes at once: the bytes are still on the link

    with proxy_to(serve(say_and_close), 200, tmp_path) as port, \
            socket.create_connection(("127.0.0.1", port), timeout=5) as client:
        received = b""
        while chunk := client.recv(100):
            received += chunk
    assert received == b"last words"  # then an orderly close (recv returned b"")


def test_a_half_closed_side_still_gets_its_answer(tmp_path: Path) -> None:
    """a client that says its piece and shuts its sending side (as a request-then-EOF
    client does) still receives the upstream's reply"""
    def answer_after_eof(conn: socket.socket) -> None:
        heard = b""
        while chunk := conn.recv(100):
            heard += chunk
        conn.sendall(b"you said " + heard)

    with proxy_to(serve(answer_after_eof), 50, tmp_path) as port, \
            socket.create_connection(("127.0.0.1", port), timeout=5) as client:
        client.sendall(b"hello")
        client.shutdown(socket.SHUT_WR)
        received = b""
        while chunk := client.recv(100):
            received += chunk
    assert received == b"you said hello"


def test_a_side_that_does_not_read_makes_the_sender_wait(tmp_path: Path) -> None:
    """back-pressure: the proxy holds at most its in-flight chunks, so a sender to an
    upstream that never reads blocks instead of the proxy buffering without end"""
    never_reads = threading.Event()

    def hold(conn: socket.socket) -> None:
        never_reads.wait(20)

    with proxy_to(serve(hold), 0, tmp_path) as port, \
            socket.create_connection(("127.0.0.1", port), timeout=5) as client:
        client.settimeout(3)
        sent = 0
        block = b"x" * 65536
        try:
            while sent < 200 * 2**20:
                sent += client.send(block)
        except TimeoutError:
            pass
        never_reads.set()
    # the proxy's 256 chunks (16 MiB) plus the kernel's socket buffers, far below 200 MiB
    assert sent < 64 * 2**20, sent
