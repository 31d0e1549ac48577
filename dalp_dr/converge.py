"""Convergence after verify: the drill file's ``converge:`` probes, each polled until its
target is met or its timeout passes (indexer caught up with the chain, no workflow stuck,
the API healthy). Each probe met is a timeline event and a figure (seconds after the fault);
the last one met ends the RTT. A probe that times out leaves the RTT unmeasured, with a
lower bound.

The probes are polled by one thread, each on its own interval and deadline; a poll's own
wait is bounded by the time left to its deadline (and POLL_WAIT_MAX), never by its interval.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from dalp_dr.adapters.base import ServiceEndpoint
from dalp_dr.checks import fault_params, meets
from dalp_dr.clock import Clock
from dalp_dr.drill_yaml import clip
from dalp_dr.errors import EndpointError
from dalp_dr.probes import NoData, Web, read_value
from dalp_dr.results import ConvergeOutcome
from dalp_dr.spec.parts import ConvergeProbe

POLL_WAIT_MAX = 30.0
"""the longest one poll may wait for its answer (seconds), whatever its interval: a slow
query on a cold restored database is still an answer"""


@dataclass
class _Polling:
    probe: ConvergeProbe
    deadline: datetime
    due: datetime
    polls: int = 0
    value: Any = None
    reference: Any = None
    detail: str = "not polled yet"
    done: ConvergeOutcome | None = None
    last: datetime | None = field(default=None)


def _judge(probe: ConvergeProbe, value: Any, reference: Any) -> tuple[bool, str]:
    if probe.near is not None:
        try:
            gap = abs(float(reference) - float(value))
        except (TypeError, ValueError):
            return False, f"cannot compare {value!r} with the reference {reference!r}"
        near = gap <= probe.near.within
        return near, (f"{value!r} is {gap:g} from the reference {reference!r} "
                      f"({'within' if near else 'more than'} {probe.near.within:g})")
    assert probe.expect is not None
    return meets(value, probe.expect)


def _poll(state: _Polling, endpoints: Mapping[str, ServiceEndpoint], web: Web,
          fault_at: datetime, wait: float) -> bool:
    probe = state.probe
    state.polls += 1
    try:
        params = fault_params(probe.sql, fault_at) if probe.sql else ()
        state.value = read_value(probe, endpoints, web, timeout=wait, params=params)
        if probe.near is not None:
            near_params = fault_params(probe.near.sql, fault_at) if probe.near.sql else ()
            state.reference = read_value(probe.near, endpoints, web, timeout=wait,
                                         params=near_params)
    except NoData as exc:
        state.value, state.detail = "no_data", str(exc)
        return False
    except (EndpointError, ValueError) as exc:
        state.detail = f"could not read: {clip(str(exc), 300)}"
        return False
    met, state.detail = _judge(probe, state.value, state.reference)
    return met


def converge(probes: list[ConvergeProbe], endpoints: Mapping[str, ServiceEndpoint],
             web: Web, *, fault_at: datetime, clock: Clock,
             pause: Callable[[float], None], cancelled: Callable[[], bool],
             on_done: Callable[[ConvergeOutcome], None]) -> list[ConvergeOutcome]:
    """Poll every probe until met or timed out (or ``cancelled``); each outcome goes to
    ``on_done`` as it is decided. ``pause`` sleeps (returning early is fine)."""
    start = clock.now()
    states = [_Polling(probe=p, deadline=start + p.timeout, due=start) for p in probes]
    while not cancelled():
        open_ = [s for s in states if s.done is None]
        if not open_:
            break
        now = clock.now()
        for state in open_:
            if now < state.due:
                continue
            left = (state.deadline - now).total_seconds()
            wait = max(0.1, min(left, POLL_WAIT_MAX))
            met = _poll(state, endpoints, web, fault_at, wait)
            now = clock.now()
            state.last = now
            if met:
                state.done = _outcome(state, True, now, fault_at)
            elif now >= state.deadline:
                state.done = _outcome(state, False, now, fault_at)
            else:
                state.due = min(now + state.probe.interval, state.deadline)
                continue
            on_done(state.done)
            if cancelled():
                break
        pending = [s.due for s in states if s.done is None]
        if pending:
            pause(max(0.0, min((min(pending) - clock.now()).total_seconds(), 1.0)))
    return [s.done if s.done is not None else _outcome(
        s, False, None, fault_at, interrupted=True) for s in states]


def _outcome(state: _Polling, met: bool, at: datetime | None, fault_at: datetime, *,
             interrupted: bool = False) -> ConvergeOutcome:
    """``at`` None: interrupted, nothing decided (no bound either way)."""
    probe = state.probe
    if interrupted:
        detail = f"interrupted before it converged (last: {state.detail})"
    elif met:
        detail = state.detail
    else:
        detail = (f"not converged within {probe.timeout.total_seconds():g}s "
                  f"(last: {state.detail})")
    return ConvergeOutcome(
        name=probe.name, met=met, at=at,
        seconds=round((at - fault_at).total_seconds(), 6) if met and at else None,
        value=None if state.value is None else clip(repr(state.value), 200),
        reference=None if state.reference is None else clip(repr(state.reference), 200),
        polls=state.polls, detail=detail)
