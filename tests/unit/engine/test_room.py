"""Room before the fault (issue 18): preflight first checks free space for what a run of the
drill writes, on the results filesystem and the SQLite store's; short of it, the run is
refused in one line before the preflight playbook, and nothing is injected."""

from __future__ import annotations

from pathlib import Path

import pytest

from dalp_dr.journal import EventKind, read_journal, records_of
from dalp_dr.reserve import STORE_WRITTEN, KiB, MiB
from dalp_dr.results import Outcome, PhaseStatus
from dalp_dr.spec import PhaseName
from tests.fakes import FakeDisks
from tests.unit.engine.harness import EngineHarness, Run, failover

FULL_RESULTS = "the results filesystem (with the store in it) is short"
FULL_STORE = "the store's own filesystem is short"


def disks_for(case: str, root: Path) -> FakeDisks:
    """The harness keeps its store in ``root`` and its results in ``root``/results."""
    if case == FULL_RESULTS:
        return FakeDisks(default_free=3 * MiB - 1)
    return FakeDisks({root: 100 * KiB, root / "results": 100 * MiB},
                     devices={root: 1, root / "results": 0})



def message_for(case: str, root: Path) -> str:
    if case == FULL_RESULTS:
        return (f"no fault injected: not enough free space for this run in {root / 'results'}"
                ": 3,145,727 bytes free, 3,145,728 bytes needed (no past hot-warm run: "
                "default floor 2.0 MiB + the SQLite history store: 1.0 MiB per run); free "
                "space on that filesystem, or point DALP_DR_RESULTS or DALP_DR_STORE at one "
                "with more room")
    return (f"no fault injected: not enough free space for this run in {root}: "
            "100 KiB free, 1.0 MiB needed (the SQLite history store: 1.0 MiB per run); free "
            "space on that filesystem, or point DALP_DR_STORE at one with more room")


@pytest.mark.parametrize("case", [FULL_RESULTS, FULL_STORE])
def test_without_room_the_run_is_refused_before_the_preflight_playbook(
        harness: EngineHarness, case: str) -> None:
    root = harness.root.resolve()
    harness.disks = disks_for(case, root)
    run = harness.run(failover(harness.endpoint))

    assert run.result.outcome is Outcome.PREFLIGHT_FAILED
    assert run.result.message == message_for(case, root)
    assert run.stored.outcome is Outcome.PREFLIGHT_FAILED
    assert run.runner.phases == []  # not even the preflight playbook
    preflight = run.phase(PhaseName.PREFLIGHT)
    assert preflight.status is PhaseStatus.FAILED and preflight.playbook is None
    assert preflight.message == run.result.message
    assert run.phase(PhaseName.STEADY_STATE).status is PhaseStatus.SKIPPED
    assert "fault.injected" not in run.journal_kinds()
    (checked,) = records_of(read_journal(run.evidence), EventKind.RESERVE_CHECKED)
    assert [s["short"] for s in checked["spaces"]] == \
        ([True] if case == FULL_RESULTS else [False, True])


def test_room_is_checked_and_journalled_before_any_playbook(passed_run: Run) -> None:
    kinds = passed_run.journal_kinds()
    assert kinds.index("run.started") < kinds.index("reserve.checked") \
        < kinds.index("phase.started")
    (checked,) = records_of(read_journal(passed_run.evidence), EventKind.RESERVE_CHECKED)
    assert checked["store"] == STORE_WRITTEN
    assert all(not s["short"] and s["free"] >= s["need"] for s in checked["spaces"])


def test_a_run_needs_what_the_runs_of_its_topology_before_it_wrote(
        harness: EngineHarness) -> None:
    harness.run(failover(harness.endpoint))
    second = harness.run(failover(harness.endpoint))

    (checked,) = records_of(read_journal(second.evidence), EventKind.RESERVE_CHECKED)
    assert checked["spaces"][0]["basis"].startswith("the last hot-warm run: ")
