"""dalp-dr lab up / status / down against real PostgreSQL and pgbouncer."""

import contextlib
import os
import shutil
import signal
import subprocess
import time

import pytest

from tests.lab.helpers import (
    LAB_ROOT,
    assert_steady_state,
    dalp,
    lab_pids,
    lab_processes,
    lab_status,
    pg_ctl,
)

# one lab per pytest-xdist worker at a time (see tests/conftest.py)
pytestmark = pytest.mark.xdist_group("hot-warm")


def test_down_up_up_status() -> None:
    # a clean slate whatever an earlier run left behind
    assert dalp("lab", "down", "hot-warm").returncode == 0
    assert lab_processes() == []
    assert lab_status() == {"present": False}

    first = dalp("lab", "up", "hot-warm")
    assert first.returncode == 0, first.stderr
    assert_steady_state()
    pid_a = (LAB_ROOT / "site-a/data/postmaster.pid").read_text().split()[0]

    second = dalp("lab", "up", "hot-warm")  # harmless the second time
    assert second.returncode == 0, second.stderr
    assert (LAB_ROOT / "site-a/data/postmaster.pid").read_text().split()[0] == pid_a
    assert_steady_state()

    text = dalp("lab", "status", "hot-warm")
    assert "site-a" in text.stdout and "primary" in text.stdout
    assert "route    -> 127.0.0.1:55432" in text.stdout


def test_unknown_topology_exits_2() -> None:
    proc = dalp("lab", "up", "lukewarm")
    assert proc.returncode == 2
    assert "lukewarm" in proc.stderr


def test_down_copes_with_a_half_built_lab() -> None:
    """An interrupted rebuild can leave a site without its data directory: down still works."""
    assert dalp("lab", "up", "hot-warm").returncode == 0
    pg_ctl("site-a", "stop")
    shutil.rmtree(LAB_ROOT / "site-a" / "data")
    proc = dalp("lab", "down", "hot-warm")
    assert proc.returncode == 0, proc.stderr
    assert lab_processes() == [] and not LAB_ROOT.exists()


def test_down_after_the_labs_processes_were_killed() -> None:
    """A run killed with its lab (a reboot, a stopped CI job) leaves PID files naming dead
    processes, or PIDs an unrelated process now holds: down removes the lab and signals
    nobody else."""
    assert dalp("lab", "up", "hot-warm").returncode == 0
    for pid in lab_pids():
        with contextlib.suppress(ProcessLookupError):  # a backend that exited meanwhile
            os.kill(pid, signal.SIGKILL)
    time.sleep(3)  # the PIDs are reused later, by a process started after the lab's files
    bystander = subprocess.Popen(["sleep", "300"])
    try:
        lock = LAB_ROOT / "site-a" / "data" / "postmaster.pid"
        lines = lock.read_text().split("\n")
        lock.write_text("\n".join([str(bystander.pid), *lines[1:]]))
        pidfile = LAB_ROOT / "route" / "pgbouncer.pid"
        written = pidfile.stat().st_mtime  # by the lab, before the bystander started
        pidfile.write_text(f"{bystander.pid}\n")
        os.utime(pidfile, (written, written))
        proc = dalp("lab", "down", "hot-warm")
        assert proc.returncode == 0, proc.stderr
        assert lab_processes() == [] and not LAB_ROOT.exists()
        assert bystander.poll() is None  # never signalled
    finally:
        bystander.kill()
        bystander.wait()
