"""CLI exit codes and messages for bad input (no environment touched)."""

from pathlib import Path

import pytest

from dalp_dr.cli import main

ROOT = Path(__file__).resolve().parents[2]


def test_validate_ok(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["drill", "validate", str(ROOT / "drills" / "hot-warm-failover.yaml")]) == 0
    assert "RTO 30m00s RPO 5m00s" in capsys.readouterr().out


def test_validate_broken_exits_2_naming_file_and_field(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = (ROOT / "drills" / "hot-warm-failover.yaml").read_text()
    broken = tmp_path / "broken.yaml"
    broken.write_text(text.replace("rpo: 5m", "rpo: five minutes"))
    assert main(["drill", "validate", str(broken)]) == 2
    err = capsys.readouterr().err
    assert str(broken) in err and "objectives.rpo" in err


def test_run_missing_file_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--results-dir", str(tmp_path), "drill", "run", str(tmp_path / "no.yaml")]) == 2
    assert "not found" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())  # nothing started, nothing written


def test_run_unknown_field_exits_2_before_anything(tmp_path: Path) -> None:
    text = (ROOT / "drills" / "hot-warm-failover.yaml").read_text()
    drill = ROOT / "drills" / ".tmp-unknown-field.yaml"
    drill.write_text(text + "surprise: true\n")
    try:
        assert main(["--results-dir", str(tmp_path / "r"), "drill", "run", str(drill)]) == 2
    finally:
        drill.unlink()
    assert not (tmp_path / "r").exists()


def test_drill_list(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--project-dir", str(ROOT), "drill", "list"]) == 0
    assert "hot-warm-failover" in capsys.readouterr().out


def test_usage_error_exits_2() -> None:
    assert main(["drill", "frobnicate"]) == 2


def test_history_show_unknown_run_exits_2(tmp_path: Path) -> None:
    assert main(["--results-dir", str(tmp_path), "history", "show", "nope"]) == 2


def test_validate_prints_a_bracketed_path_literally(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Error text is data too: a file name with Rich markup in it is printed as it is."""
    name = str(tmp_path / "b[" / "x] [bold]y.yaml")  # the path reads b[/x] [bold]y.yaml
    assert main(["drill", "validate", name]) == 2
    err = capsys.readouterr().err
    assert "invalid" in err and "b[/x] [bold]y.yaml" in err
