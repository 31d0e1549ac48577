from tests.lab.helpers import LAB_ROOT, dalp, lab_processes


def test_down_leaves_no_process_and_no_data() -> None:
    assert dalp("lab", "up", "hot-warm").returncode == 0
    assert lab_processes() != []
    proc = dalp("lab", "down")
    assert proc.returncode == 0, proc.stderr
    assert lab_processes() == []
    assert not LAB_ROOT.exists()
