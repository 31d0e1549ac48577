"""The hot-warm PLATFORM lab and drill, end to end: clients call the API by its DNS name (a
real BIND, TTL 5 s) over kept-alive connections; recovery promotes site B, starts its API,
stops site A's, and updates the name (RFC 2136, TSIG). The API population's recovery includes
the TTL; the database population of the same run shows what a database-only drill measures."""

from __future__ import annotations

import json
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from tests.lab.helpers import (
    LABS,
    ROOT,
    assert_lab_route_follows_the_bridges,
    assert_no_secret,
    dalp,
    ip,
    run_json,
    run_passed,
    take_lab_down,
    timeline_offsets,
)

# one lab per pytest-xdist worker at a time (see tests/conftest.py)
pytestmark = [pytest.mark.lab, pytest.mark.xdist_group("hot-warm-platform")]

TOPOLOGY = "hot-warm-platform"
ROOT_DIR = LABS / TOPOLOGY
DRILL = ROOT / "drills" / "hot-warm-platform-failover.yaml"
NO_DATA_DRILL = ROOT / "tests" / "lab" / "drills" / "hot-warm-platform-no-data.yaml"
TTL = 5.0  # inventories/lab/hot-warm-platform.yml: dalp_dns_ttl
NETNS = ("dalp-pf-a", "dalp-pf-b")
BRIDGE = "dalp-pf"
SECRETS = ("lab-only-8d3a61c0f5", "uZyKPBw68zEoL5erePyNUrViX2ZzUkdtCgHPUthr8nE=")
NEEDED = ("new primary promoted", "standby workloads started", "active workloads stopped",
          "DNS updated", "api: first client resolved the new address")


@pytest.fixture(scope="module", autouse=True)
def lab_up() -> None:
    started = time.monotonic()
    proc = dalp("lab", "up", TOPOLOGY)
    assert proc.returncode == 0, proc.stderr
    print(f"lab up {TOPOLOGY}: {time.monotonic() - started:.1f} s")


def status() -> dict[str, Any]:
    proc = dalp("lab", "status", TOPOLOGY, "--json")
    assert proc.returncode == 0, proc.stderr
    report: dict[str, Any] = json.loads(proc.stdout)[TOPOLOGY]
    return report


def assert_steady() -> None:
    """Site A primary with its API healthy, site B streaming with no API, the name -> A."""
    report = status()
    a, b = report["sites"]["site-a"], report["sites"]["site-b"]
    assert a["accepting"] and not a["detail"]["in_recovery"], a
    assert b["detail"]["in_recovery"] and b["detail"]["upstream_port"] == 55600, b
    assert report["apis"] == {"site-a": "ok", "site-b": "absent"}, report["apis"]
    assert report["route"]["backend"] == "198.18.6.11", report["route"]


def at(result: dict[str, Any], name: str) -> float:
    """Epoch seconds of the first timeline event of that name."""
    found = [e["at"] for e in result["timeline"] if e["name"] == name]
    assert found, f"no '{name}' on the timeline: {[e['name'] for e in result['timeline']]}"
    return datetime.fromisoformat(found[0]).timestamp()


def test_platform_drill_passes_twice_and_its_recovery_includes_the_ttl(tmp_path: Path) -> None:
    assert_steady()
    for run in (1, 2):
        started = time.monotonic()
        result = run_passed(DRILL, tmp_path / "results")
        print(f"platform drill run {run}: {time.monotonic() - started:.1f} s")
        assert [v["status"] for v in result["verdicts"]] == ["met", "met", "met"]
        assert [v["objective"] for v in result["verdicts"]] == ["rto", "rpo", "rtt"]
        assert result["steady_state_restored"] is True
        api, database = result["populations"]["api"], result["populations"]["database"]
        # the API's markers were read back through SQL on the recovered primary (asynchronous
        # replication: the last acknowledged writes before the kill may be lost, within the RPO)
        assert api["surviving_checked"] is True and api["lost_writes"] >= 0
        for name in NEEDED:
            at(result, name)
        # runbook order: promoted, B's API healthy, A's API stopped, then the name switched
        order = [at(result, name) for name in NEEDED[:4]]
        assert order == sorted(order), order
        print(f"run {run}: api {api['recovery_time']:.2f} s, database "
              f"{database['recovery_time']:.2f} s; timeline: " + ", ".join(
                  f"{name} +{offset:.2f}" for name, offset in timeline_offsets(result).items()))
        # Clients reconnect when site A's API stops, look the name up (still site A's address:
        # the switch comes after) and keep that answer for its TTL: they reach site B one TTL
        # after the stop. So the API's recovery exceeds the database's by at least the TTL...
        assert api["recovery_time"] - database["recovery_time"] >= TTL, (api, database)
        # ...and the timeline shows why: the new address is first resolved a TTL after the
        # stop (the stop's instant is when its check saw nothing answer: a client may have
        # reconnected a little before it)
        resolved = at(result, "api: first client resolved the new address")
        assert resolved - at(result, "active workloads stopped") >= TTL - 0.5
        assert resolved >= at(result, "DNS updated")
        assert_no_secret(tmp_path / "results", *SECRETS)
        assert_steady()


def test_no_data_never_counts_as_recovered(tmp_path: Path) -> None:
    """Site B's API answers /health with no_data once verify has passed: the converge probe
    through the name never counts it as recovered, and the run does not pass."""
    override = ROOT_DIR / "site-b" / "platform" / "health-override"
    try:
        code, result, stderr = run_json(NO_DATA_DRILL, tmp_path / "results")
    finally:
        override.unlink(missing_ok=True)
    assert code != 0, stderr
    assert result["outcome"] != "passed", result["outcome"]
    (probe,) = result["convergence"]
    assert probe["met"] is False and "no_data" in f"{probe['value']} {probe['detail']}", probe
    assert not [e for e in result["timeline"] if e["name"].startswith("converged")]
    rtt = [v for v in result["verdicts"] if v["objective"] == "rtt"]
    assert rtt and rtt[0]["status"] != "met", rtt
    assert result["steady_state_restored"] is True
    assert_steady()


def test_lab_down_leaves_nothing() -> None:
    """last of the group: the lab goes, and nothing of it stays"""
    print(f"lab down {TOPOLOGY}: {take_lab_down(TOPOLOGY, ROOT_DIR):.1f} s")
    namespaces = ip("netns", "list")
    assert not [name for name in NETNS if name in namespaces], namespaces
    links = ip("-o", "link", "show")
    assert not [name for name in (BRIDGE, *NETNS) if f": {name}" in links], links
    # the unreachable route goes with the last lab bridge (host labs may run beside)
    assert_lab_route_follows_the_bridges()
    assert status() == {"present": False}
