"""The hot-cold restore drill on pgBackRest (Debian pgbackrest) on the real lab: PostgreSQL,
moto S3 on loopback behind stunnel (HTTPS with a lab CA, which pgBackRest verifies), Ansible.
Every backup, WAL push, verify, restore and WAL fetch is pgBackRest's own; `backup status`
reads its catalogue (pgbackrest info)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from dalp_dr import object_store
from tests.lab.helpers import (
    ROOT,
    alive,
    assert_no_secret,
    assert_read_only_under_check,
    dalp,
    lab_processes,
    run_json,
    run_passed,
    take_lab_down,
)
from tests.lab.hot_cold import HotColdLab, previous_segment

# one lab per pytest-xdist worker at a time (see tests/conftest.py)
pytestmark = pytest.mark.xdist_group("hot-cold-pgbackrest")

DRILL = ROOT / "drills" / "hot-cold-pgbackrest-restore.yaml"
PITR = ROOT / "tests" / "lab" / "drills" / "hot-cold-pgbackrest-pitr.yaml"
LAB = HotColdLab("hot-cold-pgbackrest")
INVENTORY = LAB.inventory
LAB_ROOT = Path("/var/tmp/dalp-dr-lab/hot-cold-pgbackrest")
SECRETS = ("lab-only-5e0b93a7d4", "lab-only-secret-8f2e4")
LOCATION = "s3://dalp-dr-lab/hot-cold-pgbackrest"


@pytest.fixture(scope="module", autouse=True)
def lab_up() -> None:
    proc = dalp("lab", "up", "hot-cold-pgbackrest")
    assert proc.returncode == 0, proc.stderr


def test_the_s3_endpoint_is_https_with_the_lab_ca_and_keys_are_private() -> None:
    tls = LAB_ROOT / "tls"
    assert (tls / "server.key").stat().st_mode & 0o777 == 0o600
    assert (tls / "ca.key").stat().st_mode & 0o777 == 0o600
    assert any("stunnel" in p for p in lab_processes(LAB_ROOT))
    proc = subprocess.run(["openssl", "s_client", "-connect", "127.0.0.1:55413",
                           "-CAfile", str(tls / "ca.crt"), "-verify_return_error",
                           "-verify_ip", "127.0.0.1"],
                          input="", capture_output=True, text=True, timeout=10, check=False)
    assert "Verify return code: 0 (ok)" in proc.stdout, proc.stdout[-500:]


def test_preflight_under_check_verifies_the_repository_and_changes_nothing(
        tmp_path: Path) -> None:
    """`drill plan` runs preflight with --check: pgbackrest verify only reads, so it runs
    there too, and nothing changes."""
    assert_read_only_under_check(DRILL, "preflight.yml", tmp_path)


def test_backup_status_reads_pgbackrests_catalogue() -> None:
    proc = dalp("backup", "status", str(INVENTORY), "--json")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    found = json.loads(proc.stdout)
    assert found["tool"] == "pgbackrest" and found["attainable"] is True
    assert found["location"] == f"{LOCATION}/backup/site-a"
    assert found["backups"] >= 1 and found["wal_gap"] is None and found["newest_wal"]
    labels = {b["backup_id"] for b in found["catalogue"]}
    assert found["newest_backup"] in labels
    assert all(b["type"] == "full" and len(b["begin_wal"]) == 24 for b in found["catalogue"])
    human = dalp("backup", "status", str(INVENTORY))
    assert "backup tool     pgbackrest" in human.stdout
    assert found["newest_backup"] in human.stdout


@pytest.mark.parametrize("attempt", [1, 2])
def test_restore_drill_passes_twice(tmp_path: Path, attempt: int) -> None:
    results = tmp_path / "results"
    result = run_passed(DRILL, results)
    m = result["measurements"]
    assert 0 < m["recovery_time"] < 300 and m["rtt"] >= m["recovery_time"]
    assert m["data_loss_window"] is not None and m["data_loss_window"] >= 0
    phases = {p["phase"]: p for p in result["phases"]}
    recover = phases["recover"]["report"]
    steps = {s["step"]: s for s in recover["dalp_phase_timings"]}
    # the repository is verified at preflight, before the fault: not in the recovery
    assert set(steps) == {"provision", "download and restore (pgbackrest restore)",
                          "wal replay"}
    verified = phases["preflight"]["report"]["dalp_preflight"]["verify"]
    assert verified["status"] == "ok" and float(verified["seconds"]) > 0
    restored = steps["download and restore (pgbackrest restore)"]
    assert int(restored["bytes"]) > 10_000_000 and float(restored["seconds"]) > 0
    assert recover["dalp_restore"]["backup_tool"] == "pgbackrest"
    assert len(recover["dalp_restore"]["ended_segment"]) == 24
    assert phases["verify"]["report"]["dalp_verify"]["seed_rows"] == 10000
    assert phases["verify"]["report"]["dalp_verify"]["amcheck"] == "clean"
    assert result["steady_state_restored"] is True
    LAB.assert_steady()
    assert_no_secret(results, *SECRETS)


def test_point_in_time_restore_keeps_exactly_the_markers_before_the_target(
        tmp_path: Path) -> None:
    code, result, stderr = run_json(PITR, tmp_path / "results")
    assert code == 0, stderr
    measure = next(p for p in result["phases"] if p["phase"] == "measure")
    pitr = measure["report"]["point_in_time"]
    assert pitr["before_target"] >= 20 and pitr["after_target"] >= 20
    assert pitr["missing_before_target"] == [] and pitr["present_after_target"] == []
    assert result["measurements"]["data_loss_window"] >= 2.5
    LAB.assert_steady()


def test_a_corrupt_backup_fails_preflight_naming_it_before_any_fault(tmp_path: Path) -> None:
    cfg = LAB.settings()
    s3 = LAB.client()
    newest = LAB.status()["newest_backup"]
    objects = [o for o in object_store.list_keys(s3, cfg, f"backup/site-a/{newest}")
               if "/bundle/" in o["Key"]]
    assert objects, f"no bundle under backup/site-a/{newest}"
    biggest = max(objects, key=lambda o: o["Size"])["Key"]
    body = s3.get_object(Bucket=cfg["bucket"], Key=biggest)["Body"].read()
    # bit rot: 4 KiB in the middle overwritten, the size unchanged (a truncated bundle makes
    # pgBackRest retry its ranged reads past the end for many minutes: not a drill's failure)
    middle = len(body) // 2
    rotten = body[:middle] + bytes(b ^ 0xFF for b in body[middle:middle + 4096]) \
        + body[middle + 4096:]
    pid_a = LAB.pid_a()
    s3.put_object(Bucket=cfg["bucket"], Key=biggest, Body=rotten)
    try:
        code, result, stderr = run_json(DRILL, tmp_path / "results")
    finally:  # the lab's backup as it was, for what runs next
        s3.put_object(Bucket=cfg["bucket"], Key=biggest, Body=body)
    assert code == 1, stderr
    assert result["outcome"] == "preflight_failed"
    preflight = result["phases"][0]
    assert preflight["phase"] == "preflight" and preflight["status"] == "failed"
    assert f"{LOCATION}/backup/site-a/: pgbackrest verify found the repository invalid" \
        in preflight["message"]
    assert f"backup: {newest}, status: invalid" in preflight["message"]
    assert "inject" not in {p["phase"] for p in result["phases"]}  # no fault
    assert alive(pid_a)  # the active site was not touched
    LAB.assert_steady()


def test_wal_gap_fails_closed_naming_the_object(tmp_path: Path) -> None:
    cfg = LAB.settings()
    missing = previous_segment(LAB.switch_wal(3))
    s3 = LAB.client()
    archive = LAB.status()["archive"]["id"]
    place = f"archive/site-a/{archive}/{missing[:16]}/{missing}-"
    gone = [o["Key"] for o in object_store.list_keys(s3, cfg, f"archive/site-a/{archive}")
            if place in o["Key"]]
    assert len(gone) == 1, gone
    s3.delete_object(Bucket=cfg["bucket"], Key=gone[0])
    LAB.assert_refused_at_preflight(DRILL, tmp_path / "results",
                                    f"{LOCATION}/{place}<sha1>.gz is missing",
                                    f"{missing}-<sha1>.gz is missing")
    # lab down leaves no process (stunnel included) and no data; then back for what runs next
    take_lab_down("hot-cold-pgbackrest", LAB_ROOT)
    assert dalp("lab", "up", "hot-cold-pgbackrest").returncode == 0
    LAB.assert_steady()
