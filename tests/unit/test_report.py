"""``dalp-dr report``: the control check of a quarter on a history of mixed outcomes (SQLite
store, drill files in a temp directory), through ``main`` for its rows and exit codes."""

from __future__ import annotations

import csv
import io
import json
import shutil
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import pytest

from dalp_dr.commands import main
from dalp_dr.results import Outcome, RunResult
from tests.factories import make_run, pin_history, record_runs

ROOT = Path(__file__).resolve().parents[2]


def q3(month: int, day: int) -> datetime:
    return datetime(2026, month, day, 3, tzinfo=UTC)


def drills_dir(tmp_path: Path, schedules: dict[str, str]) -> Path:
    """One copy of the shipped hot-warm drill per name, with that schedule."""
    for sub in ("inventories", "playbooks"):
        if not (tmp_path / sub).exists():
            (tmp_path / sub).symlink_to(ROOT / sub)
    directory = tmp_path / "drills"
    directory.mkdir(exist_ok=True)
    text = (ROOT / "drills" / "hot-warm-failover.yaml").read_text()
    for name, schedule in schedules.items():
        (directory / f"{name}.yaml").write_text(
            text.replace("name: hot-warm-failover", f"name: {name}")
                .replace("schedule: quarterly", f"schedule: {schedule!r}"))
    return directory


def history_of(tmp_path: Path, runs: list[RunResult], pinned: bool = True) -> str:
    """The configured history of these runs, pinned by a signed checkpoint (``pinned``)."""
    url = f"sqlite:///{tmp_path / 'results' / 'history.sqlite'}"
    record_runs(url, runs)
    if pinned:
        pin_history()
    return url


def run(tmp_path: Path, drill: str, started: datetime, outcome: Outcome,
        recovery: float | None) -> RunResult:
    return make_run(tmp_path, f"{started:%Y%m%dT%H%M%SZ}-{drill[:6]}", drill, started, outcome,
                    recovery)


