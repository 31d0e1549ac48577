"""Lab test modules of different pytest-xdist groups run at the same time (one group per
worker): a loopback port a module starts a server on must belong to one group only, or two
servers race for it (test_26's history store and test_70's scheduler store both took 55497)."""

from __future__ import annotations

import re
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
GROUP = re.compile(r'xdist_group\("([^"]+)"\)')
PORT = re.compile(r"(?<![\d.])(5[5-6]\d{3})(?!\d)")


def test_no_port_is_used_by_two_groups() -> None:
    groups_of: dict[str, set[str]] = defaultdict(set)
    for module in sorted([*(ROOT / "tests" / "lab").glob("test_*.py"),
                          *(ROOT / "tests" / "security").glob("test_*.py")]):
        text = module.read_text()
        groups = set(GROUP.findall(text))
        if not groups:
            continue
        for port in set(PORT.findall(text)):
            groups_of[port] |= {f"{g} ({module.name})" for g in groups}
    shared = {port: groups for port, groups in groups_of.items()
              if len({g.split(" (")[0] for g in groups}) > 1}
    assert not shared, shared
