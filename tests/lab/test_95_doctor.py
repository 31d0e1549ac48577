"""dalp-dr doctor on this machine (set up by .ci/bootstrap): everything the shipped drills
need is there (exit 0); without /usr/sbin on PATH, pgbouncer is missing (exit 1, one clear
row); an unreachable PostgreSQL store is missing too."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.lab.helpers import ROOT

pytestmark = pytest.mark.xdist_group("doctor")


def doctor(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    environment = dict(os.environ, DALP_DR_RESULTS=str(tmp_path / "results"), **env)
    return subprocess.run([sys.executable, "-m", "dalp_dr", "doctor", "--json"], cwd=ROOT,
                          env=environment, capture_output=True, text=True, timeout=120,
                          check=False)


def test_doctor_passes_on_a_bootstrapped_machine(tmp_path: Path) -> None:
    proc = doctor(tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    rows = {r["check"]: r for r in json.loads(proc.stdout)}
    for check in ("ansible-playbook", "pgbouncer", "patroni", "etcd", "python3-boto3",
                  "history store"):
        assert rows[check]["status"] == "ok", rows[check]
    postgres = next(r for name, r in rows.items() if name.startswith("PostgreSQL"))
    assert "15." in postgres["detail"]
    assert "schema version 3" in rows["history store"]["detail"]


def test_doctor_names_what_is_missing(tmp_path: Path) -> None:
    path = ":".join(p for p in os.environ["PATH"].split(":") if not p.endswith("sbin"))
    proc = doctor(tmp_path, PATH=path)
    assert proc.returncode == 1
    rows = {r["check"]: r for r in json.loads(proc.stdout)}
    assert rows["pgbouncer"]["status"] == "missing"
    assert "hot-warm-failover" in rows["pgbouncer"]["needed_by"]
    assert "apt install pgbouncer" in rows["pgbouncer"]["fix"]
    assert "pgbouncer: pgbouncer is not on PATH" in proc.stderr
    gone = doctor(tmp_path, DALP_DR_STORE="postgresql://u@127.0.0.1:1/x?connect_timeout=2")
    assert gone.returncode == 1
    assert {r["check"]: r for r in json.loads(gone.stdout)}["history store"]["status"] \
        == "missing"
