"""The scheduler service, as real processes: `dalp-dr scheduler run` on cron schedules of a few
seconds, a probe drill that goes through Ansible (ansible-runner) and measures a real
PostgreSQL server the test starts, SQLite and PostgreSQL history stores.

Covered: a scheduled run recorded with trigger `schedule`; misfires on restart (within the
grace period: one catch-up run for the planned time; beyond it: `missed_schedule` records);
the environment lock between a scheduled and an on-demand run, both ways; two schedulers on
one PostgreSQL store with the active one SIGKILLed; `schedule status` exiting 1; the old
pickled job table migrated on PostgreSQL without unpickling.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests.lab.helpers import LABS, ROOT, postgres_server

pytestmark = pytest.mark.xdist_group("scheduler")

PORT = 55497
HERE = Path(__file__).resolve().parent / "scheduler"


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    with postgres_server(LABS / "scheduler-postgres", PORT, ("service", "history")) as url:
        with psycopg.connect(f"{url}/service", autocommit=True) as db:
            db.execute("create table dalp_dr_heartbeat (run_id text not null, seq bigint not "
                       "null, sent_at timestamptz not null, committed_at timestamptz not null "
                       "default clock_timestamp(), primary key (run_id, seq))")
        yield url


def probe(directory: Path, cron: str, *, name: str = "scheduler-probe",
          environment: str = "scheduler-lab") -> Path:
    """A drill whose phases change nothing, measured through the test's server (a site loss
    scenario: no timeline has to advance, so it passes when the server keeps answering)."""
    directory.mkdir(parents=True, exist_ok=True)
    phases = "\n".join(f"  {phase}:\n    playbook: {HERE / 'probe.yml'}\n    timeout: 1m"
                       for phase in ("preflight", "inject", "verify", "steady_state"))
    path = directory / f"{name}.yaml"
    path.write_text(f"""name: {name}
topology: hot-hot
scenario: site-loss
environment: {environment}
owner: scheduler-tests
objectives: {{rto: 1m, rpo: 10s}}
inventory: {HERE / 'inventory.yml'}
endpoint:
  dsn: host=127.0.0.1 port={PORT} dbname=service user=postgres
workload: {{heartbeat_interval: 100ms, baseline: 1s, observe: 500ms}}
schedule:
  cron: "{cron}"
