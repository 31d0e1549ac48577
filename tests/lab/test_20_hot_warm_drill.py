"""The hot-warm failover drill, end to end on the real lab."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.lab.helpers import (
    DATA_LOSS_DRILL,
    DISK_LOST_DRILL,
    DRILL,
    LAB_PASSWORD,
    ROOT,
    ROUTE_PORT,
    alive,
    assert_no_secret,
    assert_steady_state,
    await_steady_state,
    dalp,
    lab_processes,
    pg_ctl,
    postmaster_pid,
    run_and_act,
    run_json,
    run_passed,
    site_a_shell,
)
from tests.lab.ledger import TABLE, LedgerWriter

SERVICE_DSN = (f"host=127.0.0.1 port={ROUTE_PORT} dbname=dalp user=dalp_app "
               f"password={LAB_PASSWORD}")

# one lab per pytest-xdist worker at a time (see tests/conftest.py)
pytestmark = pytest.mark.xdist_group("hot-warm")


@pytest.fixture(scope="module", autouse=True)
def lab_up() -> None:
    proc = dalp("lab", "up", "hot-warm")
    assert proc.returncode == 0, proc.stderr


def test_drill_passes_with_history_and_evidence(tmp_path: Path) -> None:
    """(Every later test in this module starts from the steady state this drill restored,
    and its drill runs right after: a second run right after also passes.)"""
    results = tmp_path / "results"
    result = run_passed(DRILL, results)
    m = result["measurements"]
    # measured by the client through the route: SIGKILL -> first write acknowledged again
    assert 0 < m["recovery_time"] < 10
    assert m["rtt"] >= m["recovery_time"]
    # asynchronous standby: under load a few hundred ms of acknowledged writes can be lost;
    # what matters is that it was measured and is inside the 5 min RPO
    assert 0 <= m["data_loss_window"] < 300 and m["lost_writes"] >= 0
    assert m["acked_before_fault"] >= 15  # ~2 s baseline at 100 ms
    assert [v["status"] for v in result["verdicts"]] == ["met", "met"]
    assert [p["phase"] for p in result["phases"]] == [
        "preflight", "baseline", "inject", "recover", "verify", "measure", "divergence",
        "steady_state"]
    # the data-loss window from site A's WAL (exact), the heartbeat's beside it; the
    # targets' clocks read twice, each host's
    assert m["data_loss_basis"] == "exact" and m["divergence"]["available"] is True
    assert m["divergence"]["lost_transactions"] >= m["lost_writes"]
    hosts = {(o["host"], o["when"]) for o in result["clock_offsets"]}
    assert {(h, w) for h in ("site-a", "site-b") for w in ("preflight", "after verify")} <= hosts
    assert all(p["status"] == "ok" for p in result["phases"])
    assert result["steady_state_restored"] is True
    assert_steady_state()
    runs = [result]

    # history: the run, with figures
    listed = json.loads(dalp("history", "list", "--json", results=results).stdout)
    assert [(r["run_id"], r["outcome"]) for r in listed] == [(runs[0]["run_id"], "passed")]
    shown = dalp("history", "show", runs[0]["run_id"], results=results)
    assert shown.returncode == 0
    for word in ("recovery time", "steady_state", "recover-promote-switch.yml",
                 runs[0]["evidence_dir"]):
        assert word in shown.stdout, word
    db = sqlite3.connect(results / "history.sqlite")
    spec = json.loads(db.execute("select spec_json from runs where run_id = ?",
                                 (runs[0]["run_id"],)).fetchone()[0])
    assert spec["name"] == "hot-warm-failover" and spec["objectives"]["rpo"] == "300s"

    # evidence written as it happened
    evidence = Path(runs[0]["evidence_dir"])
    journal = sorted((evidence / "journal").glob("*.json"))
    kinds = [json.loads(p.read_text())["kind"] for p in journal]
    assert kinds[0] == "run.started" and kinds[-1] == "run.finished"
    assert "fault.injected" in kinds and "recovery.observed" in kinds
    for phase in ("preflight", "inject", "recover", "verify", "divergence", "steady_state",
                  "clock-preflight", "clock-after-verify"):
        assert list((evidence / "ansible" / phase).glob("*-playbook_on_stats.json")), phase
    assert (evidence / "lost-transactions.jsonl").is_file()
    beats = [json.loads(x) for x in (evidence / "heartbeat.jsonl").read_text().splitlines()]
    assert len(beats) >= m["acked_before_fault"]
    assert any(not b["acked"] for b in beats)  # the outage was seen by the client
    assert "PASSED" in (evidence / "summary.txt").read_text()
    assert_no_secret(results, LAB_PASSWORD)


def test_known_data_loss_is_measured_exactly_from_the_wal(tmp_path: Path) -> None:
    """Freeze site A's walsender for 1 s while clients write, then kill site A: the writes
    acknowledged during the freeze never reach site B (async replication). Beside the
    heartbeat, an application writes with a ledger of its own: the divergence probe reports
    exactly the transactions it committed after the fork, and the exact window agrees with
    the ledger's to 10 ms."""
    ledger = LedgerWriter(SERVICE_DSN)
    ledger.start()
    try:
        code, result, stderr = run_json(DATA_LOSS_DRILL, tmp_path / "results")
    finally:
        ledger.stop()
    assert not ledger.unexpected, ledger.unexpected
    assert code == 1, stderr
    assert result["outcome"] == "missed"
    m = result["measurements"]
    freeze, interval = 1.0, m["resolution"]
    # within one heartbeat interval of the injected window, plus a small allowance
    assert abs(m["data_loss_window"] - freeze) <= interval + 0.15, m
    assert m["lost_writes"] >= 0.8 * freeze / interval, m
    rto, rpo = result["verdicts"]
    assert rto["status"] == "met"
    assert rpo["status"] == "missed" and rpo["target"] == 0.5
    assert rpo["margin"] == pytest.approx(0.5 - m["data_loss_window"])
    assert result["steady_state_restored"] is True
    assert_steady_state()

    # the exact figures, judged, and the sampled one beside them
    assert m["data_loss_basis"] == "exact" and "exact" in rpo["reason"]
    found = m["divergence"]
    assert found["available"] is True, found
    # the heartbeat samples: never much shorter than the exact window; longer by as much as
    # it stalled before the freeze on a loaded machine (0.18 s seen in CI)
    assert m["sampled_data_loss_window"] >= m["data_loss_window"] - interval - 0.05
    # the application's own transactions after the fork: exactly its ledger's
    fault_at = datetime.fromisoformat(m["fault_at"])
    survived = ledger.surviving()
    acked_lost = {e.xid for e in ledger.entries if e.acked_at and e.n not in survived}
    in_doubt = {e.xid for e in ledger.entries if e.acked_at is None}
    evidence = Path(result["evidence_dir"]) / found["evidence"]
    rows = [json.loads(line) for line in evidence.read_text().splitlines()]
    in_wal = {r["xid"] for r in rows if f"dalp.public.{TABLE}" in r["tables"]}
    assert len(acked_lost) > 100, len(acked_lost)  # a second of writes
    assert acked_lost <= in_wal
    assert in_wal - acked_lost <= in_doubt  # a commit the primary took as it died
    by_table = {t["table"]: t["commits"] for t in found["tables"]}
    assert by_table[f"dalp.public.{TABLE}"] == len(in_wal)
    assert found["lost_transactions"] == len(rows) >= len(in_wal) + m["lost_writes"]
    # the exact window, against the ledger's: newest lost ack - newest surviving ack
    lost_acks = [e.acked_at for e in ledger.entries if e.acked_at and e.n not in survived]
    kept_acks = [e.acked_at for e in ledger.entries
                 if e.acked_at and e.n in survived and e.acked_at < fault_at]
    ledger_window = (max(lost_acks) - max(kept_acks)).total_seconds()
    assert abs(m["data_loss_window"] - ledger_window) <= 0.010, (m, ledger_window)


