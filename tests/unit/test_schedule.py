"""Schedules, cadence windows, job-store sync and the fire handler's missed records (SQLite
store and job store in a temp directory; no drill runs here)."""

from __future__ import annotations

import json
import shutil
import sqlite3
import stat
import subprocess
import sys
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from dalp_dr import private_files
from dalp_dr.errors import StoreError
from dalp_dr.history import open_store
from dalp_dr.history.base import RunSummary
from dalp_dr.results import Outcome
from dalp_dr.schedule import cadence, jobs, legacy, removals
from dalp_dr.schedule import store as store_module
from dalp_dr.schedule.runner import FireHandler
from dalp_dr.spec import Schedule

ROOT = Path(__file__).resolve().parents[2]
DRILLS = ROOT / "drills"


def cli(*args: str) -> tuple[int, str, str]:
    """The real CLI in its own process (it installs signal handlers and logging)."""
    proc = subprocess.run([sys.executable, "-m", "dalp_dr", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=60, check=False)
    return proc.returncode, proc.stdout, proc.stderr


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0
        ) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


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
    # (re)scheduled mid-window: a pass in the window is met, not "new"
    ([summary(Outcome.PASSED, WINDOW + timedelta(days=5))], NOW, WINDOW + timedelta(days=3),
     cadence.Cadence.MET),
    # re-added mid-window after earlier runs: judged on the window, not hidden as new
    ([summary(Outcome.PASSED, WINDOW - timedelta(days=30))], NOW,
     WINDOW + timedelta(days=3), cadence.Cadence.OVERDUE),
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
    assert report.added == ("hot-cold-restore", "hot-warm-failover")
    stored = jobs.stored_jobs(store)
    assert stored["hot-warm-failover"].next_run == utc(2027, 1, 1, 3)
    assert stored["hot-warm-failover"].job.since == t0
    assert jobs.sync(store, jobs.load_definitions(directory)).changes == 0

    text = (directory / "hot-warm-failover.yaml").read_text()
    (directory / "hot-warm-failover.yaml").write_text(text.replace("rto: 30m", "rto: 20m"))
    (directory / "hot-cold-restore.yaml").write_text(
        (directory / "hot-cold-restore.yaml").read_text().replace(
            "schedule: quarterly", "schedule: {cron: '0 4 * * 1', timezone: Europe/Brussels}"))
    report = jobs.sync(store, jobs.load_definitions(directory), now=t0 + timedelta(days=1))
    assert report.changed == ("hot-cold-restore", "hot-warm-failover")
    assert report.rescheduled == ("hot-cold-restore",)
    stored = jobs.stored_jobs(store)
    assert stored["hot-warm-failover"].job.rto == 20 * 60
    assert stored["hot-warm-failover"].job.since == t0  # its cadence history carries on
    assert stored["hot-warm-failover"].next_run == utc(2027, 1, 1, 3)  # pending run kept
    assert stored["hot-cold-restore"].next_run == utc(2026, 11, 30, 3)  # Mon 04:00 Brussels

    (directory / "hot-cold-restore.yaml").write_text("name: hot-cold-restore\nbroken: [")
    definitions = jobs.load_definitions(directory)
    report = jobs.sync(store, definitions, broken_names=jobs.broken_drill_names(definitions))
    assert report.kept_invalid == ("hot-cold-restore",) and report.removed == ()
    (directory / "hot-cold-restore.yaml").unlink()
    report = jobs.sync(store, jobs.load_definitions(directory))  # no --prune: kept, said
    assert report.removed == () and report.orphaned == ("hot-cold-restore",)
    assert set(jobs.stored_jobs(store)) == {"hot-cold-restore", "hot-warm-failover"}
    planned = jobs.sync(store, jobs.load_definitions(directory), prune=True, dry_run=True)
    assert planned.removed == ("hot-cold-restore",) and planned.dry_run
    assert set(jobs.stored_jobs(store)) == {"hot-cold-restore", "hot-warm-failover"}
    report = jobs.sync(store, jobs.load_definitions(directory), prune=True, removed_by="ops@h",
                       now=t0 + timedelta(days=2))
    assert report.removed == ("hot-cold-restore",) and not report.removes_every_job
    assert set(jobs.stored_jobs(store)) == {"hot-warm-failover"}
    [removal] = removals.removals(store)
    assert (removal.drill, removal.removed_by, removal.removed_at, removal.cron) == (
        "hot-cold-restore", "ops@h", t0 + timedelta(days=2), "0 4 * * 1")
    store.shutdown()


