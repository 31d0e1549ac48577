"""The hot-cold restore drill on the real lab, on barman-cloud (CloudNativePG's backup tool,
Debian barman-cli-cloud): PostgreSQL, moto S3 on loopback, Ansible. Every backup, WAL push,
restore and WAL fetch is barman-cloud's own; `backup status` reads its catalogue. The same
drill on pgBackRest: test_34."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import pytest

from tests.lab.helpers import (
    READ_ONLY_PLAYBOOKS,
    ROOT,
    assert_no_secret,
    assert_read_only_under_check,
    dalp,
    run_json,
    run_passed,
)
from tests.lab.hot_cold import HotColdLab, previous_segment

# one lab per pytest-xdist worker at a time (see tests/conftest.py)
pytestmark = pytest.mark.xdist_group("hot-cold")

LAB = HotColdLab("hot-cold")
DRILL = ROOT / "drills" / "hot-cold-restore.yaml"
PITR = ROOT / "tests" / "lab" / "drills" / "hot-cold-pitr.yaml"
SECRETS = ("lab-only-8d2e61c0f3", "lab-only-secret-7f3a9")
RESTORED = "download and restore (barman-cloud-restore)"


@pytest.fixture(scope="module", autouse=True)
def lab_up() -> None:
    proc = dalp("lab", "up", "hot-cold")
    assert proc.returncode == 0, proc.stderr


@pytest.mark.parametrize("playbook", READ_ONLY_PLAYBOOKS)
def test_read_only_playbooks_under_check_read_the_real_state_and_change_nothing(
        tmp_path: Path, playbook: str) -> None:
    assert_read_only_under_check(DRILL, playbook, tmp_path)


def test_backup_status_reads_barman_clouds_catalogue() -> None:
    proc = dalp("backup", "status", str(LAB.inventory), "--json")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    found = json.loads(proc.stdout)
    assert found["tool"] == "barman-cloud" and found["attainable"] is True
    assert found["location"] == "s3://dalp-dr-lab/hot-cold/site-a"
    assert found["backups"] >= 1 and found["wal_gap"] is None and found["newest_wal"]
    assert 0 <= found["newest_backup_age_s"] < found["rpo_s"] == 4 * 3600
    done = [b for b in found["catalogue"] if b["status"] == "DONE"]
    assert found["newest_backup"] in {b["backup_id"] for b in done}
    assert all(len(b["begin_wal"]) == 24 for b in done)
    human = dalp("backup", "status", str(LAB.inventory))
    assert "backup tool     barman-cloud" in human.stdout
    assert found["newest_backup"] in human.stdout
    strict = dalp("backup", "status", str(LAB.inventory), "--rpo", "1ms")
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
    inv.write_text(LAB.inventory.read_text().replace("dalp_s3_bucket: dalp-dr-lab",
                                                     "dalp_s3_bucket: no-such-bucket"))
    proc = dalp("backup", "status", str(inv), "--rpo", "4h")
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "no-such-bucket" in proc.stderr and "NoSuchBucket" in proc.stderr


@pytest.mark.parametrize("attempt", [1, 2])
def test_restore_drill_passes_twice(tmp_path: Path, attempt: int) -> None:
    results = tmp_path / "results"
    result = run_passed(DRILL, results)
    m = result["measurements"]
    assert 0 < m["recovery_time"] < 300 and m["rtt"] >= m["recovery_time"]
    # WAL is archived a segment at a time: the writes after the last archived one are lost,
    # and measured
    assert m["data_loss_window"] is not None and m["data_loss_window"] >= 0
    assert m["lost_writes"] is not None
    assert (m["lost_writes"] == 0) == (m["data_loss_window"] == 0)
    phases = {p["phase"]: p for p in result["phases"]}
    recover = phases["recover"]["report"]
    steps = {s["step"]: s for s in recover["dalp_phase_timings"]}
    assert set(steps) == {"provision", RESTORED, "wal replay"}
    assert int(steps[RESTORED]["bytes"]) > 10_000_000 and float(steps[RESTORED]["seconds"]) > 0
    restore = recover["dalp_restore"]
    assert restore["backup_tool"] == "barman-cloud"
    assert len(restore["ended_segment"]) == 24 and restore["recovery_target_time"] == "latest"
    assert phases["verify"]["report"]["dalp_verify"]["seed_rows"] == 10000
    assert phases["verify"]["report"]["dalp_verify"]["amcheck"] == "clean"
    assert result["steady_state_restored"] is True
    LAB.assert_steady()
    assert_no_secret(results, *SECRETS)
    shown = dalp("history", "show", result["run_id"], results=results)
    assert "wal replay" in shown.stdout and "restore ended at WAL segment" in shown.stdout


def test_point_in_time_restore_keeps_exactly_the_markers_before_the_target(
        tmp_path: Path) -> None:
    code, result, stderr = run_json(PITR, tmp_path / "results")
    assert code == 0, stderr
    measure = next(p for p in result["phases"] if p["phase"] == "measure")
    pitr = measure["report"]["point_in_time"]
    assert pitr["before_target"] >= 20  # ~3 s of markers before the target (6 s baseline)
    assert pitr["after_target"] >= 20  # ~3 s of markers between the target and the fault
    assert pitr["missing_before_target"] == [] and pitr["present_after_target"] == []
    # PostgreSQL got the target on the clock that stamped the fault (site A's, whose commit
    # times it compares it with): the run's target plus that clock's offset
    recover = next(p for p in result["phases"] if p["phase"] == "recover")
    inject = next(p for p in result["phases"] if p["phase"] == "inject")
    host = inject["report"]["dalp_fault_host"]
    (read,) = [o for o in result["clock_offsets"]
               if o["host"] == host and o["when"] == "preflight"]
    # an offset within its own read's uncertainty is no offset: the target goes as it is
    offset = read["offset"] if abs(read["offset"]) > read["uncertainty"] else 0.0
    given = datetime.fromisoformat(recover["report"]["dalp_restore"]["recovery_target_time"])
    shifted = (given - datetime.fromisoformat(pitr["target"])).total_seconds()
    assert abs(shifted - offset) < 0.001, (shifted, read)
    # everything after the target is gone by design: the window reaches back to it
    assert result["measurements"]["data_loss_window"] >= 2.5
    LAB.assert_steady()


def test_corrupt_base_backup_fails_naming_the_backup(tmp_path: Path) -> None:
    from dalp_dr import object_store

    cfg = LAB.settings()
    s3 = LAB.client()
    newest = LAB.status()["newest_backup"]
    keys = [o["Key"] for o in object_store.list_keys(s3, cfg, f"site-a/base/{newest}")
            if o["Key"].endswith(".tar.gz")]
    assert keys, f"no tar.gz under base/{newest}"
    body = s3.get_object(Bucket=cfg["bucket"], Key=keys[0])["Body"].read()
    s3.put_object(Bucket=cfg["bucket"], Key=keys[0], Body=body[: len(body) // 2])  # truncated
    code, result, stderr = run_json(DRILL, tmp_path / "results")
    assert code == 1, stderr
    assert result["outcome"] == "failed"
    recover = next(p for p in result["phases"] if p["phase"] == "recover")
    assert recover["status"] == "failed"
    assert f"{LAB.location}/site-a/base/{newest}/" in recover["message"]
    assert "barman-cloud-restore exited" in recover["message"]
    assert result["steady_state_restored"] is True  # rebuilt with a fresh lineage and backup
    LAB.assert_steady()


def test_wal_gap_fails_closed_naming_the_object(tmp_path: Path) -> None:
    from dalp_dr import object_store

    cfg = LAB.settings()
    missing = previous_segment(LAB.switch_wal(3))
    gone = object_store.key(cfg, "site-a", "wals", missing[:16], missing + ".gz")
    LAB.client().delete_object(Bucket=cfg["bucket"], Key=gone)
    LAB.assert_refused_at_preflight(DRILL, tmp_path / "results",
                                    f"s3://dalp-dr-lab/{gone} is missing",
                                    f"{missing}.gz is missing")
    # put the lab back for whatever runs next
    assert dalp("lab", "down", "hot-cold").returncode == 0
    assert dalp("lab", "up", "hot-cold").returncode == 0
    LAB.assert_steady()
