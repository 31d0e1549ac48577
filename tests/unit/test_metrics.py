"""Metrics computed from the history (what Prometheus scrapes and the textfile holds), and
the shipped alert rules and dashboard."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from dalp_dr.clock import utcnow
from dalp_dr.history import open_store
from dalp_dr.locks import environment_lock_name, recovery_holder
from dalp_dr.metrics import registry_for, write_textfile
from dalp_dr.results import Outcome
from tests.factories import make_run, record_runs

ROOT = Path(__file__).resolve().parents[2]
MONITORING = ROOT / "playbooks" / "monitoring" / "files"


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    found = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            found[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return found


def test_metrics_say_what_the_history_says(history: str, tmp_path: Path) -> None:
    text = generate_latest(registry_for(lambda: open_store(history))).decode()
    got = samples(text)
    warm = (("drill", "hot-warm-failover"), ("environment", "lab-hot-warm"),
            ("topology", "hot-warm"))
    # latest hot-warm runs: 2026-10 missed schedule, 2026-04 missed (45 s), 2026-01 passed
    assert got[("dalp_dr_last_recovery_seconds", warm)] == 45.0
    assert got[("dalp_dr_objective_met", tuple(sorted((*warm, ("objective", "rto")))))] == 0.0
    assert got[("dalp_dr_objective_met", tuple(sorted((*warm, ("objective", "rpo")))))] == 1.0
    assert got[("dalp_dr_last_success_timestamp_seconds", warm)] == 1768446000.0  # 2026-01-15
    assert got[("dalp_dr_last_run_timestamp_seconds", warm)] == 1775012400.0  # 2026-04-01
    assert got[("dalp_dr_missed_schedules_total", warm)] == 1.0
    assert got[("dalp_dr_runs_total", tuple(sorted((*warm, ("outcome", "passed")))))] == 1.0
    path = tmp_path / "node" / "dalp_dr.prom"
    write_textfile(path, lambda: open_store(history))
    assert samples(path.read_text()) == got


WARM = (("drill", "hot-warm-failover"), ("environment", "lab-hot-warm"),
        ("topology", "hot-warm"))


def objective_statuses(history: str) -> dict[str, str]:
    """The hot-warm drill's objective -> the status whose series is 1 (each exactly once)."""
    got = samples(generate_latest(registry_for(lambda: open_store(history))).decode())
    found: dict[str, list[tuple[str, float]]] = {}
    for (name, labels), value in got.items():
        named = dict(labels)
        if name == "dalp_dr_objective_status" and named["drill"] == "hot-warm-failover":
            found.setdefault(named["objective"], []).append((named["status"], value))
    assert all(sorted(s for s, _ in v) == ["met", "missed", "unknown"] for v in found.values())
    assert all(sum(value for _, value in v) == 1.0 for v in found.values())
    return {objective: next(s for s, value in v if value == 1.0)
            for objective, v in found.items()}


def test_unknown_is_not_missed_and_the_pass_rate_leaves_missed_schedules_out(
        history: str, tmp_path: Path) -> None:
    # latest run that ran: April, RTO missed (45 s of 30), RPO met
    assert objective_statuses(history) == {"rto": "missed", "rpo": "met"}
    text = generate_latest(registry_for(lambda: open_store(history))).decode()
    got = samples(text)
    # January passed, April missed; the October missed schedule is not a run that ran
    assert got[("dalp_dr_pass_rate", WARM)] == 0.5
    assert "missed schedules" in text.split("# HELP dalp_dr_pass_rate ")[1].splitlines()[0]
    failed = make_run(tmp_path, "20261101T030000Z-eeeeee", "hot-warm-failover",
                      datetime(2026, 11, 1, 3, tzinfo=UTC), Outcome.FAILED, None)
    record_runs(history, [failed])
    # it measured nothing: unknown, not missed (objective_met keeps the measured April run)
    assert objective_statuses(history) == {"rto": "unknown", "rpo": "unknown"}
    got = samples(generate_latest(registry_for(lambda: open_store(history))).decode())
    assert got[("dalp_dr_objective_met", tuple(sorted((*WARM, ("objective", "rto")))))] == 0.0
    assert got[("dalp_dr_pass_rate", WARM)] == 1 / 3
COLD = (("drill", "hot-cold-restore"), ("environment", "lab-hot-warm"), ("topology", "hot-cold"))


