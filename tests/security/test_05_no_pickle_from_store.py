"""Finding 5: no pickle is ever loaded from the shared store.

APScheduler's SQLAlchemyJobStore kept every scheduled job as a pickle in the history database
(table ``dalp_dr_jobs``) and unpickled each row it read, so anyone who could write that table
ran code on every scheduler host; a crafted row ran when an operator typed ``schedule list``.
The job store now keeps JSON rows of its own (``dalp_dr_schedule``) and rebuilds everything
executable from fixed code; the old table is migrated from its plain columns (id, next run)
and the drill files, never from ``job_state``.

The CLI runs as a real process on a SQLite store in a temp directory (no lab needed); the same
migration on PostgreSQL is covered by the scheduler lab (tests/lab/test_70_scheduler.py).
"""

from __future__ import annotations

import ast
import json
import os
import pickle
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
LEGACY_TABLE = "dalp_dr_jobs"
JOBS_TABLE = "dalp_dr_schedule"
QUARTER = datetime(2030, 1, 1, 3, tzinfo=UTC)
"""a fire time of the shipped drills' quarterly schedule, years ahead"""


class Payload:
    """Unpickling this creates the marker file: proof that a row's pickle was loaded."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (open, (str(self.marker), "w"))


@dataclass(frozen=True)
class Sandbox:
    drills: Path
    database: Path
    marker: Path
    env: dict[str, str]

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "dalp_dr", *args], cwd=ROOT, env=self.env,
                              capture_output=True, text=True, timeout=120, check=False)

    def evil(self) -> bytes:
        return pickle.dumps(Payload(self.marker))

    def sql(self, statement: str, *args: object) -> list[tuple[Any, ...]]:
        with sqlite3.connect(self.database) as db:
            rows = db.execute(statement, args).fetchall()
        db.close()
        return rows


@pytest.fixture
def box(tmp_path: Path) -> Sandbox:
    for sub in ("inventories", "playbooks"):
        (tmp_path / sub).symlink_to(ROOT / sub)
    drills = tmp_path / "drills"
    drills.mkdir()
    for name in ("hot-warm-failover.yaml", "hot-cold-restore.yaml"):
        shutil.copy(ROOT / "drills" / name, drills / name)
    database = tmp_path / "history.sqlite"
    env = dict(os.environ, DALP_DR_STORE=f"sqlite:///{database}",
               DALP_DR_RESULTS=str(tmp_path / "results"))
    return Sandbox(drills=drills, database=database, marker=tmp_path / "PWNED", env=env)


def plant_legacy_table(box: Sandbox) -> None:
    """The table as APScheduler 3.11's SQLAlchemyJobStore created it, with crafted rows."""
    box.sql(f"create table {LEGACY_TABLE} (id varchar(191) not null primary key, "
            "next_run_time float, job_state blob not null)")
    for drill, next_run in (("hot-warm-failover", QUARTER.timestamp()),
                            # not a fire time of its schedule: the next run is recomputed
                            ("hot-cold-restore", QUARTER.timestamp() + 17 * 60),
                            ("ghost", QUARTER.timestamp())):  # no drill file
        box.sql(f"insert into {LEGACY_TABLE} values (?, ?, ?)", drill, next_run, box.evil())


def listed(box: Sandbox) -> dict[str, dict[str, Any]]:
    proc = box.cli("schedule", "list", "--json", "--drills", str(box.drills))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return {row["drill"]: row for row in json.loads(proc.stdout)}


def test_the_old_pickled_job_table_is_migrated_without_unpickling(box: Sandbox) -> None:
    plant_legacy_table(box)
    rows = listed(box)
    assert not box.marker.exists(), "schedule list unpickled a row of the job table"
    assert set(rows) == {"hot-warm-failover", "hot-cold-restore"}
    assert rows["hot-warm-failover"]["next_run"] == "2030-01-01T03:00:00Z"  # kept
    recomputed = datetime.fromisoformat(rows["hot-cold-restore"]["next_run"])
    assert recomputed < QUARTER and (recomputed.month, recomputed.day, recomputed.hour) in {
        (1, 1, 3), (4, 1, 3), (7, 1, 3), (10, 1, 3)}
    assert all(row["synced"] for row in rows.values())
    # list migrates what the drill files define and deletes nothing: sync --prune removes
    # the rest
    assert box.sql(f"select id from {LEGACY_TABLE}") == [("ghost",)]

    synced = box.cli("schedule", "sync", "--drills", str(box.drills), "--prune")
    assert synced.returncode == 0, synced.stdout + synced.stderr
    assert not box.marker.exists(), "schedule sync unpickled a row of the job table"
    assert "removed  ghost" in synced.stdout and "1 change(s), 2 unchanged" in synced.stdout
    assert box.sql(f"select count(*) from {LEGACY_TABLE}") == [(0,)]
    assert listed(box)["hot-warm-failover"]["next_run"] == "2030-01-01T03:00:00Z"


