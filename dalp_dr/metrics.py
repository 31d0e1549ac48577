"""Prometheus metrics, computed from the history (prometheus-client).

The values come from the store at every collection, so a restarted scheduler (or a CLI run
writing a node_exporter textfile) shows the same figures as before: nothing lives only in
memory. Per drill, labelled ``drill``, ``topology``, ``environment``:

* ``dalp_dr_last_run_timestamp_seconds`` / ``dalp_dr_last_success_timestamp_seconds``
* ``dalp_dr_last_recovery_seconds``, ``dalp_dr_last_data_loss_window_seconds``,
  ``dalp_dr_last_lost_writes`` (of the latest run with measurements)
* ``dalp_dr_objective_status{objective, status="met"|"missed"|"unknown"}``: the verdict of
  the latest run that ran (not a missed schedule, refusal or running run), one series per
  status, 1 for the run's status and 0 for the others; ``unknown`` when that run could not
  judge the objective (it failed, or its evidence is insufficient), so an alert on missed
  objectives does not fire for a drill that measured nothing, and one on unknown can
* ``dalp_dr_objective_met{objective="rto"|"rpo"|"split_brain"}``: kept for existing alerts and
  dashboards; 1 when the latest *measured* run met the objective, 0 when it missed it **or**
  could not judge it (use ``dalp_dr_objective_status`` to tell those apart)
* ``dalp_dr_runs_total{outcome=...}``, ``dalp_dr_missed_schedules_total``
* ``dalp_dr_pass_rate``: passed runs / runs that ran; missed schedules, refusals and running
  runs are not runs that ran and are not counted (they are in
  ``dalp_dr_missed_schedules_total`` and ``dalp_dr_runs_total``); absent until a run ran
* ``dalp_dr_interrupted_runs``: runs recorded running whose orchestrator is gone (nobody
  holds their environment's drill lock for them: ``dalp_dr.locks.running_runs``), until
  crash recovery records them; 0 for every drill in the history, so an alert on ``> 0``
  names the environment that may be left failed over
* ``dalp_dr_steady_state_not_restored``: 1 when the drill's latest run (one that touched
  the environment: not missed, refused or running) recorded its return to steady state
  as failed (``steady_state_restored`` false), else 0

and for hot-cold drills (their backups and WAL in object storage, read at most once a
minute): ``dalp_dr_backup_age_seconds``, ``dalp_dr_wal_archive_age_seconds``,
``dalp_dr_backup_rpo_seconds`` (the drill's RPO, to alert on age > RPO) and
``dalp_dr_backup_status_up`` (0 when the archive could not be read).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector, CollectorRegistry

from dalp_dr.adapters.s3 import BackupStatus
from dalp_dr.checkpoints import Checkpointer
from dalp_dr.history.base import HistoryStore, RunSummary, Seal
from dalp_dr.history.views import audit, list_checked
from dalp_dr.locks import RunState, running_runs
from dalp_dr.results import Outcome, RunResult, Status
from dalp_dr.spec import LoadedDrill, Topology

LABELS = ["drill", "topology", "environment"]
_NOT_RUNS = (Outcome.RUNNING, Outcome.MISSED_SCHEDULE, Outcome.REFUSED)


class BackupCollector(Collector):
    """Backup and WAL archive ages of the hot-cold drills' inventories (cached 60 s)."""

    def __init__(self, drills: list[LoadedDrill], ttl: float = 60.0) -> None:
        self._drills = [d for d in drills if d.spec.topology is Topology.HOT_COLD]
        self._ttl = ttl
        self._cache: tuple[float, list[tuple[LoadedDrill, BackupStatus | None]]] | None = None

    def _statuses(self) -> list[tuple[LoadedDrill, BackupStatus | None]]:
        from dalp_dr.adapters.s3 import S3Archive
        from dalp_dr.errors import DalpDrError
        from dalp_dr.inventory import Inventory

        if self._cache is not None and time.monotonic() - self._cache[0] < self._ttl:
            return self._cache[1]
        found: list[tuple[LoadedDrill, BackupStatus | None]] = []
        for drill in self._drills:
            try:
                status = S3Archive.from_inventory(Inventory(drill.inventory)).status(
                    drill.spec.objectives.rpo)
            except DalpDrError:
                status = None
            found.append((drill, status))
        self._cache = (time.monotonic(), found)
        return found

    def collect(self) -> Iterator[GaugeMetricFamily]:
        labels = ["drill", "environment"]
        age = GaugeMetricFamily("dalp_dr_backup_age_seconds", "age of the newest base backup",
                                labels=labels)
        wal = GaugeMetricFamily("dalp_dr_wal_archive_age_seconds",
                                "age of the newest archived WAL segment", labels=labels)
        rpo = GaugeMetricFamily("dalp_dr_backup_rpo_seconds", "the drill's RPO",
                                labels=labels)
        up = GaugeMetricFamily("dalp_dr_backup_status_up",
                               "1 when the backup archive could be read", labels=labels)
        for drill, status in self._statuses():
            key = [drill.spec.name, drill.spec.environment]
            rpo.add_metric(key, drill.spec.objectives.rpo.total_seconds())
            up.add_metric(key, 0.0 if status is None else 1.0)
            if status is not None and status.newest_backup_age_s is not None:
                age.add_metric(key, status.newest_backup_age_s)
            if status is not None and status.newest_wal_age_s is not None:
                wal.add_metric(key, status.newest_wal_age_s)
        yield from (age, wal, rpo, up)


