"""The recovery timeline: the fault, what the platform did, what the client saw, in order.

Phase playbooks contribute the platform's side by publishing ``dalp_timeline`` with
``set_stats``: a list of ``{"event": name, "at": epoch seconds or ISO 8601, "detail": text,
"source": who saw it}`` (e.g. the cloud-native observer's "leader key gone", "new leader
elected", "new primary promoted", "cluster whole"). The engine adds what only it knows:
the fault instant, the first client write that failed after it, the first one acknowledged
again and when verify passed. Entries a playbook got wrong (no name, no parsable instant)
are left out, never guessed.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from dalp_dr.adapters.dns import Resolution
from dalp_dr.results import (
    ConvergeOutcome,
    HeartbeatSample,
    PhaseRecord,
    PhaseStatus,
    TimelineEvent,
)
from dalp_dr.spec import PhaseName

REPORT_KEY = "dalp_timeline"
HELD_SINCE = "held_since"
"""a held phase's report: when its playbook was started, ahead of the fault"""


def _instant(value: Any) -> datetime | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        try:
            return datetime.fromtimestamp(float(value), UTC)
        except (OverflowError, OSError, ValueError):
            return None
    if isinstance(value, str):
        try:
            return _instant(float(value))
        except ValueError:
            pass
        try:
            at = datetime.fromisoformat(value)
        except ValueError:
            return None
        return at if at.tzinfo else at.replace(tzinfo=UTC)
    return None


def reported_events(phases: Iterable[PhaseRecord]) -> list[TimelineEvent]:
    """The ``dalp_timeline`` entries phase playbooks published, parsed and de-duplicated."""
    out: dict[tuple[str, datetime], TimelineEvent] = {}
    for phase in phases:
        entries = phase.report.get(REPORT_KEY)
        if not isinstance(entries, list):
            continue
        for entry in entries:
            if not isinstance(entry, dict) or not str(entry.get("event") or "").strip():
                continue
            at = _instant(entry.get("at"))
            if at is None:
                continue
            name = str(entry["event"]).strip()
            source = f"{phase.phase.value} playbook"
            if entry.get("source"):
                source += f" ({entry['source']})"
            detail = str(entry["detail"]) if entry.get("detail") is not None else None
            out.setdefault((name, at), TimelineEvent(name=name, at=at, source=source,
                                                     detail=detail))
    return list(out.values())


ClientView = tuple[Sequence[HeartbeatSample], datetime | None]
"""one population's heartbeat samples and the instant it recovered (None: not seen)"""


def build(*, fault_at: datetime | None, fault_source: str | None,
          clients: Mapping[str, ClientView], verified_at: datetime | None,
          phases: Iterable[PhaseRecord], labelled: bool = False,
          extra: Iterable[TimelineEvent] = ()) -> list[TimelineEvent]:
    """``labelled``: prefix the client events with the population's name (several);
    ``extra``: events the engine found otherwise (converge probes, name resolution)."""
    phases = list(phases)
    events = reported_events(phases) + list(extra)
    for record in phases:
        if record.phase is PhaseName.RECOVER and record.status is not PhaseStatus.SKIPPED:
            held = record.report.get(HELD_SINCE)
            events.append(TimelineEvent(
                name="recover started", at=record.started_at, source="engine",
                detail=(f"released at the fault barrier (its playbook was started ahead, at "
                        f"{held})") if held else "its playbook started after inject returned"))
    if fault_at is not None:
        reported = fault_source is None or fault_source.startswith("reported")
        events.append(TimelineEvent(
            name="fault injected", at=fault_at,
            source="inject playbook" if reported else "controller",
            # how the instant was mapped (a target's clock offset), or why the controller's
            detail=None if fault_source is None
            or fault_source.startswith("reported by the inject playbook") else fault_source))
    for population, (samples, recovered_at) in clients.items():
        prefix = f"{population}: " if labelled else ""
        source = f"heartbeat ({population})" if labelled else "heartbeat"
        failed = None
        if fault_at is not None:
            failed = next((s for s in samples if s.sent_at >= fault_at and not s.acked), None)
            if failed is not None:
                events.append(TimelineEvent(name=prefix + "first client write failed",
                                            at=failed.ended_at, source=source,
                                            detail=failed.error))
        if recovered_at is not None:
            events.append(TimelineEvent(
                name=prefix + "first client write acknowledged", at=recovered_at, source=source,
                detail="recovery, as the client sees it" if failed is not None
                else "no write failed: no outage seen"))
    if verified_at is not None:
        events.append(TimelineEvent(name="verify passed", at=verified_at, source="engine"))
    return sorted(events, key=lambda e: e.at)


def converged(outcomes: Iterable[ConvergeOutcome]) -> list[TimelineEvent]:
    """Each converge probe met (or given up)."""
    return [TimelineEvent(name=f"converged: {o.name}" if o.met else f"not converged: {o.name}",
                          at=o.at, source="converge probe", detail=o.detail)
            for o in outcomes if o.at is not None]


def resolved(changes: Mapping[str, Sequence[Resolution]], *, fault_at: datetime | None,
             labelled: bool = False) -> list[TimelineEvent]:
    """The first time after the fault each population's clients got a new answer for the
    API's host name: when DNS as the route reached them."""
    events = []
    for population, seen in changes.items():
        if fault_at is None:
            continue
        # per name: the addresses it had before the fault; the first answer after it that
        # holds an address the name did not have then
        old: dict[str, set[str]] = {}
        for r in seen:
            if r.at < fault_at:
                old[r.name] = set(r.addresses)
        new = next((r for r in seen if r.at >= fault_at and r.name in old
                    and not set(r.addresses) <= old[r.name]), None)
        if new is None:
            continue
        prefix = f"{population}: " if labelled else ""
        was = f" (was {', '.join(sorted(old[new.name]))})"
        ttl = f", TTL {new.ttl}s" if new.ttl is not None else ""
        events.append(TimelineEvent(
            name=prefix + "first client resolved the new address", at=new.at,
            source=f"client resolver ({new.source})",
            detail=f"{new.name} -> {', '.join(new.addresses)}{was}{ttl}"))
    return events


def offset(event: TimelineEvent, fault_at: datetime | None) -> float | None:
    """Seconds from the fault (negative: before it)."""
    return (event.at - fault_at).total_seconds() if fault_at is not None else None
