"""`drill plan` says which recover playbook is started before inject and held at the fault
barrier (it declares dalp_waits_for_fault), without running anything."""

from __future__ import annotations

from pathlib import Path

import pytest

from dalp_dr.plan import make_plan
from dalp_dr.spec import PhaseName, load_drill
from tests.fakes import FakePlaybookRunner

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(("drill", "held"), [("hot-warm-failover.yaml", True),
                                             ("cloud-native-failover.yaml", False)])
def test_the_plan_shows_a_held_recover(drill: str, held: bool) -> None:
    runner = FakePlaybookRunner()
    plan = make_plan(load_drill(ROOT / "drills" / drill), runner, {}, execute=False)
    assert {p.phase: p.held for p in plan.phases}[PhaseName.RECOVER] is held
    assert not any(p.held for p in plan.phases if p.phase is not PhaseName.RECOVER)
    assert runner.calls == []
