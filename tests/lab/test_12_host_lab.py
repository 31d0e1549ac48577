"""The hot-warm lab as separate hosts (`dalp-dr lab up hot-warm --hosts`), drilled over SSH.

Each site is a network namespace with its own address from 198.18.0.0/15 and its own sshd; the
controller reaches it as an unprivileged user that may only `sudo -n -u postgres`, with an
inventory shaped like inventories/examples/hot-warm-ssh.yml and the application password kept
in the vault. The drill passes twice in a row; `lab down` leaves nothing behind. A partition
cuts a site off while it keeps running: a connect across the cut times out. Site A's own
clients (an isolated population) keep writing to it: without fencing it takes their writes
after site B's promotion (split brain, the drill misses split_brain: 0); with the fencing
step in recover it takes none and the drill passes, and 300 ms of latency on the replication
link shows as the data-loss window.
"""

from __future__ import annotations

import json
import os
import subprocess
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from tests.lab.helpers import (
    CUT_OFF,
    LAB_PASSWORD,
    LABS,
    ROOT,
    assert_host_lab_gone,
    assert_lab_route_follows_the_bridges,
    assert_no_secret,
    connect_from,
    dalp,
    dalp_in,
    host_lab_sql,
    ip,
    run_and_act,
    vaulted_drill,
)

pytestmark = [pytest.mark.lab, pytest.mark.xdist_group("hot-warm-hosts")]

HOSTS_ROOT = LABS / "hot-warm-hosts"  # inventories/lab/hosts/hot-warm.yml
INVENTORY = ROOT / "inventories" / "lab" / "hosts" / "hot-warm.yml"
DRILL = ROOT / "tests" / "lab" / "drills" / "hot-warm-hosts.yaml"
SPLIT_BRAIN_DRILL = ROOT / "tests" / "lab" / "drills" / "hot-warm-hosts-split-brain.yaml"
FENCED_DRILL = ROOT / "tests" / "lab" / "drills" / "hot-warm-hosts-fenced.yaml"
LINK_PORT = 15432  # playbooks/roles/dalp_link/defaults/main.yml
SITE_A = ("198.18.0.11", 5432)
NETNS = ("dalp-hw-a", "dalp-hw-b", "dalp-hw-r")
LAB_USER = "dalp-lab"


def assert_healed_and_failed_back() -> None:
    assert connect_from("dalp-hw-r", SITE_A) == "ok"  # steady state healed the cut
    status = dalp("lab", "status", "hot-warm", "--hosts")
    assert "route    -> 198.18.0.11:5432" in status.stdout, status.stdout
    assert "streaming from 198.18.0.11:5432" in status.stdout, status.stdout


def at(text: str) -> datetime:
    return datetime.fromisoformat(text)


def split_brain_of(result: dict[str, Any], population: str) -> tuple[dict[str, Any],
                                                                      dict[str, Any]]:
    """(the population's split-brain figures, its split_brain verdict)."""
    (verdict,) = [v for v in result["verdicts"]
                  if v["objective"] == "split_brain" and v["population"] == population]
    return result["populations"][population]["split_brain"], verdict


def test_hot_warm_over_ssh_passes_twice(tmp_path: Path) -> None:
    assert dalp("lab", "down", "hot-warm", "--hosts").returncode == 0
    assert_host_lab_gone(HOSTS_ROOT, NETNS, "dalp-hw", LAB_USER)

    up = dalp("lab", "up", "hot-warm", "--hosts")
    assert up.returncode == 0, up.stdout + up.stderr
    # lab traffic can only go to the lab's bridge: the rest of the range is unreachable
    assert "198.18.0.0/15" in ip("route", "show", "type", "unreachable")
    status = dalp("lab", "status", "hot-warm", "--hosts")
    assert status.returncode == 0, status.stderr
    assert "route    -> 198.18.0.11:5432" in status.stdout
    assert "streaming from 198.18.0.11:5432" in status.stdout

    drill = vaulted_drill(tmp_path, DRILL, INVENTORY)
    env = {**os.environ,
           "DALP_DR_RESULTS": str(tmp_path / "results"),
           "DALP_DR_ALLOWED_DIRS": str(tmp_path),
           "ANSIBLE_VAULT_PASSWORD_FILE": str(tmp_path / "vault-pass")}
    for attempt in (1, 2):
        ran = dalp_in(env, "drill", "run", "--json", str(drill), timeout=600)
        assert ran.returncode == 0, f"run {attempt}: {ran.stderr}"
        result = json.loads(ran.stdout)
        assert result["outcome"] == "passed", f"run {attempt}"
        assert LAB_PASSWORD not in ran.stdout + ran.stderr
    # the failover came back: A is the primary again, the route points at it
    again = dalp("lab", "status", "hot-warm", "--hosts")
    assert "route    -> 198.18.0.11:5432" in again.stdout
    # the phases ran over SSH as the lab user, by key, on every site
    for host in ("site-a", "site-b", "route-host"):
        log = (HOSTS_ROOT / "ssh" / f"sshd-{host}.log").read_text()
        assert f"Accepted publickey for {LAB_USER} from 198.18.0.1" in log, host
    assert_no_secret(tmp_path / "results", LAB_PASSWORD)


