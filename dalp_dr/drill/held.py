"""A phase playbook started ahead of the fault and held at the fault barrier
(``dalp_dr/barrier.py``), so the measured recovery is the procedure's, not ansible-playbook's
start-up.

Only a playbook that says so is held: its first play declares ``dalp_waits_for_fault: true``
and its first task waits at the barrier when ``dalp_fault_barrier`` is given::

    - name: "Recover: wait for the fault (held from before inject; the engine releases it)"
      ansible.builtin.set_fact:
        dalp_fault: "{{ lookup('ansible.builtin.pipe', dalp_fault_barrier) | from_json }}"
      when: dalp_fault_barrier is defined

The engine starts it before inject with the extra vars known then and releases it at the
inject event that publishes ``dalp_fault_instant`` with set_stats (inject's playbook is still
ending then), or once inject has returned; it hands over the fault instant and the facts
inject published, as ``dalp_fault``. When the drill stops before a fault (inject failed, an
interrupt) the playbook is abandoned: its wait fails and it ends having done nothing. The
phase's record starts at the release; its report says since when the playbook was held.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml

from dalp_dr.adapters.base import PlaybookResult
from dalp_dr.barrier import FaultBarrier
from dalp_dr.drill import clocks, steps
from dalp_dr.drill.context import RunContext
from dalp_dr.journal import EventKind
from dalp_dr.spec import PhaseName

WAITS_FOR_FAULT = "dalp_waits_for_fault"
BARRIER_VAR = "dalp_fault_barrier"
ABANDON_JOIN_SECONDS = 30.0
"""how long an abandoned playbook gets to end by itself before it is canceled"""


def waits_for_fault(playbook: Path) -> bool:
    """The playbook's first play declares ``dalp_waits_for_fault: true``."""
    try:
        document = yaml.safe_load(playbook.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        return False
    if not isinstance(document, list) or not document or not isinstance(document[0], dict):
        return False
    variables = document[0].get("vars")
    return isinstance(variables, dict) and variables.get(WAITS_FOR_FAULT) is True


class HeldPhase:
    """One phase playbook running ahead, held until ``release`` or ``abandon``."""

    def __init__(self, ctx: RunContext, phase: PhaseName, *, wait_seconds: float) -> None:
        self._ctx, self._phase = ctx, phase
        self._barrier = FaultBarrier()
        self._abandoned = threading.Event()
        self._lock = threading.Lock()
        self._released_at: datetime | None = None
        self._recorded = False
        self._result: PlaybookResult | None = None
        self.held_at: datetime = ctx.clock.now()
        ctx.journal.record(EventKind.PHASE_HELD, phase=phase.value,
                           wait_seconds=wait_seconds)
        # what the run knows now (the facts inject publishes come with the release)
        extravars = {**steps.extravars_now(ctx, phase),
                     BARRIER_VAR: self._barrier.command(wait_seconds)}
        self._thread = threading.Thread(
            target=self._run, args=(extravars, wait_seconds),
            name=f"dalp-dr-held-{phase.value}", daemon=True)
        self._thread.start()

    def _run(self, extravars: dict[str, Any], wait_seconds: float) -> None:
        state = self._ctx.state
        self._result = steps.run_playbook(
            self._ctx, self._phase,
            lambda: self._abandoned.is_set() or state.cancel.is_set(),
            extravars=extravars, extra_timeout=wait_seconds)

    @property
    def released(self) -> bool:
        with self._lock:
            return self._released_at is not None

    def release(self, facts: dict[str, Any]) -> None:
        """Let the playbook go on with ``facts`` (once; later calls do nothing). Called as
        soon as inject reports the fault, while inject's playbook is still ending."""
        with self._lock:
            if self._released_at is not None:
                return
            self._released_at = self._ctx.clock.now()
            self._barrier.release(facts)
        steps.begin(self._ctx, self._phase)  # the phase starts now, even while inject ends

    def watch_inject(self, started: datetime) -> Callable[[dict[str, Any]], None]:
        """An inject event sink: releases at the event that publishes a plausible
        ``dalp_fault_instant`` (a number within inject's window so far), with what that
        event published. The engine still takes the fault instant from inject's result."""
        def watch(event: dict[str, Any]) -> None:
            if event.get("event") != "runner_on_ok" or self.released:
                return
            res = (event.get("event_data") or {}).get("res") or {}
            data = (res.get("ansible_stats") or {}).get("data") if isinstance(res, dict) \
                else None
            if not isinstance(data, dict) or "dalp_fault_instant" not in data:
                return
            at = clocks.reported_so_far(self._ctx, data, started)
            if at is not None:
                self.release({**self._ctx.state.facts, **steps.handed_on(data),
                              "dalp_fault_instant": at.timestamp()})
        return watch

    def run(self, facts: dict[str, Any]) -> PlaybookResult:
        """Release the playbook (unless inject's report did already) and record the phase,
        as ``run_phase``: it starts at the release."""
        self.release(facts)
        with self._lock:
            started = self._released_at
            self._recorded = True
        assert started is not None
        self._thread.join()
        self._barrier.close()
        assert self._result is not None
        return steps.finish(self._ctx, self._phase, started, self._result,
                            held_since=self.held_at)

    def abandon(self, reason: str) -> None:
        """The drill does not go on to this phase (inject failed or was interrupted; or the
        phase ran already): make sure the playbook is over before anything else runs. Held:
        it ends having done nothing. Released early but not to be recorded (inject failed
        after reporting its fault): it is stopped, and steady state puts things right."""
        with self._lock:
            released, recorded = self._released_at is not None, self._recorded
        if not recorded:
            self._ctx.journal.record(EventKind.PHASE_ABANDONED, phase=self._phase.value,
                                     reason=reason, released=released)
            if not released:
                self._barrier.abandon(reason)
                self._thread.join(ABANDON_JOIN_SECONDS)
            self._abandoned.set()  # the runner's cancel check: stop the process
            self._thread.join()
        self._barrier.close()
