"""Webhook notifications when a drill record is final: a drill ended (passed or not), failed,
or a scheduled run was missed or refused.

Targets come from the environment: ``DALP_DR_WEBHOOK_URL`` (generic JSON) and
``DALP_DR_SLACK_WEBHOOK_URL`` (Slack-compatible ``text``/``blocks``), each a
comma-separated list. A notification is sent after the record is stored, with retries
(backoff 1 s, 2 s, 4 s; 5 s timeout each); one that still fails is reported and never fails
the drill or touches its record. Webhook URLs carry secrets (Slack's path is its token):
only their scheme and host are ever shown. Only http(s) URLs without spaces or control
characters are sent to, redirects are not followed, and every failure (the URL, the
payload, the connection, the reply) is a reported notification, never an exception.

Values from the run are data: Slack text escapes them (``&``, ``<``, ``>``), so an
environment or message cannot mention ``<!channel>`` or forge a link.
"""

from __future__ import annotations

import json
import re
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from dalp_dr import config
from dalp_dr.config import Settings
from dalp_dr.durations import format_duration
from dalp_dr.results import Outcome, RunResult

ATTEMPTS = 4
TIMEOUT = 5.0

_EMOJI = {Outcome.PASSED: ":white_check_mark:", Outcome.MISSED_SCHEDULE: ":warning:",
          Outcome.REFUSED: ":no_entry:"}
_SLACK_ESCAPES = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;"})
_HOST = re.compile(r"^[A-Za-z0-9._~%:-]+$")


def shown(url: str) -> str:
    """What may be said about a webhook URL: its scheme and host (and port), never its
    user, path or query (where the token lives). Never raises."""
    try:
        parsed = urlsplit(url)
        host = parsed.hostname or ""
        port = parsed.port
    except ValueError:
        return "an unparsable URL"
    if not parsed.scheme or not host or not _HOST.match(host):
        return "a URL without a usable host"
    host = f"[{host}]" if ":" in host else host
    return f"{parsed.scheme}://{host}" + (f":{port}" if port else "")


def unusable(url: str) -> str | None:
    """Why a configured webhook URL is not sent to at all (None: it is)."""
    if any(ord(c) < 0x21 or ord(c) == 0x7F for c in url):
        return "the URL contains spaces or control characters"
    try:
        parsed = urlsplit(url)
        parsed.port  # noqa: B018  (raises for a port that is not a number in range)
    except ValueError:
        return "the URL cannot be parsed"
    if parsed.scheme.lower() not in ("http", "https"):
        return "only http and https URLs are sent to"
    if not parsed.hostname:
        return "the URL names no host"
    return None


def slack_escape(value: object) -> str:
    """Text for Slack (text and mrkdwn): &, < and > escaped, so data cannot mention
    (<!channel>, <@U...>) or make links (<https://...|label>)."""
    return str(value).translate(_SLACK_ESCAPES)


def event_of(result: RunResult) -> str:
    if result.outcome is Outcome.PASSED:
        return "drill.passed"
    if result.outcome in (Outcome.MISSED_SCHEDULE, Outcome.REFUSED):
        return "drill.missed_schedule" if result.outcome is Outcome.MISSED_SCHEDULE \
            else "drill.refused"
    return "drill.failed"


def generic_payload(result: RunResult) -> dict[str, Any]:
    m = result.measurements
    return {
        "event": event_of(result), "run_id": result.run_id, "drill": result.drill,
        "topology": result.topology.value, "scenario": result.scenario.value,
        "environment": result.environment, "owner": result.owner,
        "trigger": result.trigger.value, "outcome": result.outcome.value,
        "planned_at": result.planned_at.isoformat() if result.planned_at else None,
        "started_at": result.started_at.isoformat(),
        "ended_at": result.ended_at.isoformat() if result.ended_at else None,
        "objectives": result.objectives,
        "recovery_time": m.recovery_time if m else None,
        "data_loss_window": m.data_loss_window if m else None,
        "lost_writes": m.lost_writes if m else None,
        "verdicts": [v.model_dump(mode="json") for v in result.verdicts],
        "message": result.message,
    }


