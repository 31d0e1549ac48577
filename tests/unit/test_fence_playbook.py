"""The fencing recover playbook (playbooks/hot-warm/recover-fence-promote-switch.yml) fails
closed: no promotion follows a fence it cannot prove. Real ansible-playbook on this machine
(connection local) with a fake pg_ctl and pg_isready: dalp-dr's own seam, the playbook's
control flow; the lab drills (tests/lab/test_12_host_lab.py) run it against real servers."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
PLAYBOOK = ROOT / "playbooks" / "hot-warm" / "recover-fence-promote-switch.yml"


def fake_tools(bin_dir: Path, calls: Path, *, status: int, isready: int) -> None:
    """pg_ctl: `status` exits ``status``, anything else succeeds; pg_isready exits
    ``isready``. Every call is recorded in ``calls``."""
    bin_dir.mkdir()
    for name, body in (("pg_ctl", f'[ "$1" = status ] && exit {status}\nexit 0'),
                       ("pg_isready", f"exit {isready}")):
        tool = bin_dir / name
        tool.write_text(f'#!/bin/sh\necho "{name} $*" >> "{calls}"\n{body}\n')
        tool.chmod(0o755)


def run_fence(tmp_path: Path, *, status: int, isready: int = 2) -> tuple[int, str, list[str]]:
    calls = tmp_path / "calls"
    calls.touch()
    fake_tools(tmp_path / "bin", calls, status=status, isready=isready)
    site = {"dalp_pg_host": "127.0.0.1", "dalp_pg_port": 9}
    inventory = {"all": {
        "vars": {"ansible_connection": "local",
                 "ansible_python_interpreter": sys.executable,
                 "dalp_as_pg": "env", "dalp_pg_bin": str(tmp_path / "bin"),
                 "dalp_route_kind": "pgbouncer"},
        "children": {
            "primary": {"hosts": {"site-a": {**site, "dalp_pg_data": str(tmp_path / "a")}}},
            "standby": {"hosts": {"site-b": {**site, "dalp_pg_data": str(tmp_path / "b")}}},
            "route": {"hosts": {"route-host": {}}}}}}
    (tmp_path / "inventory.yml").write_text(yaml.safe_dump(inventory))
    ran = subprocess.run(
        [str(Path(sys.executable).parent / "ansible-playbook"), "-i",
         str(tmp_path / "inventory.yml"), str(PLAYBOOK)],
        env={**os.environ, "ANSIBLE_ROLES_PATH": str(ROOT / "playbooks" / "roles")},
        capture_output=True, text=True, timeout=120, check=False)
    return ran.returncode, ran.stdout, calls.read_text().splitlines()


@pytest.mark.parametrize(("status", "isready", "why"), [
    (5, 2, "pg_ctl status exited 5"),
    (4, 0, "no data directory at"),   # a wrong path, yet something answers on A's address
    (4, 1, "no data directory at"),
])
def test_an_unproven_fence_promotes_nothing(tmp_path: Path, status: int, isready: int,
                                            why: str) -> None:
    code, out, calls = run_fence(tmp_path, status=status, isready=isready)
    assert code != 0
    assert why in out
    assert not [c for c in calls if " promote " in c], calls


@pytest.mark.parametrize(("status", "isready", "first"), [
    (0, 2, "stop -w -t 30 -m immediate"),  # running: stopped at once
    (3, 0, None),                          # not running: fenced as it is
    (4, 2, None),                          # no data directory and nothing answers
])
def test_a_proven_fence_goes_on_to_promote(tmp_path: Path, status: int, isready: int,
                                           first: str | None) -> None:
    _code, _out, calls = run_fence(tmp_path, status=status, isready=isready)
    # (the route switch after it fails here: no pgbouncer; the promotion is what counts)
    promoted = [c for c in calls if " promote " in c]
    assert len(promoted) == 1 and str(tmp_path / "b") in promoted[0], calls
    if first is not None:
        assert any(first in c for c in calls), calls
    assert calls.index(promoted[0]) > max(i for i, c in enumerate(calls) if " status " in c)
