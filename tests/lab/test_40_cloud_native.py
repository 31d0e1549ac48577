"""The cloud-native failover drill on a real Patroni + etcd lab."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
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
    timeline_offsets,
)
from tests.lab.ledger import TABLE, LedgerWriter

# one lab per pytest-xdist worker at a time (see tests/conftest.py)
pytestmark = pytest.mark.xdist_group("cloud-native")

DRILL = ROOT / "drills" / "cloud-native-failover.yaml"
PATRONICTL = ["/usr/bin/patronictl", "-c", "/var/tmp/dalp-dr-lab/cloud-native/pg1/patroni.yml"]
LAB = Path("/var/tmp/dalp-dr-lab/cloud-native")
SERVICE_DSN = ("host=127.0.0.1,127.0.0.1,127.0.0.1 port=55461,55462,55463 dbname=dalp "
               "user=dalp_app password=lab-only-c3a91e5d27 target_session_attrs=read-write "
               "connect_timeout=2")
TIMELINE = ["leader key gone", "new leader elected", "new primary promoted",
            "sync standby set", "old leader rejoined", "cluster whole"]


@pytest.fixture(scope="module", autouse=True)
def lab_up() -> None:
    proc = dalp("lab", "up", "cloud-native")
    assert proc.returncode == 0, proc.stderr


def assert_cluster_whole() -> dict[str, Any]:
    status = lab_status("cloud-native")
    members = status["members"]
    assert len(members) == 3, members
    assert [m["role"] for m in members].count("leader") == 1, members
    assert "sync_standby" in [m["role"] for m in members], members
    assert all(m["state"] in ("running", "streaming") for m in members), members
    return status


def assert_failover_passed(drill: Path, results: Path) -> tuple[dict[str, Any], str]:
    before = assert_cluster_whole()
    code, result, stderr = run_json(drill, results)
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
    # the recovery decomposed: every platform milestone seen, in a sensible order, and the
    # client's first acknowledged write is the measured recovery time
    at = timeline_offsets(result)
    assert all(name in at for name in TIMELINE), at
    assert at["leader key gone"] <= at["new leader elected"] <= at["new primary promoted"] + 0.2
    assert at["new primary promoted"] <= at["cluster whole"]
    assert abs(at["first client write acknowledged"] - m["recovery_time"]) < 0.01
    # the observer's raw record is kept as evidence
    assert list((results / result["run_id"] / "files" / "verify").glob("patroni-watch.jsonl"))
    assert_no_secret(results, "lab-only-c3a91e5d27")
    return result, old


@pytest.mark.parametrize("playbook", READ_ONLY_PLAYBOOKS)
def test_read_only_playbooks_under_check_read_the_real_state_and_change_nothing(
        tmp_path: Path, playbook: str) -> None:
    assert_read_only_under_check(DRILL, playbook, tmp_path)


def test_failover_loses_no_acknowledged_write(tmp_path: Path) -> None:
    """Synchronous replication: an application writing as fast as it can beside the heartbeat
    loses no acknowledged transaction, and the divergence probe says so exactly. A commit the
    old leader took as it died (in doubt for its client) may lie past the fork in its WAL: it
    is counted, and reported as never acknowledged (its synchronous standby took over without
    it), never as acknowledged loss (CI once saw the heartbeat's in-flight write there)."""
    ledger = LedgerWriter(SERVICE_DSN)
    ledger.start()
    try:
        result, old = assert_failover_passed(DRILL, tmp_path / "results")
    finally:
        ledger.stop()
    assert not ledger.unexpected, ledger.unexpected
    at = timeline_offsets(result)
    # the postmaster died but Patroni lived: no need to wait for the key to expire (ttl 6 s)
    assert at["new leader elected"] < 6
    m = result["measurements"]
    found = m["divergence"]
    assert found["available"] is True, found
    new = found["new_primary"]
    assert found["old_primary"] == old and new != old
    assert found["new_timeline"] > found["old_timeline"]
    # the old leader waited for the node that took over, in its own words before the kill
    guard = next(p for p in result["phases"] if p["phase"] == "inject")["report"][
        "dalp_commit_guard"]
    assert {"name": new, "sync_state": "sync"} in guard["standbys"], guard
    assert guard["synchronous_commit"] == "on", guard
    # every transaction the application was told committed is on the new leader
    survived = ledger.surviving()
    acked = [e for e in ledger.entries if e.acked_at is not None]
    assert len(acked) > 100 and all(e.n in survived for e in acked), len(acked)
    # what the old leader's WAL has past the fork (read from the copy inject took before
    # Patroni rewound it) is only what no client was told: judged exact, 0
    rows = [json.loads(line) for line in
            (Path(result["evidence_dir"]) / found["evidence"]).read_text().splitlines()]
    in_doubt = {e.xid for e in ledger.entries if e.acked_at is None}
    assert {r["xid"] for r in rows if f"dalp.public.{TABLE}" in r["tables"]} <= in_doubt
    assert len(rows) == found["lost_transactions"]
    if rows:
        assert found["never_acknowledged"].startswith(f"{new} was a synchronous standby")
        assert found["window"] >= 0
    assert m["data_loss_basis"] == "exact" and m["data_loss_window"] == 0
    assert "exact" in result["verdicts"][1]["reason"]
    # steady state took the copy away
    assert not list(LAB.glob("*/dalp-dr-wal-*"))


def test_node_loss_waits_for_the_leader_key_to_expire(tmp_path: Path) -> None:
    result, old = assert_failover_passed(ROOT / "drills" / "cloud-native-node-loss.yaml",
                                         tmp_path / "results")
    at = timeline_offsets(result)
    gone = next(e for e in result["timeline"] if e["name"] == "leader key gone")
    # Patroni watches the key: the survivor takes it within milliseconds of expiry, so the
    # observer (polling) may or may not see it absent in between
    assert "key absent: released or expired" in gone["detail"] \
        or f"{old} no longer holds the leader key (taken over by " in gone["detail"], gone
    # nobody released it: it expired, ttl (6 s) after its last refresh (every loop_wait, 1 s).
    # Seen up to: etcd revokes expired leases in a loop (every 500 ms), and the observer sees
    # the key gone within its poll interval (0.1 s) plus one request (CI measured 6.52 s)
    assert 4.0 < at["leader key gone"] <= 6.0 + 0.5 + 0.1 + 0.4
    assert at["lost node started again"] < at["old leader rejoined"]
    back = next(e for e in result["timeline"] if e["name"] == "lost node started again")
    assert back["detail"].startswith(old)


def test_switchover_reports_its_write_outage(tmp_path: Path) -> None:
    before = assert_cluster_whole()
    code, result, stderr = run_json(ROOT / "drills" / "cloud-native-switchover.yaml",
                                    tmp_path / "results")
    assert code == 0, stderr
    m = result["measurements"]
    assert m["lost_writes"] == 0 and m["data_loss_window"] == 0
    assert 0 <= m["recovery_time"] < 60  # request -> first write acknowledged again
    # the outage clients saw starts when writes stopped, after the request
    assert 0 < m["write_outage"] < m["recovery_time"]
    after = assert_cluster_whole()
    assert after["leader"] != before["leader"]
    inject = next(p for p in result["phases"] if p["phase"] == "inject")
    assert "Successfully switched over" in inject["report"]["dalp_notes"][0]


def test_no_new_leader_fails_records_the_cluster_and_restores_it(tmp_path: Path) -> None:
    """The failover stalls (cluster paused, then the leader's postmaster killed)."""
    before = assert_cluster_whole()
    code, result, stderr = run_json(ROOT / "tests" / "lab" / "drills" / "cloud-native-stalled.yaml",
                                    tmp_path / "results")
    assert code == 1, stderr
    assert result["outcome"] == "failed"
    phases = {p["phase"]: p for p in result["phases"]}
    recover = phases["recover"]
    assert recover["status"] == "failed"
    assert "no new leader within 3 s" in recover["message"]
    waited = (datetime.fromisoformat(recover["ended_at"])
              - datetime.fromisoformat(recover["started_at"])).total_seconds()
    # gave up after its own 3 s bound (then recorded the cluster's state: a few playbook tasks,
    # slow on a loaded machine), not cut off by the 1 min phase timeout
    assert 3 <= waited < 60
    failure = recover["report"]["dalp_recover_failure"]
    assert failure["patroni_cluster"]["pause"] is True
    assert failure["observer"]["dcs"]["leader"] in (None, before["leader"])
    assert failure["observer"]["rest"][before["leader"]]["state"] != "running"
    assert phases["verify"]["status"] == "failed"
    assert result["measurements"]["recovery_time"] is None
    # steady state resumed the cluster and brought it back whole
    assert result["steady_state_restored"] is True
    status = assert_cluster_whole()
    assert status["paused"] is False


@contextmanager
def patronictl(do: list[str], undo: list[str]) -> Iterator[None]:
    subprocess.run([*PATRONICTL, *do], check=True, capture_output=True)
    try:
        yield
    finally:
        subprocess.run([*PATRONICTL, *undo], check=True, capture_output=True)
        assert_cluster_whole_soon()


def assert_cluster_whole_soon(seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while True:
        try:
            assert_cluster_whole()
            return
        except AssertionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def assert_refused(tmp_path: Path, reason: str) -> None:
    leader = lab_status("cloud-native")["leader"]
    code, result, stderr = run_json(DRILL, tmp_path / "results")
    assert code == 1, stderr
    assert result["outcome"] == "preflight_failed"
    assert reason in result["phases"][0]["message"]
    assert [p["phase"] for p in result["phases"]] == ["preflight", "steady_state"]
    assert lab_status("cloud-native")["leader"] == leader  # nothing was injected


def test_preflight_fails_closed_when_paused(tmp_path: Path) -> None:
    with patronictl(["pause", "--wait"], ["resume", "--wait"]):
        assert_refused(tmp_path, "paused")


def test_preflight_fails_closed_without_a_synchronous_standby(tmp_path: Path) -> None:
    with patronictl(["edit-config", "--force", "-s", "synchronous_mode=false"],
                    ["edit-config", "--force", "-s", "synchronous_mode=true"]):
        deadline = time.monotonic() + 30  # Patroni drops the sync role within a loop or two
        while "sync_standby" in [m["role"] for m in lab_status("cloud-native")["members"]]:
            assert time.monotonic() < deadline
            time.sleep(0.5)
        assert_refused(tmp_path, "no synchronous standby")


def test_preflight_fails_closed_when_a_member_is_down(tmp_path: Path) -> None:
    status = assert_cluster_whole()
    replica = next(m["name"] for m in status["members"] if m["role"] == "replica")
    member = LAB / replica
    pid = int((member / "patroni.pid").read_text())
    os.kill(pid, signal.SIGTERM)  # Patroni stops its PostgreSQL and leaves the cluster
    try:
        deadline = time.monotonic() + 60
        while Path(f"/proc/{pid}").exists():
            assert time.monotonic() < deadline
            time.sleep(0.2)
        assert_refused(tmp_path, "members not all healthy")
    finally:
        assert dalp("lab", "up", "cloud-native").returncode == 0
    assert_cluster_whole_soon()


def test_leader_isolation_needs_a_host_lab_and_changes_nothing() -> None:
    """inject-isolate-leader.yml cuts a host lab's leader off (tests/lab/test_13); on this
    lab, whose members are no hosts of their own, it fails closed: no observer, no fault."""
    before = assert_cluster_whole()
    proc = subprocess.run(
        [str(Path(sys.executable).parent / "ansible-playbook"),
         "-i", str(ROOT / "inventories" / "lab" / "cloud-native.yml"),
         str(ROOT / "playbooks" / "cloud-native" / "inject-isolate-leader.yml")],
        env={**os.environ, "ANSIBLE_ROLES_PATH": str(ROOT / "playbooks" / "roles")},
        capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode != 0
    assert "isolating the leader needs a host lab" in proc.stdout, proc.stdout
    assert not (LAB / "watch" / "adhoc").exists()  # the observer was not started
    assert assert_cluster_whole()["leader"] == before["leader"]


def test_down() -> None:
    assert dalp("lab", "down", "cloud-native").returncode == 0