def slack_payload(result: RunResult) -> dict[str, Any]:
    """Every value from the run is escaped (slack_escape); the markup around it is ours."""
    m = result.measurements
    icon = _EMOJI.get(result.outcome, ":x:")
    head = (f"{icon} DR drill *{slack_escape(result.drill)}* "
            f"({slack_escape(result.environment)}): "
            f"*{slack_escape(result.outcome.value.upper())}*")
    figures = slack_escape(
        f"recovery {format_duration(m.recovery_time)} (RTO "
        f"{format_duration(result.objectives.get('rto'))}), data-loss window "
        f"{format_duration(m.data_loss_window)} (RPO "
        f"{format_duration(result.objectives.get('rpo'))}), lost writes "
        f"{m.lost_writes}" if m else (result.message or "no measurements"))
    context = slack_escape(f"{result.trigger.value} · {result.topology.value}/"
                           f"{result.scenario.value}")
    return {"text": f"{head}\n{figures}",
            "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": head}},
                       {"type": "section", "text": {"type": "mrkdwn", "text": figures}},
                       {"type": "context", "elements": [{"type": "mrkdwn", "text":
                        f"run `{slack_escape(result.run_id)}` · {context}"}]}]}


@dataclass(frozen=True)
class Target:
    url: str
    kind: str  # "json" or "slack"


def targets_of(webhook_urls: Sequence[str] = (),
               slack_webhook_urls: Sequence[str] = ()) -> list[Target]:
    """Generic JSON targets, then Slack targets."""
    return [*(Target(url, "json") for url in webhook_urls),
            *(Target(url, "slack") for url in slack_webhook_urls)]


def targets_from_settings(settings: Settings) -> list[Target]:
    return targets_of(settings.webhook_urls, settings.slack_webhook_urls)


def targets_from_env() -> list[Target]:
    """As configured (DALP_DR_WEBHOOK_URL, DALP_DR_SLACK_WEBHOOK_URL: see dalp_dr.config)."""
    return targets_of(config.webhook_urls(), config.slack_webhook_urls())


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """A webhook's response is data: it does not choose where the notification goes next
    (a 3xx is reported as not delivered)."""

    def redirect_request(self, *_args: Any, **_kwargs: Any) -> None:
        return None


_OPENER = urllib.request.build_opener(_NoRedirect)


def _problem(exc: BaseException) -> str:
    """An exception, described without anything it may quote (the URL and its token)."""
    if isinstance(exc, urllib.error.HTTPError):
        return f"HTTP {exc.code}" + (" (redirect not followed)" if 300 <= exc.code < 400
                                     else "")
    reason = getattr(exc, "reason", None) if isinstance(exc, urllib.error.URLError) else None
    return type(reason if isinstance(reason, BaseException) else exc).__name__


def send(target: Target, result: RunResult, *, sleep: Callable[[float], None] = time.sleep,
         report: Callable[[str], None] = lambda _m: None) -> bool:
    """POST one notification with retries; True when delivered. Never raises: whatever
    goes wrong (the URL, the payload, the connection, the reply) is one report naming the
    target by scheme://host only."""
    where = f"notification to {shown(target.url)} ({target.kind}) not delivered"
    problem = unusable(target.url)
    if problem is not None:
        report(f"{where}: {problem}; the drill record is not affected")
        return False
    try:
        payload = slack_payload(result) if target.kind == "slack" else generic_payload(result)
        body = json.dumps(payload, default=str).encode()
    except Exception as exc:  # a run that cannot be described must not stop the others
        report(f"{where}: payload not built ({type(exc).__name__}); the drill record is "
               "not affected")
        return False
    delay = 1.0
    for attempt in range(1, ATTEMPTS + 1):
        try:
            request = urllib.request.Request(target.url, data=body, method="POST", headers={
                "Content-Type": "application/json", "User-Agent": "dalp-dr"})
            with _OPENER.open(request, timeout=TIMEOUT) as reply:
                status = getattr(reply, "status", None)
                if isinstance(status, int) and 200 <= status < 300:
                    return True
                problem = f"HTTP {status}"
        except Exception as exc:  # every way of failing is a failed notification
            problem = _problem(exc)
        if attempt < ATTEMPTS:
            sleep(delay)
            delay *= 2
    report(f"{where} after {ATTEMPTS} attempts: {problem}; the drill record is not affected")
    return False


def notify(result: RunResult, report: Callable[[str], None],
           targets: list[Target] | None = None) -> int:
    """Send to every configured target; the number delivered."""
    return sum(send(t, result, report=report) for t in
               (targets if targets is not None else targets_from_env()))
