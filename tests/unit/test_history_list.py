"""``history list``: filters chosen in the store's query, verdict and margin columns, keys a
person can paste back at any terminal width, a page that says what its limit hid, and no
store created by a read."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from rich.console import Console

from dalp_dr.commands import main
from dalp_dr.history import open_store
from dalp_dr.history.base import RunFilter
from dalp_dr.history.listing import list_page
from dalp_dr.render import history_table
from dalp_dr.results import Outcome
from tests.factories import make_run, record_runs


def _ids(history: str, capsys: pytest.CaptureFixture[str], *args: str) -> list[str]:
    capsys.readouterr()
    assert main(["--store", history, "history", "list", "-o", "json", *args]) == 0
    return [r["run_id"] for r in json.loads(capsys.readouterr().out)]


@pytest.mark.parametrize(("args", "expected"), [
    ((), ["20261001T030000Z-dddddd", "20260701T030000Z-cccccc", "20260401T030000Z-bbbbbb",
          "20260115T030000Z-aaaaaa"]),
    (("--outcome", "missed"), ["20260401T030000Z-bbbbbb"]),
    (("--outcome", "PASSED", "--outcome", "missed_schedule"),
     ["20261001T030000Z-dddddd", "20260701T030000Z-cccccc", "20260115T030000Z-aaaaaa"]),
    (("--from", "2026Q2", "--to", "2026Q3"),
     ["20260701T030000Z-cccccc", "20260401T030000Z-bbbbbb"]),
    (("--from", "2026-07-01T03:00:00Z",), ["20261001T030000Z-dddddd",
                                           "20260701T030000Z-cccccc"]),
    (("--to", "2026-06-30"), ["20260401T030000Z-bbbbbb", "20260115T030000Z-aaaaaa"]),
    (("--drill", "hot-cold-restore"), ["20260701T030000Z-cccccc"]),
    (("--environment", "lab-hot-warm", "--drill", "hot-warm-failover", "--outcome", "passed"),
     ["20260115T030000Z-aaaaaa"]),
    (("--environment", "production",), []),
])
def test_filters_select_runs(history: str, capsys: pytest.CaptureFixture[str],
                             args: tuple[str, ...], expected: list[str]) -> None:
    assert _ids(history, capsys, *args) == expected


@pytest.mark.parametrize(("args", "field"), [
    (("--outcome", "fine"), "--outcome"),
    (("--from", "last week"), "--from"),
    (("--from", "2026Q3", "--to", "2026Q2"), "--from"),
])
def test_a_bad_filter_is_invalid_input(history: str, capsys: pytest.CaptureFixture[str],
                                       args: tuple[str, ...], field: str) -> None:
    assert main(["--store", history, "history", "list", "-o", "json", *args]) == 2
    error = json.loads(capsys.readouterr().out)["error"]
    assert error["field"] == field and error["exit_code"] == 2


def test_rows_carry_rto_and_rpo_verdicts_and_margins(history: str,
                                                     capsys: pytest.CaptureFixture[str]
                                                     ) -> None:
    assert main(["--store", history, "history", "list", "-o", "json"]) == 0
    rows = {r["run_id"]: r for r in json.loads(capsys.readouterr().out)}
    missed = rows["20260401T030000Z-bbbbbb"]
    assert (missed["rto_verdict"], missed["rto_margin"]) == ("missed", -15.0)
    assert (missed["rpo_verdict"], missed["rpo_margin"]) == ("met", 5.0)
    never_ran = rows["20261001T030000Z-dddddd"]
    assert never_ran["rto_verdict"] is None and never_ran["rpo_verdict"] is None
    assert main(["--store", history, "history", "list", "-o", "csv",
                 "--outcome", "missed"]) == 0
    header, row = capsys.readouterr().out.splitlines()
    cells = dict(zip(header.split(","), row.split(","), strict=True))
    assert (cells["rto_verdict"], cells["rto_margin"]) == ("missed", "-15.0")


def test_a_page_says_how_many_runs_its_limit_hid(history: str,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--store", history, "history", "list", "--limit", "2", "-o", "json"]) == 0
    captured = capsys.readouterr()
    assert len(json.loads(captured.out)) == 2
    assert "2 of 4 runs shown" in captured.err
    assert main(["--store", history, "history", "list", "--limit", "2"]) == 0
    assert "2 of 4 runs shown" in capsys.readouterr().out  # the table's caption
    assert main(["--store", history, "history", "list", "--limit", "4"]) == 0
    captured = capsys.readouterr()
    assert "shown" not in captured.out + captured.err


def test_the_store_filters_and_counts_in_its_query(history: str) -> None:
    store = open_store(history)
    try:
        where = RunFilter(drill="hot-warm-failover",
                          outcomes=(Outcome.PASSED, Outcome.MISSED),
                          start=datetime(2026, 1, 1, tzinfo=UTC),
                          end=datetime(2026, 4, 1, 3, tzinfo=UTC))  # exclusive
        assert [r.run_id for r in store.list_runs(where=where)] == \
            ["20260115T030000Z-aaaaaa"]
        assert store.count_runs(where) == 1 and store.count_runs() == 4
        page = list_page(store, RunFilter(), limit=1)
        assert (len(page.runs), page.total, page.hidden) == (1, 4, 3)
    finally:
        store.close()


def _rendered(rows: object, width: int) -> str:
    buffer = io.StringIO()
    Console(file=buffer, width=width, color_system=None).print(rows)
    return buffer.getvalue()


@pytest.mark.parametrize("width", [80, 120])
@pytest.mark.parametrize(("drill", "run_id"), [
    ("hot-warm-failover", "20260115T030000Z-a1b2c3"),
    ("hot-warm-failover-eu-central-1-primary", "20260115T030000Z-a1b2c3"),
    ("x" * 63, "plan-20260115T030000Z-hot-warm-failover-eu-central-1-a1b2c3"),
])
def test_run_ids_and_drill_names_stay_whole_on_one_line(tmp_path: Path, width: int,
                                                         drill: str, run_id: str) -> None:
    url = f"sqlite:///{tmp_path / 'results' / 'history.sqlite'}"
    record_runs(url, [
        make_run(tmp_path, run_id, drill, datetime(2026, 1, 15, 3, tzinfo=UTC),
                 Outcome.MISSED, 45.0),
        make_run(tmp_path, "20260116T030000Z-d4e5f6", "hot-cold-restore",
                 datetime(2026, 1, 16, 3, tzinfo=UTC), Outcome.PASSED, 1.5)])
    store = open_store(url)
    try:
        page = list_page(store, RunFilter(), limit=10)
    finally:
        store.close()
    text = _rendered(history_table(page.runs, "2 of 3 runs shown"), width)
    lines = text.splitlines()
    assert all(len(line.rstrip()) <= width for line in lines)
    for key in (run_id, drill, "20260116T030000Z-d4e5f6", "hot-cold-restore"):
        assert any(key in line for line in lines), (key, text)
    assert "-15.000s" in text and "+5.000s" in text and "+28.500s" in text  # margins
    assert "2 of 3 runs shown" in text


def test_reading_a_missing_history_creates_nothing(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch,
                                                   capsys: pytest.CaptureFixture[str]
                                                   ) -> None:
    monkeypatch.chdir(tmp_path)
    results = tmp_path / "nowhere" / "results"
    base = ["--results-dir", str(results), "history"]
    assert main([*base, "list", "-o", "json"]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out) == [] and "no history yet at sqlite:///" in captured.err
    assert main([*base, "show", "20260115T030000Z-aaaaaa"]) == 2
    assert "no history yet" in capsys.readouterr().err
    assert main([*base, "verify", "--json"]) == 1
    assert json.loads(capsys.readouterr().out)["error"]["message"].startswith(
        "no history yet at ")
    assert main([*base, "checkpoint", "--sign"]) == 1
    assert "no history yet at " in capsys.readouterr().err
    assert main(["--results-dir", str(results), "export", "-o", str(tmp_path / "r.csv")]) == 1
    assert "no history yet at " in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []  # neither the file nor a directory