phases:
{phases}
""")
    return path


class Env:
    """Where one test keeps its drills, evidence and history."""

    def __init__(self, tmp: Path, store: str | None = None) -> None:
        self.drills = tmp / "drills"
        self.results = tmp / "results"
        self.env = dict(os.environ, DALP_DR_RESULTS=str(self.results))
        if store:
            self.env["DALP_DR_STORE"] = store
        self.tmp = tmp

    def cli(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "dalp_dr", *args], cwd=ROOT,
                              env=self.env, capture_output=True, text=True, timeout=timeout,
                              check=False)

    def runs(self) -> list[dict[str, Any]]:
        """The store's runs, newest first, as `history list --json` has them (evidence
        directories under this test's results directory), read in this process: polled
        every quarter of a second, a `history list` process each time (its start-up and its
        seal checks) kept a core busy beside the scheduler under test and the lab on the
        other worker."""
        from dalp_dr.config import load_settings
        from dalp_dr.errors import NoHistory
        from dalp_dr.history import open_store

        settings = load_settings(results_dir=str(self.results),
                                 store=self.env.get("DALP_DR_STORE"))
        try:
            store = open_store(settings.store_url, create=False, results_dir=self.results)
        except NoHistory:
            return []
        try:
            return [run.model_dump(mode="json") for run in store.list_runs(limit=500)]
        finally:
            store.close()

    def start(self, *args: str, label: str = "scheduler") -> Scheduler:
        return Scheduler(self, label, args)


STARTED: list[Scheduler] = []
"""every scheduler a test started: killed after the test, whatever happened in it (one
left running by a failed test took the leader lease of the next CI run's store, on the same
port, and failed its takeover test)"""


@pytest.fixture(autouse=True)
def no_scheduler_outlives_its_test() -> Iterator[None]:
    yield
    while STARTED:
        left = STARTED.pop()
        if left.proc.poll() is None:
            left.kill()


class Scheduler:
    """One `dalp-dr scheduler run` process in its own session (so its drills' children go
    with it when it is killed)."""

    def __init__(self, env: Env, label: str, args: tuple[str, ...]) -> None:
        self.log = env.tmp / f"{label}.log"
        self._log_file = self.log.open("w")
        metrics = () if "--metrics-address" in args else ("--metrics-address", "")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "dalp_dr", "scheduler", "run", "--drills",
             str(env.drills), *metrics, *args], cwd=ROOT, env=env.env, stdout=self._log_file,
            stderr=subprocess.STDOUT, start_new_session=True)
        STARTED.append(self)

    def text(self) -> str:
        return self.log.read_text()

    def wait_for(self, needle: str, timeout: float = 60) -> float:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if needle in self.text():
                return time.monotonic()
            assert self.proc.poll() is None, f"scheduler exited:\n{self.text()}"
            time.sleep(0.1)
        raise AssertionError(f"no '{needle}' within {timeout}s:\n{self.text()}")

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(timeout=120)
        self._log_file.close()
        return code

    def kill(self) -> None:
        assert os.getpgid(self.proc.pid) == self.proc.pid > 1  # our own session, nothing else
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=30)
        self._log_file.close()


def wait_until(check: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.25)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


def next_multiple(seconds: int, after: datetime) -> datetime:
    epoch = int(after.timestamp()) // seconds * seconds + seconds
    return datetime.fromtimestamp(epoch, UTC)


def sleep_until(moment: datetime) -> None:
    time.sleep(max(0.0, (moment - datetime.now(UTC)).total_seconds()))


def quiet(env: Env, every: int, *, ahead: float = 3, outcomes: tuple[str, ...] = ("passed",)
          ) -> list[dict[str, Any]] | None:
    """The runs when nothing runs, the latest fire's record has one of ``outcomes`` and the
    next fire is at least ``ahead`` seconds away (None otherwise): a moment between fires,
    the latest one handled in full (a run may take most of the interval on a loaded machine,
    so "nothing running" alone may come just before the next fire)."""
    runs = env.runs()
    now = datetime.now(UTC)
    upcoming = next_multiple(every, now)
    latest = upcoming - timedelta(seconds=every)
    handled = {at(r["planned_at"]) for r in runs
               if r["outcome"] in outcomes and r["planned_at"]}
    if (upcoming - now < timedelta(seconds=ahead) or latest not in handled
            or any(r["outcome"] == "running" for r in runs)):
        return None
    return runs


def synced_before_a_fire(env: Env, every: int) -> datetime:
    """`schedule sync` at least 2 s before a fire time (a sync that straddles one plans
    from the next); returns the first fire time after the sync."""
    now = datetime.now(UTC)
    fire = next_multiple(every, now)
    if fire - now < timedelta(seconds=2):
        sleep_until(fire + timedelta(milliseconds=50))
        fire += timedelta(seconds=every)
    assert env.cli("schedule", "sync", "--drills", str(env.drills)).returncode == 0
    assert datetime.now(UTC) < fire, f"schedule sync ended after the fire time {fire}"
    return fire


def test_a_scheduled_run_is_recorded_with_trigger_schedule(server: str, tmp_path: Path) -> None:
    env = Env(tmp_path)
    probe(env.drills, "*/10 * * * * *")
    scheduler = env.start()
    try:
        scheduler.wait_for("ACTIVE")
        done = wait_until(lambda: [r for r in env.runs() if r["outcome"] == "passed"], 60,
                          "a passed scheduled run")
    finally:
        assert scheduler.stop() == 0, scheduler.text()
    run = done[-1]
    assert run["trigger"] == "schedule" and run["drill"] == "scheduler-probe"
    planned = at(run["planned_at"])
    assert planned.second % 10 == 0 and planned.microsecond == 0
    assert timedelta(0) <= at(run["started_at"]) - planned < timedelta(seconds=5)
    shown = env.cli("history", "list")
    assert "schedule" in shown.stdout and run["run_id"] in shown.stdout
    result = json.loads(env.cli("history", "show", run["run_id"], "--json").stdout)
    assert result["measurements"]["lost_writes"] == 0  # measured through the real server
    assert "scheduler stopped" in scheduler.text()
    listed = env.cli("schedule", "list", "--drills", str(env.drills))
    newest = env.runs()[0]  # the passed run, or one the stop interrupted after it
    assert "scheduler-probe" in listed.stdout and newest["run_id"] in listed.stdout
    assert newest["outcome"] in listed.stdout


def test_a_fire_missed_within_the_grace_period_runs_once_on_start(server: str,
                                                                 tmp_path: Path) -> None:
    env = Env(tmp_path)
    probe(env.drills, "*/10 * * * * *")
    missed = synced_before_a_fire(env, 10)
    sleep_until(missed + timedelta(seconds=3))  # the service is down at the fire time
    scheduler = env.start("--grace", "5m")
    try:
        runs = wait_until(lambda: [r for r in env.runs() if r["outcome"] == "passed"], 60,
                          "the catch-up run")
    finally:
        assert scheduler.stop() == 0
    catch_up = runs[-1]
    assert at(catch_up["planned_at"]) == missed
    assert at(catch_up["started_at"]) >= missed + timedelta(seconds=3)
    assert not [r for r in env.runs() if r["outcome"] == "missed_schedule"]
    assert len([r for r in env.runs() if at(r["planned_at"]) == missed]) == 1


def test_fires_missed_beyond_the_grace_period_are_recorded_missed(server: str,
                                                                 tmp_path: Path) -> None:
    env = Env(tmp_path)
    probe(env.drills, "*/5 * * * * *")
    first = synced_before_a_fire(env, 5)
    second = first + timedelta(seconds=5)
    sleep_until(second + timedelta(seconds=2))
    launched = datetime.now(UTC)
    scheduler = env.start("--grace", "1s")
    try:
        missed = wait_until(
            lambda: [r for r in env.runs() if r["outcome"] == "missed_schedule"
                     ] if len([r for r in env.runs() if r["outcome"] == "missed_schedule"]
                              ) >= 2 else None, 30, "two missed records")
    finally:
        scheduler.stop()
    # the fires before the launch; one after it is missed too when the start-up itself takes
    # longer than the next fire plus the grace (a loaded machine): that is no defect
    missed = [r for r in missed if at(r["planned_at"]) < launched]
    assert sorted(at(r["planned_at"]) for r in missed) == [first, second]
    assert all(r["trigger"] == "schedule" and at(r["started_at"]) == at(r["planned_at"])
               for r in missed)
    detail = json.loads(env.cli("history", "show", missed[0]["run_id"], "--json").stdout)
    assert "scheduler was not running at the planned time" in detail["message"]
    assert "MISSED" in scheduler.text()


def test_schedule_status_exits_1_when_a_drill_is_overdue(server: str, tmp_path: Path) -> None:
    env = Env(tmp_path)
    probe(env.drills, "*/10 * * * * *")
    # just after a window opened: sync and status both run before the next one opens
    sleep_until(next_multiple(10, datetime.now(UTC)) + timedelta(seconds=0.2))
    assert env.cli("schedule", "sync", "--drills", str(env.drills)).returncode == 0
    fresh = env.cli("schedule", "status", "--drills", str(env.drills), "--grace", "1s")
    assert fresh.returncode == 0, fresh.stdout + fresh.stderr  # new: its window opens next
    assert "new" in fresh.stdout
    # a window opens after the sync; 3 s later (grace 1 s) nothing has run in it
    sleep_until(next_multiple(10, datetime.now(UTC)) + timedelta(seconds=3))
    late = env.cli("schedule", "status", "--drills", str(env.drills), "--grace", "1s")
    assert late.returncode == 1, late.stdout
    assert "overdue" in late.stdout and "scheduler-probe (overdue)" in late.stderr
    generous = env.cli("schedule", "status", "--drills", str(env.drills), "--grace", "1h")
    assert generous.returncode == 0 and "due" in generous.stdout


def test_the_environment_lock_refuses_the_second_run_either_way(server: str,
                                                                 tmp_path: Path) -> None:
    env = Env(tmp_path)
    # every 30 s: on a loaded machine (CI runs a lab beside this test) a probe run takes
    # 10-15 s, so at every 15 s no moment 5 s before a fire was ever free of a run
    drill = probe(env.drills, "*/30 * * * * *")
    scheduler = env.start("--grace", "1s")
    try:
        scheduler.wait_for("ACTIVE")
        # 1. a scheduled run holds the environment: an on-demand run is refused (exit 1)
        running = wait_until(lambda: [r for r in env.runs() if r["outcome"] == "running"],
                             30, "a scheduled run in progress")
        refused = env.cli("drill", "run", str(drill))
        assert refused.returncode == 1, refused.stdout + refused.stderr
        assert f"environment 'scheduler-lab' is busy: drill scheduler-probe run " \
               f"{running[0]['run_id']} (schedule) by scheduler on" in refused.stderr
        assert "holds its drill lock since" in refused.stderr
        # 2. an on-demand run holds it at the next fire time: the fire is recorded missed.
        # It starts 4 s before that fire, once the latest fire was handled in full (the
        # scheduled run may end just before a fire on a loaded machine: that fire's run would
        # then hold the lock when the on-demand run starts)
        try:
            wait_until(lambda: quiet(env, 30, ahead=5, outcomes=("passed", "missed_schedule")),
                       120, "the scheduled runs to end, then a moment at least 5 s before a fire")
        except AssertionError as timed_out:
            raise AssertionError(f"{timed_out}; runs: " + ", ".join(
                f"{r['planned_at']} {r['trigger']} {r['outcome']}" for r in env.runs())) from None
        upcoming = next_multiple(30, datetime.now(UTC))
        sleep_until(upcoming - timedelta(seconds=4))
        on_demand = env.cli("drill", "run", str(drill))
        assert on_demand.returncode == 0, on_demand.stderr
        busy = wait_until(lambda: [r for r in env.runs() if r["outcome"] == "missed_schedule"
                                   and at(r["planned_at"]) == upcoming], 20,
                          "the refused fire's record")
    finally:
        scheduler.stop()
    detail = json.loads(env.cli("history", "show", busy[0]["run_id"], "--json").stdout)
    assert "environment 'scheduler-lab' is busy" in detail["message"]
    assert "(cli)" in detail["message"]
    assert [r["trigger"] for r in env.runs() if r["outcome"] == "passed"].count("cli") == 1


def test_two_schedulers_on_postgres_one_killed_the_other_takes_over(server: str,
                                                                    tmp_path: Path) -> None:
    store = f"{server}/history"
    env = Env(tmp_path, store=store)
    probe(env.drills, "*/15 * * * * *")
    first = env.start("--lease-ttl", "6s", label="a")
    first.wait_for("ACTIVE")
    second = env.start("--lease-ttl", "6s", label="b")
    try:
        second.wait_for("standby:")
        # killed between fires, its last one recorded: a kill between a claim and the run's
        # first record leaves a claim nobody records for a lease and a lock TTL (the unit
        # test of FireHandler.settle_unrecorded covers that)
        runs = wait_until(lambda: quiet(env, 15), 90, "the first scheduler's run, then a "
                          "moment at least 3 s before the next fire")
        done = [r for r in runs if r["outcome"] == "passed"]
        assert "ACTIVE" not in second.text()
        killed_at = time.monotonic()
        first.kill()  # SIGKILL: no lease release, no goodbye
        took_over = second.wait_for("ACTIVE", timeout=20) - killed_at
        assert took_over < 6 + 1 + 2, took_over  # lease TTL + standby poll (+ CI slack)
        # the next fire is the second scheduler's (its first after the takeover)
        wait_until(lambda: len([r for r in env.runs() if r["outcome"] == "passed"]) >= 2,
                   60, "a run by the second scheduler")
    finally:
        second.stop()
    runs = env.runs()
    planned = sorted(at(r["planned_at"]) for r in runs if r["planned_at"])
    assert len(planned) == len(set(planned)), planned  # no fire handled twice
    expected = [planned[0] + timedelta(seconds=15 * i)
                for i in range(int((planned[-1] - planned[0]).total_seconds()) // 15 + 1)]
    assert planned == expected, planned  # and none skipped across the takeover
    assert done[0]["run_id"] in {r["run_id"] for r in runs}
    with psycopg.connect(store) as db:
        claims = db.execute("select count(*), count(distinct claimed_by) from dalp_dr_fires"
                            ).fetchone()
    assert claims is not None and claims[0] == len(planned) and claims[1] == 2


class _Payload:
    """Unpickling this creates ``marker``: proof that a job row's pickle was loaded."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (open, (str(self.marker), "w"))