def test_a_lost_disk_leaves_the_sampled_window_marked_so(tmp_path: Path) -> None:
    """Site A's data directory goes with it: the probe has no WAL to read and says so; the
    heartbeat's window is judged, marked as sampled; steady state rebuilds site A."""
    code, result, stderr = run_json(DISK_LOST_DRILL, tmp_path / "results")
    assert code == 0, stderr
    m = result["measurements"]
    assert m["data_loss_basis"] == "sampled" and m["sampled_data_loss_window"] is None
    found = m["divergence"]
    assert found["available"] is False and "data directory" in found["reason"], found
    assert m["data_loss_window"] is not None and m["lost_writes"] >= 1  # a 300 ms freeze
    (_, rpo) = result["verdicts"]
    assert rpo["status"] == "met" and "sampled" in rpo["reason"]
    summary = (Path(result["evidence_dir"]) / "summary.txt").read_text()
    assert "WAL of the old primary unavailable" in summary
    assert result["steady_state_restored"] is True
    assert_steady_state()


RUN_TO_RUN = 0.5
"""how far two runs' recovery times may differ on a loaded CI machine (measured up to 0.27 s
apart with the clocks agreeing; the heartbeat itself stalls up to 0.3 s there): far below
the 0.8 s and 5 s the clocks are moved by. The fault instant itself is held to the
controller's own bracket of the kill (assert_fault_within_the_kill)."""


