"""Webhook notifications against a local HTTP server: generic JSON and Slack payloads,
retries with backoff, a target that never answers well is reported without its secret."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from dalp_dr.notify import Target, notify, send
from dalp_dr.results import Outcome, RunResult
from tests.factories import make_run

RECEIVED: list[tuple[str, dict[str, object]]] = []
FAILURES = {"count": 0}


class Hook(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        if self.path.startswith("/flaky") and FAILURES["count"] < 2:
            FAILURES["count"] += 1
            self.send_response(500)
        elif self.path.startswith("/broken"):
            self.send_response(503)
        else:
            RECEIVED.append((self.path, body))
            self.send_response(200)
        self.end_headers()

    def log_message(self, *_args: object) -> None:
        return


@pytest.fixture
def hook() -> Iterator[str]:
    RECEIVED.clear()
    FAILURES["count"] = 0
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


def result(tmp_path: Path, outcome: Outcome = Outcome.MISSED) -> RunResult:
    return make_run(tmp_path, "20261001T030000Z-nnnnnn", "hot-warm-failover",
                    datetime(2026, 10, 1, 3, tzinfo=UTC), outcome, 45.0)


def test_generic_and_slack_payloads(hook: str, tmp_path: Path) -> None:
    run = result(tmp_path)
    delivered = notify(run, report=pytest.fail,
                       targets=[Target(f"{hook}/generic", "json"),
                                Target(f"{hook}/slack", "slack")])
    assert delivered == 2
    generic = dict(RECEIVED)["/generic"]
    assert generic["event"] == "drill.failed" and generic["outcome"] == "missed"
    assert generic["recovery_time"] == 45.0 and generic["run_id"] == "20261001T030000Z-nnnnnn"
    slack = dict(RECEIVED)["/slack"]
    assert "*hot-warm-failover*" in str(slack["text"]) and "MISSED" in str(slack["text"])
    assert isinstance(slack["blocks"], list)


def test_retries_with_backoff_then_delivers(hook: str, tmp_path: Path) -> None:
    waits: list[float] = []
    assert send(Target(f"{hook}/flaky", "json"), result(tmp_path, Outcome.PASSED),
                sleep=waits.append)
    assert waits == [1.0, 2.0] and [p for p, _ in RECEIVED] == ["/flaky"]
    assert RECEIVED[0][1]["event"] == "drill.passed"


def test_a_failing_target_is_reported_without_its_secret(hook: str, tmp_path: Path) -> None:
    reports: list[str] = []
    token_url = f"{hook}/broken/T000/B000/s3cr3t-token"
    run = result(tmp_path)
    assert not send(Target(token_url, "slack"), run, sleep=lambda _s: None,
                    report=reports.append)
    assert len(reports) == 1 and "HTTP 503" in reports[0] and "4 attempts" in reports[0]
    assert "s3cr3t-token" not in reports[0] and hook in reports[0]
    unreachable: list[str] = []
    assert not send(Target("http://127.0.0.1:1/x", "json"), run,
                    sleep=lambda _s: None, report=unreachable.append)
    assert "not delivered" in unreachable[0]
