"""Run a drill: the one use case behind ``dalp-dr drill run`` and the scheduler.

``run_drill(request)`` owns the whole run: it proves the target answers (nothing is written
before), opens the history store, recovers runs of the same environment whose orchestrator
died, turns SIGINT/SIGTERM into a cancel (a second one stops at once), runs the engine,
writes the metrics textfile and sends the webhooks. Callers build the request and render the
report; they choose exit codes.

With ``evidence`` (DALP_DR_EVIDENCE) the bucket is checked before anything is written, and
the run's evidence directory is copied there once the run ended (``dalp_dr.evidence_store``):
a copy that fails is warned about and leaves ``RunReport.evidence_url`` None; the local
evidence and the outcome stay as they are.

Raises (nothing recorded unless said): TargetUnreachable / InventoryError (prepare, or an
evidence bucket that cannot be used), GuardrailRefused (recorded as ``refused``),
EnvironmentBusy (another run holds the environment, still after ``lock_wait``),
Interrupted (a second interrupt: steady state may not be restored; or an interrupt while
waiting for the environment: nothing started).
"""

from __future__ import annotations

import contextlib
import dataclasses
import signal
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from dalp_dr import metrics
from dalp_dr.adapters.base import PlaybookRunner
from dalp_dr.adapters.postgres import PostgresEndpoint
from dalp_dr.cancel import CancelToken
from dalp_dr.config import Evidence
from dalp_dr.drill.context import PreparedDrill, Progress
from dalp_dr.drill.engine import DrillEngine
from dalp_dr.drill.prepare import EndpointFactory
from dalp_dr.errors import (
    EnvironmentBusy,
    EnvironmentNeedsRecovery,
    HintKey,
    Interrupted,
    ObjectStoreError,
    ResultNotRecorded,
    StoreError,
    words,
)
from dalp_dr.history import HistoryStore
from dalp_dr.journal import Observer
from dalp_dr.locks import DEFAULT_LOCK_TTL
from dalp_dr.notify import Target, notify
from dalp_dr.recovery import Recovery, recover, recover_all
from dalp_dr.results import RunResult, Trigger
from dalp_dr.spec import LoadedDrill

if TYPE_CHECKING:
    from dalp_dr.evidence_store import EvidenceStore


@dataclass(frozen=True)
class RunRequest:
    drill: LoadedDrill
    results_dir: Path
    open_store: Callable[[], HistoryStore]
    """the history store the run is recorded in (opened for the run, closed after)"""
    lock_ttl: float = DEFAULT_LOCK_TTL
    lock_wait: float = 0.0
    """seconds to wait for the environment's lock while another run holds it (a deadline,
    tried every half second, a cancel ends it at once); 0: EnvironmentBusy at once"""
    evidence: Evidence | None = None
    """the bucket the run's evidence is shipped to (DALP_DR_EVIDENCE); None: local only"""
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
    endpoint_factory: EndpointFactory | None = None
    """how the drill's endpoints are reached; default: PostgreSQL (a seam for tests)"""


@dataclass(frozen=True)
class RunReport:
    result: RunResult
    recorded: bool
    """False: the store did not take the result; ``problem`` says where it is kept"""
    problem: str | None = None
    unreachable_hosts: tuple[str, ...] = ()
    """preflight could not reach these hosts: the drill proved nothing about them"""
    evidence_url: str | None = None
    """``s3://bucket/prefix/<environment>/<run_id>/``: where the evidence was copied, set
    only once its manifest.json was written (None: not configured, or the copy failed)"""
    evidence_problem: str | None = None
    """why the copy to DALP_DR_EVIDENCE failed (the local evidence is intact)"""


