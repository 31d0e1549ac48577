"""dalp-dr's own ground gives way (issue 18): the results filesystem fills up during the
drill. Steady state runs whatever evidence can or cannot be written, the run ends failed
with one line saying what was not written (no traceback), and the lab is healthy after it;
with space again, `drill recover` records the run the store could not take. The results
directory (and the history store in it) is a small tmpfs the test mounts, filled by the
test as verify starts."""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.lab.helpers import DRILL, ROOT, assert_steady_state, dalp

pytestmark = pytest.mark.xdist_group("hot-warm")


@pytest.fixture(scope="module", autouse=True)
def lab_up() -> None:
    proc = dalp("lab", "up", "hot-warm")
    assert proc.returncode == 0, proc.stderr


@pytest.fixture
def small_results(tmp_path: Path) -> Iterator[Path]:
    """A 4 MiB tmpfs for the results directory."""
    mount = tmp_path / "results"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m,mode=0700", "tmpfs", str(mount)],
                   check=True)
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(directory: Path) -> None:
    """Take every free byte of the filesystem of ``directory``."""
    with open(directory / "filler", "wb") as fh, contextlib.suppress(OSError):
        while True:
            fh.write(b"\0" * 65536)
            fh.flush()


def test_the_results_disk_filling_during_verify_still_restores_steady_state(
        small_results: Path) -> None:
    # (the history store is on the full filesystem too: the run's lease cannot be released
    # or renewed, and expires after its time to live)
    env = dict(os.environ, DALP_DR_RESULTS=str(small_results), DALP_DR_LOCK_TTL="3s")
    proc = subprocess.Popen([sys.executable, "-m", "dalp_dr", "drill", "run", str(DRILL)],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    assert proc.stderr is not None and proc.stdout is not None
    seen = []
    for line in proc.stderr:
        seen.append(line)
        if "phase verify ..." in line:
            fill(small_results)
            break
    else:
        raise AssertionError("phase verify never started:\n" + "".join(seen))
    out, rest = proc.communicate(timeout=300)
    err = "".join(seen) + rest
    assert proc.returncode == 1, err
    assert "Traceback" not in err and "Traceback" not in out
    said = " ".join(out.split())  # (the result wraps at the terminal width)
    assert "outcome: FAILED (evidence not written to" in said
    assert " lost (" in said and "No space left on device" in said
    assert "phase steady_state: ok" in err and "steady state: restored" in said
    assert_steady_state()
    # space again: the run the store could not take is recorded (its lease is not waited
    # for: the operator knows the run ended), and steady state checked once more
    (small_results / "filler").unlink()
    run_id = re.search(r"run (\S+): hot-warm-failover", err)
    assert run_id is not None, err
    recovered = subprocess.run([sys.executable, "-m", "dalp_dr", "drill", "recover",
                                run_id.group(1), "--force"], cwd=ROOT, env=env,
                               capture_output=True, text=True, timeout=300, check=False)
    assert recovered.returncode == 0, recovered.stdout + recovered.stderr
    listed = subprocess.run([sys.executable, "-m", "dalp_dr", "history", "list", "--json"],
                            cwd=ROOT, env=env, capture_output=True, text=True, timeout=60,
                            check=True)
    assert [r["outcome"] for r in json.loads(listed.stdout)] == ["aborted"]
    assert_steady_state()
