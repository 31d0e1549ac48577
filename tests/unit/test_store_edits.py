"""Rows from the store are data: any value someone wrote into a table ends every history
and export command with one line and exit 1, never a traceback."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from dalp_dr.commands import main
from tests.factories import record_configured, sealed_runs

EDITS = [
    "update runs set result_json = '{'",
    "update runs set result_json = '[1, 2]'",
    "update runs set recovery_time = 'abc'",
    "update runs set started_at = 'garbage'",
    "update runs set outcome = 'bogus'",
    "update chain set evidence_json = 'not json'",
    "update chain set sealed_at = 'yesterday'",
    "update chain set digest = 'x' where seq = 2",
]
COMMANDS = [
    ("history", "verify"),
    ("history", "list"),
    ("history", "show", "20260401T030000Z-bbbbbb"),
    ("export", "--format", "csv"),
]


@pytest.fixture
def history(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.setenv("DALP_DR_RESULTS", str(tmp_path / "results"))
    monkeypatch.setenv("DALP_DR_KEYS", str(tmp_path / "no-keys"))
    monkeypatch.delenv("DALP_DR_STORE", raising=False)
    record_configured(sealed_runs(tmp_path))
    yield tmp_path / "results" / "history.sqlite"


@pytest.mark.parametrize("edit", EDITS)
def test_an_edited_table_ends_in_one_line(history: Path, edit: str,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    conn = sqlite3.connect(history)
    conn.execute(edit)
    conn.commit()
    conn.close()
    codes = []
    for command in COMMANDS:
        capsys.readouterr()
        codes.append(main(list(command)))  # an unexpected exception fails the test here
        err = capsys.readouterr().err
        assert "Traceback" not in err
    assert codes[0] == 1  # history verify always notices
    assert codes[3] == 1  # and nothing is exported
    assert all(code in (0, 1) for code in codes), codes