def synced_store(tmp_path: Path, names: list[str], now: datetime | None = None
                 ) -> tuple[Path, Path, jobs.DrillJobStore]:
    """Drills copied, synced at ``now`` (27 Nov 2026 03:00) into a SQLite job store:
    (drills, database, store)."""
    now = now or utc(2026, 11, 27, 3)
    directory = copy_drills(tmp_path, names)
    database = tmp_path / "history.sqlite"
    store = jobs.open_jobstore(f"sqlite:///{database}")
    jobs.sync(store, jobs.load_definitions(directory), now=now)
    return directory, database, store


def sql(database: Path, statement: str, *args: object) -> list[tuple[object, ...]]:
    with sqlite3.connect(database) as db:
        rows = db.execute(statement, args).fetchall()
    db.close()
    return rows


def test_the_job_store_serves_apscheduler_jobs_rebuilt_from_json(tmp_path: Path) -> None:
    from apscheduler.jobstores.base import ConflictingIdError, JobLookupError
    from apscheduler.triggers.cron import CronTrigger

    _directory, database, store = synced_store(tmp_path, ["hot-warm-failover.yaml",
                                                          "hot-cold-restore.yaml"])
    assert store.get_next_run_time() == utc(2027, 1, 1, 3)
    assert store.get_due_jobs(utc(2026, 12, 31)) == []
    due = store.get_due_jobs(utc(2027, 1, 1, 3))
    assert [job.id for job in due] == ["hot-cold-restore", "hot-warm-failover"]
    job = due[1]
    assert job.func is store_module.fire and job.executor == jobs.EXECUTOR
    assert isinstance(job.trigger, CronTrigger) and job.next_run_time == utc(2027, 1, 1, 3)
    assert jobs.DrillJob.model_validate(job.kwargs).drill == "hot-warm-failover"
    # the scheduler advances the next run and nothing else: the definition is sync's
    job.next_run_time = utc(2027, 4, 1, 3)
    job.kwargs = {**job.kwargs, "rto": 1.0}
    store.update_job(job)
    stored = jobs.stored_jobs(store)["hot-warm-failover"]
    assert stored.next_run == utc(2027, 4, 1, 3) and stored.job.rto == 1800
    assert store.lookup_job("hot-warm-failover") is not None
    assert store.lookup_job("nope") is None
    with pytest.raises(ConflictingIdError):
        store.add_job(job)
    store.remove_job("hot-warm-failover")
    with pytest.raises(JobLookupError):
        store.remove_job("hot-warm-failover")
    store.add_job(job)
    assert [j.id for j in store.get_all_jobs()] == ["hot-cold-restore", "hot-warm-failover"]
    (text,) = sql(database, "select job from dalp_dr_schedule where id = 'hot-cold-restore'")[0]
    assert json.loads(str(text))["cron"] == "0 3 1 1,4,7,10 *"  # a row is plain JSON
    store.shutdown()


def _row(job: dict[str, object], **changes: object) -> str:
    return json.dumps({**job, **changes})


@pytest.mark.parametrize(("job", "next_run", "problem"), [
    (lambda j: "{not json", 0.0, "not a drill job (row: Invalid JSON"),
    (lambda j: _row(j, extra="x"), 0.0, "not a drill job (extra: Extra inputs"),
    (lambda j: _row({k: v for k, v in j.items() if k != "path"}), 0.0, "path: Field required"),
    (lambda j: _row(j, since="2026-11-27T03:00:00"), 0.0, "since: Input should have timezone"),
    (lambda j: _row(j, cron="import os"), 0.0, "invalid schedule: 2 fields"),
    (lambda j: _row(j, timezone="../../etc/passwd"), 0.0, "invalid schedule: "),
    (lambda j: _row(j, topology="pickle"), 0.0, "topology: Input should be"),
    (lambda j: _row(j, rto="NaN"), 0.0, "rto: Input should be a finite number"),
    (lambda j: _row(j, drill="hot-cold-restore"), 0.0, "holds the job of drill"),
    (lambda j: b"\x80\x04K\x01.", 0.0, "the job is not JSON text (bytes)"),
    (lambda j: json.dumps(j), "soon", "next_run_time is not a timestamp"),
    (lambda j: json.dumps(j), 1e300, "next_run_time is out of range"),
])
def test_a_row_that_is_not_a_drill_job_is_an_error_naming_table_and_job(
        tmp_path: Path, job: Callable[[dict[str, object]], object], next_run: object,
        problem: str) -> None:
    _directory, database, store = synced_store(tmp_path, ["hot-warm-failover.yaml"])
    (text,) = sql(database, "select job from dalp_dr_schedule")[0]
    sql(database, "update dalp_dr_schedule set job = ?, next_run_time = ?",
        job(json.loads(str(text))), next_run)
    reads = [store.jobs, store.get_all_jobs]
    if next_run == 0.0:  # a due row (a next run that is no number is never due)
        reads.append(lambda: store.get_due_jobs(utc(2030, 1, 1)))
    for read in reads:
        with pytest.raises(StoreError, match="job store table dalp_dr_schedule, job "
                                             "'hot-warm-failover': ") as caught:
            read()
        assert problem in str(caught.value)
    store.shutdown()


