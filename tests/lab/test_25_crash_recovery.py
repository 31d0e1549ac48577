"""Crash recovery on the real hot-warm lab: the orchestrator (and every process it started,
as a host crash would) is SIGKILLed in each phase of the drill, one test per phase. Once its
lease expired, `drill recover` (or, for one phase, the next `drill run` by itself) restores
steady state for the dead run, records it aborted with its partial journal and the phase it
died in, and the lab is healthy again."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from dalp_dr.history import open_store
from dalp_dr.history.base import HistoryStore
from dalp_dr.integrity import evidence_location
from dalp_dr.results import Outcome
from tests.lab.helpers import DRILL, ROOT, assert_steady_state, dalp, dalp_in

pytestmark = pytest.mark.xdist_group("hot-warm")

PHASES = ["preflight", "baseline", "inject", "recover", "verify", "measure", "divergence",
          "steady_state"]
LOCK_TTL = 3.0
ALIVE_LOCK_TTL = 300.0


@pytest.fixture(scope="module", autouse=True)
def lab_up() -> None:
    proc = dalp("lab", "up", "hot-warm")
    assert proc.returncode == 0, proc.stderr


def descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo.extend(children.get(current, []))
    return found


def crash(proc: subprocess.Popen[str]) -> None:
    """SIGKILL the orchestrator and everything it started (ansible-runner puts playbooks in
    their own session), like a host that lost power: first freeze the whole tree (SIGSTOP,
    again until no new process appears, so nothing forks away during the kill), then kill
    every frozen process at once."""
    frozen: list[int] = []
    while True:
        tree = [pid for pid in descendants(proc.pid) if pid not in frozen]
        if not tree:
            break
        for pid in tree:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGSTOP)
        frozen.extend(tree)
    assert frozen[0] == proc.pid > 1
    for pid in frozen:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    proc.wait(timeout=30)


def crash_in(phase: str, env: dict[str, str]) -> None:
    """Start `drill run` and SIGKILL it (with everything it started) in ``phase``."""
    proc = subprocess.Popen([sys.executable, "-m", "dalp_dr", "drill", "run", str(DRILL)],
                            cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None
    seen = []
    for line in proc.stderr:
        seen.append(line)
        if f"phase {phase} ..." in line:
            break
    else:
        raise AssertionError(f"phase {phase} never started:\n{''.join(seen)}")
    # into the phase's playbook (the held recover is released at the fault and done in
    # about 0.3 s)
    time.sleep(0.05 if phase == "recover" else 0.3)
    crash(proc)


# Who recovers the dead run: the operator, who knows its process is dead, with `drill
# recover RUN_ID --force` at once; or, for one phase, the next `drill run` by itself once
# the dead run's lease expired (a phase before the fault, so that test stays short: its own
# drill runs in full after the recovery).
RECOVERED_BY_NEXT_RUN = "baseline"


def history(results: Path) -> HistoryStore:
    """The run's history, read in this process (the CLI's reading of it is tested elsewhere;
    here it would cost a process start per look)."""
    return open_store(f"sqlite:///{results / 'history.sqlite'}", results_dir=results)


@pytest.mark.parametrize("phase", PHASES)
def test_the_orchestrator_killed_in_a_phase_is_recovered(phase: str, tmp_path: Path) -> None:
    results = tmp_path / "results"
    # preflight: 'recover' without --force must find the dead run's lease alive: a lease no
    # loaded machine outlives before the check (it is forced off right after)
    ttl = ALIVE_LOCK_TTL if phase == "preflight" else LOCK_TTL
    env = dict(os.environ, DALP_DR_RESULTS=str(results), DALP_DR_LOCK_TTL=f"{ttl:.0f}s")
    crash_in(phase, env)
    with contextlib.closing(history(results)) as store:
        [dead] = store.list_runs()
    assert dead.outcome is Outcome.RUNNING
    if phase == RECOVERED_BY_NEXT_RUN:
        time.sleep(LOCK_TTL + 0.5)  # the dead run's lease expires
        final = dalp_in(env, "drill", "run", str(DRILL), "--json", timeout=600)
        assert final.returncode == 0, final.stderr
        assert f"run {dead.run_id}: recorded aborted" in final.stderr
        expected = [Outcome.PASSED, Outcome.ABORTED]
    else:
        if phase == "preflight":  # without --force, a lease not yet expired is respected
            alive = dalp_in(env, "drill", "recover", dead.run_id)
            assert alive.returncode == 2 and "still alive" in alive.stderr, alive.stderr
        recovered = dalp_in(env, "drill", "recover", dead.run_id, "--force", timeout=600)
        assert recovered.returncode == 0, recovered.stdout + recovered.stderr
        expected = [Outcome.ABORTED]
    with contextlib.closing(history(results)) as store:
        assert [r.outcome for r in store.list_runs()] == expected
        detail = store.get(dead.run_id)
    assert detail.message is not None
    died = detail.message.split("died during phase ", 1)[1].split(";")[0]
    # measure takes milliseconds: the kill may land in the phase right after it
    allowed = {phase, "divergence"} if phase == "measure" else {phase}
    assert died in allowed, (phase, detail.message)
    injected = PHASES.index(phase) >= PHASES.index("inject")
    assert detail.steady_state_restored is (True if injected else None), detail
    evidence = evidence_location(dead.evidence_dir, results) or Path(dead.evidence_dir)
    journal = sorted((evidence / "journal").glob("*.json"))
    assert journal and json.loads(journal[0].read_text())["kind"] == "run.started"
    assert (evidence / "result.json").is_file()
    assert_steady_state()
    assert dalp("history", "verify", results=results).returncode == 0
