"""The order CI hands the lab groups to its pytest-xdist workers: longest first.

With ``--dist loadgroup`` a group (one lab) runs whole on one worker, and a worker that is
nearly done takes the next group in the queue. pytest-xdist's own order is by number of
tests, which puts a long group of one test (a host lab brought up, drilled and taken down in
one test) among the unit tests at the end of the queue, where it can outlast them. .ci/run
passes ``--no-loadscope-reorder`` and the queue is the collection order this module sets:
groups by their time in CI, longest first, the unit tests (one-test units of their own,
about 150 s in all) after them, filling whatever is left. Inside a group the order is
untouched (a group's modules and tests depend on it: lab up first, lab down last).

``GROUP_SECONDS``: each group's time in CI on 2 cores (the sum of its tests' setup, call and
teardown; estimated from a CI run's ``--durations``), rounded. Only the order matters: refresh the
figures when a group grows or shrinks by much. A group missing here sorts with the shortest.
"""

from __future__ import annotations

import pytest

GROUP_SECONDS: dict[str, int] = {
    "hot-warm": 500,
    "hot-cold": 290,
    "hot-cold-pgbackrest": 290,
    "cloud-native": 280,
    "scheduler": 280,
    "hot-warm-spare": 320,
    "hot-hot": 230,
    "hot-cold-platform": 195,
    "hot-warm-hosts": 160,
    "hot-warm-platform": 150,
    "cloud-native-hosts": 105,
    "hot-hot-platform": 90,
    "hot-warm-hostile": 55,
    "named-labs": 35,
    "hot-hot-hosts": 45,
    "s3-object-lock": 30,
    "history-contract": 30,
    "managed": 25,
    "history-postgres": 20,
    "doctor": 20,
    "report-browser": 10,
    "checks-pg": 5,
    # last of the labs on purpose (not by its ~150 s): four drills at once load both cores,
    # and beside the timing-sensitive groups they made those fail
    "fleet": 1,
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
