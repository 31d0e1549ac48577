"""The output contract's pieces: -o as a format or a file, --json as its alias, formats that
disagree refused, errors in one JSON shape (the walk over every command is
test_every_command_json)."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest

from dalp_dr.commands import main
from dalp_dr.commands.output import COMMON, Format, Output, resolve, to_csv, wants_json
from dalp_dr.errors import InvalidInput


@pytest.mark.parametrize(("value", "json_alias", "expected"), [
    (None, False, Output(Format.TABLE)),
    ("json", False, Output(Format.JSON)),
    ("CSV", False, Output(Format.CSV)),
    (None, True, Output(Format.JSON)),
    ("r.json", True, Output(Format.JSON, Path("r.json"))),
    ("out/r.csv", False, Output(Format.CSV, Path("out/r.csv"))),
    ("r.txt", False, Output(Format.TABLE, Path("r.txt"))),
])
def test_resolve(value: str | None, json_alias: bool, expected: Output) -> None:
    assert resolve(value, json_alias=json_alias, formats=COMMON, default=Format.TABLE) \
        == expected


@pytest.mark.parametrize(("value", "json_alias", "alias", "words"), [
    ("r.csv", True, None, "disagrees"),
    ("r.json", False, "html", "disagrees"),
    ("r.docx", False, None, "extension"),
    ("html", False, None, "does not write"),
    (None, False, "yaml", "unknown format"),
])
def test_resolve_refuses(value: str | None, json_alias: bool, alias: str | None,
                         words: str) -> None:
    with pytest.raises(InvalidInput, match=words):
        resolve(value, json_alias=json_alias, formats=COMMON, default=Format.TABLE,
                alias=alias)


@pytest.mark.parametrize(("argv", "expected"), [
    (["history", "list", "-o", "json"], True),
    (["history", "list", "-ojson"], True),
    (["history", "list", "--output=r.JSON"], True),
    (["history", "list", "--json"], True),
    (["history", "list", "-o", "csv"], False),
    (["drill", "run", "x.yaml", "--", "--json"], False),
])
def test_wants_json(argv: list[str], expected: bool) -> None:
    assert wants_json(argv) is expected


def test_csv_flattens_and_defuses_formulas() -> None:
    text = to_csv([{"a": 1, "b": {"c": "=HYPERLINK(1)"}, "d": [1, 2], "e": None},
                   {"a": -2.5, "f": "x"}])
    assert text.splitlines() == ["a,b.c,d,e,f", "1,'=HYPERLINK(1),\"[1, 2]\",,",
                                 "-2.5,,,,x"]
    # a tab or a carriage return first is a formula too (OWASP); a number stays a number
    text = to_csv([{"a": "\t=1+1", "b": "\r=1+1", "c": "-15.0"}])
    rows = list(csv.reader(io.StringIO(text, newline="")))
    assert rows[1] == ["'\t=1+1", "'\r=1+1", "-15.0"]


def test_a_usage_error_under_json_is_the_json_error_object(
        capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["history", "list", "--no-such-flag", "-o", "json"]) == 2
    error = json.loads(capsys.readouterr().out)["error"]
    assert error["exit_code"] == 2 and "no-such-flag" in error["message"]
    assert set(error) == {"message", "file", "field", "hint", "exit_code"}


def test_an_invalid_input_error_names_file_field_and_hint_in_json(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "no.yaml"
    assert main(["--results-dir", str(tmp_path / "r"), "drill", "plan", str(missing),
                 "--json"]) == 2
    captured = capsys.readouterr()
    error = json.loads(captured.out)["error"]
    assert error["file"] == str(missing) and error["exit_code"] == 2
    assert captured.err.startswith("error: ")
