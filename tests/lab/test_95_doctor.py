"""dalp-dr doctor on this machine (set up by .ci/bootstrap): everything the shipped drills
need is there (exit 0); without /usr/sbin on PATH, pgbouncer is missing (exit 1, one clear
row); an unreachable PostgreSQL store is missing too; a drill whose SQL checks run as a
role that can do more than read (superuser, pg_signal_backend) gets a warning."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.lab.helpers import PG_BIN, ROOT, as_pg

pytestmark = pytest.mark.xdist_group("doctor")


def doctor(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    environment = dict(os.environ, DALP_DR_RESULTS=str(tmp_path / "results"), **env)
    return subprocess.run([sys.executable, "-m", "dalp_dr", "doctor", "--json", *args],
                          cwd=ROOT, env=environment, capture_output=True, text=True,
                          timeout=120, check=False)


def test_doctor_passes_on_a_bootstrapped_machine(tmp_path: Path) -> None:
    proc = doctor(tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    rows = {r["check"]: r for r in json.loads(proc.stdout)}
    for check in ("ansible-playbook", "pgbouncer", "patroni", "etcd", "python3-boto3",
                  "history store"):
        assert rows[check]["status"] == "ok", rows[check]
    postgres = next(r for name, r in rows.items() if name.startswith("PostgreSQL"))
    assert "15." in postgres["detail"]
    assert "schema version 5" in rows["history store"]["detail"]


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


SOCKET_PORT = 55495
"""names the socket file only: this server listens on no TCP port"""


@pytest.fixture
def roles_server() -> Iterator[Path]:
    """A throwaway PostgreSQL 15 on a Unix socket only (in a mkdtemp directory the postgres
    OS user can reach), with a superuser, a member of pg_signal_backend and a plain role."""
    root = Path(tempfile.mkdtemp(prefix="dalp-dr-doctor-pg-"))
    shutil.chown(root, "postgres", "postgres")
    data = root / "data"
    as_pg(str(PG_BIN / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust")
    as_pg(str(PG_BIN / "pg_ctl"), "start", "-w", "-D", str(data), "-l", str(root / "log"),
          "-o", f"-p {SOCKET_PORT} -k {root} -c listen_addresses=''")
    try:
        for sql in ("create role check_super login superuser",
                    "create role check_signal login in role pg_signal_backend",
                    "create role check_plain login"):
            as_pg(str(PG_BIN / "psql"), "-XAtq", "-h", str(root), "-p", str(SOCKET_PORT),
                  "-d", "postgres", "-c", sql)
        yield root
    finally:
        as_pg(str(PG_BIN / "pg_ctl"), "stop", "-w", "-m", "fast", "-D", str(data))
        shutil.rmtree(root, ignore_errors=True)


def test_doctor_warns_when_a_check_role_can_do_more_than_read(tmp_path: Path,
                                                               roles_server: Path) -> None:
    drills = tmp_path / "drills"
    drills.mkdir()
    (drills / "inv.yml").write_text("all: {hosts: {h: {}}}\n")
    (drills / "p.yml").write_text("- hosts: all\n  tasks: []\n")
    for name, role, socket in (("super", "check_super", roles_server),
                               ("signal", "check_signal", roles_server),
                               ("plain", "check_plain", roles_server),
                               ("down", "check_plain", tmp_path)):
        (drills / f"{name}.yaml").write_text(f"""\
name: role-{name}
topology: hot-warm
scenario: failover
owner: sre
objectives: {{rto: 30m, rpo: 5m}}
inventory: inv.yml
endpoint: {{dsn: "host={socket} port={SOCKET_PORT} user={role} dbname=postgres"}}
phases:
  preflight: {{playbook: p.yml}}
  inject: {{playbook: p.yml}}
  verify: {{playbook: p.yml}}
  steady_state: {{playbook: p.yml}}
checks:
  - {{name: up, sql: select 1, expect: {{equals: 1}}}}
""")
    proc = doctor(tmp_path, "--drills", str(drills))
    rows = {r["check"]: r for r in json.loads(proc.stdout)}
    assert rows["check role role-super"]["status"] == "warn", rows
    assert "check_super, which is a superuser" in rows["check role role-super"]["detail"]
    assert rows["check role role-signal"]["status"] == "warn"
    assert "a member of pg_signal_backend" in rows["check role role-signal"]["detail"]
    assert "pg_signal_backend" in rows["check role role-signal"]["fix"]
    assert rows["check role role-plain"]["status"] == "ok", rows["check role role-plain"]
    assert rows["check role role-down"]["status"] == "warn"
    assert rows["check role role-down"]["detail"].startswith("not checked")
    assert all(r["status"] != "missing" for name, r in rows.items()
               if name.startswith("check role"))