def report(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["report", *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture
def mixed(configured: Path) -> Path:
    """Q3 2026: one drill passed, one missed its RTO, one failed, one inconclusive, one never
    ran, a monthly one skipped August (a missed schedule, then a run in September), and one
    ran but is no longer defined."""
    tmp_path = configured
    directory = drills_dir(tmp_path, {
        "ok": "quarterly", "slow": "quarterly", "broken": "quarterly", "unsure": "quarterly",
        "never": "quarterly", "late": "0 3 1 * *"})
    history_of(tmp_path, [
        run(tmp_path, "ok", q3(7, 1), Outcome.PASSED, 1.2),
        run(tmp_path, "slow", q3(7, 2), Outcome.MISSED, 45.0),
        run(tmp_path, "broken", q3(7, 3), Outcome.FAILED, None),
        run(tmp_path, "unsure", q3(7, 4), Outcome.INCONCLUSIVE, None),
        run(tmp_path, "late", q3(7, 1), Outcome.PASSED, 2.0),
        run(tmp_path, "late", q3(8, 1), Outcome.MISSED_SCHEDULE, None),
        run(tmp_path, "late", q3(9, 2), Outcome.PASSED, 3.0),
        run(tmp_path, "retired", q3(7, 5), Outcome.PASSED, 1.0),
        # outside the quarter: neither counted nor listed
        run(tmp_path, "ok", q3(10, 2), Outcome.MISSED, 99.0),
        run(tmp_path, "never", datetime(2026, 6, 30, 23, tzinfo=UTC), Outcome.PASSED, 1.0),
    ])
    return directory


def test_the_quarter_question_on_a_mixed_history(mixed: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = report(capsys, "--quarter", "2026Q3", "--drills", str(mixed), "-o", "json")
    assert code == 1
    document = json.loads(out)
    assert document["passed"] is False
    assert document["period"] == {"from": "2026-07-01T00:00:00+00:00",
                                  "to": "2026-10-01T00:00:00+00:00"}
    rows = {r["drill"]: r for r in document["drills"]}
    assert set(rows) == {"ok", "slow", "broken", "unsure", "never", "late", "retired"}
    assert {name for name, r in rows.items() if r["passed"]} == {"ok"}
    ok = rows["ok"]
    assert (ok["cadence"], ok["worst_outcome"], ok["run_ids"]) == (
        "on_cadence", "passed", ["20260701T030000Z-ok"])
    assert (ok["rto"]["status"], ok["rto"]["margin_s"]) == ("met", pytest.approx(28.8))
    assert ok["findings"] == []
    slow = rows["slow"]
    assert slow["cadence"] == "on_cadence" and slow["worst_outcome"] == "missed"
    assert (slow["rto"]["status"], slow["rto"]["margin_s"], slow["rto"]["run_id"]) == (
        "missed", pytest.approx(-15.0), "20260702T030000Z-slow")
    assert slow["rpo"]["status"] == "met"
    for name, outcome in (("broken", "failed"), ("unsure", "inconclusive")):
        assert rows[name]["worst_outcome"] == outcome
        assert rows[name]["rto"]["status"] == rows[name]["rpo"]["status"] == "unknown"
        assert rows[name]["cadence"] == "on_cadence"  # it ran; it did not meet anything
    never = rows["never"]
    assert (never["cadence"], never["worst_outcome"], never["run_ids"]) == (
        "off_cadence", None, [])
    assert never["missed_windows"] == ["2026-07-01T03:00:00+00:00"]
    late = rows["late"]
    assert late["cadence"] == "off_cadence"
    assert (late["windows"], late["windows_with_run"]) == (3, 2)
    assert late["missed_windows"] == ["2026-08-01T03:00:00+00:00"]
    assert late["worst_outcome"] == "missed_schedule"
    assert late["rto"]["status"] == "met"  # both runs that ran met it
    retired = rows["retired"]
    assert retired["cadence"] == "not_defined" and retired["file"] is None
    assert "not in the drill directory" in retired["findings"][0]


def test_the_table_and_csv_say_the_same(mixed: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = report(capsys, "--quarter", "2026Q3", "--drills", str(mixed))
    assert code == 1
    assert "1 of 7 drill(s) pass; 6 fail" in out
    assert "20260702T030000Z-slow" in out  # run ids whole, never truncated
    assert "late: 1 of 3 window(s) closed without a run" in out
    code, out, _ = report(capsys, "--quarter", "2026Q3", "--drills", str(mixed), "-o", "csv")
    assert code == 1
    rows = {r["drill"]: r for r in csv.DictReader(io.StringIO(out))}
    assert rows["slow"]["rto.status"] == "missed" and rows["slow"]["passed"] == "False"
    assert rows["ok"]["passed"] == "True"


def test_every_drill_on_cadence_and_met_exits_0(configured: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    directory = drills_dir(configured, {"ok": "quarterly", "weekly": "0 3 * * 1"})
    history_of(configured, [run(configured, "ok", q3(7, 1), Outcome.PASSED, 1.2)] + [
        run(configured, "weekly", datetime(2026, 7, 6 + 7 * i, 4, tzinfo=UTC) if i < 4 else
            datetime(2026, 8, 3 + 7 * (i - 4), 4, tzinfo=UTC), Outcome.PASSED, 1.0)
        for i in range(5)])
    code, out, _ = report(capsys, "--from", "2026-07-01", "--to", "2026-08-09",
                          "--drills", str(directory), "--json")
    assert code == 0, out
    rows = {r["drill"]: r for r in json.loads(out)["drills"]}
    assert rows["weekly"]["windows"] == rows["weekly"]["windows_with_run"] == 5
    # a week later the 10 August window closed without a run: off cadence
    code, out, _ = report(capsys, "--from", "2026-07-01", "--to", "2026-08-16",
                          "--drills", str(directory), "--json")
    assert code == 1
    rows = {r["drill"]: r for r in json.loads(out)["drills"]}
    assert rows["weekly"]["missed_windows"] == ["2026-08-10T03:00:00+00:00"]
    assert rows["ok"]["cadence"] == "on_cadence"


def test_filters_keep_to_an_environment_and_a_topology(
        mixed: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = report(capsys, "--quarter", "2026Q3", "--drills", str(mixed),
                          "--topology", "hot-cold", "--json")
    assert code == 1  # nothing to check is not a pass
    assert json.loads(out)["drills"] == []
    code, out, _ = report(capsys, "--quarter", "2026Q3", "--drills", str(mixed),
                          "--environment", "lab-hot-warm", "--json")
    assert len(json.loads(out)["drills"]) == 7


@pytest.mark.parametrize(("args", "field", "words"), [
    (["--quarter", "2026Q5"], "--quarter", "not a quarter"),
    (["--quarter", "2026Q3", "--from", "2026-07-01"], "--quarter", "not both"),
    (["--quarter", "2099Q1"], "--quarter", "has not begun"),  # was exit 0: no window, no run
    (["--from", "2099-01-01", "--to", "2099-03-01"], "--from", "has not begun"),
    ([], "--quarter", "which period"),
    (["--from", "2026-09-01", "--to", "2026-08-01"], "--to", "inverted"),
    (["--quarter", "2026Q3", "--environment", "prod-typo"], "--environment",
     "prod-typo"),
    (["--quarter", "2026Q3", "--topology", "lukewarm"], "--topology", "unknown topology"),
])
def test_bad_input_exits_2_naming_the_field(mixed: Path, capsys: pytest.CaptureFixture[str],
                                            args: list[str], field: str, words: str) -> None:
    code, out, err = report(capsys, *args, "--drills", str(mixed), "-o", "json")
    assert code == 2, err
    error = json.loads(out)["error"]
    assert error["field"] == field and words in error["message"], error
    assert err.startswith("error: ")


def test_a_missing_drill_directory_exits_2(configured: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = report(capsys, "--quarter", "2026Q3", "--drills",
                          str(configured / "nowhere"))
    assert code == 2 and "does not exist" in err


def test_a_history_that_does_not_verify_does_not_pass(
        configured: Path, capsys: pytest.CaptureFixture[str]) -> None:
    directory = drills_dir(configured, {"ok": "quarterly"})
    url = history_of(configured, [run(configured, "ok", q3(7, 1), Outcome.MISSED, 45.0)])
    assert report(capsys, "--quarter", "2026Q3", "--drills", str(directory))[0] == 1
    db = sqlite3.connect(url.removeprefix("sqlite:///"))
    db.execute("update runs set result_json = replace(result_json, '\"missed\"', '\"passed\"')")
    db.commit()
    db.close()
    code, out, err = report(capsys, "--quarter", "2026Q3", "--drills", str(directory),
                            "-o", "json")
    assert code == 1 and "does not verify" in err
    assert "drills" not in json.loads(out)  # no verdict, only the error


def test_a_broken_drill_file_is_a_finding(mixed: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    shutil.copy(mixed / "ok.yaml", mixed / "ok-copy.yaml")  # the same name twice
    (mixed / "typo.yaml").write_text("name: typo\nobjectives: [")
    code, out, _ = report(capsys, "--quarter", "2026Q3", "--drills", str(mixed), "--json")
    assert code == 1
    rows = {r["drill"]: r for r in json.loads(out)["drills"]}
    assert rows["typo"]["cadence"] == "invalid"
    # the second file of a name (in file order) is the broken one, listed by its file name
    assert rows["ok.yaml"]["cadence"] == "invalid" and rows["ok.yaml"]["passed"] is False
    assert "already defined by ok-copy.yaml" in rows["ok.yaml"]["findings"][0]
    assert rows["ok"]["passed"] is True


def test_a_window_still_open_is_pending_not_missed(tmp_path: Path) -> None:
    from dalp_dr.compliance import Period, windows
    from dalp_dr.spec import Schedule

    monthly = Schedule(cron="0 3 1 * *").trigger()
    period = Period(start=datetime(2026, 10, 1, tzinfo=UTC), end=datetime(2027, 1, 1, tzinfo=UTC))
    now = datetime(2026, 12, 3, 12, tzinfo=UTC)
    found = windows(monthly, period, now, [run(tmp_path, "m", q3(10, 2), Outcome.PASSED, 1.0)])
    assert [(w.opens.month, w.runs != (), w.pending, w.missed) for w in found] == [
        (10, True, False, False), (11, False, False, True), (12, False, True, False)]
    assert found[-1].closes == period.end  # the next fire is outside the period


def test_a_drill_that_has_not_run_yet_in_an_open_period_does_not_pass(
        configured: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Its only window is still open (pending, not missed), but exit 0 says every drill ran:
    it has not, so the period does not pass until it does."""
    year = datetime.now(UTC).year
    directory = drills_dir(configured, {"yearly": "0 0 1 1 *"})
    history_of(configured, [run(configured, "yearly", datetime(year - 1, 6, 1, tzinfo=UTC),
                                Outcome.PASSED, 1.0)])
    code, out, _ = report(capsys, "--from", f"{year}-01-01", "--drills", str(directory),
                          "--json")
    assert code == 1, out
    row = json.loads(out)["drills"][0]
    assert (row["cadence"], row["windows_pending"], row["missed_windows"]) == (
        "on_cadence", 1, [])
    assert "no run in the period yet" in row["findings"][0]
    history_of(configured, [run(configured, "yearly", datetime(year, 1, 1, 0, 1, tzinfo=UTC),
                                Outcome.PASSED, 1.0)])
    code, out, _ = report(capsys, "--from", f"{year}-01-01", "--drills", str(directory),
                          "--json")
    assert code == 0, out


def test_a_quarter_is_the_drills_own_quarter_in_its_time_zone(
        configured: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A quarterly drill at 03:00 on the 1st in Tokyo fires on the last day of the quarter
    before in UTC (Jun 30 18:00 UTC); in Los Angeles at 10:00 UTC on the 1st. Each run on
    schedule belongs to its own zone's quarter: 2026Q3 passes for both, and a Tokyo run on
    Oct 1 03:00 (still Sep 30 in UTC) is Q4's, not Q3's."""
    tmp_path = configured
    directory = drills_dir(tmp_path, {"tokyo": "quarterly", "la": "quarterly"})
    for name, zone in (("tokyo", "Asia/Tokyo"), ("la", "America/Los_Angeles")):
        path = directory / f"{name}.yaml"
        path.write_text(path.read_text().replace(
            "schedule: 'quarterly'", f"schedule: {{cron: quarterly, timezone: {zone}}}"))
    history_of(tmp_path, [
        run(tmp_path, "tokyo", datetime(2026, 6, 30, 18, 1, tzinfo=UTC), Outcome.PASSED, 1.0),
        run(tmp_path, "tokyo", datetime(2026, 9, 30, 18, 1, tzinfo=UTC), Outcome.MISSED, 99.0),
        run(tmp_path, "la", datetime(2026, 7, 1, 10, 1, tzinfo=UTC), Outcome.PASSED, 1.0),
    ])
    code, out, _ = report(capsys, "--quarter", "2026Q3", "--drills", str(directory), "-o",
                          "json")
    rows = {d["drill"]: d for d in json.loads(out)["drills"]}
    assert code == 0, rows
    assert rows["tokyo"]["run_ids"] == ["20260630T180100Z-tokyo"]  # Q4's run left out
    assert rows["tokyo"]["period"] == {"from": "2026-07-01T00:00:00+09:00",
                                       "to": "2026-10-01T00:00:00+09:00"}
    assert rows["la"]["cadence"] == "on_cadence" and rows["la"]["windows"] == 1
    code, out, _ = report(capsys, "--quarter", "2026Q4", "--drills", str(directory), "-o",
                          "json")
    rows = {d["drill"]: d for d in json.loads(out)["drills"]}
    assert rows["tokyo"]["rto"]["status"] == "missed" and code == 1


def test_an_unsigned_history_fails_the_check_unless_allowed(
        configured: Path, capsys: pytest.CaptureFixture[str]) -> None:
    tmp_path = configured
    directory = drills_dir(tmp_path, {"ok": "quarterly"})
    history_of(tmp_path, [run(tmp_path, "ok", q3(7, 1), Outcome.PASSED, 1.2)], pinned=False)
    code, out, _ = report(capsys, "--quarter", "2026Q3", "--drills", str(directory), "-o",
                          "json")
    document = json.loads(out)
    assert code == 1 and document["drills_failing"] == [] and not document["history_pinned"]
    assert "not pinned" in document["history_finding"]
    code, out, _ = report(capsys, "--quarter", "2026Q3", "--drills", str(directory),
                          "--allow-unsigned")
    assert code == 0 and "allowed: --allow-unsigned" in out
    pin_history()
    code, out, _ = report(capsys, "--quarter", "2026Q3", "--drills", str(directory))
    assert code == 0 and "pinned by a signed checkpoint" in out
