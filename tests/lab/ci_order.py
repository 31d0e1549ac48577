"""The order CI hands the lab groups to its pytest-xdist workers: longest first.

With ``--dist loadgroup`` a group (one lab) runs whole on one worker, and a worker that is
nearly done takes the next group in the queue. pytest-xdist's own order is by number of
tests, so a long group of one or two tests (a host lab brought up, drilled and taken down in
one test) came last and ran alone while the other worker had nothing left. .ci/run passes
``--no-loadscope-reorder`` and the queue is the collection order this module sets: groups by
their time in CI, longest first, the unit tests (one-test units of their own) after them,
filling whatever is left. Inside a group the order is untouched (a group's modules and tests
keep depending on it: lab up first, lab down last).

``GROUP_SECONDS``: each group's time in CI (the sum of its tests' setup, call and teardown as
``pytest --durations=0`` shows them on 2 cores), rounded. Only the order matters: refresh the
figures when a group grows or shrinks by much. A group missing here sorts with the shortest.
"""

from __future__ import annotations

import pytest

GROUP_SECONDS: dict[str, int] = {
    "hot-warm": 520,
    "cloud-native": 330,
    "scheduler": 310,
    "hot-warm-spare": 270,
    "hot-cold": 260,
    "hot-hot": 200,
    "hot-cold-platform": 195,
    "hot-warm-hosts": 165,
    "hot-warm-platform": 140,
    "cloud-native-hosts": 110,
    "hot-hot-platform": 100,
    "hot-warm-hostile": 70,
    "hot-hot-hosts": 60,
    "s3-archive": 40,
    "managed": 30,
    "history-contract": 30,
    "history-postgres": 20,
    "doctor": 20,
    "report-browser": 15,
    "checks-pg": 5,
}


def _group(item: pytest.Item) -> str | None:
    mark = item.get_closest_marker("xdist_group")
    if mark is None:
        return None
    name = mark.args[0] if mark.args else mark.kwargs.get("name", "")
    return str(name)


def longest_first(items: list[pytest.Item]) -> list[pytest.Item]:
    """``items`` with the groups longest first, then everything else; a stable sort: the
    order inside a group, and among the ungrouped tests, is kept."""

    def weight(item: pytest.Item) -> int:
        group = _group(item)
        if group is None:
            return -1
        return GROUP_SECONDS.get(group, 0)

    return sorted(items, key=lambda item: -weight(item))
