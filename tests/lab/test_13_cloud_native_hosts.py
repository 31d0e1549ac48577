"""The cloud-native lab as separate hosts (`dalp-dr lab up cloud-native --hosts`), and the
leader isolated from the DCS and the replicas.

Each Patroni member and the etcd host is a network namespace with its own address from
198.18.0.0/15 and its own sshd, reached over SSH as an unprivileged user that may only
`sudo -n -u postgres`. The drill cuts the leader off (nftables drop rules in its namespace)
while it keeps running and serving its own clients (an isolated population straight to it):
a connect from a replica's or the etcd host's namespace times out; Patroni demotes the old
leader within ttl + loop_wait of the cut, a synchronous standby takes over, and the old leader
accepts no write after the promotion. Steady state heals the cut, the old leader rejoins and
gets the lead back; `lab down` leaves nothing behind.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.lab.helpers import (
    CUT_OFF,
    LABS,
    ROOT,
    assert_host_lab_gone,
    assert_lab_route_follows_the_bridges,
    assert_no_secret,
    connect_from,
    dalp,
    ip,
    run_and_act,
    timeline_offsets,
)

pytestmark = [pytest.mark.lab, pytest.mark.xdist_group("cloud-native-hosts")]

HOSTS_ROOT = LABS / "cloud-native-hosts"  # inventories/lab/hosts/cloud-native.yml
DRILL = ROOT / "tests" / "lab" / "drills" / "cloud-native-hosts-leader-isolated.yaml"
HOME = "pg1"  # dalp_patroni_home: the leader in steady state, the one the drill isolates
LEADER = ("198.18.1.21", 5432)
NETNS = ("dalp-cn-1", "dalp-cn-2", "dalp-cn-3", "dalp-cn-e")
LAB_USER = "dalp-cn"
LAB_PASSWORD = "lab-only-c3a91e5d27"
TTL, LOOP_WAIT = 6, 1  # the inventory's dalp_patroni_ttl, dalp_patroni_loop_wait


def cluster() -> dict[str, Any]:
    status = dalp("lab", "status", "cloud-native", "--hosts", "--json")
    assert status.returncode == 0, status.stderr
    report: dict[str, Any] = json.loads(status.stdout)["cloud-native"]
    return report


def assert_home_leads_whole() -> None:
    report = cluster()
    members = {m["name"]: m for m in report["members"]}
    assert report["leader"] == HOME, report
    assert sorted(members) == ["pg1", "pg2", "pg3"], report
    assert all(m["state"] in ("running", "streaming") for m in members.values()), report
    # every replica a synchronous standby (dalp_patroni_sync_count 2)
    assert sorted(m["role"] for m in members.values()) == [
        "leader", "sync_standby", "sync_standby"], report


def test_leader_isolated_is_demoted_without_split_brain_and_down_leaves_nothing(
        tmp_path: Path) -> None:
    up = dalp("lab", "up", "cloud-native", "--hosts")
    assert up.returncode == 0, up.stdout + up.stderr
    # lab traffic can only go to the lab's bridge: the rest of the range is unreachable
    assert "198.18.0.0/15" in ip("route", "show", "type", "unreachable")
    assert_home_leads_whole()
    assert connect_from("dalp-cn-2", LEADER) == "ok"

    seen: dict[str, str] = {}

    def across_the_cut(_: subprocess.Popen[str]) -> None:
        # recover runs: the cut is in place. A replica and the etcd host cannot reach the
        # leader (a connect times out, it reaches nothing else); the controller still can.
        for netns in ("dalp-cn-2", "dalp-cn-e"):
            seen[netns] = connect_from(netns, LEADER)
        seen["controller"] = connect_from(None, LEADER)

    env = {**os.environ, "DALP_DR_RESULTS": str(tmp_path / "results")}
    run = run_and_act(env, DRILL, "phase recover ...", across_the_cut, "--json")
    assert seen["dalp-cn-2"] in CUT_OFF and seen["dalp-cn-e"] in CUT_OFF, seen
    assert seen["controller"] == "ok", seen
    assert run.returncode == 0, run.stderr
    result = json.loads(run.stdout)
    assert result["outcome"] == "passed", result.get("message")

    # no split brain, from either population's side: the old leader's own clients (straight
    # to it) got no write acknowledged by it after the promotion
    for population in ("service", "leader-own"):
        (verdict,) = [v for v in result["verdicts"]
                      if v["objective"] == "split_brain" and v["population"] == population]
        figures = result["populations"][population]["split_brain"]
        assert verdict["status"] == "met" and figures["writes"] == 0, (population, figures)
        assert figures["old_server"] in (None, f"{LEADER[0]}:{LEADER[1]}"), figures
    own = result["populations"]["leader-own"]["split_brain"]
    phases = {p["phase"]: p for p in result["phases"]}
    assert phases["inject"]["report"]["dalp_old_leader"] == HOME
    assert phases["recover"]["report"]["dalp_new_leader"] != HOME

    # the timeline: Patroni demoted the old leader within ttl + loop_wait of the cut, and
    # promoted a synchronous standby (the key had to expire first: after the demotion)
    at = timeline_offsets(result)
    for event in ("old leader demoted", "leader key gone", "new leader elected",
                  "new primary promoted", "service: first client write acknowledged"):
        assert event in at, (event, at)
    assert 0 < at["old leader demoted"] <= TTL + LOOP_WAIT, at
    assert at["old leader demoted"] < at["new primary promoted"], at
    demoted = next(e for e in result["timeline"] if e["name"] == "old leader demoted")
    assert demoted["detail"].startswith(f"{HOME} runs as primary no more"), demoted
    m = result["measurements"]
    assert m["lost_writes"] == 0 and m["data_loss_window"] == 0  # synchronous: RPO 0
    assert 0 < m["recovery_time"] < 120
    print(f"\nleader isolation: old leader demoted {at['old leader demoted']:.2f} s after the "
          f"cut (bound ttl + loop_wait = {TTL + LOOP_WAIT} s), new primary promoted "
          f"{at['new primary promoted']:.2f} s, recovery time {m['recovery_time']:.2f} s, "
          f"split-brain writes 0 (old leader fenced: {own['fenced']}); {demoted['detail']}")
    # the observer's raw record is kept as evidence
    assert list((tmp_path / "results" / result["run_id"] / "files" / "verify")
                .glob("patroni-watch.jsonl"))
    assert_no_secret(tmp_path / "results", LAB_PASSWORD)

    # steady state healed the cut and gave the home member the lead back
    assert connect_from("dalp-cn-2", LEADER) == "ok"
    assert_home_leads_whole()
    # the phases ran over SSH as the lab user, by key, on every host
    for host in ("pg1", "pg2", "pg3", "etcd-lab"):
        log = (HOSTS_ROOT / "ssh" / f"sshd-{host}.log").read_text()
        assert f"Accepted publickey for {LAB_USER} from 198.18.1.1" in log, host

    # a drill that crashed would leave its observer running on the controller, outside the
    # namespaces: lab down stops it too
    stray = HOSTS_ROOT / "watch" / "crashed-run"
    stray.mkdir(parents=True)
    observer = subprocess.Popen(
        [sys.executable, str(ROOT / "dalp_dr" / "patroni_watch.py"), "watch",
         "--etcd", "http://198.18.1.24:2379", "--prefix", "/dalp-dr/dalp-lab/",
         "--member", "pg1=http://198.18.1.21:8008", "--out", "watch.jsonl",
         "--stop-file", "stop"], cwd=stray, start_new_session=True,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    (stray / "watch.pid").write_text(f"{observer.pid}\n")
    try:
        down = dalp("lab", "down", "cloud-native", "--hosts")
        assert down.returncode == 0, down.stderr
        assert observer.wait(timeout=10) is not None
    finally:
        if observer.poll() is None:
            observer.kill()
            observer.wait()
    assert_host_lab_gone(HOSTS_ROOT, NETNS, "dalp-cn", LAB_USER)
    # the unreachable route goes with the last lab bridge (host labs may run beside)
    assert_lab_route_follows_the_bridges()
