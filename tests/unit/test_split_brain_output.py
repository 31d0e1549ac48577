"""What a run with the split_brain objective shows: the figure table's rows, why it could not
be judged, and the result JSON (``drill run --json``, result.json)."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from dalp_dr.export import bundle
from dalp_dr.render import summary_text
from dalp_dr.results import Outcome, RunResult
from dalp_dr.split_brain import split_brain
from dalp_dr.verdict import judge_split_brain
from tests.factories import (
    T0,
    at,
    attempts,
    make_run,
    record_runs,
    select,
    split_brain_run,
)


def measured_run(tmp_path: Path) -> RunResult:
    return make_run(tmp_path, "20261126T120000Z-aaaaaa", "hot-warm-partition", T0,
                    Outcome.MISSED, 1.2)


def rows(text: str, figure: str) -> list[str]:
    """The table's rows of ``figure``, blanks squeezed."""
    return [" ".join(line.split()) for line in text.splitlines()
            if figure in line and not line.startswith("note:")]


def test_the_table_shows_split_brain_writes_and_fencing(tmp_path: Path) -> None:
    text = summary_text(split_brain_run(measured_run(tmp_path)))
    assert rows(text, "split-brain writes") == [
        "split-brain writes 11 over 1.000s at most 0 missed -11"]
    assert rows(text, "old primary fenced") == [
        "old primary fenced yes (took writes until +1.955s after the fault)"]


def test_an_unknown_split_brain_says_why(tmp_path: Path) -> None:
    base = measured_run(tmp_path)
    assert base.measurements is not None
    figures = split_brain(attempts((0, 2.0, 1), (2.1, 5.0, 2)), fault_at=at(2.05),
                          promoted_at=None)
    result = base.model_copy(update={
        "objectives": {**base.objectives, "split_brain": 0.0},
        "measurements": base.measurements.model_copy(update={"split_brain": figures}),
        "verdicts": [*base.verdicts, judge_split_brain(0, figures)]})
    text = summary_text(result)
    assert rows(text, "split-brain writes") == ["split-brain writes - at most 0 unknown -"]
    assert 'note: split-brain writes not measured: no promotion instant ' \
           'reported (no "new primary promoted" on the recovery timeline, no write ' \
           'acknowledged on another timeline)' in \
           " ".join(text.split())


def test_a_run_without_the_objective_shows_no_split_brain_rows(tmp_path: Path) -> None:
    text = summary_text(measured_run(tmp_path))
    assert "split-brain" not in text and "fenced" not in text


def test_the_result_json_carries_the_figures_and_the_verdict(tmp_path: Path) -> None:
    result = split_brain_run(measured_run(tmp_path))
    document = json.loads(result.model_dump_json(indent=2))
    assert document["objectives"]["split_brain"] == 0
    figures = document["measurements"]["split_brain"]
    assert (figures["writes"], figures["span"], figures["fenced"]) == (11, 1.0, True)
    assert (figures["first_at"], figures["last_at"]) == (at(3.005).isoformat().replace(
        "+00:00", "Z"), at(4.005).isoformat().replace("+00:00", "Z"))
    assert figures["promoted_at"] == "2026-11-26T12:00:03Z"
    assert figures["old_timeline"] == 1
    verdict = document["verdicts"][-1]
    assert (verdict["objective"], verdict["status"], verdict["measured"]) == \
        ("split_brain", "missed", 11)
    assert RunResult.model_validate(document) == result


def test_runs_csv_says_the_split_brain_target_writes_and_status(tmp_path: Path) -> None:
    """An auditor reading runs.csv sees why a run was missed on split brain; a run without
    the objective leaves the columns blank."""
    url = f"sqlite:///{tmp_path / 'history.sqlite'}"
    split = split_brain_run(make_run(tmp_path, "20261126T120000Z-aaaaaa", "hot-warm-partition",
                                     T0, Outcome.MISSED, 1.2))
    plain = make_run(tmp_path, "20261126T130000Z-bbbbbb", "hot-warm-failover",
                     T0.replace(hour=13), Outcome.PASSED, 1.2)
    record_runs(url, [split, plain])
    rows_by_id = {r["run_id"]: r for r in
                  csv.DictReader(io.StringIO(bundle.to_csv(select(url))))}
    missed = rows_by_id[split.run_id]
    assert (missed["split_brain_max"], missed["split_brain_writes"],
            missed["split_brain_status"]) == ("0", "11", "missed")
    assert missed["rto_status"] == "met"  # still RTO's and RPO's own columns
    passed = rows_by_id[plain.run_id]
    assert (passed["split_brain_max"], passed["split_brain_writes"],
            passed["split_brain_status"]) == ("", "", "")
