"""Bench: cloud-native failover on the Patroni lab against Patroni's bound, one run.

    .venv/bin/python bench/cloud_native_failover.py [--runs N]

Brings the cloud-native lab up (not timed), reads the cluster's live ttl and loop_wait from
Patroni (GET /config) and runs N times each, through the engine as `dalp-dr drill run` does:
* drills/cloud-native-node-loss.yaml: Patroni and PostgreSQL killed together, so the
  leader key must expire: this is the case Patroni's bound ttl + loop_wait describes;
* drills/cloud-native-failover.yaml: the postmaster killed, Patroni alive;
* drills/cloud-native-switchover.yaml: the planned switchover's write outage (last write
  acknowledged before writes stopped -> first acknowledged after; the request itself comes
  earlier, while writes still work).
Prints medians of the measured recovery time and of each step of the recovery timeline,
next to the bound, and the targets: failover recovery within 2 s of ttl + loop_wait,
switchover write outage < 2 s.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import urllib.request
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from dalp_dr.adapters.ansible import AnsibleRunner  # noqa: E402
from dalp_dr.drill.engine import DrillEngine  # noqa: E402
from dalp_dr.history import open_store  # noqa: E402
from dalp_dr.inventory import Inventory  # noqa: E402
from dalp_dr.lab import Lab  # noqa: E402
from dalp_dr.results import RunResult  # noqa: E402
from dalp_dr.spec import load_drill  # noqa: E402

DRILLS = {"node loss": ROOT / "drills" / "cloud-native-node-loss.yaml",
          "postmaster kill": ROOT / "drills" / "cloud-native-failover.yaml",
          "switchover": ROOT / "drills" / "cloud-native-switchover.yaml"}
STEPS = [("fault -> leader key gone", None, "leader key gone"),
         ("leader key gone -> new leader elected", "leader key gone", "new leader elected"),
         ("new leader elected -> promoted", "new leader elected", "new primary promoted"),
         ("promoted -> first client ack", "new primary promoted",
          "first client write acknowledged"),
         ("fault -> cluster whole", None, "cluster whole")]


def live_timings() -> tuple[float, float]:
    """ttl and loop_wait as the running cluster has them (DCS config through Patroni)."""
    inv = Inventory(ROOT / "inventories" / "lab" / "cloud-native.yml")
    url = str(inv.variable("dalp_rest_url", host="pg1"))
    with urllib.request.urlopen(url + "/config", timeout=5) as reply:
        config = json.load(reply)
    return float(config["ttl"]), float(config["loop_wait"])


def steps(result: RunResult) -> dict[str, float]:
    assert result.measurements is not None and result.measurements.fault_at is not None
    fault = result.measurements.fault_at
    at: dict[str, datetime] = {}
    for event in result.timeline:
        at.setdefault(event.name, event.at)
    out = {}
    for label, start, end in STEPS:
        begin = fault if start is None else at.get(start)
        if begin is not None and end in at:
            out[label] = (at[end] - begin).total_seconds()
    return out


def run(name: str, n: int, engine: DrillEngine, store: object) -> list[RunResult]:
    results = []
    for i in range(n):
        prepared = engine.prepare(load_drill(DRILLS[name]))
        result = engine.run(prepared, store=store, operator="bench")  # type: ignore[arg-type]
        assert result.outcome.value == "passed", (name, result.outcome, result.message)
        assert result.measurements and result.measurements.recovery_time is not None
        print(f"  {name} {i + 1}: recovery {result.measurements.recovery_time:.3f}s, "
              f"lost {result.measurements.lost_writes}", flush=True)
        results.append(result)
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    Lab(ROOT, AnsibleRunner()).up("cloud-native")
    ttl, loop_wait = live_timings()
    bound = ttl + loop_wait
    by_drill: dict[str, list[RunResult]] = {}
    with tempfile.TemporaryDirectory(prefix="dalp-dr-bench-") as tmp:
        engine = DrillEngine(runner=AnsibleRunner(), results_dir=Path(tmp))
        store = open_store(f"sqlite:///{Path(tmp) / 'history.sqlite'}")
        print(f"cloud-native bench, {args.runs} runs each, {os.cpu_count()} cores; live "
              f"ttl {ttl:g} s, loop_wait {loop_wait:g} s: bound ttl + loop_wait = {bound:g} s")
        for name in DRILLS:
            by_drill[name] = run(name, args.runs, engine, store)
        store.close()

    def median_of(name: str, figure: str) -> float:
        return float(statistics.median(getattr(r.measurements, figure)
                                       for r in by_drill[name]))

    print()
    print(f"{'figure (median over ' + str(args.runs) + ' runs)':<48}{'node loss':>11}"
          f"{'pm kill':>10}{'switchover':>12}")
    names = list(DRILLS)
    row = [median_of(n, "recovery_time") for n in names]
    outage = [median_of(n, "write_outage") for n in names]
    print(f"{'measured recovery (fault -> first client ack)':<48}" +
          "".join(f"{v:>{w}.3f}s" for v, w in zip(row, (10, 9, 11), strict=True)))
    print(f"{'client write outage (last ack -> next ack)':<48}" +
          "".join(f"{v:>{w}.3f}s" for v, w in zip(outage, (10, 9, 11), strict=True)))
    for label, _start, _end in STEPS:
        cells = []
        for name, width in zip(names, (10, 9, 11), strict=True):
            values = [s[label] for s in map(steps, by_drill[name]) if label in s]
            cells.append(f"{statistics.median(values):>{width}.3f}s" if values
                         else f"{'-':>{width + 1}}")
        print(f"{'  ' + label:<48}" + "".join(cells))
    lost = sum((r.measurements.lost_writes or 0) if r.measurements else 0
               for rs in by_drill.values() for r in rs)
    print(f"{'acknowledged writes lost (all runs)':<48}{lost:>11}")
    print(f"{'Patroni bound ttl + loop_wait (live config)':<48}{bound:>10.3f}s")
    node_loss, pm_kill, _ = row
    switchover = outage[2]
    print()
    checks = [(f"node-loss recovery <= bound + 2 s ({bound + 2:g} s)", node_loss <= bound + 2),
              (f"postmaster-kill recovery <= bound + 2 s ({bound + 2:g} s)",
               pm_kill <= bound + 2),
              ("switchover write outage < 2 s", switchover < 2.0),
              ("no acknowledged write lost", lost == 0)]
    for label, ok in checks:
        print(f"target {label:<52}{'met' if ok else 'MISSED'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
