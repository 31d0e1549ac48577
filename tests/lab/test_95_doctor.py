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
    assert "schema version 4" in rows["history store"]["detail"]


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


def test_doctor_checks_the_signing_key_and_file_modes(tmp_path: Path) -> None:
    keys_dir = tmp_path / "keys"
    rows = {r["check"]: r for r in json.loads(doctor(tmp_path, DALP_DR_KEYS=str(keys_dir))
                                              .stdout)}
    assert rows["signing key"]["status"] == "warn"
    assert "no signed checkpoint pins it" in rows["signing key"]["detail"]
    assert rows["file modes"]["status"] == "ok"  # the store doctor opened is 0600 in 0700
    subprocess.run([sys.executable, "-m", "dalp_dr", "keys", "init"], cwd=ROOT, check=True,
                   env=dict(os.environ, DALP_DR_KEYS=str(keys_dir)), capture_output=True)
    evidence = tmp_path / "results" / "20261201T000000Z-abcdef"
    evidence.mkdir()
    (evidence / "summary.txt").write_text("x")
    (evidence / "summary.txt").chmod(0o644)
    (keys_dir / "signing-key.pem").chmod(0o644)
    proc = doctor(tmp_path, DALP_DR_KEYS=str(keys_dir))
    rows = {r["check"]: r for r in json.loads(proc.stdout)}
    assert proc.returncode == 1
    assert rows["signing key"]["status"] == "missing"
    assert "chmod 600" in rows["signing key"]["fix"]
    assert rows["file modes"]["status"] == "warn"
    assert "readable beyond their owner" in rows["file modes"]["detail"]
