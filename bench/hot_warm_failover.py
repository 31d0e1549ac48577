"""Bench: the hot-warm failover drill against a bare shell failover, measured in one run.

    .venv/bin/python bench/hot_warm_failover.py [--runs N]

Brings the hot-warm lab up (not timed), then N times each:
* the drill (drills/hot-warm-failover.yaml) through the engine, as `dalp-dr drill run` does;
* bench/bare_failover.sh: kill, pg_ctl promote, pgbouncer switch, nothing else; measured
  with the very same heartbeat client and arithmetic, then put back by the steady-state
  playbook (not timed).
Prints medians and the targets (issue 17): measured recovery <= 3 s, orchestrated recovery
<= bare + 0.3 s, whole drill (without lab provisioning) <= 20 s, steady state <= 10 s.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from dalp_dr.adapters.ansible import AnsibleRunner  # noqa: E402
from dalp_dr.drill.engine import DrillEngine  # noqa: E402
from dalp_dr.heartbeat import Heartbeat  # noqa: E402
from dalp_dr.history import open_store  # noqa: E402
from dalp_dr.inventory import Inventory  # noqa: E402
from dalp_dr.lab import Lab  # noqa: E402
from dalp_dr.measure import measure  # noqa: E402
from dalp_dr.spec import load_drill  # noqa: E402

DRILL = ROOT / "drills" / "hot-warm-failover.yaml"


def run_drills(n: int, results: Path) -> list[tuple[float, float, dict[str, float]]]:
    engine = DrillEngine(runner=AnsibleRunner(), results_dir=results)
    store = open_store(f"sqlite:///{results / 'history.sqlite'}")
    out = []
    for i in range(n):
        prepared = engine.prepare(load_drill(DRILL))
        result = engine.run(prepared, store=store, operator="bench")
        assert result.outcome.value == "passed", (result.outcome, result.message)
        assert result.measurements and result.measurements.recovery_time is not None
        assert result.ended_at is not None
        wall = (result.ended_at - result.started_at).total_seconds()
        phases = {p.phase.value: p.duration for p in result.phases}
        out.append((result.measurements.recovery_time, wall, phases))
        print(f"  drill {i + 1}: recovery {result.measurements.recovery_time:.3f}s "
              f"wall {wall:.1f}s", flush=True)
    store.close()
    return out


def run_bare(n: int) -> list[float]:
    loaded = load_drill(DRILL)
    inv = Inventory(loaded.inventory)
    env = dict(os.environ)
    env.update({
        "A_DATA": str(inv.variable("dalp_pg_data", host="site-a")),
        "B_DATA": str(inv.variable("dalp_pg_data", host="site-b")),
        "B_HOST": str(inv.variable("dalp_pg_host", host="site-b")),
        "B_PORT": str(inv.variable("dalp_pg_port", host="site-b")),
        "DB": str(inv.variable("dalp_db_name")),
        "ROUTE_DIR": str(inv.variable("dalp_route_dir")),
        "PG_BIN": str(inv.variable("dalp_pg_bin")),
    })
    engine = DrillEngine(runner=AnsibleRunner(), results_dir=Path(tempfile.mkdtemp()))
    runner = AnsibleRunner()
    steady = loaded.playbooks[next(p for p in loaded.playbooks if p.value == "steady_state")]
    out = []
    for i in range(n):
        prepared = engine.prepare(loaded)
        prepared.endpoint.ensure_schema()
        interval = loaded.spec.workload.heartbeat_interval.total_seconds()
        beat = Heartbeat(prepared.endpoint, f"bench-bare-{datetime.now(UTC):%H%M%S}-{i}",
                         interval=interval, sink=lambda _s: None)
        beat.start()
        beat.pause(2.0)
        proc = subprocess.run(["bash", str(ROOT / "bench" / "bare_failover.sh")], env=env,
                              capture_output=True, text=True, check=True)
        fault = datetime.fromtimestamp(float(proc.stdout.split()[0]), UTC)
        recovered = beat.wait_for_recovery(fault, timeout=60)
        beat.pause(0.5)
        beat.stop()
        assert recovered is not None, "bare failover never recovered"
        m = measure(beat.samples, fault_at=fault, surviving=None, verified_at=None,
                    interval=interval, observed_until=datetime.now(UTC))
        assert m.recovery_time is not None
        out.append(m.recovery_time)
        print(f"  bare {i + 1}: recovery {m.recovery_time:.3f}s", flush=True)
        back = runner.run(steady, loaded.inventory, extravars={}, timeout=900)
        assert back.ok, back.describe_failure()
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    Lab(ROOT, AnsibleRunner()).up("hot-warm")
    with tempfile.TemporaryDirectory(prefix="dalp-dr-bench-") as tmp:
        print(f"hot-warm failover bench, {args.runs} runs each, {os.cpu_count()} cores")
        drills = run_drills(args.runs, Path(tmp))
        bare = run_bare(args.runs)
    rec = statistics.median(d[0] for d in drills)
    wall = statistics.median(d[1] for d in drills)
    base = statistics.median(bare)
    phase_names = list(drills[0][2])
    print()
    print(f"{'figure':<44}{'median':>10}")
    print(f"{'drill: measured recovery time':<44}{rec:>9.3f}s")
    print(f"{'bare script: measured recovery time':<44}{base:>9.3f}s")
    print(f"{'orchestration overhead (drill - bare)':<44}{rec - base:>9.3f}s")
    print(f"{'ratio drill / bare':<44}{rec / base:>9.2f}x")
    print(f"{'drill wall time (no lab provisioning)':<44}{wall:>9.1f}s")
    for name in phase_names:
        print(f"{'  phase ' + name:<44}{statistics.median(d[2][name] for d in drills):>9.3f}s")
    print()
    steady = statistics.median(d[2]["steady_state"] for d in drills)
    checks = [("measured recovery <= 3 s", rec <= 3.0),
              ("orchestrated <= bare + 0.3 s", rec <= base + 0.3),
              ("whole drill <= 20 s", wall <= 20.0),
              ("steady state <= 10 s", steady <= 10.0)]
    for label, ok in checks:
        print(f"target {label:<36}{'met' if ok else 'MISSED'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