def assert_fault_within_the_kill(result: dict[str, Any]) -> None:
    """The fault instant lies inside the inject task that killed site A's postmaster, as the
    controller saw that task start and end (ansible-runner's event: the controller's wall
    clock, which these tests leave alone until after inject): no target clock enters it, and
    a fault instant off by a target's offset falls outside."""
    fault = datetime.fromisoformat(result["measurements"]["fault_at"])
    (kill,) = [e["event_data"] for e in map(
        lambda p: json.loads(p.read_text()),
        Path(result["evidence_dir"], "ansible", "inject").glob("*-runner_on_ok.json"))
        if e["event_data"].get("task") == "Inject: SIGKILL postmaster"]
    start, end = (datetime.fromisoformat(kill[k]) for k in ("start", "end"))
    slack = timedelta(seconds=0.05)  # the offset's bias: the read sits late in its task
    assert start - slack <= fault <= end + slack, (start, fault, end)


def assert_clock(result: dict[str, Any], host: str, *ahead: float) -> None:
    """The host's clock read ``ahead`` (seconds, at preflight then after verify), each
    within its read's own uncertainty: the read happened inside its task, so the true
    offset lies within half the task of the estimate (10 ms more for the event's trip)."""
    reads = [(o["offset"], o["uncertainty"]) for o in result["clock_offsets"]
             if o["host"] == host]
    assert len(reads) == len(ahead), reads
    for (offset, uncertainty), expected in zip(reads, ahead, strict=True):
        assert abs(offset - expected) <= uncertainty + 0.01, (host, reads, ahead)


def test_a_target_clock_ahead_does_not_shorten_the_recovery(tmp_path: Path) -> None:
    """Site A's clock (what stamps the fault) runs 0.8 s ahead: the drill measures the
    offset at preflight and after verify, maps the fault instant through it, and the
    recovery time stays within one heartbeat of the run with the clocks agreeing."""
    plain = run_passed(site_a_shell(tmp_path / "plain", DRILL, 'exec /bin/sh "$@"'),
                       tmp_path / "results")
    skewed = run_passed(site_a_shell(tmp_path / "skewed", DRILL,
                                     'exec /usr/bin/faketime -f "+0.8s" /bin/sh "$@"'),
                        tmp_path / "results")
    try:
        assert_clock(plain, "site-a", 0, 0)
        assert_clock(skewed, "site-a", 0.8, 0.8)
        assert_clock(skewed, "site-b", 0, 0)
        fault = next(e for e in skewed["timeline"] if e["name"] == "fault injected")
        assert "reported by site-a, its clock +0.8" in fault["detail"], fault
        for run in (plain, skewed):
            assert_fault_within_the_kill(run)
        times = [r["measurements"]["recovery_time"] for r in (plain, skewed)]
        assert abs(times[0] - times[1]) <= RUN_TO_RUN, times
    finally:
        # steady state restarted site A under the skewed shell: give it the real clock back
        pg_ctl("site-a", "restart")
    await_steady_state()


