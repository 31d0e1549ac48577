"""The CI queue (tests/lab/ci_order.py): longest lab groups first, every group known."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.lab.ci_order import GROUP_SECONDS, longest_first

TESTS = Path(__file__).resolve().parents[1]
GROUP = re.compile(r"""xdist_group\(\s*["']([a-z0-9-]+)["']""")


class Item:
    """What longest_first reads of a collected test: its name and its xdist_group mark."""

    def __init__(self, name: str, group: str | None = None) -> None:
        self.name = name
        self._mark = None if group is None else pytest.mark.xdist_group(group).mark

    def get_closest_marker(self, name: str) -> pytest.Mark | None:
        return self._mark if name == "xdist_group" else None


def test_longest_group_first_order_inside_a_group_kept_ungrouped_last() -> None:
    items = [Item("unit_a"), Item("short", "checks-pg"), Item("hw_up", "hot-warm"),
             Item("unit_b"), Item("cn", "cloud-native"), Item("hw_down", "hot-warm"),
             Item("new", "a-group-not-in-the-table")]
    queue = longest_first(items)  # type: ignore[arg-type]
    assert [item.name for item in queue] == ["hw_up", "hw_down", "cn", "short", "new",
                                             "unit_a", "unit_b"]


def test_every_lab_group_of_the_suite_has_its_time() -> None:
    """A new group without a figure would be queued with the shortest, after the long ones:
    the run's tail."""
    used = {name for path in TESTS.rglob("*.py") if path.name != "test_ci_order.py"
            for name in GROUP.findall(path.read_text())}
    used.discard("all-labs")  # test_90: alone, after the queue (.ci/run)
    assert used, "no xdist_group found: the pattern is stale"
    assert sorted(used - GROUP_SECONDS.keys()) == []
    assert sorted(GROUP_SECONDS.keys() - used) == []
