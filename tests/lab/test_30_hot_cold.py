"""The hot-cold restore drill on the real lab: PostgreSQL, moto S3 on loopback, Ansible."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from dalp_dr import s3_archive
from dalp_dr.inventory import Inventory
from tests.lab.helpers import (
    READ_ONLY_PLAYBOOKS,
    ROOT,
    alive,
    assert_no_secret,
    assert_read_only_under_check,
    dalp,
    lab_status,
    run_json,
    run_passed,
)

# one lab per pytest-xdist worker at a time (see tests/conftest.py)
pytestmark = pytest.mark.xdist_group("hot-cold")

DRILL = ROOT / "drills" / "hot-cold-restore.yaml"
INVENTORY = ROOT / "inventories" / "lab" / "hot-cold.yml"
LAB_ROOT = Path("/var/tmp/dalp-dr-lab/hot-cold")
SECRETS = ("lab-only-8d2e61c0f3", "lab-only-secret-7f3a9")


@pytest.fixture(scope="module", autouse=True)
def lab_up() -> None:
    proc = dalp("lab", "up", "hot-cold")
    assert proc.returncode == 0, proc.stderr


def bucket() -> tuple[Any, dict[str, Any]]:
    inv = Inventory(INVENTORY)
    cfg = {"bucket": inv.variable("dalp_s3_bucket"), "prefix": inv.variable("dalp_s3_prefix"),
           "endpoint_url": inv.variable("dalp_s3_endpoint_url"),
           "access_key_id": inv.variable("dalp_s3_access_key_id"),
           "secret_access_key": inv.variable("dalp_s3_secret_access_key")}
    return s3_archive.client(cfg), cfg


def assert_lab_steady() -> None:
    state = lab_status("hot-cold")
    a, cold = state["sites"]["site-a"], state["sites"]["site-cold"]
    assert a["accepting"] and a["detail"]["in_recovery"] is False, a
    assert not cold["running"], cold
    assert state["route"]["backend_port"] == a["port"]
    assert state["backups"]["backups"] >= 1


def psql_a(sql: str) -> str:
    return subprocess.run(
        ["runuser", "-u", "postgres", "--", "/usr/lib/postgresql/15/bin/psql", "-XAtq",
         "-h", str(LAB_ROOT / "run"), "-p", "55442", "-d", "dalp", "-c", sql],
        check=True, capture_output=True, text=True).stdout.strip()


@pytest.mark.parametrize("playbook", READ_ONLY_PLAYBOOKS)
def test_read_only_playbooks_under_check_read_the_real_state_and_change_nothing(
        tmp_path: Path, playbook: str) -> None:
    assert_read_only_under_check(DRILL, playbook, tmp_path)


def test_backup_status_reports_ages() -> None:
    proc = dalp("backup", "status", str(INVENTORY), "--json")
    assert proc.returncode == 0, proc.stderr
    status = json.loads(proc.stdout)
    assert status["backups"] >= 1 and status["attainable"] is True
    assert 0 <= status["newest_backup_age_s"] < status["rpo_s"] == 4 * 3600
    assert status["newest_wal"] and status["wal_gap"] is None
    strict = dalp("backup", "status", str(INVENTORY), "--rpo", "1ms")
    assert strict.returncode == 1
    assert "NOT attainable" in strict.stdout and "old, RPO" in strict.stdout


def test_backup_metrics_report_archive_ages_against_the_rpo(tmp_path: Path) -> None:
    from prometheus_client import generate_latest

    from dalp_dr.history import open_store
    from dalp_dr.metrics import registry_for
    from dalp_dr.spec import load_drill

    text = generate_latest(registry_for(
        lambda: open_store(f"sqlite:///{tmp_path / 'h.sqlite'}"), [load_drill(DRILL)])).decode()
    labels = '{drill="hot-cold-restore",environment="lab-hot-cold"}'
    values = {line.split()[0]: float(line.split()[1]) for line in text.splitlines()
              if line.startswith("dalp_dr_") and labels in line}
    assert values[f"dalp_dr_backup_status_up{labels}"] == 1.0
    assert values[f"dalp_dr_backup_rpo_seconds{labels}"] == 4 * 3600
    assert 0 <= values[f"dalp_dr_backup_age_seconds{labels}"] < 4 * 3600
    assert values[f"dalp_dr_wal_archive_age_seconds{labels}"] >= 0


def test_backup_status_wrong_bucket_exits_2(tmp_path: Path) -> None:
    inv = tmp_path / "inv.yml"
    inv.write_text(INVENTORY.read_text().replace("dalp_s3_bucket: dalp-dr-lab",
                                                 "dalp_s3_bucket: no-such-bucket"))
    proc = dalp("backup", "status", str(inv), "--rpo", "4h")
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "no-such-bucket" in proc.stderr and "NoSuchBucket" in proc.stderr


def test_restore_drill_passes(tmp_path: Path) -> None:
    results = tmp_path / "results"
    result = run_passed(DRILL, results)
    m = result["measurements"]
    assert 0 < m["recovery_time"] < 300
    assert m["rtt"] >= m["recovery_time"]
    # per-segment archiving: the writes after the last archived WAL are lost, and measured
    assert m["data_loss_window"] is not None and m["data_loss_window"] >= 0
    assert m["lost_writes"] is not None
    assert (m["lost_writes"] == 0) == (m["data_loss_window"] == 0)
    phases = {p["phase"]: p for p in result["phases"]}
    steps = {s["step"]: s for s in phases["recover"]["report"]["dalp_phase_timings"]}
    assert set(steps) == {"provision", "download", "checksums", "wal download", "restore",
                          "wal replay"}
    # the WAL the replay needed was fetched ahead: at least the backup's own segment
    assert int(steps["wal download"]["files"]) >= 1
    assert int(steps["wal download"]["bytes"]) >= 16 * 1024 * 1024
    assert int(steps["download"]["bytes"]) > 10_000_000 and float(steps["download"]["seconds"]) > 0
    assert int(steps["restore"]["bytes"]) > 10_000_000
    restore = phases["recover"]["report"]["dalp_restore"]
    assert len(restore["ended_segment"]) == 24 and restore["recovery_target_time"] == "latest"
    assert phases["verify"]["report"]["dalp_verify"]["seed_rows"] == 10000
    assert phases["verify"]["report"]["dalp_verify"]["amcheck"] == "clean"
    assert result["steady_state_restored"] is True
    assert_lab_steady()
    assert_no_secret(results, *SECRETS)
    shown = dalp("history", "show", result["run_id"], results=results)
    assert "wal replay" in shown.stdout and "restore ended at WAL segment" in shown.stdout


def test_corrupt_base_backup_fails_naming_the_object(tmp_path: Path) -> None:
    s3, cfg = bucket()
    label = s3_archive.backups(s3, cfg)[0]
    key = s3_archive.key(cfg, "basebackups", label, "base.tar")
    body = s3.get_object(Bucket=cfg["bucket"], Key=key)["Body"].read()
    s3.put_object(Bucket=cfg["bucket"], Key=key, Body=body[: len(body) // 2])  # truncated
    code, result, stderr = run_json(DRILL, tmp_path / "results")
    assert code == 1, stderr
    assert result["outcome"] == "failed"
    recover = next(p for p in result["phases"] if p["phase"] == "recover")
    assert recover["status"] == "failed"
    assert key in recover["message"] and "corrupt or truncated" in recover["message"]
    assert result["steady_state_restored"] is True  # the lab was rebuilt with a fresh backup
    assert_lab_steady()


def test_wal_gap_fails_closed_naming_the_segment(tmp_path: Path) -> None:
    s3, cfg = bucket()
    before = s3_archive.status(s3, cfg)["newest_wal"]
    for _ in range(3):  # three more segments archived after the newest backup
        psql_a("create temporary table t as select 1; select pg_switch_wal()")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        newest = s3_archive.status(s3, cfg)["newest_wal"]
        if newest and (s3_archive.segment_number(newest)[1]  # type: ignore[index]
                       >= s3_archive.segment_number(before)[1] + 3):  # type: ignore[index]
            break
        time.sleep(0.5)
    else:
        pytest.fail("WAL was not archived to the bucket within 60 s")
    missing = s3_archive.segment_name(1, s3_archive.segment_number(newest)[1] - 1)  # type: ignore[index]
    s3.delete_object(Bucket=cfg["bucket"], Key=s3_archive.key(cfg, "wal", missing + ".gz"))

    pid_a = int((LAB_ROOT / "site-a/data/postmaster.pid").read_text().split()[0])
    code, result, stderr = run_json(DRILL, tmp_path / "results")
    assert code == 1, stderr
    assert result["outcome"] == "preflight_failed"
    assert f"wal/{missing}.gz is missing" in result["phases"][0]["message"]
    assert alive(pid_a)  # the active site was not harmed
    status = dalp("backup", "status", str(INVENTORY))
    assert status.returncode == 1 and f"{missing}.gz is missing" in status.stdout
    # put the lab back for whatever runs next
    assert dalp("lab", "down", "hot-cold").returncode == 0
    assert dalp("lab", "up", "hot-cold").returncode == 0
    assert_lab_steady()


def test_point_in_time_restore_keeps_exactly_the_markers_before_the_target(
        tmp_path: Path) -> None:
    code, result, stderr = run_json(ROOT / "tests/lab/drills/hot-cold-pitr.yaml",
                                    tmp_path / "results")
    assert code == 0, stderr
    measure = next(p for p in result["phases"] if p["phase"] == "measure")
    pitr = measure["report"]["point_in_time"]
    assert pitr["before_target"] >= 20  # ~3 s of markers before the target (6 s baseline)
    assert pitr["after_target"] >= 20  # ~3 s of markers between the target and the fault
    assert pitr["missing_before_target"] == [] and pitr["present_after_target"] == []
    recover = next(p for p in result["phases"] if p["phase"] == "recover")
    assert recover["report"]["dalp_restore"]["recovery_target_time"] == pitr["target"].replace(
        "T", " ")
    # everything after the target is gone by design: the window reaches back to it
    assert result["measurements"]["data_loss_window"] >= 2.5
    assert_lab_steady()
