"""The hot-hot lab as separate hosts (`dalp-dr lab up hot-hot --hosts`), its link cut.

Each active site is a network namespace with its own address and sshd, reached over SSH as an
unprivileged user. The drill cuts the link between the sites (nftables rules in site A's
namespace): both keep serving their own clients, replication stops both ways; steady state
heals the cut and waits until each site holds what its peer took meanwhile. `lab down`
leaves nothing behind.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from tests.lab.helpers import (
    CUT_OFF,
    LABS,
    ROOT,
    assert_host_lab_gone,
    connect_from,
    dalp,
    host_lab_sql,
    run_and_act,
)

pytestmark = [pytest.mark.lab, pytest.mark.xdist_group("hot-hot-hosts")]

HOSTS_ROOT = LABS / "hot-hot-hosts"  # inventories/lab/hosts/hot-hot.yml
DRILL = ROOT / "tests" / "lab" / "drills" / "hot-hot-hosts-link-cut.yaml"
SITE_A = ("198.18.2.31", 5432)


def rows(site: str, table: str) -> int:
    return int(host_lab_sql(HOSTS_ROOT, site, f"select count(*) from {table}", db="dalp"))


def test_a_cut_link_leaves_both_sites_serving_and_steady_state_reconciles(
        tmp_path: Path) -> None:
    up = dalp("lab", "up", "hot-hot", "--hosts")
    assert up.returncode == 0, up.stdout + up.stderr
    seen: dict[str, object] = {}

    def during_the_cut(_proc: subprocess.Popen[str]) -> None:
        # across the cut a connect times out; each site's own clients still get in
        seen["b_to_a"] = connect_from("dalp-hh-b", SITE_A)
        seen["controller_to_a"] = connect_from(None, SITE_A)
        # site A keeps taking its clients' writes, and they no longer reach site B
        seen["a_rows_at_a"] = rows("site-a", "dalp_dr_heartbeat_a")
        seen["a_rows_at_b"] = rows("site-b", "dalp_dr_heartbeat_a")

    env = {**os.environ, "DALP_DR_RESULTS": str(tmp_path / "results")}
    run = run_and_act(env, DRILL, "phase verify ...", during_the_cut, "--json", timeout=600)
    assert run.returncode == 0, run.stderr
    assert seen["b_to_a"] in CUT_OFF, seen
    assert seen["controller_to_a"] == "ok"
    assert seen["a_rows_at_b"] < seen["a_rows_at_a"], seen  # type: ignore[operator]

    result = json.loads(run.stdout)
    assert result["outcome"] == "passed", result.get("message")
    for name in ("site-a", "site-b"):
        m = result["populations"][name]
        # nobody had to move: no write failed, nothing was lost through the site's own route
        assert m["write_outage"] == 0.0 and m["lost_writes"] == 0, (name, m)
    steady = next(p for p in result["phases"] if p["phase"] == "steady_state")
    (reconciled,) = [t for t in steady["report"]["dalp_phase_timings"]
                     if t["step"] == "reconcile both sites after the cut"]
    print(f"link cut: both sites served throughout; reconciled {reconciled['seconds']} s "
          "after the heal")
    # reconciled: each site holds every row its peer owns
    for table in ("dalp_dr_heartbeat_a", "dalp_dr_heartbeat_b"):
        assert rows("site-a", table) == rows("site-b", table), table

    down = dalp("lab", "down", "hot-hot", "--hosts")
    assert down.returncode == 0, down.stderr
    assert_host_lab_gone(HOSTS_ROOT, ("dalp-hh-a", "dalp-hh-b"), "dalp-hh", "dalp-hh")