def test_a_controller_clock_step_does_not_move_the_figures(tmp_path: Path) -> None:
    """The controller's wall clock steps 5 s ahead during the outage, as an NTP step does
    (tests/lab/clockstep: the wall clock of dalp-dr and of the playbooks it runs, not the
    monotonic clock; site A, which stamps the fault, keeps the real one): no figure moves,
    as every interval is measured on the monotonic clock."""
    shim = tmp_path / "clockstep.so"
    subprocess.run(["gcc", "-shared", "-fPIC", "-O2", "-o", str(shim),
                    str(ROOT / "tests" / "lab" / "clockstep" / "clockstep.c"), "-ldl"],
                   check=True)
    stamp = tmp_path / "step"
    stamp.write_text("0\n")
    env = {**os.environ, "LD_PRELOAD": str(shim), "CLOCKSTEP_FILE": str(stamp),
           "DALP_DR_RESULTS": str(tmp_path / "results")}
    drill = site_a_shell(tmp_path, DRILL, 'exec env -u LD_PRELOAD /bin/sh "$@"')
    plain = run_passed(drill, tmp_path / "results")

    def step(_proc: object) -> None:
        stamp.write_text("5\n")

    watched = run_and_act(env, drill, "phase recover", step, "--json")
    assert watched.returncode == 0, watched.stderr
    stepped = json.loads(watched.stdout)
    interval = stepped["measurements"]["resolution"]
    # the step happened, and was seen: site B's shell keeps the controller's (stepped) clock,
    # 5 s ahead of the run's monotonic timeline after it; site A's real clock stays at 0
    assert_clock(stepped, "site-b", 0, 5)
    assert_clock(stepped, "site-a", 0, 0)
    for run in (plain, stepped):
        assert_fault_within_the_kill(run)
    values = [r["measurements"]["recovery_time"] for r in (plain, stepped)]
    assert abs(values[0] - values[1]) <= RUN_TO_RUN, ("recovery_time", values)
    # the write outage is 0 when the heartbeat saw no failed write at all (pgbouncer held
    # its write through the switch instead of failing it: CI saw 0.0 against 0.549 and
    # 0.724, a race of the route, not of clocks); compared when both runs saw an outage
    outages = [r["measurements"]["write_outage"] for r in (plain, stepped)]
    if all(outages):
        assert abs(outages[0] - outages[1]) <= RUN_TO_RUN, ("write_outage", outages)
    # (verify's playbook takes 1.4 to 2.1 s, on a loaded machine more: its spread is wider)
    rtts = [r["measurements"]["rtt"] for r in (plain, stepped)]
    assert abs(rtts[0] - rtts[1]) < 2.5, rtts
    assert stepped["measurements"]["data_loss_window"] <= interval
    assert_steady_state()


def test_preflight_fails_closed_when_standby_is_down(tmp_path: Path) -> None:
    pid_a = postmaster_pid("site-a")
    pg_ctl("site-b", "stop")
    try:
        code, result, stderr = run_json(DRILL, tmp_path / "results")
        assert code == 1, stderr
        assert result["outcome"] == "preflight_failed"
        assert result["measurements"] is None
        phases = {p["phase"]: p["status"] for p in result["phases"]}
        assert phases == {"preflight": "failed", "steady_state": "skipped"}
        assert "not streaming" in result["phases"][0]["message"]
        assert alive(pid_a) and postmaster_pid("site-a") == pid_a  # no fault injected
    finally:
        repaired = dalp("lab", "up", "hot-warm")
        assert repaired.returncode == 0, repaired.stderr
    assert_steady_state()