def test_the_pickled_job_table_migrates_on_postgres_without_unpickling(
        server: str, tmp_path: Path) -> None:
    """Security finding 5 on a PostgreSQL store: the old APScheduler table with crafted
    pickles becomes JSON rows rebuilt from the drill files; a crafted JSON row is an error."""
    import pickle

    with psycopg.connect(f"{server}/postgres", autocommit=True) as admin:
        admin.execute("create database jobs_migration")
    store = f"{server}/jobs_migration"
    env = Env(tmp_path, store=store)
    probe(env.drills, "quarterly")
    marker = tmp_path / "PWNED"
    planned = datetime(2030, 1, 1, 3, tzinfo=UTC)  # a quarterly fire time: kept
    with psycopg.connect(store, autocommit=True) as db:
        db.execute("create table dalp_dr_jobs (id varchar(191) not null primary key, "
                   "next_run_time float(25), job_state bytea not null)")
        for drill in ("scheduler-probe", "ghost"):
            db.execute("insert into dalp_dr_jobs values (%s, %s, %s)",
                       (drill, planned.timestamp(), pickle.dumps(_Payload(marker))))
    listed = env.cli("schedule", "list", "--json", "--drills", str(env.drills))
    assert listed.returncode == 0, listed.stderr
    assert not marker.exists(), "schedule list unpickled a job row"
    (row,) = json.loads(listed.stdout)
    assert row["drill"] == "scheduler-probe" and at(row["next_run"]) == planned
    synced = env.cli("schedule", "sync", "--drills", str(env.drills), "--prune")
    assert synced.returncode == 0 and "removed  ghost" in synced.stdout, synced.stderr
    assert not marker.exists()
    with psycopg.connect(store, autocommit=True) as db:
        assert db.execute("select count(*) from dalp_dr_jobs").fetchone() == (0,)
        job = db.execute("select job from dalp_dr_schedule").fetchone()
        assert job is not None and json.loads(job[0])["drill"] == "scheduler-probe"
        db.execute("update dalp_dr_schedule set job = %s",
                   (json.dumps({**json.loads(job[0]), "func": "os:system"}),))
    broken = env.cli("schedule", "list", "--drills", str(env.drills))
    assert broken.returncode == 1
    assert "job store table dalp_dr_schedule, job 'scheduler-probe'" in broken.stderr
    with psycopg.connect(store, autocommit=True) as db:
        db.execute("delete from dalp_dr_schedule")  # what the error tells the operator
    assert env.cli("schedule", "sync", "--drills", str(env.drills)).returncode == 0
    assert not marker.exists()


