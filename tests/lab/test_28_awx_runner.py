"""A drill as AWX / Automation Platform runs it: a job playbook using the dalp.dr.drill
module, streamed through ansible-runner's own remote protocol (``transmit | worker |
process``, the path AWX's receptor takes to an execution node), on the spare hot-warm lab.
The result must arrive in the ``playbook_on_stats`` event's ``artifact_data``, where AWX
reads a job's artifacts."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from dalp_dr.collection import build
from tests.lab.helpers import (
    LAB_PASSWORD,
    ROOT,
    SpareLab,
    assert_no_secret,
    assert_steady_state,
)

pytestmark = pytest.mark.xdist_group("hot-warm-spare")  # (tests/lab/conftest.py spare_lab)

VENV_BIN = Path(sys.executable).parent
ENVIRONMENT = "lab-hot-warm-spare-awx"
JOB = """\
- name: A dalp-dr drill, one job
  hosts: localhost
  gather_facts: false
  tasks:
    - name: Run the drill
      dalp.dr.drill:
        drill: "{{ playbook_dir }}/drills/hot-warm-failover.yaml"
        project_dir: "{{ playbook_dir }}"
        operator: awx-job-42
"""


def _project(spare_lab: SpareLab, into: Path) -> None:
    """The AWX project: a copy of the drill, the playbooks and the spare lab's inventory
    (links resolved: what is transmitted is files)."""
    shutil.copytree(ROOT / "playbooks", into / "playbooks", symlinks=False)
    (into / "inventories").mkdir()
    shutil.copy(spare_lab.project / "inventories" / "lab" / "hot-warm.yml",
                into / "inventories" / "hot-warm.yml")
    drill = yaml.safe_load((ROOT / "drills" / "hot-warm-failover.yaml").read_text())
    drill["inventory"] = "../inventories/hot-warm.yml"
    drill["environment"] = ENVIRONMENT
    (into / "drills").mkdir()
    (into / "drills" / "hot-warm-failover.yaml").write_text(yaml.safe_dump(drill))
    (into / "job.yml").write_text(JOB)


def _stats_event(artifacts: Path) -> dict[str, Any]:
    events = [json.loads(p.read_text()) for p in artifacts.glob("**/job_events/*.json")]
    (stats,) = [e for e in events if e.get("event") == "playbook_on_stats"]
    assert isinstance(stats, dict)
    return stats


def test_a_drill_run_through_transmit_worker_process_publishes_its_result(
        spare_lab: SpareLab, tmp_path: Path) -> None:
    collections = tmp_path / "collections"
    artifact = build(ROOT, tmp_path / "dist")
    subprocess.run([str(VENV_BIN / "ansible-galaxy"), "collection", "install", str(artifact),
                    "-p", str(collections)], check=True, capture_output=True)
    private = tmp_path / "job"
    _project(spare_lab, private / "project")
    results = tmp_path / "results"
    store = results / "history.sqlite"
    (private / "inventory").mkdir()
    (private / "inventory" / "hosts").write_text(
        f"localhost ansible_connection=local ansible_python_interpreter={sys.executable}\n")
    (private / "env").mkdir()
    # what an AWX credential of a custom type injects into the job's environment
    (private / "env" / "envvars").write_text(yaml.safe_dump({
        "ANSIBLE_COLLECTIONS_PATH": str(collections),
        "DALP_DR_RESULTS": str(results), "DALP_DR_STORE": f"sqlite:///{store}"}))
    env = dict(os.environ, PATH=f"{VENV_BIN}:{os.environ.get('PATH', '')}")
    runner = str(VENV_BIN / "ansible-runner")
    pipeline = (f"{runner} transmit {private} -p job.yml"
                f" | {runner} worker --private-data-dir {tmp_path / 'node'}"
                f" | {runner} process {private}")
    done = subprocess.run(["bash", "-o", "pipefail", "-c", pipeline], env=env,
                          capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]

    stats = _stats_event(private / "artifacts")
    published = stats["event_data"]["artifact_data"]["dalp_dr"]
    assert published["outcome"] == "passed" and published["passed"] is True
    assert published["environment"] == ENVIRONMENT
    figures = published["figures"]
    assert 0 < figures["recovery_time"] < 10 and figures["rtt"] >= figures["recovery_time"]
    assert figures["data_loss_basis"] in {"exact", "sampled"}
    assert {v["objective"] for v in published["verdicts"]} >= {"rto", "rpo"}
    assert all(v["status"] == "met" for v in published["verdicts"])
    # recorded once in the configured store, with the job's operator, evidence on disk
    with sqlite3.connect(store) as db:
        rows = db.execute("select run_id, operator from runs").fetchall()
    assert rows == [(published["run_id"], "awx-job-42")]
    assert Path(published["evidence"]).is_dir()
    assert Path(published["evidence"]).parent == results
    assert published["steady_state_restored"] is True
    assert_steady_state(spare_lab.lab)
    # the job's events (what AWX stores and shows) hold no secret of the inventory
    assert_no_secret(private / "artifacts", LAB_PASSWORD)
    assert_no_secret(results, LAB_PASSWORD)
