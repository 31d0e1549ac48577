"""Fixtures of the engine's unit tests. The drill engine is imported here and nowhere else
in these tests: when it moves, this line follows it."""

from __future__ import annotations

import itertools
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dalp_dr.drill.engine import DrillEngine
from dalp_dr.spec import PhaseName
from tests.fakes import Play
from tests.unit.engine.harness import DrillShape, EngineHarness, NewHarness, Run, failover

SHM = Path("/dev/shm")


@pytest.fixture(scope="session")
def engine_workdir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Where the tests' drill files, evidence and histories go: a RAM-backed directory
    where the machine has one (the journal fsyncs every record and SQLite every commit,
    tens of milliseconds each on a disk busy with running labs), else a tmp_path."""
    if not SHM.is_dir():
        yield tmp_path_factory.mktemp("engine")
        return
    with tempfile.TemporaryDirectory(dir=SHM, prefix="dalp-engine-test-") as made:
        yield Path(made)


@pytest.fixture(scope="session")
def new_harness(engine_workdir: Path) -> NewHarness:
    """A fresh in-memory environment with its own SQLite history and evidence directory;
    keyword arguments go to EngineHarness (e.g. ``summarize``). The caller closes it."""
    numbers = itertools.count()

    def make(**options: Any) -> EngineHarness:
        return EngineHarness(engine_workdir / f"h{next(numbers)}", DrillEngine, **options)

    return make


@pytest.fixture
def harness(new_harness: NewHarness) -> Iterator[EngineHarness]:
    made = new_harness()
    try:
        yield made
    finally:
        made.close()


FACTS = {"dalp_lost_leader": "db1", "dalp_notes": "only about inject", "other": 1}
"""what the shared passed run's inject publishes besides its fault instant"""


@pytest.fixture(scope="session")
def passed_run(new_harness: NewHarness) -> Iterator[Run]:
    """One sudden failover that passes (nothing lost, RPO 0s), shared by the tests that
    only read it; its inject publishes FACTS."""
    made = new_harness()
    try:
        plays = failover(made.endpoint)
        plays[PhaseName.INJECT] = Play(effect=made.endpoint.fail, reports_fault_instant=True,
                                       report=FACTS)
        yield made.run(plays, DrillShape(rpo="0s"))
    finally:
        made.close()