def test_a_run_ending_while_the_store_is_down_is_recorded_when_it_is_back(
        server: str, tmp_path: Path) -> None:
    """The history store (its own server here) stops in the middle of a scheduled run: the
    drill finishes against its own environment, its result waits on disk, the scheduler
    retries with backoff and records it once the store is back."""
    from tests.lab.helpers import PG_BIN, as_pg, pg_start

    root = LABS / "scheduler-store"
    with postgres_server(root, PORT - 2, ("history",)) as store_url:
        env = Env(tmp_path, store=f"{store_url}/history")
        probe(env.drills, "*/15 * * * * *")
        scheduler = env.start("--grace", "5m")
        try:
            running = wait_until(lambda: [r for r in env.runs() if r["outcome"] == "running"],
                                 40, "a scheduled run in progress")
            as_pg(str(PG_BIN / "pg_ctl"), "stop", "-w", "-m", "fast", "-D", str(root / "data"))
            scheduler.wait_for("did not take its result", timeout=60)
            kept = Path(running[0]["evidence_dir"]) / "result.json"
            assert json.loads(kept.read_text())["outcome"] == "passed"
            time.sleep(2)  # at least one retry fails
            pg_start(root, PORT - 2)
            scheduler.wait_for(f"run {running[0]['run_id']} recorded now", timeout=90)
        finally:
            scheduler.stop()
        recorded = {r["run_id"]: r for r in env.runs()}
        assert recorded[running[0]["run_id"]]["outcome"] == "passed"
        assert "retrying in" in scheduler.text()