STREAMING_FROM = ("select sender_host || ':' || sender_port from pg_stat_wal_receiver "
                  "where status = 'streaming'")


def link_rules() -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", "netns", "exec", "dalp-hw-a", "nft", "list", "table", "inet",
                           "dalp_link"], capture_output=True, text=True, check=False)


def test_a_partition_cuts_site_a_off_and_split_brain_needs_fencing(tmp_path: Path) -> None:
    up = dalp("lab", "up", "hot-warm", "--hosts")
    assert up.returncode == 0, up.stdout + up.stderr
    assert connect_from("dalp-hw-r", SITE_A) == "ok"
    env = {**os.environ, "DALP_DR_RESULTS": str(tmp_path / "results")}
    seen: dict[str, str] = {}

    def across_the_cut(_proc: subprocess.Popen[str]) -> None:
        # a connect across the cut times out or is unreachable: it never reaches anything
        # else; site A keeps serving whoever still reaches it (its own side of the cut)
        for netns in ("dalp-hw-r", "dalp-hw-b", None):
            seen[str(netns)] = connect_from(netns, SITE_A)

    # Without fencing: site A keeps taking its own clients' writes after B's promotion.
    ran = run_and_act(env, SPLIT_BRAIN_DRILL, "phase verify ...", across_the_cut, "--json",
                      timeout=600)
    assert ran.returncode == 1, ran.stderr
    assert seen["dalp-hw-r"] in CUT_OFF and seen["dalp-hw-b"] in CUT_OFF, seen
    assert seen["None"] == "ok", seen
    result = json.loads(ran.stdout)
    assert result["outcome"] == "missed", result.get("message")
    # the routed clients failed over and met every objective, split brain included
    assert {(v["objective"], v["status"]) for v in result["verdicts"]
            if v["population"] == "service"} == {
        ("rto", "met"), ("rpo", "met"), ("split_brain", "met")}
    figures, verdict = split_brain_of(result, "site-a")
    assert verdict["status"] == "missed" and verdict["measured"] == figures["writes"] > 0
    assert figures["fenced"] is False  # it took writes to the end
    assert figures["old_server"] == "198.18.0.11:5432"
    assert at(figures["promoted_at"]) < at(figures["first_at"]) <= at(figures["last_at"])
    service, _ = split_brain_of(result, "service")
    assert service["writes"] == 0 and service["old_timeline"] == figures["old_timeline"]
    assert service["fenced"] is None  # the isolated clients answer that
    print(f"split brain without fencing: {figures['writes']} writes over "
          f"{figures['span']} s after the promotion")
    assert_healed_and_failed_back()

    # With the fencing step, on a link with 300 ms each way and 2 % loss: site A is stopped
    # before B is promoted, nothing to split; what A acknowledged in the last ~300 ms before
    # the cut was still on the link: lost. As the fault comes, the link's parameters are in
    # effect: site B streams through the delaying proxy, the loss rule is in A's namespace.
    link: dict[str, str] = {}

    def on_the_link(_proc: subprocess.Popen[str]) -> None:
        link["streaming_from"] = host_lab_sql(HOSTS_ROOT, "site-b", STREAMING_FROM)
        link["rules"] = link_rules().stdout

    fenced = run_and_act(env, FENCED_DRILL, "phase inject ...", on_the_link, "--json",
                         timeout=600)
    assert link["streaming_from"] == f"198.18.0.11:{LINK_PORT}", link
    assert (f"ip daddr 198.18.0.12 tcp sport {LINK_PORT} numgen random mod 100 < 2 drop"
            in link["rules"]), link
    assert fenced.returncode == 0, fenced.stderr
    result = json.loads(fenced.stdout)
    assert result["outcome"] == "passed", result.get("message")
    figures, verdict = split_brain_of(result, "site-a")
    assert verdict["status"] == "met" and figures["writes"] == 0
    assert figures["fenced"] is True
    events = {e["name"]: at(e["at"]) for e in result["timeline"]}
    # fenced before the promotion, and site A's last acknowledged write before that
    assert events["old primary fenced"] < events["new primary promoted"]
    assert at(figures["last_old_primary_ack"]) <= events["old primary fenced"]
    m = result["populations"]["service"]
    print(f"fenced, link 300 ms and 2 % loss: data-loss window {m['data_loss_window']} s, "
          f"{m['lost_writes']} writes lost, recovery {m['recovery_time']} s")
    assert m["lost_writes"] >= 1
    assert m["data_loss_window"] >= 0.2  # the link's delay less one heartbeat interval
    assert_healed_and_failed_back()
    # healed: site B streams straight from site A, the link's proxy and rules are gone
    assert host_lab_sql(HOSTS_ROOT, "site-b", STREAMING_FROM) == "198.18.0.11:5432"
    assert link_rules().returncode != 0


def test_lab_down_leaves_nothing() -> None:
    """last of the group: the host lab goes, and nothing of it stays"""
    down = dalp("lab", "down", "hot-warm", "--hosts")
    assert down.returncode == 0, down.stderr
    assert_host_lab_gone(HOSTS_ROOT, NETNS, "dalp-hw", LAB_USER)
    # the unreachable route goes with the last lab bridge (host labs may run beside)
    assert_lab_route_follows_the_bridges()
