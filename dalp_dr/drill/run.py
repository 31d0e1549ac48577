"""Run a drill: the one use case behind ``dalp-dr drill run`` and the scheduler.

``run_drill(request)`` owns the whole run: it proves the target answers (nothing is written
before), opens the history store, recovers runs of the same environment whose orchestrator
died, turns SIGINT/SIGTERM into a cancel (a second one stops at once), runs the engine,
writes the metrics textfile and sends the webhooks. Callers build the request and render the
report; they choose exit codes.

Raises (nothing recorded unless said): TargetUnreachable / InventoryError (prepare),
GuardrailRefused (recorded as ``refused``), EnvironmentBusy (another run holds the
environment), Interrupted (a second interrupt: steady state may not be restored).
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from dalp_dr import metrics
from dalp_dr.adapters.base import PlaybookRunner
from dalp_dr.cancel import CancelToken
from dalp_dr.drill.context import Progress
from dalp_dr.drill.engine import DrillEngine
from dalp_dr.errors import HintKey, Interrupted, ResultNotRecorded, StoreError
from dalp_dr.history import HistoryStore
from dalp_dr.journal import Observer
from dalp_dr.locks import DEFAULT_LOCK_TTL
from dalp_dr.notify import Target, notify
from dalp_dr.recovery import Recovery, recover, recover_all
from dalp_dr.results import RunResult, Trigger
from dalp_dr.spec import LoadedDrill


@dataclass(frozen=True)
class RunRequest:
    drill: LoadedDrill
    results_dir: Path
    open_store: Callable[[], HistoryStore]
    """the history store the run is recorded in (opened for the run, closed after)"""
    lock_ttl: float = DEFAULT_LOCK_TTL
    metrics_textfile: Path | None = None
    """the node exporter's textfile to rewrite after the run (DALP_DR_METRICS_TEXTFILE)"""
    trigger: Trigger = Trigger.CLI
    operator: str | None = None
    confirm: str | None = None
    """the drill's name, as a production guardrail asks for it"""
    planned_at: datetime | None = None
    """the fire time a scheduled run is for"""
    cancel: CancelToken | None = None
    """the caller's token (the scheduler cancels its runs when it stops); None: SIGINT and
    SIGTERM request the cancel, a second one stops at once"""
    progress: Progress | None = None
    warn: Callable[[str], None] | None = None
    """problems that do not change the outcome (metrics, webhooks, store warnings)"""
    observer: Observer | None = None
    runner: PlaybookRunner | None = None
    """default: ansible-runner"""
    notify_targets: tuple[Target, ...] | None = None
    """webhooks told when the run is recorded; default: as configured (dalp_dr.config)"""


@dataclass(frozen=True)
class RunReport:
    result: RunResult
    recorded: bool
    """False: the store did not take the result; ``problem`` says where it is kept"""
    problem: str | None = None
    unreachable_hosts: tuple[str, ...] = ()
    """preflight could not reach these hosts: the drill proved nothing about them"""


def run_drill(request: RunRequest) -> RunReport:
    progress = request.progress or (lambda _message: None)
    warn = request.warn or progress
    runner = _runner(request.runner)
    drill = request.drill
    engine = DrillEngine(runner=runner, results_dir=request.results_dir, progress=progress,
                         lock_ttl=request.lock_ttl, observer=request.observer)
    prepared = engine.prepare(drill)  # nothing is written before the target answers
    with contextlib.closing(request.open_store()) as store:
        # runs whose orchestrator died: put their environment back first
        recover_all(store, runner, progress=progress, lock_ttl=request.lock_ttl,
                    environment=drill.spec.environment)
        with _cancel_on_signals(request.cancel, progress) as token:
            try:
                done = engine.execute(prepared, store=store, trigger=request.trigger,
                                      operator=request.operator, cancel=token,
                                      planned_at=request.planned_at, confirm=request.confirm)
            except ResultNotRecorded as exc:
                return RunReport(result=exc.result, recorded=False, problem=str(exc))
    _metrics_textfile(request, warn)
    notify(done.result, report=warn, targets=None if request.notify_targets is None
           else list(request.notify_targets))
    return RunReport(result=done.result, recorded=True,
                     unreachable_hosts=done.unreachable_hosts)


@contextlib.contextmanager
def _cancel_on_signals(given: CancelToken | None, progress: Progress) -> Iterator[CancelToken]:
    """The caller's token, or one that SIGINT/SIGTERM set (main thread only)."""
    if given is not None or threading.current_thread() is not threading.main_thread():
        yield given or CancelToken()
        return
    token = CancelToken()

    def on_signal(signum: int, _frame: object) -> None:
        name = signal.Signals(signum).name
        if token.is_set():
            raise KeyboardInterrupt  # a second interrupt: stop waiting for anything
        token.request(name)
        progress(f"{name}: stopping the running playbook, then restoring steady state "
                 "(interrupt again to stop at once)")

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield token
    except KeyboardInterrupt:
        raise Interrupted("interrupted twice: steady state may NOT be restored",
                          hint_key=HintKey.CHECK_ENVIRONMENT) from None
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _metrics_textfile(request: RunRequest, warn: Callable[[str], None]) -> None:
    """The node exporter's textfile, when configured."""
    textfile = request.metrics_textfile
    if textfile is None:
        return
    try:
        metrics.write_textfile(textfile, request.open_store, [request.drill])
    except (OSError, StoreError) as exc:
        warn(f"metrics textfile {textfile} not written: {exc}")


def recover_run(run_id: str, *, open_store: Callable[[], HistoryStore], lock_ttl: float,
                force: bool = False, progress: Progress | None = None,
                runner: PlaybookRunner | None = None) -> Recovery:
    """Put back the environment of one run whose orchestrator died and record it aborted
    (``drill recover``; ``run_drill`` and the scheduler do it by themselves)."""
    with contextlib.closing(open_store()) as store:
        return recover(store, run_id, _runner(runner), lock_ttl=lock_ttl, force=force,
                       progress=progress or (lambda _message: None))


def _runner(given: PlaybookRunner | None) -> PlaybookRunner:
    """The caller's runner, or ansible-runner (imported only here: slow to import)."""
    if given is not None:
        return given
    from dalp_dr.adapters.ansible import AnsibleRunner

    return AnsibleRunner()
