"""The fault barrier a held recover playbook waits at (dalp_dr/barrier.py): the command the
playbook runs through a shell, released with facts, abandoned with a reason, and giving up
at its deadline or when the orchestrator's barrier directory is gone."""

from __future__ import annotations

import json
import subprocess
import threading
import time
from pathlib import Path

from dalp_dr.barrier import FaultBarrier, wait


def run_command(command: str) -> subprocess.CompletedProcess[str]:
    """As Ansible's pipe lookup runs it: through /bin/sh."""
    return subprocess.run(command, shell=True, capture_output=True, text=True, timeout=30,
                          check=False)


def test_the_command_waits_until_released_and_prints_the_facts() -> None:
    barrier = FaultBarrier()
    try:
        released_at: list[float] = []

        def release() -> None:
            time.sleep(0.3)
            released_at.append(time.monotonic())
            barrier.release({"dalp_fault_instant": 1.5, "dalp_old_leader": "pg-a"})

        threading.Thread(target=release).start()
        proc = run_command(barrier.command(wait_seconds=20))
        done = time.monotonic()
    finally:
        barrier.close()
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == {"dalp_fault_instant": 1.5, "dalp_old_leader": "pg-a"}
    assert released_at and done >= released_at[0]  # it did wait for the release


def test_an_abandoned_barrier_fails_with_the_reason() -> None:
    barrier = FaultBarrier()
    try:
        barrier.abandon("inject failed")
        proc = run_command(barrier.command(wait_seconds=20))
    finally:
        barrier.close()
    assert proc.returncode != 0 and proc.stdout == ""
    assert "inject failed" in proc.stderr


def test_it_gives_up_at_its_deadline(tmp_path: Path) -> None:
    started = time.monotonic()
    code, text = wait(tmp_path / "go", deadline=time.time() + 0.2)
    assert code != 0 and "deadline" in text
    assert 0.2 <= time.monotonic() - started < 5


def test_it_gives_up_when_the_barrier_directory_is_gone(tmp_path: Path) -> None:
    code, text = wait(tmp_path / "gone" / "go", deadline=time.time() + 60)
    assert code != 0 and "gone" in text


def test_a_torn_or_foreign_release_is_not_a_go(tmp_path: Path) -> None:
    (tmp_path / "go").write_text('{"go": "yes"}')
    assert wait(tmp_path / "go", deadline=time.time() + 5)[0] != 0
    (tmp_path / "go").write_text("{not json")
    assert wait(tmp_path / "go", deadline=time.time() + 5)[0] != 0
