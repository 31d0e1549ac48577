import contextlib
import json
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from dalp_dr.history import HistoryStore, open_store
from tests.factories import fill_history
from tests.lab.ci_order import longest_first

LAB_DIR = Path(__file__).parent / "lab"

# Every lab test module names the lab it uses: pytestmark = pytest.mark.xdist_group("<lab>").
# Modules of one lab run one after the other on the same pytest-xdist worker (--dist
# loadgroup); different labs (own ports, own directories under /var/tmp/dalp-dr-lab) run side
# by side, the longest groups first (tests/lab/ci_order.py). test_90 takes every lab down and
# runs alone, last (.ci/run).


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # Everything under tests/lab runs against the real lab: mark it so `-m "not lab"` gives
    # the fast unit tests alone. Lab tests elsewhere (tests/security) carry the mark
    # themselves. In CI nothing is deselected and nothing is skipped.
    for item in items:
        path = Path(str(item.fspath))
        if LAB_DIR in path.parents:
            item.add_marker(pytest.mark.lab)
        if item.get_closest_marker("lab") is not None \
                and item.get_closest_marker("xdist_group") is None:
            raise pytest.UsageError(f"{path.name}: name its lab with pytestmark = "
                                    "pytest.mark.xdist_group('<lab>')")
    # the longest lab groups first (tests/lab/ci_order.py: .ci/run keeps this order)
    items[:] = longest_first(items)


@pytest.fixture
def configured(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """``tmp_path`` as what the environment configures: results (and the default SQLite
    history) under tmp_path/results, signing keys under tmp_path/keys (not created), no
    other store, no witness, no debug output."""
    monkeypatch.setenv("DALP_DR_RESULTS", str(tmp_path / "results"))
    monkeypatch.setenv("DALP_DR_KEYS", str(tmp_path / "keys"))
    for name in ("DALP_DR_STORE", "DALP_DR_WITNESS", "DALP_DR_DEBUG"):
        monkeypatch.delenv(name, raising=False)
    return tmp_path


@pytest.fixture
def history(tmp_path: Path) -> str:
    """A SQLite history of four sealed 2026 runs with evidence under tmp_path/results; its
    URL (tests/factories.py)."""
    return fill_history(tmp_path)


@pytest.fixture
def sqlite_store(tmp_path: Path) -> Iterator[HistoryStore]:
    """An empty SQLite history in the results directory tmp_path/results (the default
    layout), closed after."""
    opened = open_store(f"sqlite:///{tmp_path / 'results' / 'history.sqlite'}",
                        results_dir=tmp_path / "results")
    yield opened
    opened.close()


class JsonApi:
    """A local HTTP server answering JSON (``pages``: path -> (status, document)), and what
    it was asked: a stand-in for a platform's API or a chain node in fast tests (not for
    PostgreSQL, Ansible or S3)."""

    def __init__(self) -> None:
        self.pages: dict[str, tuple[int, object]] = {}
        self.close_each = False
        """answer every request with ``Connection: close``"""
        self.requests: list[tuple[str, str, dict[str, str], bytes]] = []
        self._connections: list[socket.socket] = []
        api = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _answer(self) -> None:
                api._connections.append(self.connection)
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                api.requests.append((self.command, self.path, dict(self.headers), body))
                status, document = api.pages.get(self.path.split("?")[0], (404, {}))
                if callable(document):
                    status, document = document(self.command, self.path, body)
                payload = json.dumps(document).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                if api.close_each:
                    self.send_header("Connection", "close")
                    self.close_connection = True
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(payload)

            do_GET = do_POST = do_HEAD = _answer

            def log_message(self, *_args: object) -> None:
                return

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}"
        threading.Thread(target=self._httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        """The server goes away, its open connections with it."""
        self._httpd.shutdown()
        self._httpd.server_close()
        for connection in self._connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)


@pytest.fixture
def json_api() -> Iterator[JsonApi]:
    """A local JSON API (``JsonApi``), shut down after the test."""
    api = JsonApi()
    yield api
    api.close()


class Nameserver:
    """A tiny authoritative DNS server on 127.0.0.1 (UDP, dnspython): every A question gets
    ``addresses`` with ``ttl``; ``queries`` counts what it was asked. For fast tests of the
    clients' resolver; the labs run a real one (BIND)."""

    def __init__(self, addresses: list[str], ttl: int) -> None:
        self.addresses, self.ttl, self.queries = addresses, ttl, 0
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._sock.bind(("127.0.0.1", 0))
        self.address = f"127.0.0.1:{self._sock.getsockname()[1]}"
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        import dns.flags
        import dns.message
        import dns.rrset

        while True:
            try:
                data, peer = self._sock.recvfrom(4096)
            except OSError:
                return
            question = dns.message.from_wire(data)
            self.queries += 1
            answer = dns.message.make_response(question)
            answer.flags |= dns.flags.AA
            answer.answer.append(dns.rrset.from_text_list(
                question.question[0].name, self.ttl, "IN", "A", list(self.addresses)))
            self._sock.sendto(answer.to_wire(), peer)

    def close(self) -> None:
        self._sock.close()


@pytest.fixture
def nameserver() -> Iterator[Nameserver]:
    """A local authoritative nameserver answering 127.0.0.1 with a TTL of 1 s."""
    server = Nameserver(["127.0.0.1"], ttl=1)
    yield server
    server.close()
