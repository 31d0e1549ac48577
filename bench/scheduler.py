"""Bench: the scheduler with 1,000 drill definitions, and leader takeover after SIGKILL.

    .venv/bin/python bench/scheduler.py [--drills N] [--takeovers K]

1. N definitions (copies of drills/hot-warm-failover.yaml with their own names and crons).
   Baseline: loading and validating them in process (what any sync must do at least).
   Measured: `dalp-dr schedule sync` into a fresh SQLite store (a process, as an operator
   runs it), then again with nothing changed. Target: sync < 5 s.
2. `dalp-dr scheduler run` over those N drills: resident memory once it is active and
   synced (VmRSS, and VmHWM as the peak). Baseline: the same service with 1 drill.
   Target: RSS < 150 MB.
3. Two `scheduler run` processes on one PostgreSQL store (a throwaway server, as in the
   lab tests); the active one is SIGKILLed K times; time from the kill until the standby
   logs ACTIVE. Baseline: the lease TTL (the documented bound is TTL + 1 s poll).
   Target: < 10 s.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from dalp_dr.schedule.jobs import load_definitions  # noqa: E402
from tests.lab.helpers import LABS, postgres_server  # noqa: E402

LEASE_TTL = 6.0


def make_drills(directory: Path, n: int) -> Path:
    for sub in ("inventories", "playbooks"):
        (directory / sub).symlink_to(ROOT / sub)
    drills = directory / "drills"
    drills.mkdir()
    template = (ROOT / "drills" / "hot-warm-failover.yaml").read_text()
    for i in range(n):
        text = template.replace("name: hot-warm-failover", f"name: drill-{i:04d}").replace(
            "schedule: quarterly", f"schedule: '{i % 60} {i % 24} {1 + i % 28} * *'")
        (drills / f"drill-{i:04d}.yaml").write_text(text)
    return drills


def cli(env: dict[str, str], *args: str) -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "dalp_dr", *args], cwd=ROOT, env=env, check=True,
                   capture_output=True)
    return time.perf_counter() - started


def memory(pid: int) -> tuple[float, float]:
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        fields[key] = value
    return (int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024)


def start_service(env: dict[str, str], drills: Path, log: Path, *extra: str
                  ) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "dalp_dr", "scheduler", "run", "--drills",
                             str(drills), "--metrics-address", "", *extra], cwd=ROOT, env=env,
                            stdout=log.open("w"),
                            stderr=subprocess.STDOUT, start_new_session=True)


def wait_for(log: Path, needle: str, timeout: float = 120) -> float:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if needle in log.read_text():
            return time.monotonic()
        time.sleep(0.05)
    raise SystemExit(f"no '{needle}' in {log} within {timeout}s:\n{log.read_text()[-2000:]}")


def service_rss(work: Path, drills: Path, label: str) -> tuple[float, float]:
    env = dict(os.environ, DALP_DR_RESULTS=str(work / f"results-{label}"))
    log = work / f"{label}.log"
    proc = start_service(env, drills, log)
    try:
        wait_for(log, "ACTIVE")
        time.sleep(3)  # the first sync is done and the scheduler idles until the next fire
        return memory(proc.pid)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)


def takeovers(work: Path, drills: Path, k: int) -> list[float]:
    times = []
    with postgres_server(LABS / "bench-scheduler-postgres", 55496, ("history",)) as url:
        env = dict(os.environ, DALP_DR_RESULTS=str(work / "results-ha"),
                   DALP_DR_STORE=f"{url}/history")
        lease = f"{LEASE_TTL:.0f}s"
        active = start_service(env, drills, work / "ha-0.log", "--lease-ttl", lease)
        wait_for(work / "ha-0.log", "ACTIVE")
        for i in range(1, k + 1):
            log = work / f"ha-{i}.log"
            standby = start_service(env, drills, log, "--lease-ttl", lease)
            wait_for(log, "standby:")
            killed = time.monotonic()
            os.killpg(active.pid, signal.SIGKILL)
            active.wait()
            times.append(wait_for(log, "ACTIVE") - killed)
            active = standby
        active.send_signal(signal.SIGTERM)
        active.wait(timeout=60)
    return times


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--drills", type=int, default=1000)
    parser.add_argument("--takeovers", type=int, default=3)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="dalp-dr-bench-scheduler-"))
    try:
        drills = make_drills(work, args.drills)
        started = time.perf_counter()
        loaded = load_definitions(drills)
        baseline = time.perf_counter() - started
        assert len(loaded.valid) == args.drills, loaded.invalid
        env = dict(os.environ, DALP_DR_RESULTS=str(work / "results-sync"))
        first = cli(env, "schedule", "sync", "--drills", str(drills))
        again = cli(env, "schedule", "sync", "--drills", str(drills))
        print(f"definitions: {args.drills}")
        print(f"load + validate in process (baseline): {baseline:.2f} s")
        print(f"schedule sync, fresh store:           {first:.2f} s "
              f"({first / baseline:.1f}x baseline)  target < 5 s: "
              f"{'ok' if first < 5 else 'MISSED'}")
        print(f"schedule sync, nothing changed:       {again:.2f} s "
              f"({again / baseline:.1f}x baseline)")

        one = work / "one"
        one.mkdir()
        single = make_drills(one, 1)
        rss_1, peak_1 = service_rss(work, single, "one")
        rss_n, peak_n = service_rss(work, drills, "many")
        print(f"scheduler RSS with 1 drill (baseline): {rss_1:.0f} MB (peak {peak_1:.0f} MB)")
        print(f"scheduler RSS with {args.drills} drills:        {rss_n:.0f} MB "
              f"(peak {peak_n:.0f} MB, {rss_n / rss_1:.2f}x baseline)  target < 150 MB: "
              f"{'ok' if peak_n < 150 else 'MISSED'}")

        times = takeovers(work, single, args.takeovers)
        median = statistics.median(times)
        print(f"leader takeover after SIGKILL, lease TTL {LEASE_TTL:.0f} s (baseline): "
              + ", ".join(f"{t:.2f} s" for t in times)
              + f"; median {median:.2f} s ({median / LEASE_TTL:.2f}x TTL)  target < 10 s: "
              f"{'ok' if max(times) < 10 else 'MISSED'}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
