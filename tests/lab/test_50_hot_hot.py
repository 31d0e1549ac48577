"""The hot-hot site-loss drill on a real two-site lab (logical replication both ways)."""

from __future__ import annotations

import subprocess
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from tests.lab.helpers import (
    READ_ONLY_PLAYBOOKS,
    ROOT,
    assert_no_secret,
    assert_read_only_under_check,
    dalp,
    lab_status,
    run_json,
)

# one lab per pytest-xdist worker at a time (see tests/conftest.py)
pytestmark = pytest.mark.xdist_group("hot-hot")

DRILL = ROOT / "drills" / "hot-hot-site-loss.yaml"
LAB_DRILLS = ROOT / "tests" / "lab" / "drills"
PASSWORD = "lab-only-7d2e4a9c51"  # inventories/lab/hot-hot.yml: must never be written


@pytest.fixture(scope="module", autouse=True)
def lab_up() -> None:
    proc = dalp("lab", "up", "hot-hot")
    assert proc.returncode == 0, proc.stderr


def assert_steady() -> dict[str, Any]:
    """Both sites writable, each subscribed to the other and streaming."""
    sites: dict[str, Any] = lab_status("hot-hot")["sites"]
    for name in ("site-a", "site-b"):
        site = sites[name]
        assert site["accepting"] and site["detail"]["in_recovery"] is False, site
        subs = site["subscriptions"]
        assert len(subs) == 1 and subs[0]["enabled"] and subs[0]["worker"], site
        assert subs[0]["unsynced"] == 0, site
        assert [o["state"] for o in site["outbound"]] == ["streaming"], site
    return sites


def psql(site: str, sql: str) -> str:
    port = {"site-a": "55490", "site-b": "55491"}[site]
    return subprocess.run(
        ["runuser", "-u", "postgres", "--", "/usr/lib/postgresql/15/bin/psql", "-XAtq", "-h",
         "/var/tmp/dalp-dr-lab/hot-hot/run", "-p", port, "-d", "dalp", "-c", sql],
        check=True, capture_output=True, text=True).stdout.strip()


def assert_site_loss_passed(drill: Path, results: Path) -> dict[str, Any]:
    assert_steady()
    code, result, stderr = run_json(drill, results)
    assert code == 0, stderr
    assert result["outcome"] == "passed"
    a, b = result["populations"]["site-a"], result["populations"]["site-b"]
    # A's clients: rerouted to B by their multi-host route, within a few seconds
    assert 0 < a["recovery_time"] < 3, a
    assert a["lost_writes"] is not None and a["data_loss_window"] is not None
    assert a["data_loss_window"] < 1.0, a  # async logical replication: well under a second
    # B's clients did not notice
    assert b["write_outage"] == 0 and b["lost_writes"] == 0, b
    assert sorted((v["population"], v["objective"], v["status"]) for v in result["verdicts"]) == [
        ("site-a", "rpo", "met"), ("site-a", "rto", "met"),
        ("site-b", "rpo", "met"), ("site-b", "rto", "met")]
    # the headline figures are the first population's (the lost site's clients)
    assert result["measurements"]["recovery_time"] == a["recovery_time"]
    verify = next(p for p in result["phases"] if p["phase"] == "verify")
    sites = verify["report"]["dalp_verify"]
    assert not sites["site-a"]["running"] and sites["site-b"]["accepting"]
    assert result["steady_state_restored"] is True
    assert_steady()  # site A rebuilt from B, replication both ways again
    assert_no_secret(results, PASSWORD)
    return result


@pytest.mark.parametrize("playbook", READ_ONLY_PLAYBOOKS)
def test_read_only_playbooks_under_check_read_the_real_state_and_change_nothing(
        tmp_path: Path, playbook: str) -> None:
    assert_read_only_under_check(DRILL, playbook, tmp_path)


def test_site_loss_passes_and_the_outage_writes_come_back_to_the_lost_site(
        tmp_path: Path) -> None:
    """The consortium drill: the lost site is rebuilt with what was written through the
    survivor during its outage."""
    first = assert_site_loss_passed(DRILL, tmp_path / "results")
    # A's markers written through B during the outage came back to A with the rebuild
    count = f"select count(*) from dalp_dr_heartbeat_a where run_id = '{first['run_id']}'"
    assert int(psql("site-a", count)) == int(psql("site-b", count)) > 0


def test_public_variant_re_derives_the_indexed_state_as_a_timed_step(tmp_path: Path) -> None:
    """The public-network drill on the lab the previous drill left (steady state restored),
    which also re-derives the indexed state on the survivor as its own timed step."""
    second = assert_site_loss_passed(ROOT / "drills" / "hot-hot-public-site-loss.yaml",
                                     tmp_path / "results")
    verify = next(p for p in second["phases"] if p["phase"] == "verify")
    step = verify["report"]["dalp_phase_timings"][0]
    assert step["step"] == "rebuild indexed state from the source of truth"
    assert int(step["rows"]) == 100000 and float(step["seconds"]) > 0


def test_known_apply_lag_shows_as_the_data_loss_window(tmp_path: Path) -> None:
    assert_steady()
    code, result, stderr = run_json(LAB_DRILLS / "hot-hot-apply-lag.yaml", tmp_path / "results")
    assert code == 1, stderr
    assert result["outcome"] == "missed"
    a = result["populations"]["site-a"]
    # B stopped applying A's changes (at least 2 s, plus Ansible's time between the pause and
    # the kill) before A was lost: A's acknowledged writes of that stretch never reached B
    inject = next(p for p in result["phases"] if p["phase"] == "inject")
    fault = datetime.fromisoformat(a["fault_at"]).timestamp()
    lag = fault - float(inject["report"]["dalp_apply_paused_at"])
    assert lag >= 2.0
    assert abs(a["data_loss_window"] - lag) <= 0.35, (a["data_loss_window"], lag)
    assert abs(a["lost_writes"] - lag / 0.1) <= 4, (a["lost_writes"], lag)
    rpo = next(v for v in result["verdicts"] if v["population"] == "site-a"
               and v["objective"] == "rpo")
    assert rpo["status"] == "missed"
    assert result["populations"]["site-b"]["lost_writes"] == 0
    assert result["steady_state_restored"] is True
    assert_steady()


def test_preflight_fails_closed_on_a_disabled_subscription(tmp_path: Path) -> None:
    assert_steady()
    psql("site-b", "alter subscription dalp_sub_from_a disable")
    try:
        code, result, stderr = run_json(DRILL, tmp_path / "results")
        assert code == 1, stderr
        assert result["outcome"] == "preflight_failed"
        assert "dalp_sub_from_a is disabled" in result["phases"][0]["message"]
        assert lab_status("hot-hot")["sites"]["site-a"]["accepting"]  # nothing injected
    finally:
        psql("site-b", "alter subscription dalp_sub_from_a enable")
    assert_steady()


def test_survivor_failing_too_fails_the_drill_and_the_lab_is_rebuilt(tmp_path: Path) -> None:
    assert_steady()
    code, result, stderr = run_json(LAB_DRILLS / "hot-hot-both-sites-lost.yaml",
                                    tmp_path / "results")
    assert code == 1, stderr
    assert result["outcome"] == "failed"
    verify = next(p for p in result["phases"] if p["phase"] == "verify")
    sites = verify["report"]["dalp_verify"]  # both sites' states, recorded
    assert not sites["site-a"]["running"] and not sites["site-b"]["running"]
    assert "no site serves the clients" in verify["message"]
    assert result["steady_state_restored"] is True
    assert_steady()


def test_down() -> None:
    assert dalp("lab", "down", "hot-hot").returncode == 0