_LATEST = "of the latest measured run"


def _gauge(name: str, documentation: str, *labels: str) -> GaugeMetricFamily:
    """``dalp_dr_<name>``, labelled by drill, topology and environment (and ``labels``)."""
    return GaugeMetricFamily(f"dalp_dr_{name}", documentation, labels=[*LABELS, *labels])


class HistoryCollector(Collector):
    """Collects from a store opened per collection (``open_store`` callable)."""

    def __init__(self, open_store: Callable[[], HistoryStore], limit: int = 100_000) -> None:
        self._open = open_store
        self._limit = limit

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        store = self._open()
        try:
            # newest first, as sealed: a row that no longer matches its seal is counted as
            # tampered and feeds no figure
            checked = list_checked(store, limit=self._limit)
            rows = [r for r in checked if r.seal is not Seal.TAMPERED]  # sealed values
            observer = store.observer
            report = audit(store, observer if isinstance(observer, Checkpointer) else None,
                           check_evidence=False)
            records: dict[str, RunResult] = {}

            def record(run_id: str) -> RunResult:
                if run_id not in records:
                    records[run_id] = store.get(run_id)
                return records[run_id]

            latest_measured: dict[tuple[str, str, str], RunResult] = {}
            latest_ran: dict[tuple[str, str, str], RunResult] = {}
            for row in rows:
                key = (row.drill, row.topology, row.environment)
                if key not in latest_measured and row.recovery_time is not None:
                    latest_measured[key] = record(row.run_id)
                if key not in latest_ran and row.outcome not in _NOT_RUNS:
                    latest_ran[key] = record(row.run_id)
            interrupted_counts = {key: 0 for key in (_key(row) for row in rows)}
            for running in running_runs(store):
                if running.state is RunState.INTERRUPTED:
                    key = _key(running.run)
                    interrupted_counts[key] = interrupted_counts.get(key, 0) + 1
        finally:
            store.close()
        tampered = GaugeMetricFamily("dalp_dr_history_tampered_records",
                                     "runs whose stored row or record no longer matches its "
                                     "seal (an edited row counts with its sealed values, an "
                                     "edited record is left out)")
        tampered.add_metric([], float(sum(1 for r in checked if r.seal in (
            Seal.TAMPERED, Seal.ROW_EDITED))))
        verified = GaugeMetricFamily("dalp_dr_history_verified",
                                     "1 when the whole history verifies (chain, records, "
                                     "signed checkpoints; evidence files not hashed)")
        verified.add_metric([], 0.0 if report.problems else 1.0)
        last_run = _gauge("last_run_timestamp_seconds", "start of the latest drill run")
        last_ok = _gauge("last_success_timestamp_seconds",
                         "start of the latest run that met every objective")
        recovery = _gauge("last_recovery_seconds", f"measured recovery time {_LATEST}")
        window = _gauge("last_data_loss_window_seconds", f"measured data-loss window {_LATEST}")
        lost = _gauge("last_lost_writes", f"acknowledged writes lost {_LATEST}")
        met = _gauge("objective_met", "1 when the latest measured run met the objective, 0 "
                     "when it missed it or could not judge it (dalp_dr_objective_status tells "
                     "them apart)", "objective")
        objective_status = _gauge(
            "objective_status", "the latest run that ran: 1 for its verdict on the objective "
            "(met, missed, or unknown when it could not judge it), 0 for the other statuses",
            "objective", "status")
        pass_rate = _gauge("pass_rate", "share of the runs that ran which passed; missed "
                           "schedules, refusals and running runs are excluded (see "
                           "dalp_dr_missed_schedules_total)")
        runs = CounterMetricFamily("dalp_dr_runs", "drill runs by outcome",
                                   labels=[*LABELS, "outcome"])
        missed = CounterMetricFamily("dalp_dr_missed_schedules",
                                     "scheduled runs that did not happen", labels=LABELS)
        seen_run: set[tuple[str, str, str]] = set()
        seen_ok: set[tuple[str, str, str]] = set()
        counts: dict[tuple[str, str, str, str], int] = {}
        missed_counts: dict[tuple[str, str, str], int] = {}
        for row in rows:
            key = (row.drill, row.topology, row.environment)
            counts[(*key, row.outcome.value)] = counts.get((*key, row.outcome.value), 0) + 1
            if row.outcome is Outcome.MISSED_SCHEDULE:
                missed_counts[key] = missed_counts.get(key, 0) + 1
            if row.outcome in _NOT_RUNS:
                continue
            if key not in seen_run:
                seen_run.add(key)
                last_run.add_metric(list(key), row.started_at.timestamp())
            if row.outcome is Outcome.PASSED and key not in seen_ok:
                seen_ok.add(key)
                last_ok.add_metric(list(key), row.started_at.timestamp())
        for key, result in latest_measured.items():
            m = result.measurements
            if m is None:
                continue
            if m.recovery_time is not None:
                recovery.add_metric(list(key), m.recovery_time)
            if m.data_loss_window is not None:
                window.add_metric(list(key), m.data_loss_window)
            if m.lost_writes is not None:
                lost.add_metric(list(key), m.lost_writes)
            for verdict in result.verdicts:
                if verdict.population in (None, result.verdicts[0].population):
                    met.add_metric([*key, verdict.objective],
                                   1.0 if verdict.status is Status.MET else 0.0)
        for key, result in sorted(latest_ran.items()):
            for objective, verdict_status in _objective_statuses(result).items():
                for value in Status:
                    objective_status.add_metric([*key, objective, value.value],
                                                1.0 if value is verdict_status else 0.0)
        ran: dict[tuple[str, str, str], list[int]] = {}
        for (drill, topology, environment, outcome), n in counts.items():
            if Outcome(outcome) in _NOT_RUNS:
                continue
            tally = ran.setdefault((drill, topology, environment), [0, 0])
            tally[1] += n
            if outcome == Outcome.PASSED.value:
                tally[0] += n
        for key, (passed, total) in sorted(ran.items()):
            pass_rate.add_metric(list(key), passed / total)
        for (drill, topology, environment, outcome), n in sorted(counts.items()):
            runs.add_metric([drill, topology, environment, outcome], n)
        for key, n in sorted(missed_counts.items()):
            missed.add_metric(list(key), n)
        interrupted = _gauge("interrupted_runs", "runs recorded running whose orchestrator is "
                             "gone: the environment may be left failed over until crash "
                             "recovery records them")
        for key, n in sorted(interrupted_counts.items()):
            interrupted.add_metric(list(key), n)
        not_restored = _gauge("steady_state_not_restored", "1 when the latest run's return to "
                              "steady state failed: the environment needs attention")
        for key, result in sorted(latest_ran.items()):
            not_restored.add_metric(list(key), 1.0 if result.steady_state_restored is False
                                    else 0.0)
        yield from (last_run, last_ok, recovery, window, lost, met, objective_status, runs,
                    pass_rate, missed, tampered, verified, interrupted, not_restored)


