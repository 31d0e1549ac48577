"""Named labs: two hot-warm labs side by side (``lab up hot-warm --name``), each with its own
root, ports and environment; a drill on one leaves the other alone, and taking one down
takes only its own processes and files; the unnamed lab is not touched."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from dalp_dr import named_lab
from tests.lab.helpers import (
    LAB_ROOT,
    ROOT,
    HotWarmLab,
    NamedLab,
    alive,
    assert_steady_state,
    dalp,
    lab_pids,
    lab_processes,
    named_labs_up,
    run_passed,
)

pytestmark = pytest.mark.xdist_group("named-labs")

NAMES = ("eu-1", "eu-2")
BASE_PORTS = set(named_lab.ports(yaml.safe_load(
    (ROOT / "inventories" / "lab" / "hot-warm.yml").read_text())).values())


def _mark(root: Path) -> tuple[bool, int]:
    """Whether the unnamed lab's root is there, and which directory it is."""
    try:
        return True, root.stat().st_ino
    except FileNotFoundError:
        return False, 0


def _down(name: str) -> subprocess.CompletedProcess[str]:
    return dalp("lab", "down", "hot-warm", "--name", name, "--output", "json")


@pytest.fixture(scope="module")
def named() -> Iterator[dict[str, NamedLab]]:
    """Both labs up at once (two processes taking slots together); down after, whatever
    happened; the unnamed lab's root the same directory (or as absent) all along."""
    before = _mark(LAB_ROOT)
    with named_labs_up(NAMES) as labs:
        yield labs
    assert _mark(LAB_ROOT) == before


def _postmasters(lab: HotWarmLab) -> list[int]:
    return [int((lab.root / site / "data" / "postmaster.pid").read_text().split()[0])
            for site in ("site-a", "site-b")]


def test_two_named_labs_side_by_side(named: dict[str, NamedLab], tmp_path: Path,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    one, two = (named[n].made for n in NAMES)
    a, b = named[NAMES[0]].lab, named[NAMES[1]].lab
    # their own roots (not inside the unnamed lab's), ports, environments and inventories
    assert a.root != b.root and LAB_ROOT not in (a.root, b.root, *a.root.parents,
                                                 *b.root.parents)
    ports_a, ports_b = set(one["ports"].values()), set(two["ports"].values())
    assert len(ports_a) == len(ports_b) == 3 and not ports_a & ports_b
    assert not (ports_a | ports_b) & BASE_PORTS
    assert (one["environment"], two["environment"]) == ("lab-eu-1", "lab-eu-2")
    for made in (one, two):
        inventory = Path(made["inventory"])
        assert inventory == Path(made["root"]) / "inventory.yml" and inventory.is_file()
        assert yaml.safe_load(inventory.read_text())["all"]["vars"]["dalp_environment"] == \
            made["environment"]
    # both healthy, as dalp-dr sees them and as the servers say
    for name, lab in zip(NAMES, (a, b), strict=True):
        proc = dalp("lab", "status", "hot-warm", "--name", name, "--json")
        assert proc.returncode == 0, proc.stderr
        status = json.loads(proc.stdout)["hot-warm"]
        assert status["present"] and status["root"] == str(lab.root)
        assert {s: v["port"] for s, v in status["sites"].items()} == {
            "site-a": lab.site_a, "site-b": lab.site_b}
        assert all(v["accepting"] for v in status["sites"].values())
        assert int(status["route"]["backend_port"]) == lab.site_a
        assert_steady_state(lab)

    # the failover drill on eu-1; eu-2 is left as it was
    others = _postmasters(b)
    # (an inventory outside the project is read only from a directory allowed by name)
    monkeypatch.setenv("DALP_DR_ALLOWED_DIRS", one["root"])
    result = run_passed(named[NAMES[0]].drill(tmp_path), tmp_path / "results")
    assert result["environment"] == "lab-eu-1"
    assert result["steady_state_restored"] is True
    assert_steady_state(a)
    assert _postmasters(b) == others and all(alive(p) for p in others)
    assert_steady_state(b)

    # eu-1 down: its processes and root gone, eu-2's running
    proc = _down("eu-1")
    assert proc.returncode == 0, proc.stderr
    assert lab_processes(a.root) == [] and not a.root.exists()
    assert all(alive(p) for p in others) and set(others) <= set(lab_pids(b.root))
    assert_steady_state(b)
    proc = dalp("lab", "status", "hot-warm", "--name", "eu-1", "--json")
    assert proc.returncode == 0 and json.loads(proc.stdout)["hot-warm"]["present"] is False