LEGACY = ("create table dalp_dr_jobs (id varchar(191) not null primary key, next_run_time "
          "float, job_state blob not null)")


def test_the_pickled_table_is_migrated_from_its_plain_columns_and_the_drill_files(
        tmp_path: Path) -> None:
    t0 = utc(2026, 11, 27, 3)
    directory, database, store = synced_store(
        tmp_path, ["hot-warm-failover.yaml", "hot-cold-restore.yaml", "hot-hot-site-loss.yaml"],
        now=t0)
    sql(database, "delete from dalp_dr_schedule where id != 'hot-hot-site-loss'")
    (directory / "hot-cold-restore.yaml").write_text("name: hot-cold-restore\nbroken: [")
    sql(database, LEGACY)
    for drill, next_run in (("hot-warm-failover", utc(2026, 10, 1, 3)),  # due while down
                            ("hot-cold-restore", utc(2027, 1, 1, 3)),  # its file is broken
                            ("hot-hot-site-loss", utc(2030, 1, 1, 3)),  # in the new table
                            ("ghost", utc(2027, 1, 1, 3))):  # no drill file
        # job_state is not even a pickle: reading it at all would fail the migration
        sql(database, "insert into dalp_dr_jobs values (?, ?, ?)", drill,
            next_run.timestamp(), b"never read")
    sql(database, "insert into dalp_dr_jobs values ('hot-hot-public-site-loss', 1.5, x'00')")
    shutil.copy(DRILLS / "hot-hot-public-site-loss.yaml", directory)

    definitions = jobs.load_definitions(directory)
    current = jobs.current_jobs(store, definitions, now=t0)  # list and status: no deletes
    assert set(current) == {"hot-warm-failover", "hot-hot-site-loss", "hot-hot-public-site-loss"}
    assert current["hot-warm-failover"].next_run == utc(2026, 10, 1, 3)  # kept: still a fire
    assert current["hot-hot-public-site-loss"].next_run == utc(2027, 1, 1, 3)  # recomputed
    assert current["hot-hot-site-loss"].next_run == utc(2027, 1, 1, 3)  # the new row won
    assert current["hot-warm-failover"].job.since == legacy.MIGRATED_SINCE
    assert sorted(sql(database, "select id from dalp_dr_jobs")) == [("ghost",),
                                                                    ("hot-cold-restore",)]
    # the first window after the upgrade counts: overdue, not hidden as new
    runs: list[RunSummary] = []
    status = cadence.assess("hot-warm-failover", "f", current["hot-warm-failover"].job.trigger(),
                            current["hot-warm-failover"].job.since, runs, t0, GRACE)
    assert status.status is cadence.Cadence.OVERDUE

    kept = jobs.sync(store, definitions, now=t0, broken_names=jobs.broken_drill_names(
        definitions))  # without --prune the old table's ghost stays where it is
    assert kept.removed == () and kept.kept_invalid == ("ghost", "hot-cold-restore")
    report = jobs.sync(store, definitions, now=t0, prune=True,
                       broken_names=jobs.broken_drill_names(definitions))
    assert report.removed == ("ghost",) and report.kept_invalid == ("hot-cold-restore",)
    assert sql(database, "select id from dalp_dr_jobs") == [("hot-cold-restore",)]
    shutil.copy(DRILLS / "hot-cold-restore.yaml", directory)  # fixed: migrated now
    report = jobs.sync(store, jobs.load_definitions(directory), now=t0)
    assert report.migrated == ("hot-cold-restore",) and report.changes == 0
    assert jobs.stored_jobs(store)["hot-cold-restore"].next_run == utc(2027, 1, 1, 3)
    assert sql(database, "select count(*) from dalp_dr_jobs") == [(0,)]
    store.shutdown()


