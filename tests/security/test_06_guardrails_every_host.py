"""Finding 6: the production guardrail and change freezes read every host.

They used to read the first host only: ``dalp_production: true`` on the database hosts with a
route host listed first asked for no ``--confirm``; a freeze set on the sites was ignored.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

import pytest

from dalp_dr.errors import InventoryError
from dalp_dr.guardrails import refusal
from dalp_dr.inventory import Inventory
from dalp_dr.results import Trigger
from tests.lab.helpers import dalp_in

NOW = datetime(2026, 12, 20, 12, tzinfo=UTC)

# the route host comes first and sets nothing; the sites carry the settings in their group
SITES = """\
all:
  vars:
    dalp_service_dsn: postgresql://app@10.0.0.9:6432/dalp
  children:
    route:
      hosts:
        route1: {{ansible_host: 10.0.0.9}}
    sites:
      vars:
{site_vars}
      hosts:
        db1: {{ansible_host: 10.0.0.1}}
        db2: {{ansible_host: 10.0.0.2}}
"""


def inventory(tmp_path: Path, site_vars: str, text: str = SITES) -> Inventory:
    path = tmp_path / "inv.yml"
    path.write_text(text.format(site_vars=site_vars))
    return Inventory(path)


def test_production_on_some_hosts_only_is_refused(tmp_path: Path) -> None:
    inv = inventory(tmp_path, "        dalp_production: true")
    assert inv.hosts()[0] == "route1"  # what the old check read, and found nothing on
    with pytest.raises(InventoryError, match="mixes production hosts \\(db1, db2\\) with "
                                             "non-production hosts \\(route1\\)"):
        refusal(inv, "hot-warm-failover", Trigger.CLI, None, NOW)


def test_production_on_every_host_needs_the_confirmation(tmp_path: Path) -> None:
    text = SITES.replace("    route:\n      hosts:", "    route:\n      vars:\n"
                         "        dalp_production: true\n      hosts:")
    inv = inventory(tmp_path, "        dalp_production: true", text)
    reason = refusal(inv, "hot-warm-failover", Trigger.CLI, None, NOW)
    assert reason is not None and "--confirm hot-warm-failover" in reason
    assert refusal(inv, "hot-warm-failover", Trigger.CLI, "hot-warm-failover", NOW) is None


def test_a_guardrail_value_it_cannot_read_fails_closed(tmp_path: Path) -> None:
    text = SITES.replace("    route:\n      hosts:", "    route:\n      vars:\n"
                         "        dalp_production: maybe\n      hosts:")
    with pytest.raises(InventoryError, match="dalp_production"):
        refusal(inventory(tmp_path, "        dalp_production: true", text), "d", Trigger.CLI,
                None, NOW)


def test_a_freeze_on_the_sites_refuses_a_scheduled_run(tmp_path: Path) -> None:
    inv = inventory(tmp_path, "        dalp_change_freezes:\n"
                              "          - {from: '2026-12-15T00:00:00Z', "
                              "to: '2027-01-05T00:00:00Z', reason: year-end}")
    reason = refusal(inv, "d", Trigger.SCHEDULE, None, NOW)
    assert reason is not None and "year-end" in reason


def test_drill_plan_refuses_a_mixed_inventory_with_exit_2(tmp_path: Path) -> None:
    inv = inventory(tmp_path, "        dalp_production: true")
    root = Path(__file__).resolve().parents[2]
    drill = (root / "drills" / "hot-warm-failover.yaml").read_text()
    lines = [f"inventory: {inv.path}" if line.startswith("inventory:") else line
             for line in drill.replace("../playbooks/", f"{root}/playbooks/").splitlines()]
    (tmp_path / "d.yaml").write_text("\n".join(lines) + "\n")
    env = {**os.environ, "DALP_DR_RESULTS": str(tmp_path / "results"),
           "DALP_DR_ALLOWED_DIRS": str(tmp_path)}
    proc = dalp_in(env, "drill", "plan", "--no-preflight", str(tmp_path / "d.yaml"))
    assert proc.returncode == 2, proc.stderr
    assert "mixes production hosts" in proc.stderr