def test_a_canary_secret_reaches_no_evidence_history_or_export(server: str,
                                                               tmp_path: Path) -> None:
    """A canary password in the inventory (a secret-looking variable and the DSN's password)
    goes through a real drill run, the history and a signed export bundle: it appears in no
    file written."""
    canary = "canary-7f3a91e0c4"
    (tmp_path / "drills" / "inventories").mkdir(parents=True)
    inventory = tmp_path / "drills" / "inventories" / "inventory.yml"  # under the drill's dir
    inventory.write_text(f"""all:
  hosts:
    localhost:
      ansible_connection: local
      ansible_python_interpreter: "{{{{ ansible_playbook_python }}}}"
      dalp_canary_password: {canary}
      dalp_service_dsn: "host=127.0.0.1 port={PORT} dbname=service user=postgres password={canary}"
""")
    drill = probe(tmp_path / "drills", "quarterly", name="canary-probe")
    drill.write_text(drill.read_text().replace(f"inventory: {HERE / 'inventory.yml'}",
                                               f"inventory: {inventory}")
                     .replace(f"  dsn: host=127.0.0.1 port={PORT} dbname=service user=postgres",
                              "  from_inventory: dalp_service_dsn"))
    env = Env(tmp_path)
    env.env["DALP_DR_KEYS"] = str(tmp_path / "keys")
    assert env.cli("keys", "init").returncode == 0  # the drill's seal signs a checkpoint
    ran = env.cli("drill", "run", str(drill))
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert env.cli("history", "verify").returncode == 0
    bundle = tmp_path / "exports" / "bundle.tar.gz"
    assert env.cli("export", "--bundle", str(bundle)).returncode == 0
    for fmt in ("json", "csv", "html"):
        assert env.cli("export", "--format", fmt, "-o",
                       str(tmp_path / "exports" / f"x.{fmt}")).returncode == 0
    unpacked = tmp_path / "exports" / "unpacked"
    subprocess.run(["tar", "-xzf", str(bundle), "-C",
                    str(unpacked.mkdir() or unpacked)],  # type: ignore[func-returns-value]
                   check=True)
    assert (unpacked / "evidence").is_dir()
    written = [p for d in (env.results, tmp_path / "exports") for p in d.rglob("*")
               if p.is_file()]
    assert len(written) > 10
    for path in written:
        data = path.read_bytes()
        if path.suffix == ".gz":
            continue  # its content was unpacked and is checked file by file
        assert canary.encode() not in data, path
    assert canary not in ran.stdout + ran.stderr


