"""Check mode on the read-only playbooks (preflight.yml, lab-status.yml), on the real hot-warm
lab: they declare ``dalp_supports_check_mode``, ``dalp-dr drill plan`` runs them with --check,
and under --check they still read the real state, succeed and change nothing."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from dalp_dr.adapters.ansible import AnsibleRunner
from tests.lab.helpers import DRILL, ROOT, alive, assert_steady_state, dalp, postmaster_pid

# one lab per pytest-xdist worker at a time (see tests/conftest.py)
pytestmark = pytest.mark.xdist_group("hot-warm")

PLAYBOOKS = ROOT / "playbooks" / "hot-warm"
INVENTORY = ROOT / "inventories" / "lab" / "hot-warm.yml"


@pytest.fixture(scope="module", autouse=True)
def lab_up() -> None:
    proc = dalp("lab", "up", "hot-warm")
    assert proc.returncode == 0, proc.stderr


def read_only_drill(tmp_path: Path) -> Path:
    """The hot-warm drill with the read-only playbooks also as its verify and steady_state
    phases: the phases `drill plan` runs in check mode."""
    text = DRILL.read_text(encoding="utf-8")
    text = text.replace("../playbooks/hot-warm/verify.yml", "../playbooks/hot-warm/preflight.yml")
    text = text.replace("../playbooks/hot-warm/steady-state.yml",
                        "../playbooks/hot-warm/lab-status.yml")
    text = text.replace("../playbooks/", f"{ROOT}/playbooks/")
    text = text.replace("../inventories/", f"{ROOT}/inventories/")
    path = tmp_path / "read-only.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_drill_plan_runs_the_read_only_playbooks_in_check_mode(tmp_path: Path) -> None:
    before = postmaster_pid("site-a"), postmaster_pid("site-b")
    proc = dalp("drill", "plan", str(read_only_drill(tmp_path)), "--json",
                results=tmp_path / "results")
    assert proc.returncode == 0, proc.stderr
    phases = {p["phase"]: p for p in json.loads(proc.stdout)["phases"]}
    assert phases["preflight"]["dry_run"] == "preflight successful", phases["preflight"]
    for phase in ("verify", "steady_state"):
        assert phases[phase]["check_mode"] is True, phases[phase]
        assert phases[phase]["dry_run"] == "check mode successful", phases[phase]
    # what is not declared check-mode safe is neither offered nor run
    for phase in ("inject", "recover"):
        assert phases[phase]["check_mode"] is False, phases[phase]
        assert phases[phase]["dry_run"] is None, phases[phase]
    assert (postmaster_pid("site-a"), postmaster_pid("site-b")) == before
    assert all(alive(pid) for pid in before)
    assert not (tmp_path / "results").exists()
    assert_steady_state()


@pytest.mark.parametrize("playbook", ["preflight.yml", "lab-status.yml"])
def test_under_check_the_playbook_reads_the_real_state_and_changes_nothing(
        tmp_path: Path, playbook: str) -> None:
    events: list[dict[str, Any]] = []
    result = AnsibleRunner(workdir=tmp_path).run(
        PLAYBOOKS / playbook, INVENTORY, extravars={"dalp_rpo_seconds": 300},
        timeout=120, on_event=events.append, check=True)
    assert result.ok, result.describe_failure()
    changed = [e["event_data"].get("task") for e in events if e.get("event") == "runner_on_ok"
               and (e.get("event_data") or {}).get("res", {}).get("changed")]
    assert changed == []
    skipped = [e["event_data"].get("task") for e in events
               if e.get("event") == "runner_on_skipped"]
    assert skipped == []  # no query was skipped for check mode: the report is the real state
    report = result.artifact_data
    if playbook == "preflight.yml":
        a, b = report["dalp_preflight"]["site_a"], report["dalp_preflight"]["site_b"]
        port = int(report["dalp_preflight"]["route_backend_port"])
    else:
        a, b = report["sites"]["site-a"], report["sites"]["site-b"]
        port = int(report["route"]["backend_port"])
    assert a["accepting"] and a["detail"]["in_recovery"] is False, a
    assert b["accepting"] and b["detail"]["in_recovery"] is True, b
    assert port == int(a["port"])
