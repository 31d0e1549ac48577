"""Bench: exports and history verification over 10,000 runs.

    .venv/bin/python bench/export_history.py [--runs 10000]

Fills a fresh SQLite history with N synthetic sealed runs (7 drills, a run every few hours
over the last two years, each with two small evidence files), every seal signed into the
checkpoint log as a drill's seal is, then times, as processes the
way an operator runs them, with their peak memory (ru_maxrss of the child):

* baseline: `dalp-dr history list --json --limit N` (read every record, nothing else);
* `dalp-dr history verify` (chain, record digests, evidence files, N signed checkpoints);
* `dalp-dr export --bundle X.tar.gz` (json + csv + html, evidence copied, signed);
* `dalp-dr export verify X.tar.gz`.

Targets: export < 10 s, verify < 3 s, memory < 300 MB.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from dalp_dr.config import Settings  # noqa: E402
from dalp_dr.export import keys  # noqa: E402
from dalp_dr.history import open_history  # noqa: E402
from dalp_dr.results import Outcome  # noqa: E402
from tests.factories import make_run  # noqa: E402

DRILLS = ("hot-warm-failover", "hot-cold-restore", "cloud-native-failover",
          "cloud-native-node-loss", "cloud-native-switchover", "hot-hot-site-loss",
          "hot-hot-public-site-loss")


def fill(work: Path, n: int) -> None:
    keys.init(work / "keys")
    store = open_history(Settings(results_dir=work / "results", project_dir=ROOT,
                                  store_url=f"sqlite:///{work / 'results' / 'history.sqlite'}",
                                  keys_dir=work / "keys"))
    start = datetime.now(UTC) - timedelta(days=730)
    step = timedelta(days=730) / n
    for i in range(n):
        outcome = Outcome.PASSED if i % 11 else Outcome.MISSED
        run = make_run(work, f"{(start + step * i):%Y%m%dT%H%M%SZ}-{i:06x}", DRILLS[i % 7],
                       start + step * i, outcome, 0.5 + (i % 13) * 0.3)
        store.begin(run.model_copy(update={"outcome": Outcome.RUNNING, "ended_at": None}),
                    json.dumps({"name": run.drill}))
        store.finish(run)
    store.close()


def run_measured(env: dict[str, str], *args: str) -> tuple[float, float]:
    """Wall seconds and the child's own peak RSS in MB (wait4)."""
    started = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "dalp_dr", *args], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    assert proc.stderr is not None
    err = proc.stderr.read()
    _pid, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    elapsed = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"{args}: {err.decode()[-2000:]}")
    return elapsed, usage.ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=10_000)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="dalp-dr-bench-export-"))
    try:
        started = time.perf_counter()
        fill(work, args.runs)
        checkpoints = len((work / "results" / "checkpoints.jsonl").read_text().splitlines())
        print(f"history: {args.runs} sealed runs ({checkpoints} signed checkpoints) filled "
              f"in {time.perf_counter() - started:.1f} s (not timed below)")
        env = dict(os.environ, DALP_DR_RESULTS=str(work / "results"),
                   DALP_DR_KEYS=str(work / "keys"))
        base_t, base_m = run_measured(env, "history", "list", "--json", "--limit",
                                      str(args.runs))
        verify_t, verify_m = run_measured(env, "history", "verify")
        export_t, export_m = run_measured(env, "export", "--bundle",
                                          str(work / "bundle.tar.gz"))
        check_t, check_m = run_measured(env, "export", "verify", str(work / "bundle.tar.gz"))
        size = (work / "bundle.tar.gz").stat().st_size / 1e6
        print(f"baseline: history list (read all):  {base_t:6.2f} s  peak {base_m:5.0f} MB")
        print(f"history verify:                    {verify_t:6.2f} s  peak {verify_m:5.0f} MB"
              f"  ({verify_t / base_t:.1f}x baseline)  target < 3 s: "
              f"{'ok' if verify_t < 3 else 'MISSED'}")
        print(f"export bundle (json+csv+html):     {export_t:6.2f} s  peak {export_m:5.0f} MB"
              f"  ({export_t / base_t:.1f}x baseline, {size:.1f} MB)  target < 10 s: "
              f"{'ok' if export_t < 10 else 'MISSED'}")
        print(f"export verify:                     {check_t:6.2f} s  peak {check_m:5.0f} MB")
        peak = max(verify_m, export_m, check_m)
        print(f"peak memory {peak:.0f} MB  target < 300 MB: {'ok' if peak < 300 else 'MISSED'}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