def run_drill(request: RunRequest) -> RunReport:
    progress = request.progress or (lambda _message: None)
    warn = request.warn or progress
    runner = _runner(request.runner)
    drill = request.drill
    engine = DrillEngine(runner=runner, results_dir=request.results_dir, progress=progress,
                         lock_ttl=request.lock_ttl, observer=request.observer,
                         endpoint_factory=request.endpoint_factory or PostgresEndpoint,
                         lock_wait=request.lock_wait)
    prepared = engine.prepare(drill)  # nothing is written before the target answers
    shipper = _evidence_store(request.evidence)  # nor before the evidence bucket answers
    report = _run(request, engine, prepared, runner, progress)
    if report.recorded:  # told first: a slow or interrupted copy never holds them back
        _metrics_textfile(request, warn)
        notify(report.result, report=warn, targets=None if request.notify_targets is None
               else list(request.notify_targets))
    if shipper is not None:
        report = _ship(shipper, report, warn, progress)
    return report


def _run(request: RunRequest, engine: DrillEngine, prepared: PreparedDrill,
         runner: PlaybookRunner, progress: Progress) -> RunReport:
    """Recover dead runs of the environment, then run the drill, recorded."""
    drill = request.drill
    deadline = time.monotonic() + request.lock_wait
    wait: float | None = None  # the request's whole wait; after a recovery, what is left
    with contextlib.closing(request.open_store()) as store:
        # runs whose orchestrator died: put their environment back first
        recover_all(store, runner, progress=progress, lock_ttl=request.lock_ttl,
                    environment=drill.spec.environment)
        with _cancel_on_signals(request.cancel, progress) as token:
            while True:
                try:
                    done = engine.execute(prepared, store=store, trigger=request.trigger,
                                          operator=request.operator, cancel=token,
                                          planned_at=request.planned_at,
                                          confirm=request.confirm,
                                          lock_wait=wait)
                    break
                except ResultNotRecorded as exc:
                    return RunReport(result=exc.result, recorded=False, problem=str(exc))
                except EnvironmentNeedsRecovery as exc:
                    # the holder we waited for died mid-drill: its environment put back
                    # first (never a drill on top of its fault), then the lock again
                    progress(str(exc))
                    recovered = {r.run_id for r in recover_all(
                        store, runner, progress=progress, lock_ttl=request.lock_ttl,
                        environment=drill.spec.environment)}
                    if not set(exc.run_ids) <= recovered:
                        raise EnvironmentBusy(
                            f"{exc}; not all could be recovered: "
                            + words(HintKey.DRILL_RECOVER, run_id=", ".join(
                                sorted(set(exc.run_ids) - recovered))),
                            holder=None) from None
                    wait = max(deadline - time.monotonic(), 0.0)
    return RunReport(result=done.result, recorded=True,
                     unreachable_hosts=done.unreachable_hosts)


def _evidence_store(target: Evidence | None) -> EvidenceStore | None:
    """The evidence bucket, checked usable (TargetUnreachable otherwise); None when off."""
    if target is None:
        return None
    from dalp_dr.evidence_store import EvidenceStore  # boto3: imported only when configured

    shipper = EvidenceStore(target)
    shipper.preflight()
    return shipper


def _ship(shipper: EvidenceStore, report: RunReport, warn: Callable[[str], None],
          progress: Progress) -> RunReport:
    """The run's evidence copied to the bucket (its manifest last); a failure is warned
    about and kept in the report, never raised: the local evidence stays."""
    result = report.result
    if not result.evidence_dir:
        return report  # a run that never started has no evidence
    local = Path(result.evidence_dir)
    try:
        shipped = shipper.ship(local, result.environment, result.run_id)
    except ObjectStoreError as exc:
        problem = f"evidence of run {result.run_id} NOT copied to {shipper.target.url} " \
                  f"(it is kept in {local}): {exc}"
        warn(problem)
        return dataclasses.replace(report, evidence_problem=problem)
    progress(f"evidence of run {result.run_id}: {len(shipped.files)} files copied to "
             f"{shipped.url} (manifest.json last)")
    return dataclasses.replace(report, evidence_url=shipped.url)


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