def test_unreachable_endpoint_exits_2_and_starts_nothing(tmp_path: Path) -> None:
    inventory = (ROOT / "inventories/lab/hot-warm.yml").read_text()
    (tmp_path / "inv.yml").write_text(inventory.replace("dalp_route_port: 56432",
                                                        "dalp_route_port: 56499"))
    drill = DRILL.read_text().replace("../inventories/lab/hot-warm.yml", str(tmp_path / "inv.yml"))
    drill = drill.replace("../playbooks/", str(ROOT / "playbooks") + "/")
    (tmp_path / "d.yaml").write_text(drill)
    pid_a = postmaster_pid("site-a")
    proc = dalp("drill", "run", str(tmp_path / "d.yaml"), results=tmp_path / "results")
    assert proc.returncode == 2, proc.stderr
    assert "endpoint" in proc.stderr and "lab up hot-warm" in proc.stderr
    assert LAB_PASSWORD not in proc.stderr
    assert not (tmp_path / "results").exists() or not any((tmp_path / "results").iterdir())
    assert alive(pid_a)
    assert_steady_state()


def test_failed_recovery_still_returns_to_steady_state(tmp_path: Path) -> None:
    """Recover fails after site A was killed: site B is never promoted, verify fails, and the
    steady-state phase still brings site A back with B streaming from it."""
    drill = DRILL.read_text().replace("../inventories/", str(ROOT / "inventories") + "/")
    drill = drill.replace("../playbooks/hot-warm/recover-promote-switch.yml",
                          str(ROOT / "tests/lab/playbooks/fail.yml"))
    drill = drill.replace("../playbooks/", str(ROOT / "playbooks") + "/")
    drill = drill.replace("timeout: 5m", "timeout: 20s")  # verify gives up sooner
    (tmp_path / "d.yaml").write_text(drill)
    pid_a = postmaster_pid("site-a")
    code, result, stderr = run_json(tmp_path / "d.yaml", tmp_path / "results")
    assert code == 1, stderr
    assert result["outcome"] == "failed"
    phases = {p["phase"]: p["status"] for p in result["phases"]}
    assert phases["inject"] == "ok" and phases["recover"] == "failed"
    assert phases["verify"] == "failed" and phases["steady_state"] == "ok"
    assert result["steady_state_restored"] is True
    assert not alive(pid_a)  # the fault really happened ...
    assert_steady_state()  # ... and the lab is whole again
    m = result["measurements"]
    assert m["recovery_time"] is None and m["recovery_time_lower_bound"] > 0


