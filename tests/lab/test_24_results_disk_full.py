"""dalp-dr's own ground gives way (issue 18): the results filesystem fills up during the
drill, from each phase on. Before the fault, no fault is injected; after it, steady state
runs whatever evidence can or cannot be written. The run ends failed with one line saying
what was not written (no traceback), and the lab is healthy after it; with space again,
`drill recover` records the run the store could not take. The results directory (and the
history store in it) is a small tmpfs the test mounts, filled by the test as the phase
starts."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.lab.helpers import (
    DRILL,
    SpareLab,
    assert_steady_state,
    dalp_in,
    drill_leftovers,
    run_and_act,
)

pytestmark = pytest.mark.xdist_group("hot-warm-spare")  # (tests/lab/conftest.py spare_lab)


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
    """Take every free byte of the filesystem of ``directory`` (already full when the
    drill's own evidence took the last bytes first: then even the filler cannot be made)."""
    with contextlib.suppress(OSError), open(directory / "filler", "wb") as fh:
        while True:
            fh.write(b"\0" * 65536)
            fh.flush()


FULL_AT = {
    # phase: what the run said (outcome line), whether a fault was injected
    "preflight": ("outcome: PREFLIGHT_FAILED (no fault injected: evidence not written to", False),
    "inject": ("outcome: FAILED (evidence not written to", True),
    "recover": ("outcome: FAILED (evidence not written to", True),
    "verify": ("outcome: FAILED (evidence not written to", True),
    "steady_state": ("outcome: FAILED (evidence not written to", True),
}


def probes(evidence: Path) -> str:
    """What the preflight's state probes printed (a preflight that failed where it should
    not: the lab's state at the time, for whoever reads the failure)."""
    lines = [line for path in sorted((evidence / "ansible").rglob("*"))
             if path.is_file() for line in path.read_text(errors="replace").splitlines()
             if "DALP_PG_STATE" in line or "rc=" in line]
    return "\n" + "\n".join(lines[-20:])


@pytest.mark.parametrize("phase", FULL_AT)
def test_the_results_disk_full_from_a_phase_on(small_results: Path, phase: str,
                                                 spare_lab: SpareLab) -> None:
    # (the history store is on the full filesystem too: the run's lease cannot be released
    # or renewed, and expires after its time to live)
    said_outcome, injected = FULL_AT[phase]
    env = dict(os.environ, DALP_DR_RESULTS=str(small_results), DALP_DR_LOCK_TTL="3s")
    run = run_and_act(env, spare_lab.drill(DRILL), f"phase {phase} ...",
                      lambda _p: fill(small_results))
    assert run.returncode == 1, run.stderr
    assert "Traceback" not in run.stderr + run.stdout
    assert said_outcome in run.said, run.said + probes(small_results / run.run_id)
    assert "No space left on device" in run.said
    if injected:
        assert " lost (" in run.said or " held (" in run.said, run.said
        assert "phase steady_state: ok" in run.stderr and "steady state: restored" in run.said
    else:
        assert "phase inject" not in run.stderr and "steady state: not needed" in run.said
    assert "NOT RECORDED in the history" in run.stderr
    assert drill_leftovers(small_results) == []
    # space again: the run the store could not take is recorded (its lease is not waited
    # for: the operator knows the run ended); its result.json could not be written, so it
    # is recorded by its journal, as after a crash
    (small_results / "filler").unlink()
    recovered = dalp_in(env, "drill", "recover", run.run_id, "--force")
    assert recovered.returncode == 0, recovered.stdout + recovered.stderr
    listed = dalp_in(env, "history", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    assert [r["outcome"] for r in json.loads(listed.stdout)] == ["aborted"]
    assert_steady_state(spare_lab.lab)
