"""Bench: every topology's drill once, in one table, against the speed targets.

    .venv/bin/python bench/all.py [--topology NAME ...] [--profile N] [--keep DIR]

For each topology: its lab up (not timed), then its drill once through the engine, as
`dalp-dr drill run` does. Prints, per topology, the drill's wall time (no lab provisioning),
its steady-state phase, the measured recovery time and every phase's duration; for hot-warm
also one bare failover (bench/bare_failover.sh, the same heartbeat and arithmetic) for the
orchestration overhead. Targets from issue 17 where it sets them (hot-warm); a "-" where no
target is set. ``--profile N`` prints each phase's N slowest tasks (from the run's own
Ansible events) and the time the phase spent outside any task: ansible-playbook start-up,
fork and connection overhead.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.hot_warm_failover import run_bare  # noqa: E402
from dalp_dr.adapters.ansible import AnsibleRunner  # noqa: E402
from dalp_dr.drill.engine import DrillEngine  # noqa: E402
from dalp_dr.history import open_store  # noqa: E402
from dalp_dr.lab import Lab  # noqa: E402
from dalp_dr.results import RunResult  # noqa: E402
from dalp_dr.spec import load_drill  # noqa: E402

DRILLS = {
    "hot-warm": "hot-warm-failover.yaml",
    "hot-cold": "hot-cold-restore.yaml",
    "cloud-native": "cloud-native-failover.yaml",
    "hot-hot": "hot-hot-site-loss.yaml",
}
# (figure, limit in seconds) per topology: issue 17's targets
TARGETS: dict[str, dict[str, float]] = {
    "hot-warm": {"wall": 20.0, "steady_state": 10.0, "overhead": 0.3},
}


@dataclass
class Figures:
    topology: str
    outcome: str
    wall: float
    recovery: float | None
    phases: dict[str, float]
    overhead: float | None = None
    profile: dict[str, list[tuple[str, float]]] = field(default_factory=dict)

    def value(self, figure: str) -> float | None:
        if figure == "wall":
            return self.wall
        if figure == "overhead":
            return self.overhead
        return self.phases.get(figure)


def _when(text: object) -> datetime | None:
    try:
        return datetime.fromisoformat(str(text))
    except ValueError:
        return None


def task_profile(run_dir: Path, phase: str, started: datetime, ended: datetime,
                 top: int) -> list[tuple[str, float]]:
    """The phase's ``top`` slowest tasks (host: task, seconds, summed over loops and
    retries), then the phase's time outside any task, from its Ansible events."""
    spans: dict[str, float] = {}
    busy: list[tuple[datetime, datetime]] = []
    for path in sorted((run_dir / "ansible" / phase).glob("*-runner_on_*.json")):
        data = json.loads(path.read_text()).get("event_data") or {}
        start, end = _when(data.get("start")), _when(data.get("end"))
        if start is None or end is None:
            continue
        key = f"{data.get('host')}: {data.get('task')}"
        spans[key] = spans.get(key, 0.0) + (end - start).total_seconds()
        busy.append((start, end))
    covered, edge = 0.0, started
    for start, end in sorted(busy):  # the union of the task windows (hosts run in parallel)
        start = max(start, edge)
        if end > start:
            covered += (end - start).total_seconds()
            edge = end
    outside = (ended - started).total_seconds() - covered
    slowest = sorted(spans.items(), key=lambda kv: -kv[1])[:top]
    return [*slowest, ("(outside any task: start-up, forks, connections)", outside)]


def run_topology(topology: str, results: Path, top: int) -> Figures:
    Lab(ROOT, AnsibleRunner()).up(topology)
    engine = DrillEngine(runner=AnsibleRunner(), results_dir=results)
    store = open_store(f"sqlite:///{results / 'history.sqlite'}")
    try:
        result: RunResult = engine.run(engine.prepare(load_drill(ROOT / "drills" /
                                                                 DRILLS[topology])),
                                       store=store, operator="bench")
    finally:
        store.close()
    assert result.ended_at is not None
    figures = Figures(
        topology=topology, outcome=result.outcome.value,
        wall=(result.ended_at - result.started_at).total_seconds(),
        recovery=result.measurements.recovery_time if result.measurements else None,
        phases={p.phase.value: p.duration for p in result.phases})
    if top:
        for p in result.phases:
            figures.profile[p.phase.value] = task_profile(
                results / result.run_id, p.phase.value, p.started_at, p.ended_at, top)
    return figures


def render(rows: list[Figures]) -> list[str]:
    phases = list(dict.fromkeys(name for row in rows for name in row.phases))
    width = 14
    lines = [f"{'figure (s)':<30}" + "".join(f"{r.topology:>{width}}" for r in rows)]

    def line(label: str, values: list[float | None], fmt: str = ".2f") -> str:
        cells = "".join(f"{'-' if v is None else format(v, fmt):>{width}}" for v in values)
        return f"{label:<30}{cells}"

    lines.append(f"{'outcome':<30}" + "".join(f"{r.outcome:>{width}}" for r in rows))
    lines.append(line("drill wall time", [r.wall for r in rows], ".1f"))
    lines.append(line("measured recovery", [r.recovery for r in rows], ".3f"))
    lines.append(line("orchestration overhead", [r.overhead for r in rows], ".3f"))
    for name in phases:
        lines.append(line(f"  phase {name}", [r.phases.get(name) for r in rows]))
    lines.append("")
    for row in rows:
        for figure, limit in TARGETS.get(row.topology, {}).items():
            value = row.value(figure)
            verdict = "-" if value is None else ("met" if value <= limit else "MISSED")
            shown = "-" if value is None else f"{value:.2f}"
            lines.append(f"target {row.topology} {figure} <= {limit:g} s: {shown} s "
                         f"{verdict}")
    for row in rows:
        for phase, tasks in row.profile.items():
            lines.append(f"{row.topology} {phase} ({row.phases[phase]:.2f} s):")
            lines.extend(f"    {seconds:7.3f}  {task}" for task, seconds in tasks)
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--topology", action="append", choices=sorted(DRILLS))
    parser.add_argument("--profile", type=int, default=0, metavar="N",
                        help="print each phase's N slowest tasks")
    parser.add_argument("--keep", type=Path, help="keep the runs' evidence here")
    args = parser.parse_args()
    chosen = args.topology or list(DRILLS)
    rows = []
    with tempfile.TemporaryDirectory(prefix="dalp-dr-bench-") as tmp:
        results = args.keep or Path(tmp)
        results.mkdir(parents=True, exist_ok=True)
        print(f"drill bench, one run per topology, {os.cpu_count()} cores", flush=True)
        for topology in chosen:
            figures = run_topology(topology, results / topology, args.profile)
            if topology == "hot-warm" and figures.recovery is not None:
                (bare,) = run_bare(1)
                figures.overhead = figures.recovery - bare
            print(f"  {topology}: {figures.outcome}, wall {figures.wall:.1f} s", flush=True)
            rows.append(figures)
    print()
    print("\n".join(render(rows)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
