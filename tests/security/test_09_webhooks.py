"""Finding 9: webhooks. Whatever the configured URL or the receiving server does, sending is
a notification that failed (reported with scheme://host only: the path and query carry the
token), never an exception; Slack text built from a run is escaped by Slack's rules, so a
drill's environment or message cannot mention @channel or forge a link.

Against a real HTTP server on 127.0.0.1 (http.server in a thread), no mocks."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from dalp_dr.notify import Target, notify, send, shown
from dalp_dr.results import Outcome, RunResult
from tests.factories import make_run

SECRET = "s3cr3t-T0KEN"

RECEIVED: list[tuple[str, dict[str, Any]]] = []


class Hook(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        if self.path.startswith("/garbage"):  # not HTTP at all
            self.wfile.write(b"SURPRISE \x00\xff not a status line\r\n\r\n")
            return
        if self.path.startswith("/redirect"):
            self.send_response(307)
            self.send_header("Location", f"/elsewhere/{SECRET}")
            self.end_headers()
            return
        RECEIVED.append((self.path, json.loads(body)))
        self.send_response(200)
        self.end_headers()

    def do_GET(self) -> None:  # a redirect followed as GET would land here
        RECEIVED.append((self.path, {}))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *_args: object) -> None:
        return


@pytest.fixture
def hook() -> Iterator[str]:
    RECEIVED.clear()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def run(tmp_path: Path, **update: object) -> RunResult:
    result = make_run(tmp_path, "20261001T030000Z-wwwwww", "hot-warm-failover",
                      datetime(2026, 10, 1, 3, tzinfo=UTC), Outcome.FAILED, None)
    return result.model_copy(update=update)


def failed_send(url: str, result: RunResult, kind: str = "slack") -> str:
    """send() must return False, never raise, and report exactly once."""
    reports: list[str] = []
    assert send(Target(url, kind), result, sleep=lambda _s: None,
                report=reports.append) is False
    assert len(reports) == 1, reports
    assert "not delivered" in reports[0]
    return reports[0]


@pytest.mark.parametrize("suffix", [
    f"/services/T0/B0/{SECRET}\r\nX-Injected: 1",  # control characters (CRLF)
    f"/services/T0/{SECRET} with spaces\x7f",
    f"/services/\x00{SECRET}",
], ids=["crlf", "space-del", "nul"])
def test_a_url_with_control_characters_is_a_failed_notification(
        hook: str, tmp_path: Path, suffix: str) -> None:
    message = failed_send(hook + suffix, run(tmp_path))
    assert SECRET not in message and "services" not in message
    assert hook in message  # scheme://host:port, the rest withheld
    assert RECEIVED == []


@pytest.mark.parametrize("url", [
    f"http://127.0.0.1:99999/{SECRET}",  # port out of range
    f"http://[::1/{SECRET}",  # broken IPv6 literal
    "file://{tmp}/" + SECRET,  # not a web hook at all (an existing local file)
    f"ftp://127.0.0.1/{SECRET}",
    f"{SECRET}",  # no scheme
    f"http:///{SECRET}",  # no host
], ids=["port", "ipv6", "file", "ftp", "bare", "no-host"])
def test_a_malformed_or_foreign_url_is_a_failed_notification(tmp_path: Path, url: str) -> None:
    (tmp_path / SECRET).write_text("{}")
    message = failed_send(url.replace("{tmp}", str(tmp_path)), run(tmp_path))
    assert SECRET not in message


def test_userinfo_in_the_url_is_never_shown(tmp_path: Path) -> None:
    url = f"http://hookuser:{SECRET}@127.0.0.1:1/x?token={SECRET}"
    assert SECRET not in shown(url) and "hookuser" not in shown(url)
    assert SECRET not in failed_send(url, run(tmp_path), kind="json")


def test_a_server_that_does_not_speak_http_is_a_failed_notification(
        hook: str, tmp_path: Path) -> None:
    message = failed_send(f"{hook}/garbage/{SECRET}", run(tmp_path))
    assert SECRET not in message and hook in message


def test_a_redirect_is_not_followed(hook: str, tmp_path: Path) -> None:
    """The response is data: it does not decide where the notification goes next."""
    message = failed_send(f"{hook}/redirect/{SECRET}", run(tmp_path), kind="json")
    assert SECRET not in message and "307" in message
    assert RECEIVED == []


def test_notify_never_raises_and_counts_what_was_delivered(hook: str, tmp_path: Path) -> None:
    reports: list[str] = []
    delivered = notify(run(tmp_path), report=reports.append, targets=[
        Target(f"{hook}/bad/{SECRET}\n", "slack"), Target(f"{hook}/good", "json"),
        Target(f"http://[::1/{SECRET}", "json")])
    assert delivered == 1 and len(reports) == 2
    assert not [r for r in reports if SECRET in r]
    assert [p for p, _ in RECEIVED] == ["/good"]


def test_slack_text_from_a_run_is_escaped(hook: str, tmp_path: Path) -> None:
    result = run(tmp_path, environment="prod <!channel> & <@U0123>",
                 message="failed: see <https://evil.example/login|the runbook> now",
                 run_id="20261001T030000Z-<!here>")
    assert notify(result, report=pytest.fail, targets=[
        Target(f"{hook}/slack", "slack"), Target(f"{hook}/generic", "json")]) == 2
    slack = dict(RECEIVED)["/slack"]
    everything = json.dumps(slack)
    texts = [str(slack["text"])] + [json.dumps(b) for b in slack["blocks"]]
    for text in texts:
        assert "<!" not in text and "<@" not in text and "<http" not in text, text
    assert "prod &lt;!channel&gt; &amp; &lt;@U0123&gt;" in str(slack["text"])
    assert "&lt;https://evil.example/login|the runbook&gt;" in str(slack["text"])
    assert "&lt;!here&gt;" in everything
    generic = dict(RECEIVED)["/generic"]  # JSON is JSON: the receiver gets the values as-is
    assert generic["environment"] == "prod <!channel> & <@U0123>"
    assert generic["message"] == "failed: see <https://evil.example/login|the runbook> now"


def test_slack_escaping_applies_to_measured_runs_too(hook: str, tmp_path: Path) -> None:
    result = make_run(tmp_path, "20261001T030000Z-mmmmmm", "hot-warm-failover",
                      datetime(2026, 10, 1, 3, tzinfo=UTC), Outcome.MISSED, 45.0)
    result = result.model_copy(update={"environment": "<!everyone>"})
    assert send(Target(f"{hook}/slack", "slack"), result, report=pytest.fail)
    slack = dict(RECEIVED)["/slack"]
    assert "<!everyone>" not in json.dumps(slack) and "&lt;!everyone&gt;" in str(slack["text"])