def test_interrupt_after_the_fault_restores_steady_state_and_exits_130(tmp_path: Path) -> None:
    import os
    import signal
    import subprocess
    import sys

    env = dict(os.environ, DALP_DR_RESULTS=str(tmp_path / "results"))
    proc = subprocess.Popen([sys.executable, "-m", "dalp_dr", "drill", "run", str(DRILL),
                             "--json"], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None
    seen = []
    for line in proc.stderr:
        seen.append(line)
        if "fault injected" in line:
            proc.send_signal(signal.SIGINT)
            break
    stdout, rest = proc.communicate(timeout=300)
    assert proc.returncode == 130, "".join(seen) + rest
    result = json.loads(stdout)
    assert result["outcome"] == "aborted"
    assert "SIGINT" in result["message"]
    assert result["phases"][-1]["phase"] == "steady_state"
    assert result["steady_state_restored"] is True
    assert_steady_state()
    listed = json.loads(dalp("history", "list", "--json", results=tmp_path / "results").stdout)
    assert [r["outcome"] for r in listed] == ["aborted"]


def test_the_scheduler_runs_the_real_drill_on_its_cron(tmp_path: Path) -> None:
    """The hot-warm lab drill, scheduled once a minute at a second a few seconds from now:
    the scheduler service runs it through the real lab, records it with trigger 'schedule'
    and its planned time."""
    import os
    import signal
    import subprocess
    import sys
    import time
    from datetime import UTC, datetime, timedelta

    drills = tmp_path / "drills"
    drills.mkdir()
    # the scheduler starts within ~2 s: the fire comes ~6 s from now, once
    second = (datetime.now(UTC) + timedelta(seconds=6)).second
    text = DRILL.read_text().replace("../inventories/", f"{ROOT}/inventories/") \
        .replace("../playbooks/", f"{ROOT}/playbooks/") \
        .replace("schedule: quarterly", f"schedule: '{second} * * * * *'")
    (drills / DRILL.name).write_text(text)
    results = tmp_path / "results"
    env = dict(os.environ, DALP_DR_RESULTS=str(results))
    log = (tmp_path / "scheduler.log").open("w")
    service = subprocess.Popen([sys.executable, "-m", "dalp_dr", "scheduler", "run",
                                "--drills", str(drills), "--metrics-address", ""], cwd=ROOT,
                               env=env, stdout=log,
                               stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 420  # one drill: ~1 min, several on a loaded machine
        runs: list[dict[str, object]] = []
        while time.monotonic() < deadline and not [r for r in runs if r["outcome"] != "running"]:
            time.sleep(1)
            listed = dalp("history", "list", "--json", results=results)
            runs = json.loads(listed.stdout) if listed.returncode == 0 else []
    finally:
        service.send_signal(signal.SIGTERM)
        assert service.wait(timeout=300) == 0
        log.close()
    done = [r for r in runs if r["outcome"] != "running"]
    assert done, (tmp_path / "scheduler.log").read_text()
    run = done[-1]
    assert (run["outcome"], run["trigger"], run["drill"]) == ("passed", "schedule",
                                                             "hot-warm-failover")
    planned = datetime.fromisoformat(str(run["planned_at"]))
    assert planned.second == second
    assert 0 < float(str(run["recovery_time"])) < 30 * 60
    assert_steady_state()


def test_drill_plan_injects_nothing_and_prints_the_plan(tmp_path: Path) -> None:
    before = postmaster_pid("site-a")
    proc = dalp("drill", "plan", str(DRILL), results=tmp_path / "results")
    assert proc.returncode == 0, proc.stderr
    assert postmaster_pid("site-a") == before and alive(before)  # the primary was not touched
    for text in ("inject-kill-primary.yml", "recover-promote-switch.yml", "steady-state.yml",
                 "preflight successful", "fault it injects", "RTO 30m00s",
                 "nothing was injected and nothing recorded"):
        assert text in proc.stdout, (text, proc.stdout)
    assert not (tmp_path / "results").exists()
    assert_steady_state()


def test_the_deadline_stops_a_hung_recovery_records_rto_missed_and_restores(
        tmp_path: Path) -> None:
    import time

    started = time.monotonic()
    code, result, err = run_json(ROOT / "tests" / "lab" / "drills" / "hot-warm-deadline.yaml",
                                 tmp_path / "results")
    assert code == 1, err
    assert result["outcome"] == "missed"
    rto = next(v for v in result["verdicts"] if v["objective"] == "rto")
    assert rto["status"] == "missed" and "deadline of 5.000s" in rto["reason"]
    assert result["steady_state_restored"] is True
    recover = next(p for p in result["phases"] if p["phase"] == "recover")
    assert recover["status"] == "canceled"
    assert recover["report"].get("killed_stragglers")  # the task's worker, in its own session
    assert time.monotonic() - started < 120  # not the hung playbook's 600 s
    assert not [p for p in lab_processes(Path("/")) if "wait-forever.yml" in p]  # none left
    assert_steady_state()
