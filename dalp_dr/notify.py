"""Webhook notifications when a drill record is final: a drill ended (passed or not), failed,
or a scheduled run was missed or refused.

Targets come from the environment: ``DALP_DR_WEBHOOK_URL`` (generic JSON) and
``DALP_DR_SLACK_WEBHOOK_URL`` (Slack-compatible ``text``/``blocks``), each a
comma-separated list. A notification is sent after the record is stored, with retries
(backoff 1 s, 2 s, 4 s; 5 s timeout each); one that still fails is reported and never fails
the drill or touches its record. Webhook URLs carry secrets (Slack's path is its token):
only their scheme and host are ever shown.
"""

from __future__ import annotations

import json
import os
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

from dalp_dr.durations import format_duration
from dalp_dr.results import Outcome, RunResult

ATTEMPTS = 4
TIMEOUT = 5.0

_EMOJI = {Outcome.PASSED: ":white_check_mark:", Outcome.MISSED_SCHEDULE: ":warning:",
          Outcome.REFUSED: ":no_entry:"}


def shown(url: str) -> str:
    parsed = urlparse(url)
    return f"{parsed.scheme}://{parsed.hostname}" + (f":{parsed.port}" if parsed.port else "")


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
    m = result.measurements
    icon = _EMOJI.get(result.outcome, ":x:")
    head = (f"{icon} DR drill *{result.drill}* ({result.environment}): "
            f"*{result.outcome.value.upper()}*")
    figures = (f"recovery {format_duration(m.recovery_time)} (RTO "
               f"{format_duration(result.objectives.get('rto'))}), data-loss window "
               f"{format_duration(m.data_loss_window)} (RPO "
               f"{format_duration(result.objectives.get('rpo'))}), lost writes "
               f"{m.lost_writes}") if m else (result.message or "no measurements")
    return {"text": f"{head}\n{figures}",
            "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": head}},
                       {"type": "section", "text": {"type": "mrkdwn", "text": figures}},
                       {"type": "context", "elements": [{"type": "mrkdwn", "text":
                        f"run `{result.run_id}` · {result.trigger.value} · "
                        f"{result.topology.value}/{result.scenario.value}"}]}]}


@dataclass(frozen=True)
class Target:
    url: str
    kind: str  # "json" or "slack"


def targets_from_env() -> list[Target]:
    found = []
    for variable, kind in (("DALP_DR_WEBHOOK_URL", "json"),
                           ("DALP_DR_SLACK_WEBHOOK_URL", "slack")):
        for url in os.environ.get(variable, "").split(","):
            if url.strip():
                found.append(Target(url.strip(), kind))
    return found


def send(target: Target, result: RunResult, *, sleep: Callable[[float], None] = time.sleep,
         report: Callable[[str], None] = lambda _m: None) -> bool:
    """POST one notification with retries; True when delivered. Never raises."""
    payload = slack_payload(result) if target.kind == "slack" else generic_payload(result)
    body = json.dumps(payload, default=str).encode()
    delay = 1.0
    problem = ""
    for attempt in range(1, ATTEMPTS + 1):
        request = urllib.request.Request(target.url, data=body, method="POST", headers={
            "Content-Type": "application/json", "User-Agent": "dalp-dr"})
        try:
            with urllib.request.urlopen(request, timeout=TIMEOUT) as reply:
                if 200 <= reply.status < 300:
                    return True
                problem = f"HTTP {reply.status}"
        except urllib.error.HTTPError as exc:
            problem = f"HTTP {exc.code}"
        except (urllib.error.URLError, OSError, ValueError) as exc:
            problem = type(getattr(exc, "reason", exc)).__name__
        if attempt < ATTEMPTS:
            sleep(delay)
            delay *= 2
    report(f"notification to {shown(target.url)} ({target.kind}) not delivered after "
           f"{ATTEMPTS} attempts: {problem}; the drill record is not affected")
    return False


def notify(result: RunResult, report: Callable[[str], None],
           targets: list[Target] | None = None) -> int:
    """Send to every configured target; the number delivered."""
    return sum(send(t, result, report=report) for t in
               (targets if targets is not None else targets_from_env()))
