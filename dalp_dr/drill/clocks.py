"""The targets' clocks during a run (``dalp_dr/target_clocks.py``): read at preflight while
the baseline settles, and again after verify while the drill observes, each in a thread of
its own so they cost the run no time; the fault instant inject reports mapped through the
reporting host's offset."""

from __future__ import annotations

import threading
from datetime import datetime

from dalp_dr import target_clocks
from dalp_dr.adapters.base import PlaybookResult
from dalp_dr.clock import wall_ahead
from dalp_dr.config import project_dir
from dalp_dr.drill.context import RunContext
from dalp_dr.measure import fault_instant, reported_instant
from dalp_dr.results import ClockOffset


class ClockReads:
    """One reading of every target's clock, running in the background."""

    def __init__(self, ctx: RunContext, when: str) -> None:
        self._ctx = ctx
        self._when = when
        self._offsets: list[ClockOffset] = []
        self._problem: str | None = None
        self._thread = threading.Thread(target=self._run, name=f"dalp-dr-clock-{when}",
                                        daemon=True)
        self._thread.start()

    def _run(self) -> None:
        ctx = self._ctx
        book = target_clocks.playbook(project_dir())
        if book is None:
            self._problem = f"no {target_clocks.PLAYBOOK} to read the targets' clocks with"
            return
        reads = target_clocks.Reads(wall_ahead=lambda: wall_ahead(ctx.clock))
        phase = f"clock-{self._when.replace(' ', '-')}"

        def seen(event: dict[str, object]) -> None:
            ctx.journal.ansible_event(phase, event)
            reads.event(event)

        try:
            result = ctx.runner.run(book, ctx.drill.inventory,
                                    extravars={"dalp_run_id": ctx.run_id, "dalp_phase": phase},
                                    timeout=target_clocks.TIMEOUT, on_event=seen,
                                    cancel=ctx.state.cancel.is_set)
        except Exception as exc:  # a clock that cannot be read: its offset stays unknown
            self._problem = f"{type(exc).__name__}: {exc}"[:300]
            return
        if not result.ok:
            self._problem = result.describe_failure()
        self._offsets = reads.offsets(self._when)

    def join(self) -> list[ClockOffset]:
        """The offsets read (none when the reading failed; the run says so)."""
        self._thread.join(timeout=target_clocks.TIMEOUT + 10)
        if self._thread.is_alive():  # its playbook outlived its timeout: never wait longer
            self._problem = "the clock playbook did not end in time; offsets unknown"
            self._ctx.progress(f"clocks ({self._when}): {self._problem}")
            return []
        if self._problem is not None:
            self._ctx.progress(f"clocks ({self._when}): {self._problem}")
        return list(self._offsets)


def _known(ctx: RunContext) -> list[ClockOffset]:
    """The targets' offsets read so far, and the controller's own wall clock against the
    run's timeline now (an instant a playbook stamped on the controller: a partition's)."""
    return [*ctx.state.clock_offsets,
            ClockOffset(host=target_clocks.CONTROLLER, when="now",
                        offset=round(wall_ahead(ctx.clock), 6), uncertainty=0.0)]


def locate_fault(ctx: RunContext, inject: PlaybookResult) -> tuple[datetime | None, str | None]:
    """The fault instant on the run's timeline and where it came from: the reported
    instant through the reporting host's clock offset when one is known, else as before
    (``measure.fault_instant``: within the playbook's window, or its start)."""
    state = ctx.state
    data = inject.artifact_data
    mapped = None
    if data.get("dalp_fault_instant") is not None:
        mapped = target_clocks.map_instant(
            data.get("dalp_fault_instant"), data.get("dalp_fault_host"), _known(ctx),
            earliest=inject.started_at, latest=inject.ended_at,
            interval=ctx.drill.spec.workload.heartbeat_interval.total_seconds())
    if mapped is None:
        at, source = fault_instant(inject)
        if at is not None and data.get("dalp_fault_instant") is not None:
            state.clock_note = "the reporting host's clock offset is unknown: its instant is " \
                               "taken as it reported it, if within the playbook's run +/- 1 s"
        return at, source
    state.clock_note = mapped.note
    state.fault_clock_offset = mapped.offset
    return mapped.at, mapped.source


def reported_so_far(ctx: RunContext, data: dict[str, object], started: datetime
                    ) -> datetime | None:
    """A fault instant inject published while it still runs (a held recover's release),
    mapped as ``locate_fault`` does, within inject's window so far; None if implausible."""
    now = ctx.clock.now()
    mapped = target_clocks.map_instant(
        data.get("dalp_fault_instant"), data.get("dalp_fault_host"), _known(ctx),
        earliest=started, latest=now,
        interval=ctx.drill.spec.workload.heartbeat_interval.total_seconds())
    if mapped is not None:
        return mapped.at if mapped.fits else None
    return reported_instant(data.get("dalp_fault_instant"), started, now)


def settle(ctx: RunContext) -> None:
    """After the second reading: the fault instant mapped again with both (a clock that
    moved during the run widens its uncertainty, and may move the instant earlier)."""
    state = ctx.state
    if state.inject_result is None or state.fault_at is None:
        return
    at, source = locate_fault(ctx, state.inject_result)
    if at is not None and (at, source) != (state.fault_at, state.fault_source):
        state.fault_at, state.fault_source = at, source