def test_a_job_naming_a_file_outside_the_drill_directory_does_not_run(tmp_path: Path) -> None:
    directory = copy_drills(tmp_path, ["hot-warm-failover.yaml"])
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    shutil.copy(directory / "hot-warm-failover.yaml", elsewhere / "evil.yaml")
    url = f"sqlite:///{tmp_path / 'history.sqlite'}"
    loaded = jobs.load_definitions(directory).valid["hot-warm-failover"]
    job = jobs.DrillJob.of(loaded, since=utc(2026, 1, 1)).model_copy(
        update={"path": str(elsewhere / "evil.yaml")})
    handler = FireHandler(store_url=url, results_dir=tmp_path / "results",
                          grace=timedelta(hours=1), holder="test-scheduler", lock_ttl=60,
                          stopping=threading.Event(), drills_dir=directory)
    planned = datetime.now(UTC).replace(microsecond=0)
    handler.handle(job, [planned])
    store = open_store(url)
    (row,) = store.list_runs()
    assert row.outcome is Outcome.PREFLIGHT_FAILED and row.planned_at == planned
    assert "not a drill file in" in (store.get(row.run_id).message or "")
    store.close()
    assert not (tmp_path / "results").exists() or not any((tmp_path / "results").rglob(
        "phases*"))


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


def test_a_claimed_fire_nobody_recorded_becomes_a_missed_record_naming_its_claimer(
        tmp_path: Path) -> None:
    directory = copy_drills(tmp_path, ["hot-warm-failover.yaml"])
    url = f"sqlite:///{tmp_path / 'history.sqlite'}"
    job = jobs.DrillJob.of(jobs.load_definitions(directory).valid["hot-warm-failover"],
                           since=utc(2026, 1, 1))
    handler = FireHandler(store_url=url, results_dir=tmp_path / "results",
                          grace=timedelta(hours=1), holder="scheduler-b", lock_ttl=60,
                          stopping=threading.Event())
    store = open_store(url)
    dead, gone, later = utc(2026, 10, 1, 3), utc(2026, 11, 1, 3), utc(2026, 12, 1, 3)
    assert store.claim_fire("hot-warm-failover", dead, "host:4242:killed")  # then SIGKILL
    assert store.claim_fire("unscheduled", gone, "host:4242:killed")
    handler.handle(job, [later])  # a late fire handled in full: claimed and recorded
    scheduled = {"hot-warm-failover": job}
    assert handler.settle_unrecorded(store, scheduled, older_than=3600) == []  # too fresh
    (settled,) = handler.settle_unrecorded(store, scheduled, older_than=-1)
    assert (settled.drill, settled.planned_at) == ("hot-warm-failover", dead)
    assert handler.settle_unrecorded(store, scheduled, older_than=-1) == []  # recorded once
    rows = store.list_runs()
    assert [(r.outcome, r.planned_at) for r in rows] == [
        (Outcome.MISSED_SCHEDULE, later), (Outcome.MISSED_SCHEDULE, dead)]
    message = store.get(rows[1].run_id).message or ""
    assert "claimed at" in message and "by scheduler host:4242:killed" in message
    assert [c.drill for c in store.unrecorded_fires(older_than=-1)] == ["unscheduled"]
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


def never_ran(since: datetime, now: datetime) -> cadence.DrillCadence:
    return cadence.assess("d", "d.yaml", trigger("quarterly"), since, [], now, GRACE)


def test_a_drill_that_never_ran_is_new_only_until_its_first_window_opens() -> None:
    added = WINDOW + timedelta(days=3)
    assert never_ran(added, NOW).status is cadence.Cadence.NEW
    assert "2027-01-01 03:00 UTC" in never_ran(added, NOW).detail
    first = utc(2027, 1, 1, 3)
    assert never_ran(added, first + timedelta(minutes=30)).status is cadence.Cadence.DUE
    late = never_ran(added, first + timedelta(hours=2))
    assert late.status is cadence.Cadence.OVERDUE and late.problem
    assert late.detail.startswith("never ran")


