"""One run's explicit context: the drill, its journal, its client populations and what the
phases found so far. Phases (``phases.py``) read and extend it; ``outcome.py`` turns it into
the result."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from dalp_dr.adapters.base import (
    PlaybookResult,
    PlaybookRunner,
    ServerIdentity,
    ServiceEndpoint,
)
from dalp_dr.adapters.http import HttpSettings
from dalp_dr.cancel import CancelToken, RunCancelled
from dalp_dr.clock import Clock
from dalp_dr.heartbeat import Heartbeat
from dalp_dr.inventory import Inventory
from dalp_dr.journal import Journal
from dalp_dr.probes import Web
from dalp_dr.redact import Redactor
from dalp_dr.reserve import LOCAL_DISKS, Disks, Need
from dalp_dr.results import (
    CheckOutcome,
    ClockOffset,
    ConvergeOutcome,
    Divergence,
    PhaseRecord,
)
from dalp_dr.spec import LoadedDrill

Progress = Callable[[str], None]

DEADLINE = "deadline"
"""the cancel reason of a run stopped by its recovery deadline"""


@dataclass(frozen=True)
class PreparedDrill:
    """A drill whose inventory and endpoints resolved and whose endpoints answered."""

    drill: LoadedDrill
    endpoints: dict[str, ServiceEndpoint]
    """one per client population, in the drill's order (a single 'service' by default)"""
    redactor: Redactor
    inventory: Inventory
    """read once, at prepare: the guardrails are judged on what was validated"""
    web: Web = field(default_factory=lambda: Web(HttpSettings(), {}))
    """the HTTP side of checks and converge probes (URLs resolved at prepare)"""

    @property
    def endpoint(self) -> ServiceEndpoint:
        """The first population's endpoint (the only one of a single-endpoint drill)."""
        return next(iter(self.endpoints.values()))


@dataclass
class RunState:
    """What the phases of one run found so far (mutable: the phases fill it in order)."""

    phases: list[PhaseRecord] = field(default_factory=list)
    fault_at: datetime | None = None
    fault_source: str | None = None
    fault_simulated: bool = False
    """inject reported ``dalp_fault_simulated: true``: nothing the clients use was touched
    (a restore drill of a managed database), so the figures are the restore's"""
    injected: bool = False
    """set just before inject starts: from here on, steady state always runs"""
    failed: bool = False
    preflight_failed: bool = False
    unreachable_hosts: tuple[str, ...] = ()
    """hosts the preflight playbook could not reach (the run proves nothing about them)"""
    verified_at: datetime | None = None
    baseline_identity: dict[str, ServerIdentity] = field(default_factory=dict)
    surviving: dict[str, set[int]] = field(default_factory=dict)
    clock_offsets: list[ClockOffset] = field(default_factory=list)
    """the targets' clock offsets read so far (drill/clocks.py)"""
    clock_note: str | None = None
    fault_clock_offset: float = 0.0
    """seconds the clock that stamped the fault is ahead of the run's timeline (0: unknown)"""
    inject_result: PlaybookResult | None = None
    """inject's playbook result, kept to map its fault instant again after verify"""
    divergence: Divergence | None = None
    """what the divergence probe read from the old primary's WAL (drill/probe.py)"""
    message: str | None = None
    steady_state_ok: bool | None = None
    cancel: CancelToken = field(default_factory=CancelToken)
    recovery_target: datetime | None = None
    facts: dict[str, Any] = field(default_factory=dict)
    """dalp_* facts earlier phases published with set_stats, forwarded to later phases"""
    checks: list[CheckOutcome] = field(default_factory=list)
    convergence: list[ConvergeOutcome] = field(default_factory=list)
    checks_failed_at: datetime | None = None
    """checks after convergence failed (then): the platform did not fully recover"""
    deadline: threading.Timer | None = None
    deadline_hit: str | None = None
    """why the recovery deadline aborted the drill (its RTO is then missed)"""

    def check(self) -> None:
        """Stop here when an interrupt (or the deadline) asked for it."""
        if self.cancel.is_set():
            raise RunCancelled(self.cancel.reason)

    def fail(self, message: str, *, keep_first: bool = False) -> None:
        """The drill failed (after the fault): the message says why."""
        self.failed = True
        if not (keep_first and self.message):
            self.message = message

    def refuse(self, message: str) -> None:
        """The drill stopped before any fault: it could not prove it safe to go on."""
        self.preflight_failed = True
        self.message = message

    def add_problem(self, message: str) -> None:
        """A further problem, kept beside whatever was said before."""
        self.failed = True
        self.message = (self.message + "; " if self.message else "") + message

    def stop_deadline(self) -> None:
        if self.deadline is not None:
            self.deadline.cancel()


@dataclass
class Clients:
    """The client populations of one run: endpoint and heartbeat by population name."""

    endpoints: dict[str, ServiceEndpoint]
    heartbeats: dict[str, Heartbeat]

    @property
    def several(self) -> bool:
        return len(self.endpoints) > 1

    def label(self, name: str, text: str) -> str:
        return f"{name}: {text}" if self.several else text

    def pause(self, seconds: float) -> None:
        next(iter(self.heartbeats.values())).pause(seconds)

    def stop(self) -> None:
        for beat in self.heartbeats.values():
            beat.stop()
        for endpoint in self.endpoints.values():
            close = getattr(endpoint, "close", None)  # connections a client pool keeps
            if callable(close):
                close()


@dataclass
class RunContext:
    """Everything a phase needs: the drill, where evidence goes, who runs playbooks."""

    drill: LoadedDrill
    journal: Journal
    clients: Clients
    state: RunState
    runner: PlaybookRunner
    results_dir: Path
    progress: Progress
    clock: Clock
    needs: tuple[Need, ...] = ()
    """what the run needs free, by filesystem, measured before it began (checked first in
    preflight)"""
    disks: Disks = LOCAL_DISKS
    """where free space is read"""
    web: Web = field(default_factory=lambda: Web(HttpSettings(), {}))
    """the HTTP side of checks and converge probes"""

    @property
    def run_id(self) -> str:
        return self.journal.run_id
