"""Metrics computed from the history (what Prometheus scrapes and the textfile holds), and
the shipped alert rules and dashboard."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from dalp_dr.history import open_store
from dalp_dr.metrics import registry_for, write_textfile

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
                           "DalpDrScheduledDrillMissed", "DalpDrLostWrites",
                           "DalpDrBackupOlderThanRpo", "DalpDrBackupArchiveUnreadable",
                           "DalpDrHistoryTampered"}
    metric_names = {"dalp_dr_last_success_timestamp_seconds", "dalp_dr_objective_met",
                    "dalp_dr_missed_schedules_total", "dalp_dr_last_lost_writes",
                    "dalp_dr_wal_archive_age_seconds", "dalp_dr_backup_status_up",
                    "dalp_dr_history_tampered_records"}
    for rule in alerts.values():
        assert any(name in rule["expr"] for name in metric_names), rule
        assert rule["labels"]["severity"] in ("warning", "critical")
        assert rule["annotations"]["summary"]


@pytest.mark.parametrize("name", ["grafana-dashboard.json"])
def test_the_dashboard_queries_our_metrics(name: str) -> None:
    dashboard = json.loads((MONITORING / name).read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    assert exprs and all("dalp_dr_" in e for e in exprs)