def run_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    from dalp_dr.commands import main

    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_sync_never_removes_silently(configured: Path, capsys: pytest.CaptureFixture[str],
                                     caplog: pytest.LogCaptureFixture) -> None:
    directory = copy_drills(configured, ["hot-warm-failover.yaml", "hot-cold-restore.yaml"])
    empty = configured / "empty"
    empty.mkdir()
    code, out, _ = run_cli(capsys, "schedule", "sync", "--drills", str(directory), "--dry-run",
                           "-o", "json")
    assert code == 0
    planned = json.loads(out)
    assert planned["dry_run"] is True and planned["changes"] == 2
    assert {(r["drill"], r["action"]) for r in planned["drills"]} == {
        ("hot-cold-restore", "added"), ("hot-warm-failover", "added")}
    assert all(r["next_run"] for r in planned["drills"])
    assert json.loads(run_cli(capsys, "schedule", "removals", "-o", "json")[1]) == []
    assert not (configured / "results").exists()  # a dry run and a listing create no store
    code, out, _ = run_cli(capsys, "schedule", "list", "--drills", str(directory), "--json")
    assert not any(r["next_run"] for r in json.loads(out))  # the dry run wrote nothing
    assert run_cli(capsys, "schedule", "sync", "--drills", str(directory))[0] == 0
    # the first write creates the store as the history would: the owner's alone
    assert stat.S_IMODE((configured / "results").stat().st_mode) == private_files.dir_mode()
    assert stat.S_IMODE((configured / "results" / "history.sqlite").stat().st_mode) == \
        private_files.file_mode()

    # the wrong (empty) directory: every job kept and said, at warning
    caplog.set_level("WARNING", logger="dalp_dr.scheduler")
    code, out, _ = run_cli(capsys, "schedule", "sync", "--drills", str(empty))
    assert code == 0 and "KEPT (drill file gone: --prune removes it) hot-cold-restore" in out
    assert sum("is gone" in r.getMessage() for r in caplog.records) == 2
    # --prune would remove them all: refused, exit 2, nothing changed
    code, out, err = run_cli(capsys, "schedule", "sync", "--drills", str(empty), "--prune",
                             "-o", "json")
    assert code == 2
    error = json.loads(out)["error"]
    assert error["field"] == "--prune" and "--prune --all" in error["hint"]
    assert "every scheduled job" in err
    code, out, _ = run_cli(capsys, "schedule", "removals", "-o", "json")
    assert json.loads(out) == []
    assert run_cli(capsys, "schedule", "sync", "--drills", str(empty), "--all")[0] == 2
    # said by name: removed, at warning, and recorded
    caplog.clear()
    code, out, _ = run_cli(capsys, "schedule", "sync", "--drills", str(empty), "--prune",
                           "--all", "-o", "csv")
    assert code == 0
    assert out.splitlines()[0] == "drill,action,rescheduled,next_run,next_run_local"
    assert {line.split(",")[1] for line in out.splitlines()[1:]} == {"removed"}
    assert sum("REMOVED" in r.getMessage() and r.levelname == "WARNING"
               for r in caplog.records) == 2
    code, out, _ = run_cli(capsys, "schedule", "removals", "--json")
    assert sorted(r["drill"] for r in json.loads(out)) == ["hot-cold-restore",
                                                           "hot-warm-failover"]


def test_status_exits_1_on_no_drill_and_on_drills_only_in_the_history(
        configured: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from tests.factories import make_run, record_runs

    empty = configured / "empty"
    empty.mkdir()
    code, out, err = run_cli(capsys, "schedule", "status", "--drills", str(empty), "--json")
    assert code == 1 and json.loads(out) == [] and "nothing is scheduled" in err
    assert "no history yet" in err and not (configured / "results").exists()  # a read
    record_runs(f"sqlite:///{configured / 'results' / 'history.sqlite'}", [
        make_run(configured, "20260701T030000Z-aaaaaa", "retired-drill", utc(2026, 7, 1, 3),
                 Outcome.PASSED, 1.0)])
    directory = copy_drills(configured, ["hot-warm-failover.yaml"])
    assert run_cli(capsys, "schedule", "sync", "--drills", str(directory))[0] == 0
    code, out, err = run_cli(capsys, "schedule", "status", "--drills", str(directory), "-o",
                             "json")
    assert code == 1
    rows = {r["drill"]: r for r in json.loads(out)}
    assert rows["retired-drill"]["status"] == "not_defined"
    assert "no drill file defines it" in rows["retired-drill"]["detail"]
    assert "retired-drill (not_defined)" in err
