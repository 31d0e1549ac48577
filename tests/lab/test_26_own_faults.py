"""dalp-dr's own dependencies failing mid-drill (issue 18's fault matrix, hot-warm lab):
the history store down, the checkpoint witness (S3) down, the playbook process killed, the
clients' connection hanging. In each, steady state comes back, the run is recorded (now, or
by the next run) with what happened, and nothing the drill started is left running. The
results filesystem filling up is tests/lab/test_24_results_disk_full.py."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest

from dalp_dr.history import open_store
from dalp_dr.results import Outcome, Status
from tests.lab.helpers import (
    DRILL,
    LAB_PASSWORD,
    LABS,
    PG_BIN,
    ROOT,
    SPARE_LAB,
    SpareLab,
    as_pg,
    assert_steady_state,
    dalp,
    dalp_in,
    drill_leftovers,
    moto_server,
    pg_start,
    postgres_server,
    processes,
    run_and_act,
)
from tests.lab.tcp_proxy import HangingProxy, hanging_proxy

pytestmark = pytest.mark.xdist_group("hot-warm-spare")  # (tests/lab/conftest.py spare_lab)

STORE_ROOT = LABS / "history-down"
STORE_PORT = 55496  # its own: test_70's scheduler group (another port) runs beside this one
PROXY_DRILL = ROOT / "tests" / "lab" / "drills" / "hot-warm-via-proxy.yaml"
PROXY_PORT = 56439  # (in PROXY_DRILL's DSN)
ROUTE = ("127.0.0.1", SPARE_LAB.route)


@pytest.fixture
def lab(spare_lab: SpareLab) -> SpareLab:
    return spare_lab


def settings(results: Path, **more: str) -> dict[str, str]:
    return dict(os.environ, DALP_DR_RESULTS=str(results), DALP_DR_LOCK_TTL="3s", **more)


@pytest.fixture
def history_server() -> Iterator[str]:
    with postgres_server(STORE_ROOT, STORE_PORT, ("dalp_history",)) as url:
        yield f"{url}/dalp_history?connect_timeout=2"


def test_the_history_store_down_from_inject_on(history_server: str, tmp_path: Path,
                                                lab: SpareLab) -> None:
    env = settings(tmp_path, DALP_DR_STORE=history_server)

    stopped: list[bool] = []

    def stop_store(_proc: subprocess.Popen[str]) -> None:
        as_pg(str(PG_BIN / "pg_ctl"), "stop", "-w", "-m", "fast", "-D",
              str(STORE_ROOT / "data"))
        stopped.append(True)

    try:
        first = run_and_act(env, lab.drill(DRILL), "phase inject ...", stop_store)
    finally:
        if stopped:
            pg_start(STORE_ROOT, STORE_PORT)  # the store is back (after the run)
    assert first.returncode == 1, first.stderr
    assert "Traceback" not in first.stderr + first.stdout
    assert "phase steady_state: ok" in first.stderr and "steady state: restored" in first.said
    assert f"NOT RECORDED in the history: run {first.run_id} ended (passed)" in first.stderr
    assert f"'dalp-dr drill recover {first.run_id}'" in first.stderr
    renewals = [line for line in first.stderr.splitlines() if "cannot renew lease" in line]
    assert len(renewals) == 1, renewals  # said once, not every second
    assert_steady_state(lab.lab)
    assert drill_leftovers(tmp_path) == []

    # the store is back: the run is recorded as it ended (the next `drill run` and the
    # scheduler do the same first: recovery.recover_all)
    recovered = dalp_in(env, "drill", "recover", first.run_id)
    assert recovered.returncode == 0, recovered.stderr
    assert "recorded passed from the result it kept" in recovered.stderr
    store = open_store(history_server)
    try:
        recorded = store.get(first.run_id)
    finally:
        store.close()
    assert recorded.outcome is Outcome.PASSED and recorded.steady_state_restored
    assert recorded.message is not None and "recorded late" in recorded.message
    assert recorded.verdicts and all(v.status is Status.MET for v in recorded.verdicts)


def _playbook_process(parent: int, playbook: str) -> int | None:
    """The ansible-playbook process (not its forked workers) running ``playbook`` under
    ``parent``."""
    children: dict[int, list[int]] = {}
    commands: dict[int, str] = {}
    for proc in processes():
        commands[proc.pid] = proc.cmdline
        children.setdefault(proc.ppid, []).append(proc.pid)
    todo, playbooks = [parent], []
    while todo:
        for pid in children.get(todo.pop(), []):
            todo.append(pid)
            if "ansible-playbook" in commands.get(pid, "") and playbook in commands[pid]:
                playbooks.append(pid)
    tops = [pid for pid in playbooks
            if not any(pid in children.get(other, []) for other in playbooks)]
    return tops[0] if tops else None


def test_the_recover_playbook_killed(tmp_path: Path, lab: SpareLab) -> None:
    killed: list[int] = []

    def kill_playbook(proc: subprocess.Popen[str]) -> None:
        deadline = threading.Event()
        timer = threading.Timer(10, deadline.set)
        timer.start()
        try:
            while not deadline.is_set():
                pid = _playbook_process(proc.pid, "recover-promote-switch.yml")
                if pid is not None:
                    os.kill(pid, signal.SIGKILL)  # the playbook process only
                    killed.append(pid)
                    return
                deadline.wait(0.02)
        finally:
            timer.cancel()

    run = run_and_act(settings(tmp_path), lab.drill(DRILL), "phase recover ...",
                      kill_playbook)
    assert killed, "the recover playbook was never seen running:\n" + run.stderr
    assert run.returncode == 1, run.stderr
    assert "Traceback" not in run.stderr + run.stdout
    assert "recover-promote-switch.yml failed" in run.stderr
    assert "ansible-playbook ended without an exit status: killed by a signal" in run.stderr
    assert "outcome: FAILED" in run.said and "steady state: restored" in run.said
    assert_steady_state(lab.lab)
    assert drill_leftovers(tmp_path) == []
    listed = dalp("history", "show", run.run_id, "--json", results=tmp_path)
    assert listed.returncode == 0, listed.stderr
    assert '"outcome": "failed"' in listed.stdout


def test_the_clients_connection_hanging(tmp_path: Path, lab: SpareLab) -> None:
    still_open: list[int] = []
    with hanging_proxy(ROUTE, PROXY_PORT) as proxy:
        def freeze(_proc: subprocess.Popen[str]) -> None:
            proxy.freeze()  # as the fault is injected; forwarding again (new connections
            threading.Timer(3, proxy.thaw).start()  # only) 3 s later
            # while the drill still runs: every hung connection given up by then (the write
            # at its 2 s deadline, the connect held after it at its 2 s connect timeout)
            threading.Timer(5.5, lambda: still_open.append(proxy.held_still_open())).start()

        run = run_and_act(settings(tmp_path, PGPASSWORD=LAB_PASSWORD), lab.drill(PROXY_DRILL),
                          "phase inject ...", freeze)
    assert run.returncode == 0, run.stderr
    assert still_open == [0]
    assert "outcome: PASSED" in run.said and "steady state: restored" in run.said
    beats = [json.loads(line) for line in
             (tmp_path / run.run_id / "heartbeat.jsonl").read_text().splitlines()]
    [hung] = [b for b in beats if "no answer within 2s: connection severed" in (b["error"] or "")]
    took = datetime.fromisoformat(hung["ended_at"]) - datetime.fromisoformat(hung["sent_at"])
    assert timedelta(seconds=2) <= took < timedelta(seconds=2.5)
    assert_steady_state(lab.lab)
    assert drill_leftovers(tmp_path) == []


WITNESS = "s3://dr-witness/dalp/history"


def witnessed(client: Any) -> list[int]:
    listed = client.list_objects_v2(Bucket="dr-witness", Prefix="dalp/history/")
    return sorted(int(o["Key"].rsplit("/", 1)[1][:12]) for o in listed.get("Contents", []))


@pytest.fixture
def witness(tmp_path: Path) -> Iterator[tuple[dict[str, str], HangingProxy, Any]]:
    """A checkpoint witness bucket (Object Lock) on a moto server reached through a proxy
    that can go down; the settings that use it, with a signing key."""
    with moto_server() as s3:
        host, port = s3.removeprefix("http://").split(":")
        with hanging_proxy((host, int(port))) as proxy:
            aws = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                   "AWS_DEFAULT_REGION": "us-east-1"}
            client = boto3.client("s3", endpoint_url=s3, region_name="us-east-1",
                                  aws_access_key_id="testing", aws_secret_access_key="testing")
            client.create_bucket(Bucket="dr-witness", ObjectLockEnabledForBucket=True)
            env = settings(tmp_path / "results", DALP_DR_KEYS=str(tmp_path / "keys"),
                           DALP_DR_WITNESS=WITNESS, DALP_DR_WITNESS_RETAIN_DAYS="1",
                           DALP_DR_S3_ENDPOINT=f"http://127.0.0.1:{proxy.port}", **aws)
            made = dalp_in(env, "keys", "init")
            assert made.returncode == 0, made.stderr
            yield env, proxy, client


def test_the_checkpoint_witness_down(
        witness: tuple[dict[str, str], HangingProxy, Any], lab: SpareLab) -> None:
    env, proxy, client = witness
    drill = lab.drill(DRILL)
    first = run_and_act(env, drill, "phase verify ...", lambda _p: proxy.down())
    # recorded and sealed, signed into the local checkpoint log; the witness is told later
    assert first.returncode == 0, first.stderr
    assert "outcome: PASSED" in first.said and "steady state: restored" in first.said
    assert f"checkpoint #1 not witnessed in {WITNESS} yet (the next seal publishes it)" \
        in first.stderr
    assert "Traceback" not in first.stderr + first.stdout
    assert witnessed(client) == []
    assert drill_leftovers(Path(env["DALP_DR_RESULTS"])) == []

    proxy.up()  # back: the next run's seal publishes the checkpoint it missed, and its own
    second = dalp_in(env, "drill", "run", str(drill), timeout=300)
    assert second.returncode == 0, second.stderr
    assert "not witnessed" not in second.stderr
    assert witnessed(client) == [1, 2]
    verified = dalp_in(env, "history", "verify")
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert_steady_state(lab.lab)
