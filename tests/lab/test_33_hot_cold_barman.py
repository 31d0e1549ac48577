"""The hot-cold restore drill on barman-cloud (CloudNativePG's backup tool, Debian
barman-cli-cloud) on the real lab: PostgreSQL, moto S3 on loopback, Ansible. Every backup,
WAL push, restore and WAL fetch is barman-cloud's own; `backup status` reads its catalogue."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from dalp_dr import barman_cloud, s3_archive
from dalp_dr.inventory import Inventory
from tests.lab.helpers import (
    ROOT,
    alive,
    assert_no_secret,
    dalp,
    lab_status,
    run_json,
    run_passed,
)

# one lab per pytest-xdist worker at a time (see tests/conftest.py)
pytestmark = pytest.mark.xdist_group("hot-cold-barman")

DRILL = ROOT / "drills" / "hot-cold-barman-restore.yaml"
PITR = ROOT / "tests" / "lab" / "drills" / "hot-cold-barman-pitr.yaml"
INVENTORY = ROOT / "inventories" / "lab" / "hot-cold-barman.yml"
LAB_ROOT = Path("/var/tmp/dalp-dr-lab/hot-cold-barman")
SECRETS = ("lab-only-41c9d7be02", "lab-only-secret-c60d1")


@pytest.fixture(scope="module", autouse=True)
def lab_up() -> None:
    proc = dalp("lab", "up", "hot-cold-barman")
    assert proc.returncode == 0, proc.stderr


def settings() -> dict[str, Any]:
    inv = Inventory(INVENTORY)
    return {"bucket": inv.variable("dalp_s3_bucket"), "prefix": inv.variable("dalp_s3_prefix"),
            "endpoint_url": inv.variable("dalp_s3_endpoint_url"),
            "access_key_id": inv.variable("dalp_s3_access_key_id"),
            "secret_access_key": inv.variable("dalp_s3_secret_access_key"),
            "server_name": inv.variable("dalp_barman_server_name")}


def status() -> dict[str, Any]:
    cfg = settings()
    return barman_cloud.status(s3_archive.client(cfg), cfg)


def object_key(cfg: dict[str, Any], *parts: str) -> str:
    return s3_archive.key(cfg, cfg["server_name"], *parts)


def assert_lab_steady() -> None:
    state = lab_status("hot-cold-barman")
    a, cold = state["sites"]["site-a"], state["sites"]["site-cold"]
    assert a["accepting"] and a["detail"]["in_recovery"] is False, a
    assert not cold["running"], cold
    assert state["route"]["backend_port"] == a["port"]
    assert state["backups"]["backups"] >= 1 and state["backups"]["tool"] == "barman-cloud"


def switch_wal(count: int) -> str:
    """``count`` more WAL segments archived by barman-cloud-wal-archive; the newest."""
    import subprocess

    before = status()["newest_wal"]
    for _ in range(count):
        subprocess.run(
            ["runuser", "-u", "postgres", "--", "/usr/lib/postgresql/15/bin/psql", "-XAtq",
             "-h", str(LAB_ROOT / "run"), "-p", "55446", "-d", "dalp", "-c",
             "create temporary table t as select 1; select pg_switch_wal()"],
            check=True, capture_output=True, text=True)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        newest = status()["newest_wal"]
        if newest and before and (s3_archive.segment_number(newest)[1]  # type: ignore[index]
                                  >= s3_archive.segment_number(before)[1] + count):  # type: ignore[index]
            return str(newest)
        time.sleep(0.5)
    pytest.fail(f"{count} WAL segments were not archived by barman-cloud within 90 s")


def test_backup_status_reads_barman_clouds_catalogue() -> None:
    proc = dalp("backup", "status", str(INVENTORY), "--json")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    found = json.loads(proc.stdout)
    assert found["tool"] == "barman-cloud" and found["attainable"] is True
    assert found["location"] == "s3://dalp-dr-lab/hot-cold-barman/site-a"
    assert found["backups"] >= 1 and found["wal_gap"] is None and found["newest_wal"]
    done = [b for b in found["catalogue"] if b["status"] == "DONE"]
    assert found["newest_backup"] in {b["backup_id"] for b in done}
    assert all(len(b["begin_wal"]) == 24 for b in done)
    human = dalp("backup", "status", str(INVENTORY))
    assert "backup tool     barman-cloud" in human.stdout
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
    assert set(steps) == {"provision", "download and restore (barman-cloud-restore)",
                          "wal replay"}
    restored = steps["download and restore (barman-cloud-restore)"]
    assert int(restored["bytes"]) > 10_000_000 and float(restored["seconds"]) > 0
    assert recover["dalp_restore"]["backup_tool"] == "barman-cloud"
    assert len(recover["dalp_restore"]["ended_segment"]) == 24
    assert phases["verify"]["report"]["dalp_verify"]["seed_rows"] == 10000
    assert phases["verify"]["report"]["dalp_verify"]["amcheck"] == "clean"
    assert result["steady_state_restored"] is True
    assert_lab_steady()
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
    assert_lab_steady()


def test_corrupt_base_backup_fails_naming_the_backup(tmp_path: Path) -> None:
    cfg = settings()
    s3 = s3_archive.client(cfg)
    newest = status()["newest_backup"]
    keys = [o["Key"] for o in s3_archive.list_keys(s3, cfg, f"site-a/base/{newest}")
            if o["Key"].endswith(".tar.gz")]
    assert keys, f"no tar.gz under base/{newest}"
    body = s3.get_object(Bucket=cfg["bucket"], Key=keys[0])["Body"].read()
    s3.put_object(Bucket=cfg["bucket"], Key=keys[0], Body=body[: len(body) // 2])  # truncated
    code, result, stderr = run_json(DRILL, tmp_path / "results")
    assert code == 1, stderr
    assert result["outcome"] == "failed"
    recover = next(p for p in result["phases"] if p["phase"] == "recover")
    assert recover["status"] == "failed"
    assert f"s3://dalp-dr-lab/hot-cold-barman/site-a/base/{newest}/" in recover["message"]
    assert "barman-cloud-restore exited" in recover["message"]
    assert result["steady_state_restored"] is True  # rebuilt with a fresh lineage and backup
    assert_lab_steady()


def test_wal_gap_fails_closed_naming_the_object(tmp_path: Path) -> None:
    cfg = settings()
    newest = switch_wal(3)
    missing = s3_archive.segment_name(1, s3_archive.segment_number(newest)[1] - 1)  # type: ignore[index]
    gone = object_key(cfg, "wals", missing[:16], missing + ".gz")
    s3_archive.client(cfg).delete_object(Bucket=cfg["bucket"], Key=gone)
    pid_a = int((LAB_ROOT / "site-a/data/postmaster.pid").read_text().split()[0])
    code, result, stderr = run_json(DRILL, tmp_path / "results")
    assert code == 1, stderr
    assert result["outcome"] == "preflight_failed"
    assert f"s3://dalp-dr-lab/{gone} is missing" in result["phases"][0]["message"]
    assert alive(pid_a)  # the active site was not harmed
    shown = dalp("backup", "status", str(INVENTORY))
    assert shown.returncode == 1 and f"{missing}.gz is missing" in shown.stdout
    # put the lab back for whatever runs next
    assert dalp("lab", "down", "hot-cold-barman").returncode == 0
    assert dalp("lab", "up", "hot-cold-barman").returncode == 0
    assert_lab_steady()