def test_the_library_never_calls_the_unpickler(box: Sandbox, monkeypatch: pytest.MonkeyPatch
                                               ) -> None:
    """Even a well-formed pickle (what APScheduler itself wrote) is not loaded."""
    from dalp_dr.history import open_store
    from dalp_dr.schedule import cadence, jobs

    def refuse(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("pickle loaded from the store")

    plant_legacy_table(box)
    box.sql(f"update {LEGACY_TABLE} set job_state = ?", pickle.dumps({"version": 1}))
    for name in ("loads", "load", "Unpickler"):
        monkeypatch.setattr(pickle, name, refuse)
    monkeypatch.setattr("_pickle.loads", refuse)
    definitions = jobs.load_definitions(box.drills)
    store = jobs.open_jobstore(f"sqlite:///{box.database}")
    history = open_store(f"sqlite:///{box.database}")
    try:
        assert {r.drill for r in jobs.overview(store, definitions, history)} == set(
            definitions.valid)  # migrated by list already
        report = jobs.sync(store, definitions, prune=True,
                           broken_names=jobs.broken_drill_names(definitions))
        assert report.removed == ("ghost",) and report.migrated == ()
        statuses = cadence.report(history, store, definitions, datetime.now(UTC),
                                  timedelta(hours=1))
        assert {s.drill for s in statuses} == set(definitions.valid)
    finally:
        store.shutdown()
        history.close()


GARBAGE: dict[str, Callable[[dict[str, Any], bytes], object]] = {
    "not JSON": lambda _job, _evil: "{'drill': 'hot-warm-failover'",
    "unexpected field": lambda job, _evil: json.dumps(
        {**job, "__reduce__": ["os.system", "touch PWNED"]}),
    "a pickle": lambda _job, evil: evil,
    "another drill's job": lambda job, _evil: json.dumps({**job, "drill": "hot-cold-restore"}),
}
"""what someone with write access to the table might put in a job row (job: a valid one)"""


@pytest.mark.parametrize("kind", list(GARBAGE))
def test_a_crafted_row_in_the_job_table_is_a_clear_error(box: Sandbox, kind: str) -> None:
    assert box.cli("schedule", "sync", "--drills", str(box.drills)).returncode == 0
    (good,) = box.sql(f"select job from {JOBS_TABLE} where id = 'hot-warm-failover'")[0]
    row = GARBAGE[kind](json.loads(good), box.evil())
    box.sql(f"update {JOBS_TABLE} set job = ? where id = 'hot-warm-failover'", row)

    # every command reads the table; all three once, list alone for the other rows (each
    # command is a process of its own, seconds on a busy runner)
    for command in ("list", "status", "sync") if kind == "a pickle" else ("list",):
        proc = box.cli("schedule", command, "--drills", str(box.drills))
        assert proc.returncode == 1, (command, proc.stdout, proc.stderr)
        assert f"job store table {JOBS_TABLE}, job 'hot-warm-failover'" in proc.stderr, (
            command, proc.stderr)
        assert "Traceback" not in proc.stderr
        assert not box.marker.exists()


def test_sync_then_list_shows_every_drill_with_its_next_run(box: Sandbox) -> None:
    synced = box.cli("schedule", "sync", "--drills", str(box.drills))
    assert synced.returncode == 0, synced.stderr
    assert "added    hot-warm-failover  next run" in synced.stdout
    rows = listed(box)
    assert set(rows) == {"hot-warm-failover", "hot-cold-restore"}
    now = datetime.now(UTC)
    for row in rows.values():
        assert row["synced"] and row["cron"] and row["timezone"] == "UTC"
        assert now < datetime.fromisoformat(row["next_run"]) <= QUARTER
    again = box.cli("schedule", "sync", "--drills", str(box.drills))
    assert "0 change(s), 2 unchanged" in again.stdout
    table = box.cli("schedule", "list", "--drills", str(box.drills))
    assert "hot-warm-failover" in table.stdout and "UTC" in table.stdout
    stored = box.sql(f"select id, job from {JOBS_TABLE} order by id")
    assert [drill for drill, _job in stored] == ["hot-cold-restore", "hot-warm-failover"]
    assert all(json.loads(text)["drill"] == drill for drill, text in stored)  # JSON rows


PICKLING = {"pickle", "_pickle", "cPickle", "dill", "cloudpickle", "shelve", "jsonpickle"}
"""modules that load pickles (shelve keeps pickles too)"""


def test_no_module_of_dalp_dr_imports_a_pickle_loader_or_a_pickling_job_store() -> None:
    found = []
    for path in sorted((ROOT / "dalp_dr").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            else:
                continue
            for name in names:
                if name.split(".")[0] in PICKLING or (
                        name.startswith("apscheduler.jobstores.")
                        and name not in ("apscheduler.jobstores.base",
                                         "apscheduler.jobstores.memory")):
                    found.append(f"{path.relative_to(ROOT)}:{node.lineno}: {name}")
    assert found == []