def production_probe(tmp_path: Path, cron: str, extra: str = "") -> Path:
    (tmp_path / "drills" / "inventories").mkdir(parents=True, exist_ok=True)
    inventory = tmp_path / "drills" / "inventories" / "production.yml"  # under the drill's dir
    inventory.write_text(f"""all:
  vars:
    dalp_production: true
{extra}  hosts:
    localhost:
      ansible_connection: local
      ansible_python_interpreter: "{{{{ ansible_playbook_python }}}}"
""")
    drill = probe(tmp_path / "drills", cron, name="production-probe",
                  environment="scheduler-prod")
    drill.write_text(drill.read_text().replace(f"inventory: {HERE / 'inventory.yml'}",
                                               f"inventory: {inventory}"))
    return drill


def test_production_needs_confirm_and_a_refusal_is_recorded(server: str,
                                                           tmp_path: Path) -> None:
    drill = production_probe(tmp_path, "quarterly")
    env = Env(tmp_path)
    refused = env.cli("drill", "run", str(drill))
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert "--confirm production-probe" in refused.stderr and "production" in refused.stderr
    wrong = env.cli("drill", "run", str(drill), "--confirm", "some-other-drill")
    assert wrong.returncode == 2
    rows = env.runs()
    assert [r["outcome"] for r in rows] == ["refused", "refused"]
    assert not any(Path(r["evidence_dir"]).is_dir() for r in rows if r["evidence_dir"])
    confirmed = env.cli("drill", "run", str(drill), "--confirm", "production-probe")
    assert confirmed.returncode == 0, confirmed.stderr
    assert env.runs()[0]["outcome"] == "passed"


def test_a_change_freeze_refuses_scheduled_runs(server: str, tmp_path: Path) -> None:
    now = datetime.now(UTC)
    freeze = (f"    dalp_change_freezes:\n      - from: '{(now - timedelta(hours=1)).isoformat()}'"
              f"\n        to: '{(now + timedelta(hours=1)).isoformat()}'\n"
              "        reason: year-end freeze\n")
    production_probe(tmp_path, "*/5 * * * * *", extra=freeze)
    env = Env(tmp_path)
    scheduler = env.start("--grace", "1m")
    try:
        refused = wait_until(lambda: [r for r in env.runs() if r["outcome"] == "refused"], 30,
                             "a refused scheduled run")
    finally:
        scheduler.stop()
    detail = json.loads(env.cli("history", "show", refused[0]["run_id"], "--json").stdout)
    assert "change freeze until" in detail["message"] and "year-end freeze" in detail["message"]
    assert detail["trigger"] == "schedule" and detail["planned_at"]
    assert not [r for r in env.runs() if r["outcome"] == "passed"]


