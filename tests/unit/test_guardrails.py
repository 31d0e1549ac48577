"""Production guardrails from the inventory: typed confirmation, change freezes."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from dalp_dr.errors import InventoryError
from dalp_dr.guardrails import refusal
from dalp_dr.inventory import Inventory
from dalp_dr.results import Trigger

NOW = datetime(2026, 12, 20, 12, tzinfo=UTC)


def inventory(tmp_path: Path, body: str) -> Inventory:
    path = tmp_path / "inv.yml"
    path.write_text("all:\n  vars:\n" + body + "  hosts:\n    db1:\n      ansible_host: 10.0.0.1\n")
    return Inventory(path)


def test_production_needs_the_drill_name_typed_on_demand(tmp_path: Path) -> None:
    prod = inventory(tmp_path, "    dalp_production: true\n")
    assert "--confirm hot-warm-failover" in str(refusal(prod, "hot-warm-failover", Trigger.CLI,
                                                         None, NOW))
    assert refusal(prod, "hot-warm-failover", Trigger.CLI, "hot-warm", NOW) is not None
    assert refusal(prod, "hot-warm-failover", Trigger.CLI, "hot-warm-failover", NOW) is None
    assert refusal(prod, "hot-warm-failover", Trigger.SCHEDULE, None, NOW) is None
    lab = inventory(tmp_path, "    dalp_production: false\n")
    assert refusal(lab, "hot-warm-failover", Trigger.CLI, None, NOW) is None


def test_a_change_freeze_refuses_scheduled_runs_inside_it_only(tmp_path: Path) -> None:
    inv = inventory(tmp_path, "    dalp_change_freezes:\n"
                              "      - {from: '2026-12-15T00:00:00Z', to: '2027-01-05T00:00:00Z',"
                              " reason: year-end}\n")
    reason = refusal(inv, "d", Trigger.SCHEDULE, None, NOW)
    assert reason is not None and "until 2027-01-05 00:00 UTC (year-end" in reason
    assert refusal(inv, "d", Trigger.SCHEDULE, None, datetime(2027, 1, 5, tzinfo=UTC)) is None
    assert refusal(inv, "d", Trigger.CLI, None, NOW) is None  # on demand: the operator's call


@pytest.mark.parametrize("bad", ["    dalp_change_freezes: soon\n",
                                 "    dalp_change_freezes: [{from: '2026-12-15T00:00:00Z'}]\n",
                                 "    dalp_change_freezes: [{from: '2026-12-15', to: "
                                 "'2026-12-16'}]\n"])
def test_a_malformed_freeze_is_an_inventory_error(tmp_path: Path, bad: str) -> None:
    with pytest.raises(InventoryError, match="dalp_change_freezes"):
        refusal(inventory(tmp_path, bad), "d", Trigger.SCHEDULE, None, NOW)
