from collections.abc import Iterator
from pathlib import Path

import pytest

from dalp_dr.history import HistoryStore, open_store
from tests.factories import fill_history

LAB_DIR = Path(__file__).parent / "lab"

# Every lab test module names the lab it uses: pytestmark = pytest.mark.xdist_group("<lab>").
# Modules of one lab run one after the other on the same pytest-xdist worker (--dist
# loadgroup); different labs (own ports, own directories under /var/tmp/dalp-dr-lab) run side
# by side. test_90 takes every lab down and runs alone, last (.ci/run).


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # Everything under tests/lab runs against the real lab: mark it so `-m "not lab"` gives
    # the fast unit tests alone. Lab tests elsewhere (tests/security) carry the mark
    # themselves. In CI nothing is deselected and nothing is skipped.
    for item in items:
        path = Path(str(item.fspath))
        if LAB_DIR in path.parents:
            item.add_marker(pytest.mark.lab)
        if item.get_closest_marker("lab") is not None \
                and item.get_closest_marker("xdist_group") is None:
            raise pytest.UsageError(f"{path.name}: name its lab with pytestmark = "
                                    "pytest.mark.xdist_group('<lab>')")


@pytest.fixture
def configured(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """``tmp_path`` as what the environment configures: results (and the default SQLite
    history) under tmp_path/results, signing keys under tmp_path/keys (not created), no
    other store, no witness, no debug output."""
    monkeypatch.setenv("DALP_DR_RESULTS", str(tmp_path / "results"))
    monkeypatch.setenv("DALP_DR_KEYS", str(tmp_path / "keys"))
    for name in ("DALP_DR_STORE", "DALP_DR_WITNESS", "DALP_DR_DEBUG"):
        monkeypatch.delenv(name, raising=False)
    return tmp_path


@pytest.fixture
def history(tmp_path: Path) -> str:
    """A SQLite history of four sealed 2026 runs with evidence under tmp_path/results; its
    URL (tests/factories.py)."""
    return fill_history(tmp_path)


@pytest.fixture
def sqlite_store(tmp_path: Path) -> Iterator[HistoryStore]:
    """An empty SQLite history in the results directory tmp_path/results (the default
    layout), closed after."""
    opened = open_store(f"sqlite:///{tmp_path / 'results' / 'history.sqlite'}",
                        results_dir=tmp_path / "results")
    yield opened
    opened.close()