def test_drill_plan_shows_the_plan_runs_preflight_and_check_mode_only(server: str,
                                                                     tmp_path: Path) -> None:
    drill = probe(tmp_path / "drills", "quarterly")
    env = Env(tmp_path)
    plan = env.cli("drill", "plan", str(drill), "--json")
    assert plan.returncode == 0, plan.stderr
    document = json.loads(plan.stdout)
    assert [p["phase"] for p in document["phases"]] == ["preflight", "inject", "verify",
                                                        "steady_state"]
    assert document["phases"][0]["dry_run"] == "preflight successful"
    assert document["phases"][1]["dry_run"] == "check mode successful"
    assert document["phases"][1]["plays"][0]["hosts"] == ["localhost"]
    assert document["fault"] == ["probe: a phase that changes nothing on localhost: probe: "
                                 "say which phase ran"]
    assert not env.results.exists()  # nothing recorded, no evidence
    shown = env.cli("drill", "plan", str(drill))
    assert "nothing was injected and nothing recorded" in shown.stdout


def test_declarative_checks_are_reported_and_a_failing_one_fails_verify(
        server: str, tmp_path: Path) -> None:
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Status(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = json.dumps({"platform": {"status": self.path.strip("/")}}).encode()
            self.send_response(200)
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_args: object) -> None:
            return

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Status)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{httpd.server_address[1]}"
    try:
        drill = probe(tmp_path / "drills", "quarterly", name="checked-probe")
        base = drill.read_text()
        env = Env(tmp_path)
        for status, code in (("ok", 0), ("no_data", 1)):
            drill.write_text(base + f"""checks:
  - name: markers written
    sql: select count(*) from dalp_dr_heartbeat
    expect: {{min: 1}}
  - name: platform status
    http: {url}/{status}
    json_field: platform.status
    expect: {{equals: ok}}
""")
            ran = env.cli("drill", "run", str(drill), "--json")
            assert ran.returncode == code, ran.stderr
            result = json.loads(ran.stdout)
            sql, http = result["checks"]
            assert sql["ok"] and int(sql["value"]) > 0 and sql["kind"] == "sql"
            assert http["ok"] is (status == "ok"), http
            if status == "no_data":
                assert "no data is not healthy" in http["detail"]
                assert result["outcome"] == "failed"
                assert "check 'platform status' failed" in result["message"]
                assert result["steady_state_restored"] is True
    finally:
        httpd.shutdown()


def test_metrics_come_from_the_history_and_survive_a_restart(server: str,
                                                            tmp_path: Path) -> None:
    import socket
    import urllib.request

    from prometheus_client.parser import text_string_to_metric_families

    def parse(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
        return {(s.name, frozenset(s.labels.items())): s.value
                for family in text_string_to_metric_families(text) for s in family.samples
                if s.name.startswith("dalp_dr_")}

    drill = probe(tmp_path / "drills", "quarterly", name="metered-probe")
    env = Env(tmp_path)
    env.env["DALP_DR_METRICS_TEXTFILE"] = str(tmp_path / "textfile" / "dalp_dr.prom")
    ran = env.cli("drill", "run", str(drill), "--json")
    assert ran.returncode == 0, ran.stderr
    result = json.loads(ran.stdout)
    labels = {("drill", "metered-probe"), ("topology", "hot-hot"),
              ("environment", "scheduler-lab")}
    textfile = parse((tmp_path / "textfile" / "dalp_dr.prom").read_text())
    assert textfile[("dalp_dr_runs_total", frozenset({*labels, ("outcome", "passed")}))] == 1
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    scraped = []
    for i in range(2):  # the same figures after a restart
        scheduler = env.start("--metrics-address", f"127.0.0.1:{port}", label=f"m{i}")
        try:
            scheduler.wait_for("metrics on http://")
            scheduler.wait_for("ACTIVE")
            body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics",
                                          timeout=10).read().decode()
        finally:
            scheduler.stop()
        scraped.append(parse(body))
    assert scraped[0] == scraped[1] == textfile
    got = scraped[0]
    assert abs(got[("dalp_dr_last_recovery_seconds", frozenset(labels))]
               - result["measurements"]["recovery_time"]) < 1e-9
    assert got[("dalp_dr_objective_met", frozenset({*labels, ("objective", "rto")}))] == 1.0
    assert got[("dalp_dr_last_lost_writes", frozenset(labels))] == 0