def test_interrupted_runs_count_running_runs_nobody_holds_the_lock_for(
        history: str, tmp_path: Path) -> None:
    def interrupted() -> dict[tuple[tuple[str, str], ...], float]:
        got = samples(generate_latest(registry_for(lambda: open_store(history))).decode())
        return {labels: v for (name, labels), v in got.items()
                if name == "dalp_dr_interrupted_runs"}

    assert interrupted() == {WARM: 0.0, COLD: 0.0}  # none: the series exist, at 0
    run = make_run(tmp_path, "20261101T030000Z-eeeeee", "hot-warm-failover",
                   datetime(2026, 11, 1, 3, tzinfo=UTC), Outcome.RUNNING, None)
    store = open_store(history)
    try:
        store.begin(run.model_copy(update={"ended_at": None}), "{}")
        assert interrupted() == {WARM: 1.0, COLD: 0.0}  # nobody ever held its lock
        lock = environment_lock_name(run.environment)
        store.acquire_lease(lock, run.run_id, "the run", ttl=60)
        assert interrupted() == {WARM: 0.0, COLD: 0.0}  # alive
        store.release_lease(lock, run.run_id)
        lease = store.acquire_lease(lock, run.run_id, "the run", ttl=0.05)
        time.sleep(max(0.0, (lease.expires_at - utcnow()).total_seconds()) + 0.01)
        assert interrupted() == {WARM: 1.0, COLD: 0.0}  # its orchestrator stopped renewing
        store.acquire_lease(lock, recovery_holder(run.run_id), "its recovery", ttl=60)
        assert interrupted() == {WARM: 0.0, COLD: 0.0}  # being recovered
    finally:
        store.close()


def test_steady_state_not_restored_says_the_latest_run_of_each_drill(
        history: str, tmp_path: Path) -> None:
    def not_restored() -> dict[tuple[tuple[str, str], ...], float]:
        got = samples(generate_latest(registry_for(lambda: open_store(history))).decode())
        return {labels: v for (name, labels), v in got.items()
                if name == "dalp_dr_steady_state_not_restored"}

    assert not_restored() == {WARM: 0.0, COLD: 0.0}
    broken = make_run(tmp_path, "20261101T030000Z-eeeeee", "hot-warm-failover",
                      datetime(2026, 11, 1, 3, tzinfo=UTC), Outcome.ABORTED, None)
    record_runs(history, [broken.model_copy(update={"steady_state_restored": False})])
    assert not_restored() == {WARM: 1.0, COLD: 0.0}
    missed = make_run(tmp_path, "20261201T030000Z-ffffff", "hot-warm-failover",
                      datetime(2026, 12, 1, 3, tzinfo=UTC), Outcome.MISSED_SCHEDULE, None)
    record_runs(history, [missed.model_copy(update={"steady_state_restored": None})])
    assert not_restored() == {WARM: 1.0, COLD: 0.0}  # a missed schedule touched nothing
    passed = make_run(tmp_path, "20261215T030000Z-gggggg", "hot-warm-failover",
                      datetime(2026, 12, 15, 3, tzinfo=UTC), Outcome.PASSED, 1.0)
    record_runs(history, [passed])
    assert not_restored() == {WARM: 0.0, COLD: 0.0}
    untouched = make_run(tmp_path, "20261220T030000Z-hhhhhh", "hot-warm-failover",
                         datetime(2026, 12, 20, 3, tzinfo=UTC), Outcome.PREFLIGHT_FAILED, None)
    record_runs(history, [untouched.model_copy(update={"steady_state_restored": None})])
    assert not_restored() == {WARM: 0.0, COLD: 0.0}  # no fault injected: nothing to restore


def test_the_alert_rules_load() -> None:
    rules = MONITORING / "dalp-dr-alerts.yml"
    promtool = shutil.which("promtool")
    if promtool:  # Debian's prometheus package provides it
        proc = subprocess.run([promtool, "check", "rules", str(rules)], capture_output=True,
                              text=True, check=False)
        assert proc.returncode == 0, proc.stdout + proc.stderr
    document = yaml.safe_load(rules.read_text())
    alerts = {r["alert"]: r for g in document["groups"] for r in g["rules"]}
    assert set(alerts) == {"DalpDrDrillOverdue", "DalpDrObjectiveMissed",
                           "DalpDrObjectiveUnknown",
                           "DalpDrScheduledDrillMissed", "DalpDrLostWrites",
                           "DalpDrBackupOlderThanRpo", "DalpDrBackupArchiveUnreadable",
                           "DalpDrHistoryTampered", "DalpDrRunInterrupted",
                           "DalpDrSteadyStateNotRestored"}
    metric_names = {"dalp_dr_last_success_timestamp_seconds", "dalp_dr_objective_status",
                    "dalp_dr_missed_schedules_total", "dalp_dr_last_lost_writes",
                    "dalp_dr_wal_archive_age_seconds", "dalp_dr_backup_status_up",
                    "dalp_dr_history_tampered_records", "dalp_dr_interrupted_runs",
                    "dalp_dr_steady_state_not_restored"}
    for rule in alerts.values():
        assert any(name in rule["expr"] for name in metric_names), rule
        assert rule["labels"]["severity"] in ("warning", "critical")
        assert rule["annotations"]["summary"]


@pytest.mark.parametrize("name", ["grafana-dashboard.json"])
def test_the_dashboard_queries_our_metrics(name: str) -> None:
    dashboard = json.loads((MONITORING / name).read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    assert exprs and all("dalp_dr_" in e for e in exprs)
