"""Schedules, cadence windows, job-store sync and the fire handler's missed records (SQLite
store and job store in a temp directory; no drill runs here)."""

from __future__ import annotations

import shutil
import subprocess
import sys
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from dalp_dr.history import open_store
from dalp_dr.history.base import RunSummary
from dalp_dr.results import Outcome
from dalp_dr.schedule import cadence, jobs
from dalp_dr.schedule.runner import FireHandler
from dalp_dr.spec import Schedule

ROOT = Path(__file__).resolve().parents[2]
DRILLS = ROOT / "drills"


def cli(*args: str) -> tuple[int, str, str]:
    """The real CLI in its own process (it installs signal handlers and logging)."""
    proc = subprocess.run([sys.executable, "-m", "dalp_dr", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=60, check=False)
    return proc.returncode, proc.stdout, proc.stderr


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


def trigger(cron: str, timezone: str = "UTC") -> object:
    return Schedule(cron=cron, timezone=timezone).trigger()


@pytest.mark.parametrize(("cron", "now", "expected"), [
    ("quarterly", utc(2026, 11, 27, 3), utc(2027, 1, 1, 3)),
    ("quarterly", utc(2027, 1, 1, 3), utc(2027, 1, 1, 3)),
    ("0 3 * * 0", utc(2026, 11, 27), utc(2026, 11, 29, 3)),  # cron's 0 is Sunday
    ("0 3 * * 7", utc(2026, 11, 27), utc(2026, 11, 29, 3)),
    ("0 9 * * 1-5", utc(2026, 11, 28), utc(2026, 11, 30, 9)),  # Saturday -> Monday
    ("*/15 * * * * *", utc(2026, 11, 27, 3, 0, 1), utc(2026, 11, 27, 3, 0, 15)),
])
def test_schedules_fire_when_crontab_says(cron: str, now: datetime, expected: datetime) -> None:
    assert trigger(cron).get_next_fire_time(None, now) == expected  # type: ignore[attr-defined]


def test_a_timezone_shifts_the_fire_time() -> None:
    fire = trigger("0 3 * * *", "Europe/Brussels").get_next_fire_time(  # type: ignore[attr-defined]
        None, utc(2026, 11, 27))
    assert fire.astimezone(UTC) == utc(2026, 11, 27, 2)


@pytest.mark.parametrize("bad", ["61 * * * *", "* * *", "0 3 * * funday", "every day"])
def test_invalid_cron_is_rejected(bad: str) -> None:
    with pytest.raises(ValueError, match="not a valid schedule"):
        Schedule(cron=bad)


def test_previous_fire_and_fires_between() -> None:
    quarterly = trigger("quarterly")
    assert cadence.previous_fire(quarterly, utc(2026, 11, 27)) == utc(2026, 10, 1, 3)
    assert cadence.previous_fire(quarterly, utc(2026, 10, 1, 3)) == utc(2026, 10, 1, 3)
    assert cadence.previous_fire(trigger("*/5 * * * * *"), utc(2026, 11, 27, 3, 0, 7)) \
        == utc(2026, 11, 27, 3, 0, 5)
    assert cadence.fires_between(quarterly, utc(2026, 1, 1, 3), utc(2027, 1, 1, 3)) == [
        utc(2026, 4, 1, 3), utc(2026, 7, 1, 3), utc(2026, 10, 1, 3), utc(2027, 1, 1, 3)]


def summary(outcome: Outcome, started: datetime, run_id: str = "r") -> RunSummary:
    return RunSummary(run_id=run_id, drill="d", topology="hot-warm", environment="lab",
                      trigger="schedule", operator="scheduler", started_at=started,
                      ended_at=None, outcome=outcome, recovery_time=None,
                      data_loss_window=None, evidence_dir="")


NOW = utc(2026, 11, 27, 12)
WINDOW = utc(2026, 10, 1, 3)
SINCE = utc(2026, 1, 1)
GRACE = timedelta(hours=1)


@pytest.mark.parametrize(("runs", "now", "since", "status"), [
    ([summary(Outcome.PASSED, WINDOW + timedelta(minutes=1))], NOW, SINCE, cadence.Cadence.MET),
    # only a run in the previous quarter: overdue in this one
    ([summary(Outcome.PASSED, WINDOW - timedelta(days=1))], NOW, SINCE, cadence.Cadence.OVERDUE),
    ([], NOW, SINCE, cadence.Cadence.OVERDUE),
    ([], WINDOW + timedelta(minutes=30), SINCE, cadence.Cadence.DUE),
    ([], NOW, WINDOW + timedelta(days=3), cadence.Cadence.NEW),  # scheduled mid-window
    ([summary(Outcome.RUNNING, WINDOW + timedelta(minutes=1))], NOW, SINCE,
     cadence.Cadence.RUNNING),
    # the latest run missed its objectives: failing, even in a later window
    ([summary(Outcome.MISSED, WINDOW + timedelta(minutes=1))], NOW, SINCE,
     cadence.Cadence.FAILING),
    ([summary(Outcome.PREFLIGHT_FAILED, WINDOW - timedelta(days=2))],
     WINDOW + timedelta(minutes=5), SINCE, cadence.Cadence.FAILING),
    # a missed schedule, then an on-demand pass in the same window: met
    ([summary(Outcome.PASSED, WINDOW + timedelta(days=2)),
      summary(Outcome.MISSED_SCHEDULE, WINDOW)], NOW, SINCE, cadence.Cadence.MET),
    ([summary(Outcome.MISSED_SCHEDULE, WINDOW)], NOW, SINCE, cadence.Cadence.OVERDUE),
])
def test_cadence_status(runs: list[RunSummary], now: datetime, since: datetime,
                        status: cadence.Cadence) -> None:
    got = cadence.assess("d", "d.yaml", trigger("quarterly"), since, runs, now, GRACE)
    assert got.status is status, got.detail
    assert got.problem == (status in cadence.PROBLEMS)
    if status is not cadence.Cadence.NEW:
        assert got.window_start == WINDOW


def copy_drills(tmp_path: Path, names: list[str]) -> Path:
    """Shipped drills copied with their relative paths intact (drills/ next to the rest)."""
    for sub in ("inventories", "playbooks"):
        (tmp_path / sub).symlink_to(ROOT / sub)
    target = tmp_path / "drills"
    target.mkdir()
    for name in names:
        shutil.copy(DRILLS / name, target / name)
    return target


def test_sync_adds_changes_reschedules_and_removes(tmp_path: Path) -> None:
    directory = copy_drills(tmp_path, ["hot-warm-failover.yaml", "hot-cold-restore.yaml"])
    url = f"sqlite:///{tmp_path / 'history.sqlite'}"
    store = jobs.open_jobstore(url)
    t0 = utc(2026, 11, 27, 3)
    report = jobs.sync(store, jobs.load_definitions(directory), now=t0)
    assert report.added == ["hot-cold-restore", "hot-warm-failover"]
    stored = jobs.stored_jobs(store)
    assert stored["hot-warm-failover"][1] == utc(2027, 1, 1, 3)
    assert stored["hot-warm-failover"][0].since == t0
    assert jobs.sync(store, jobs.load_definitions(directory)).changes == 0

    text = (directory / "hot-warm-failover.yaml").read_text()
    (directory / "hot-warm-failover.yaml").write_text(text.replace("rto: 30m", "rto: 20m"))
    (directory / "hot-cold-restore.yaml").write_text(
        (directory / "hot-cold-restore.yaml").read_text().replace(
            "schedule: quarterly", "schedule: {cron: '0 4 * * 1', timezone: Europe/Brussels}"))
    report = jobs.sync(store, jobs.load_definitions(directory), now=t0 + timedelta(days=1))
    assert report.changed == ["hot-cold-restore", "hot-warm-failover"]
    assert report.rescheduled == ["hot-cold-restore"]
    stored = jobs.stored_jobs(store)
    assert stored["hot-warm-failover"][0].rto == 20 * 60
    assert stored["hot-warm-failover"][0].since == t0  # its cadence history carries on
    assert stored["hot-warm-failover"][1] == utc(2027, 1, 1, 3)  # pending run kept
    assert stored["hot-cold-restore"][1] == utc(2026, 11, 30, 3)  # Mon 04:00 Brussels

    (directory / "hot-cold-restore.yaml").write_text("name: hot-cold-restore\nbroken: [")
    definitions = jobs.load_definitions(directory)
    report = jobs.sync(store, definitions, broken_names=jobs.broken_drill_names(definitions))
    assert report.kept_invalid == ["hot-cold-restore"] and report.removed == []
    (directory / "hot-cold-restore.yaml").unlink()
    report = jobs.sync(store, jobs.load_definitions(directory))
    assert report.removed == ["hot-cold-restore"]
    assert set(jobs.stored_jobs(store)) == {"hot-warm-failover"}
    store.shutdown()


def test_a_duplicate_drill_name_is_invalid(tmp_path: Path) -> None:
    directory = copy_drills(tmp_path, ["hot-warm-failover.yaml"])
    shutil.copy(directory / "hot-warm-failover.yaml", directory / "zz-copy.yaml")
    definitions = jobs.load_definitions(directory)
    assert list(definitions.valid) == ["hot-warm-failover"]
    problem = definitions.invalid[directory / "zz-copy.yaml"]
    assert "already defined by hot-warm-failover.yaml" in str(problem)


def test_fires_beyond_the_grace_period_become_missed_records_once(tmp_path: Path) -> None:
    directory = copy_drills(tmp_path, ["hot-warm-failover.yaml"])
    url = f"sqlite:///{tmp_path / 'history.sqlite'}"
    job = jobs.DrillJob.of(jobs.load_definitions(directory).valid["hot-warm-failover"],
                           since=utc(2026, 1, 1))
    handler = FireHandler(store_url=url, results_dir=tmp_path / "results",
                          grace=timedelta(hours=1), holder="test-scheduler", lock_ttl=60,
                          stopping=threading.Event())
    late = [utc(2026, 7, 1, 3), utc(2026, 10, 1, 3)]
    handler.handle(job, late)
    handler.handle(job, late)  # handled again (a second scheduler): claimed already
    store = open_store(url)
    rows = store.list_runs()
    assert [(r.outcome, r.planned_at, r.started_at) for r in rows] == [
        (Outcome.MISSED_SCHEDULE, t, t) for t in reversed(late)]
    detail = store.get(rows[0].run_id)
    assert detail.trigger.value == "schedule" and detail.objectives["rto"] == 1800
    assert "the scheduler was not running at the planned time" in (detail.message or "")
    store.close()


def test_scheduler_refuses_a_broken_definition_with_exit_2(tmp_path: Path) -> None:
    directory = copy_drills(tmp_path, ["hot-warm-failover.yaml"])
    (directory / "bad.yaml").write_text((DRILLS / "hot-warm-failover.yaml").read_text()
                                        .replace("name: hot-warm-failover", "name: bad")
                                        .replace("schedule: quarterly",
                                                 "schedule: {cron: '0 3 * * *', "
                                                 "timezone: Mars/Olympus}"))
    code, _out, err = cli("--results-dir", str(tmp_path / "r"), "scheduler", "run",
                          "--drills", str(directory))
    assert code == 2
    assert "bad.yaml" in err and "schedule" in err and "Mars/Olympus" in err
    assert "--skip-invalid" in err
    assert not (tmp_path / "r").exists()  # nothing started, nothing written
    code, _out, err = cli("--results-dir", str(tmp_path / "r"), "schedule", "sync",
                          "--drills", str(directory))
    assert code == 2 and "bad.yaml" in err


def test_scheduler_exits_1_when_the_store_is_unreachable(tmp_path: Path) -> None:
    directory = copy_drills(tmp_path, ["hot-warm-failover.yaml"])
    code, _out, err = cli("--store", "postgresql://u:hunter2-pw@127.0.0.1:1/x?connect_timeout=2",
                          "scheduler", "run", "--drills", str(directory))
    assert code == 1, err
    assert "cannot open history" in err and "hunter2-pw" not in err
