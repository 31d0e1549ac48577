"""Prometheus metrics, computed from the history (prometheus-client).

The values come from the store at every collection, so a restarted scheduler (or a CLI run
writing a node_exporter textfile) shows the same figures as before: nothing lives only in
memory. Per drill, labelled ``drill``, ``topology``, ``environment``:

* ``dalp_dr_last_run_timestamp_seconds`` / ``dalp_dr_last_success_timestamp_seconds``
* ``dalp_dr_last_recovery_seconds``, ``dalp_dr_last_data_loss_window_seconds``,
  ``dalp_dr_last_lost_writes`` (of the latest run with measurements)
* ``dalp_dr_objective_met{objective="rto"|"rpo"}`` (1 met, 0 otherwise, latest measured run)
* ``dalp_dr_runs_total{outcome=...}``, ``dalp_dr_missed_schedules_total``
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector, CollectorRegistry

from dalp_dr.history.base import HistoryStore
from dalp_dr.results import Outcome, RunResult, Status

LABELS = ["drill", "topology", "environment"]
_NOT_RUNS = (Outcome.RUNNING, Outcome.MISSED_SCHEDULE, Outcome.REFUSED)


class HistoryCollector(Collector):
    """Collects from a store opened per collection (``open_store`` callable)."""

    def __init__(self, open_store: Callable[[], HistoryStore], limit: int = 100_000) -> None:
        self._open = open_store
        self._limit = limit

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        store = self._open()
        try:
            rows = store.list_runs(limit=self._limit)  # newest first
            latest_measured: dict[tuple[str, str, str], RunResult] = {}
            for row in rows:
                key = (row.drill, row.topology, row.environment)
                if key not in latest_measured and row.recovery_time is not None:
                    latest_measured[key] = store.get(row.run_id)
        finally:
            store.close()
        last_run = GaugeMetricFamily("dalp_dr_last_run_timestamp_seconds",
                                     "start of the latest drill run", labels=LABELS)
        last_ok = GaugeMetricFamily("dalp_dr_last_success_timestamp_seconds",
                                    "start of the latest run that met every objective",
                                    labels=LABELS)
        recovery = GaugeMetricFamily("dalp_dr_last_recovery_seconds",
                                     "measured recovery time of the latest measured run",
                                     labels=LABELS)
        window = GaugeMetricFamily("dalp_dr_last_data_loss_window_seconds",
                                   "measured data-loss window of the latest measured run",
                                   labels=LABELS)
        lost = GaugeMetricFamily("dalp_dr_last_lost_writes",
                                 "acknowledged writes lost in the latest measured run",
                                 labels=LABELS)
        met = GaugeMetricFamily("dalp_dr_objective_met",
                                "1 when the latest measured run met the objective",
                                labels=[*LABELS, "objective"])
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
        for (drill, topology, environment, outcome), n in sorted(counts.items()):
            runs.add_metric([drill, topology, environment, outcome], n)
        for key, n in sorted(missed_counts.items()):
            missed.add_metric(list(key), n)
        yield from (last_run, last_ok, recovery, window, lost, met, runs, missed)


def registry_for(open_store: Callable[[], HistoryStore]) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(HistoryCollector(open_store))
    return registry


def write_textfile(path: Path, open_store: Callable[[], HistoryStore]) -> None:
    """A node_exporter textfile (written to a temp file, then renamed)."""
    from prometheus_client import write_to_textfile

    path.parent.mkdir(parents=True, exist_ok=True)
    write_to_textfile(str(path), registry_for(open_store))


def serve(address: str, open_store: Callable[[], HistoryStore]) -> object:
    """Serve /metrics on ``host:port`` in a daemon thread; returns the server."""
    from prometheus_client import start_http_server

    host, _, port = address.rpartition(":")
    server, _thread = start_http_server(int(port), addr=host or "127.0.0.1",
                                        registry=registry_for(open_store))
    return server
