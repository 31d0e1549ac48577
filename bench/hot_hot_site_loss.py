"""Bench: the hot-hot site-loss drill over N runs on the two-site lab.

    .venv/bin/python bench/hot_hot_site_loss.py [--runs N]

Brings the hot-hot lab up (not timed) and runs drills/hot-hot-site-loss.yaml N times through
the engine, as `dalp-dr drill run` does (each run's steady state rebuilds site A). Prints
medians of site A's clients' recovery time and write outage, their data-loss window and lost
writes, the logical replication lag from A to B just before the loss, site B's clients'
disruption, and the drill's wall time. Target: A's clients recover within 3 s.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from dalp_dr.adapters.ansible import AnsibleRunner  # noqa: E402
from dalp_dr.drill.engine import DrillEngine  # noqa: E402
from dalp_dr.history import open_store  # noqa: E402
from dalp_dr.lab import Lab  # noqa: E402
from dalp_dr.spec import load_drill  # noqa: E402

DRILL = ROOT / "drills" / "hot-hot-site-loss.yaml"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    Lab(ROOT, AnsibleRunner()).up("hot-hot")
    rows: list[dict[str, float]] = []
    with tempfile.TemporaryDirectory(prefix="dalp-dr-bench-") as tmp:
        engine = DrillEngine(runner=AnsibleRunner(), results_dir=Path(tmp))
        store = open_store(f"sqlite:///{Path(tmp) / 'history.sqlite'}")
        print(f"hot-hot site-loss bench, {args.runs} runs, {os.cpu_count()} cores")
        for i in range(args.runs):
            result = engine.run(engine.prepare(load_drill(DRILL)), store=store, operator="bench")
            assert result.outcome.value == "passed", (result.outcome, result.message)
            a, b = result.populations["site-a"], result.populations["site-b"]
            inject = next(p for p in result.phases if p.phase.value == "inject")
            lag = inject.report.get("dalp_replication_lag_at_fault") or {}
            assert result.ended_at is not None
            row = {"a_recovery": a.recovery_time, "a_outage": a.write_outage,
                   "a_window": a.data_loss_window, "a_lost": a.lost_writes,
                   "lag_s": float(lag.get("seconds", "nan")),
                   "lag_bytes": float(lag.get("bytes", "nan")),
                   "b_outage": b.write_outage,
                   "wall": (result.ended_at - result.started_at).total_seconds(),
                   **{f"phase {p.phase.value}": p.duration for p in result.phases}}
            rows.append({k: float(v) for k, v in row.items() if v is not None})
            print(f"  run {i + 1}: A recovery {a.recovery_time:.3f}s, window "
                  f"{a.data_loss_window:.3f}s, lost {a.lost_writes}, lag at fault "
                  f"{row['lag_s']:.3f}s/{row['lag_bytes']:.0f}B, wall {row['wall']:.1f}s",
                  flush=True)
        store.close()

    def med(key: str) -> float:
        return statistics.median(r[key] for r in rows if key in r)

    print()
    print(f"{'figure (median over ' + str(args.runs) + ' runs)':<52}{'value':>12}")
    for label, key, unit in [
            ("site A clients: recovery time", "a_recovery", "s"),
            ("site A clients: write outage", "a_outage", "s"),
            ("site A clients: data-loss window", "a_window", "s"),
            ("site A clients: lost acknowledged writes", "a_lost", ""),
            ("replication lag A -> B just before the loss", "lag_s", "s"),
            ("replication lag A -> B just before the loss (bytes)", "lag_bytes", ""),
            ("site B clients: write outage", "b_outage", "s"),
            ("drill wall time", "wall", "s")]:
        print(f"{label:<52}{med(key):>11.3f}{unit}")
    for key in sorted(k for k in rows[0] if k.startswith("phase ")):
        print(f"{'  ' + key:<52}{med(key):>11.3f}s")
    print()
    ok = med("a_recovery") <= 3.0
    print(f"target {'site A clients recover within 3 s':<45}{'met' if ok else 'MISSED'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
