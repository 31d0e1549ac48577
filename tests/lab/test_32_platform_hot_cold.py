"""The hot-cold PLATFORM restore on the real lab: the hot-cold lab (PostgreSQL, moto S3 on
loopback, pgbouncer) with a real local EVM chain (anvil) and the lab's stand-ins for DALP's
chain indexer and durable workflow worker above it (playbooks/roles/dalp_lab_platform).

The drill loses site A with its workloads, restores the cold site from object storage, starts
the workloads against it, and measures what the platform's clients need: the indexer caught up
with the chain (which went on without the site), every workflow in flight at the fault
completed exactly once, no chain event indexed twice. A lost indexer checkpoint (a lab fault
after the restore) must make the drill fail. `lab down` leaves nothing, anvil included.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import httpx
import pytest

from tests.lab.helpers import (
    PG_BIN,
    ROOT,
    alive,
    assert_no_secret,
    dalp,
    run_json,
    run_passed,
    take_lab_down,
    timeline_offsets,
)

# its own lab root, ports, moto and bucket prefix: beside the other labs
pytestmark = pytest.mark.xdist_group("hot-cold-platform")

DRILL = ROOT / "drills" / "hot-cold-platform-restore.yaml"
CHECKPOINT_LOST = ROOT / "tests" / "lab" / "drills" / "hot-cold-platform-checkpoint-lost.yaml"
LAB_ROOT = Path("/var/tmp/dalp-dr-lab/platform-hot-cold")  # inventories/lab/hot-cold-platform.yml
SITE_A_PORT = 55562
CHAIN = "http://127.0.0.1:55565"
SECRETS = ("lab-only-5c7a0e93d1", "lab-only-secret-2b8e4")
WORKLOADS = ("indexer", "workflows")


@pytest.fixture(scope="module", autouse=True)
def lab_up() -> None:
    proc = dalp("lab", "up", "hot-cold-platform")
    assert proc.returncode == 0, proc.stderr


def chain_head() -> int:
    answer = httpx.post(CHAIN, json={"jsonrpc": "2.0", "id": 1, "method": "eth_blockNumber",
                                     "params": []}, timeout=5)
    return int(answer.json()["result"], 16)


def site_a(sql: str) -> str:
    return subprocess.run(
        ["runuser", "-u", "postgres", "--", str(PG_BIN / "psql"), "-XAtq", "-h",
         str(LAB_ROOT / "run"), "-p", str(SITE_A_PORT), "-d", "dalp", "-c", sql],
        check=True, capture_output=True, text=True).stdout.strip()


def pid(path: Path) -> int:
    return int(path.read_text().strip())


def assert_platform_steady() -> None:
    """Site A's workloads and the chain run; the indexer follows the chain; workflows
    complete."""
    for name in ("anvil", "traffic"):
        assert alive(pid(LAB_ROOT / "chain" / f"{name}.pid")), name
    for name in WORKLOADS:
        assert alive(pid(LAB_ROOT / "platform" / "site-a" / f"{name}.pid")), name
        assert not (LAB_ROOT / "platform" / "site-cold" / f"{name}.pid").exists(), name
    indexed = int(site_a("select last_block from lab_indexer_checkpoint"))
    assert 0 <= chain_head() - indexed <= 5
    assert int(site_a("select count(*) from lab_workflow_completion")) > 0


def test_lab_up_runs_the_chain_and_site_a_workloads() -> None:
    assert_platform_steady()
    anvil = pid(LAB_ROOT / "chain" / "anvil.pid")
    assert Path(f"/proc/{anvil}/exe").resolve().name == "anvil"  # the real node, not a stand-in
    assert os.readlink(f"/proc/{anvil}/cwd") == str(LAB_ROOT / "chain")
    # the chain moves, and carries its users' transactions for the indexer
    assert int(site_a("select count(*) from lab_indexer_event")) > 0


def test_restore_drill_passes_restore_catch_up_and_rtt_apart(tmp_path: Path) -> None:
    results = tmp_path / "results"
    result = run_passed(DRILL, results)
    phases = {p["phase"]: p for p in result["phases"]}
    # the workloads died with the site
    assert "site workloads killed with the site: 2" in phases["inject"]["report"]["dalp_notes"]
    # the PostgreSQL restore (barman-cloud's), step by step, then the workloads started
    steps = [s["step"] for s in phases["recover"]["report"]["dalp_phase_timings"]]
    assert steps == ["provision", "download and restore (barman-cloud-restore)", "wal replay",
                     "start workloads"]
    at = timeline_offsets(result)
    assert 0 < at["PostgreSQL restored"] < at["workloads started"] < at["indexer resumed"]
    assert at["workloads started"] < at["workflows resumed"]
    # the indexer resumed from its restored checkpoint, then caught up with the chain
    events = {e["name"]: e for e in result["timeline"]}
    assert "(its checkpoint)" in events["indexer resumed"]["detail"]
    converged = {c["name"]: c for c in result["convergence"]}
    assert all(c["met"] for c in converged.values()), converged
    caught_up = converged["indexer-caught-up"]
    assert caught_up["seconds"] > at["indexer resumed"]
    assert abs(int(caught_up["value"]) - int(caught_up["reference"])) <= 2
    # three figures: the database back (RTO), the platform converged (RTT), and in between
    # the indexer's catch-up
    m = result["measurements"]
    assert 0 < m["recovery_time"] < at["indexer resumed"] < m["rtt"]
    assert m["rtt"] == pytest.approx(max(c["seconds"] for c in converged.values()), abs=0.01)
    verdicts = {v["objective"]: v for v in result["verdicts"]}
    assert {verdicts[o]["status"] for o in ("rto", "rpo", "rtt")} == {"met"}
    # exactly once: no event indexed twice, no workflow lost or duplicated, and some were in
    # flight at the fault (the exactly-once check did not pass on nothing)
    checks = {c["name"]: c for c in result["checks"]}
    for name in ("no-event-indexed-twice", "workflows-exactly-once"):
        assert checks[name]["ok"] and checks[name]["value"] == "0", checks[name]
    assert int(checks["workflows-resumed-across-the-fault"]["value"]) >= 1
    assert result["steady_state_restored"] is True
    assert_platform_steady()
    assert_no_secret(results, *SECRETS)
    shown = dalp("history", "show", result["run_id"], results=results)
    assert "indexer-caught-up" in shown.stdout and "start workloads" in shown.stdout


def test_lost_indexer_checkpoint_fails_the_drill(tmp_path: Path) -> None:
    code, result, stderr = run_json(CHECKPOINT_LOST, tmp_path / "results")
    assert code == 1, stderr
    assert result["outcome"] != "passed", result["outcome"]
    events = {e["name"]: e for e in result["timeline"]}
    assert "(no checkpoint: from its start block)" in events["indexer resumed"]["detail"]
    checks = {c["name"]: c for c in result["checks"]}
    verdicts = {v["objective"]: v for v in result["verdicts"]}
    twice = checks.get("no-event-indexed-twice")
    assert (twice is not None and not twice["ok"] and int(twice["value"]) > 0) \
        or verdicts["rtt"]["status"] == "missed", json.dumps([checks, verdicts])
    assert verdicts["rtt"]["status"] != "met"
    assert result["steady_state_restored"] is True
    assert_platform_steady()


def test_lab_down_leaves_nothing() -> None:
    anvil = pid(LAB_ROOT / "chain" / "anvil.pid")
    take_lab_down("hot-cold-platform", LAB_ROOT)
    assert not alive(anvil)
    with pytest.raises(httpx.ConnectError):
        chain_head()