def test_json_log_format_emits_json_lines_only(server: str, tmp_path: Path) -> None:
    drill = probe(tmp_path / "drills", "quarterly", name="logged-probe")
    env = Env(tmp_path)
    ran = env.cli("drill", "run", str(drill), "--log-format", "json")
    assert ran.returncode == 0, ran.stderr
    events = [json.loads(line) for line in (ran.stderr + ran.stdout).splitlines()]
    kinds = [e["event"] for e in events]
    out = [json.loads(line) for line in ran.stdout.splitlines()]
    assert [e["event"] for e in out] == ["run.result"]
    assert out[0]["result"]["outcome"] == "passed"
    for kind in ("run.started", "phase.started", "phase.finished", "fault.injected",
                 "heartbeat.changed", "measurement", "run.finished", "progress"):
        assert kind in kinds, kind
    tasks = [e for e in events if e["event"] == "ansible.task"]
    assert {"phase", "task", "host", "run_id"} <= set(tasks[0]) and \
        any(t["task"] == "probe: say which phase ran" for t in tasks)
    run_ids = {e["run_id"] for e in events if "run_id" in e}
    assert len(run_ids) == 1
    bad = env.cli("drill", "run", str(tmp_path / "nope.yaml"), "--log-format", "json")
    assert bad.returncode == 2 and bad.stdout == ""
    error = json.loads(bad.stderr)
    assert error["event"] == "error" and "not found" in error["message"]


def test_live_progress_on_a_terminal(server: str, tmp_path: Path) -> None:
    import pty
    import select

    drill = probe(tmp_path / "drills", "quarterly", name="live-probe")
    env = Env(tmp_path)
    leader, follower = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "dalp_dr", "drill", "run", str(drill)],
                            cwd=ROOT, env=dict(env.env, COLUMNS="120", TERM="xterm"),
                            stdin=follower, stdout=follower, stderr=follower)
    os.close(follower)
    chunks = []
    while True:
        ready, _, _ = select.select([leader], [], [], 60)
        if not ready:
            break
        try:
            data = os.read(leader, 65536)
        except OSError:  # the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    assert proc.wait(timeout=60) == 0
    os.close(leader)
    screen = b"".join(chunks).decode(errors="replace")
    assert "heartbeat" in screen and "acknowledged" in screen  # the live panel
    assert "phase" in screen and "fault" in screen
    assert "PASSED" in screen  # then the verdict


def test_a_drill_notifies_webhooks_and_a_broken_one_does_not_fail_it(server: str,
                                                                      tmp_path: Path) -> None:
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    received: list[tuple[str, dict[str, Any]]] = []

    class Hook(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            if self.path.startswith("/broken"):
                self.send_response(500)
            else:
                received.append((self.path, body))
                self.send_response(204)
            self.end_headers()

        def log_message(self, *_args: object) -> None:
            return

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{httpd.server_address[1]}"
    try:
        drill = probe(tmp_path / "drills", "quarterly", name="notified-probe")
        env = Env(tmp_path)
        env.env.update(DALP_DR_WEBHOOK_URL=f"{url}/generic,{url}/broken/secret-path-x1",
                       DALP_DR_SLACK_WEBHOOK_URL=f"{url}/slack/T0/B0/tok")
        ran = env.cli("drill", "run", str(drill))
    finally:
        httpd.shutdown()
    assert ran.returncode == 0, ran.stderr  # the broken webhook does not fail the drill
    assert "not delivered after 4 attempts: HTTP 500" in ran.stderr
    assert "secret-path-x1" not in ran.stderr + ran.stdout
    paths = dict(received)
    assert paths["/generic"]["event"] == "drill.passed"
    assert paths["/generic"]["drill"] == "notified-probe"
    assert "PASSED" in str(paths["/slack/T0/B0/tok"]["text"])
    assert env.runs()[0]["outcome"] == "passed"  # recorded regardless