def _objective_statuses(result: RunResult) -> dict[str, Status]:
    """Each objective of a run (declared or judged) and its verdict, of the first judged
    population; unknown for an objective the run did not judge."""
    judged = result.verdicts[0].population if result.verdicts else None
    found = dict.fromkeys(result.objectives, Status.UNKNOWN)
    for verdict in result.verdicts:
        if verdict.population in (None, judged):
            found[verdict.objective] = verdict.status
    return found


def _key(run: RunSummary) -> tuple[str, str, str]:
    return (run.drill, run.topology, run.environment)


def registry_for(open_store: Callable[[], HistoryStore],
                 drills: list[LoadedDrill] | None = None) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(HistoryCollector(open_store))
    if drills:
        registry.register(BackupCollector(drills))
    return registry


def write_textfile(path: Path, open_store: Callable[[], HistoryStore],
                   drills: list[LoadedDrill] | None = None) -> None:
    """A node_exporter textfile (written to a temp file, then renamed)."""
    from prometheus_client import write_to_textfile

    path.parent.mkdir(parents=True, exist_ok=True)
    write_to_textfile(str(path), registry_for(open_store, drills))


def serve(address: str, open_store: Callable[[], HistoryStore],
          drills: list[LoadedDrill] | None = None) -> object:
    """Serve /metrics on ``host:port`` in a daemon thread; returns the server."""
    from prometheus_client import start_http_server

    host, _, port = address.rpartition(":")
    server, _thread = start_http_server(int(port), addr=host or "127.0.0.1",
                                        registry=registry_for(open_store, drills))
    return server
