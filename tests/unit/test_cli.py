"""CLI exit codes and messages for bad input (no environment touched)."""

import importlib
import json
import tomllib
from pathlib import Path

import click
import pytest

from dalp_dr.commands import cli, main

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
    assert err.startswith("error: ") and "b[/x] [bold]y.yaml" in err


def _command_paths(group: click.Group, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    paths = []
    for name, command in sorted(group.commands.items()):
        paths.append((*prefix, name))
        if isinstance(command, click.Group):
            paths.extend(_command_paths(command, (*prefix, name)))
    return paths


def test_every_command_is_registered_and_answers_help(
        capsys: pytest.CaptureFixture[str]) -> None:
    paths = _command_paths(cli)
    groups = {p[0] for p in paths}
    assert groups == {"backup", "collection", "completion", "config", "doctor", "drill", "export",
                      "history", "keys", "lab", "report", "schedule", "scheduler", "store"}
    assert ("drill", "run") in paths and ("export", "verify") in paths
    for path in paths:
        assert main([*path, "--help"]) == 0, path
        assert f"Usage: dalp-dr {' '.join(path)} " in capsys.readouterr().out, path


def test_console_script_is_the_commands_main() -> None:
    """The installed ``dalp-dr`` resolves to the one entry point that maps exit codes."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    module, _, attribute = project["project"]["scripts"]["dalp-dr"].partition(":")
    assert getattr(importlib.import_module(module), attribute) is main


def test_json_log_format_reports_errors_as_json_lines(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "no.yaml"
    assert main(["--results-dir", str(tmp_path / "r"), "drill", "run", str(missing),
                 "--log-format", "json"]) == 2
    line = json.loads(capsys.readouterr().err.strip())
    assert line["event"] == "error" and line["file"] == str(missing)
    assert line["exit_code"] == 2 and "not found" in line["message"]
    # the next command in the same process reports as text again
    assert main(["--results-dir", str(tmp_path), "history", "show", "nope"]) == 2
    assert capsys.readouterr().err.startswith("error: ")
