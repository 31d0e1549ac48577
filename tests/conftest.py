from pathlib import Path

import pytest

LAB_DIR = Path(__file__).parent / "lab"

# Lab test modules by the lab they use. Modules of one lab run one after the other on the same
# pytest-xdist worker (--dist loadgroup); different labs (own ports, own directories under
# /var/tmp/dalp-dr-lab) run side by side. test_90 takes every lab down and runs alone, last
# (.ci/run).
LAB_GROUPS = {
    "test_10_lab_lifecycle": "hot-warm",
    "test_20_hot_warm_drill": "hot-warm",
    "test_30_hot_cold": "hot-cold",
    "test_40_cloud_native": "cloud-native",
    "test_45_managed_on_moto": "managed",
    "test_50_hot_hot": "hot-hot",
    "test_90_lab_down": "all-labs",
}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # Everything under tests/lab runs against the real lab: mark it so `-m "not lab"` gives
    # the fast unit tests alone. In CI nothing is deselected and nothing is skipped.
    for item in items:
        path = Path(str(item.fspath))
        if LAB_DIR in path.parents:
            item.add_marker(pytest.mark.lab)
            group = LAB_GROUPS.get(path.stem)
            if group is None:
                raise pytest.UsageError(f"{path.name}: name its lab in LAB_GROUPS "
                                        "(tests/conftest.py)")
            item.add_marker(pytest.mark.xdist_group(group))
