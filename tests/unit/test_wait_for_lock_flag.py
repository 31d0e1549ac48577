"""``drill run --wait-for-lock DURATION``: a duration, refused (exit 2, nothing started)
naming the flag when it is not one."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dalp_dr.commands import main


def test_a_wait_that_is_not_a_duration_is_refused_naming_the_flag(
        configured: Path, capsys: pytest.CaptureFixture[str]) -> None:
    drill = configured / "drill.yaml"  # never read: the flag is refused first
    assert main(["drill", "run", str(drill), "--wait-for-lock", "a while", "--json"]) == 2
    error = json.loads(capsys.readouterr().out)["error"]
    assert error["field"] == "--wait-for-lock" and "duration" in error["hint"]
    assert not (configured / "results").exists()


def test_the_help_offers_the_wait(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["drill", "run", "--help"]) == 0
    assert "--wait-for-lock DURATION" in capsys.readouterr().out
