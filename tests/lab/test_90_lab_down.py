import pytest

from tests.lab.helpers import LABS, dalp, lab_processes

# one lab per pytest-xdist worker at a time (see tests/conftest.py)
pytestmark = pytest.mark.xdist_group("all-labs")


def test_down_leaves_no_process_and_no_data() -> None:
    for topology in ("hot-warm", "hot-cold"):
        assert dalp("lab", "up", topology).returncode == 0
    assert lab_processes(LABS / "hot-warm") != []
    assert any("moto_server" in p for p in lab_processes(LABS / "hot-cold"))
    proc = dalp("lab", "down")
    assert proc.returncode == 0, proc.stderr
    assert lab_processes(LABS) == []  # no postgres, pgbouncer or moto of any lab
    assert not (LABS / "hot-warm").exists() and not (LABS / "hot-cold").exists()
