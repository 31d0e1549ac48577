"""The cloud-native failover drill on a real Patroni + etcd lab."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.lab.helpers import ROOT, assert_no_secret, dalp, lab_status, run_json

DRILL = ROOT / "drills" / "cloud-native-failover.yaml"


@pytest.fixture(scope="module", autouse=True)
def lab_up() -> None:
    proc = dalp("lab", "up", "cloud-native")
    assert proc.returncode == 0, proc.stderr


def assert_cluster_whole() -> dict[str, object]:
    status = lab_status("cloud-native")
    members = status["members"]
    assert len(members) == 3, members
    assert [m["role"] for m in members].count("leader") == 1, members
    assert "sync_standby" in [m["role"] for m in members], members
    assert all(m["state"] in ("running", "streaming") for m in members), members
    return status


def test_failover_loses_no_acknowledged_write(tmp_path: Path) -> None:
    before = assert_cluster_whole()
    code, result, stderr = run_json(DRILL, tmp_path / "results")
    assert code == 0, stderr
    assert result["outcome"] == "passed"
    m = result["measurements"]
    assert m["lost_writes"] == 0 and m["data_loss_window"] == 0  # synchronous_mode: RPO 0
    assert 0 < m["recovery_time"] < 120
    phases = {p["phase"]: p for p in result["phases"]}
    old = phases["inject"]["report"]["dalp_old_leader"]
    assert old == before["leader"]
    assert phases["recover"]["report"]["dalp_new_leader"] != old
    after = assert_cluster_whole()  # the old leader is back, as a replica
    assert any(mem["name"] == old and mem["role"] != "leader" for mem in after["members"])
    assert_no_secret(tmp_path / "results", "lab-only-c3a91e5d27")


def test_switchover_reports_its_write_outage(tmp_path: Path) -> None:
    before = assert_cluster_whole()
    code, result, stderr = run_json(ROOT / "drills" / "cloud-native-switchover.yaml",
                                    tmp_path / "results")
    assert code == 0, stderr
    m = result["measurements"]
    assert m["lost_writes"] == 0 and m["data_loss_window"] == 0
    assert 0 <= m["recovery_time"] < 60  # the write outage clients saw
    after = assert_cluster_whole()
    assert after["leader"] != before["leader"]
    inject = next(p for p in result["phases"] if p["phase"] == "inject")
    assert "Successfully switched over" in inject["report"]["dalp_notes"][0]


def test_preflight_fails_closed_when_paused(tmp_path: Path) -> None:
    import subprocess

    pause = ["/usr/bin/patronictl", "-c", "/var/tmp/dalp-dr-lab/cloud-native/pg1/patroni.yml"]
    subprocess.run([*pause, "pause", "--wait"], check=True, capture_output=True)
    try:
        leader = lab_status("cloud-native")["leader"]
        code, result, stderr = run_json(DRILL, tmp_path / "results")
        assert code == 1, stderr
        assert result["outcome"] == "preflight_failed"
        assert "paused" in result["phases"][0]["message"]
        assert lab_status("cloud-native")["leader"] == leader  # nothing was injected
    finally:
        subprocess.run([*pause, "resume", "--wait"], check=True, capture_output=True)
    assert_cluster_whole()


def test_down() -> None:
    assert dalp("lab", "down", "cloud-native").returncode == 0
