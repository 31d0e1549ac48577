"""Declarative verify checks: expectations, HTTP against a local server, DALP's no_data
semantics, and the drill-file rules."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from dalp_dr.checks import _http, meets
from dalp_dr.spec import Expect, VerifyCheck

PAGES: dict[str, tuple[int, bytes]] = {
    "/healthy": (200, json.dumps({"platform": {"status": "ok", "lag": 3}}).encode()),
    "/no-data": (200, json.dumps({"platform": {"status": "no_data"}}).encode()),
    "/missing": (200, json.dumps({"platform": {}}).encode()),
    "/down": (503, b"{}"),
    "/html": (200, b"<html></html>"),
}


class Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        status, body = PAGES.get(self.path, (404, b""))
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_args: object) -> None:
        return


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


@pytest.mark.parametrize(("value", "expect", "ok"), [
    (3, Expect(min=1), True), (0, Expect(min=1), False), ("12", Expect(max=10), False),
    ("ok", Expect(equals="ok"), True), ("degraded", Expect(equals="ok"), False),
    (5, Expect(equals=5), True), ("5", Expect(equals=5.0), True), (None, Expect(min=0), False),
    (True, Expect(equals=True), True),
])
def test_expectations(value: object, expect: Expect, ok: bool) -> None:
    assert meets(value, expect)[0] is ok


def check(url: str, **kwargs: object) -> VerifyCheck:
    return VerifyCheck.model_validate({"name": "platform", "http": url, **kwargs})


def test_http_checks_status_and_json_field(server: str) -> None:
    assert _http(check(f"{server}/healthy")).ok
    healthy = _http(check(f"{server}/healthy", json_field="platform.status",
                          expect={"equals": "ok"}))
    assert healthy.ok and healthy.value == "'ok'"
    down = _http(check(f"{server}/down"))
    assert not down.ok and down.detail == "HTTP 503, expected 200"
    assert _http(check(f"{server}/down", status=503)).ok
    assert not _http(check(f"{server}/healthy", json_field="platform.lag",
                           expect={"max": 2})).ok
    assert "not JSON" in _http(check(f"{server}/html", json_field="a",
                                     expect={"equals": 1})).detail
    unreachable = _http(check("http://127.0.0.1:1/", timeout="1s"))
    assert not unreachable.ok and "request failed" in unreachable.detail


@pytest.mark.parametrize("path", ["/no-data", "/missing"])
def test_no_data_is_never_healthy(server: str, path: str) -> None:
    outcome = _http(check(f"{server}{path}", json_field="platform.status",
                          expect={"equals": "no_data"}))  # even when "expected"
    assert not outcome.ok and "no data is not healthy" in outcome.detail


@pytest.mark.parametrize(("body", "message"), [
    ({"name": "x"}, "exactly one of 'sql' or 'http'"),
    ({"name": "x", "sql": "select 1"}, "needs 'expect'"),
    ({"name": "x", "http": "ftp://x"}, "http:// or https://"),
    ({"name": "x", "sql": "select 1", "expect": {}}, "'equals', 'min' or 'max'"),
    ({"name": "x", "sql": "select 1; select 2", "expect": {"min": 1}}, "exactly one statement"),
    ({"name": "x", "sql": "select pg_reload_conf()", "expect": {"min": 1}}, "pg_reload_conf"),
])
def test_check_definitions_are_validated(body: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        VerifyCheck.model_validate(body)
