"""A killed server leaves its postmaster.pid behind, and its PID may since belong to another
process of the database OS user (another site's backend, a psql). Bringing the site back
(here `lab up`; steady state uses the same role) must neither signal that process nor fail:
the stale lock file is recognised (the process does not run in the data directory) and
removed, and the site comes back."""

from __future__ import annotations

import os
import signal
import subprocess
import time

import pytest

from tests.lab.helpers import LAB_ROOT, alive, assert_steady_state, dalp, postmaster_pid

# one lab per pytest-xdist worker at a time (see tests/conftest.py)
pytestmark = pytest.mark.xdist_group("hot-warm")


@pytest.fixture(scope="module", autouse=True)
def lab_up() -> None:
    proc = dalp("lab", "up", "hot-warm")
    assert proc.returncode == 0, proc.stderr


def test_a_reused_pid_in_a_stale_lock_file_is_left_alone_and_the_site_comes_back() -> None:
    lock = LAB_ROOT / "site-b" / "data" / "postmaster.pid"
    old = postmaster_pid("site-b")
    os.kill(old, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while alive(old):
        assert time.monotonic() < deadline, "site B's postmaster survived SIGKILL"
        time.sleep(0.02)
    assert lock.exists()  # a killed postmaster leaves its lock file
    # another process of the database OS user now has the PID the file names
    other = subprocess.Popen(["setpriv", "--reuid=postgres", "--regid=postgres",
                              "--clear-groups", "sleep", "300"], cwd="/")
    try:
        lines = lock.read_text().splitlines()
        lock.write_text("\n".join([str(other.pid), *lines[1:]]) + "\n")

        proc = dalp("lab", "up", "hot-warm")

        assert proc.returncode == 0, proc.stderr
        assert other.poll() is None, "a process the stale lock file named was signalled"
        assert postmaster_pid("site-b") != other.pid
        assert_steady_state()
    finally:
        other.kill()
        other.wait()
