"""Bench: drills on many environments at once, and the collection's cost per drill.

    .venv/bin/python bench/fleet.py [--runs N] [--sizes 1,2,4] [--keep DIR]

Brings up four named hot-warm labs (``lab up hot-warm --name bench-K``, not timed), then:

* **Fleet**: for each size N, the hot-warm failover drill on N environments started at the
  same moment (``dalp-dr drill run`` each, one history store); the wall time until the last
  ends, the slowest drill, and the median recovery time. The ratio against N = 1 is what
  this 2-core machine gives: ideal would be 1.0 (environments are independent), and N
  drills' playbooks and heartbeats share two cores.
* **Collection**: on one environment, ``--runs`` times each and alternating, the drill as
  ``dalp-dr drill run`` and as an Ansible job (``ansible-playbook`` of a playbook with the
  ``dalp.dr.drill`` task, the collection installed), both timed from process start to exit.
  The difference is the collection path's overhead per drill (ansible-playbook's start, the
  module's packaging, the result's trip back).

The labs are taken down at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from dalp_dr.collection import build  # noqa: E402

DRILL = ROOT / "drills" / "hot-warm-failover.yaml"
BIN = Path(sys.executable).parent
JOB = """\
- name: One drill, one job
  hosts: localhost
  gather_facts: false
  tasks:
    - name: Run the drill
      dalp.dr.drill:
        drill: "{drill}"
"""


def dalp(*args: str, env: dict[str, str] | None = None) -> dict[str, Any]:
    done = subprocess.run([sys.executable, "-m", "dalp_dr", *args, "--json"], cwd=ROOT,
                          env=env, capture_output=True, text=True, check=False, timeout=900)
    if done.returncode != 0:
        raise SystemExit(f"dalp-dr {' '.join(args)}: exit {done.returncode}\n{done.stderr}")
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def aimed(lab: dict[str, Any], folder: Path) -> Path:
    drill = yaml.safe_load(DRILL.read_text())
    drill["name"] = f"bench-{lab['name']}"
    drill["inventory"], drill["environment"] = lab["inventory"], lab["environment"]
    for phase in drill["phases"].values():
        phase["playbook"] = str((DRILL.parent / phase["playbook"]).resolve())
    path = folder / f"{lab['name']}.yaml"
    path.write_text(yaml.safe_dump(drill, sort_keys=False))
    return path


def fleet(drills: list[Path], env: dict[str, str]) -> tuple[float, float, float]:
    """N drills at once: (wall time of all, slowest drill's wall, median recovery)."""
    started = time.monotonic()
    procs = [(time.monotonic(), subprocess.Popen(
        [sys.executable, "-m", "dalp_dr", "drill", "run", str(d), "--json"], cwd=ROOT,
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)) for d in drills]
    walls, recoveries = [], []
    for began, proc in procs:
        out, err = proc.communicate(timeout=900)
        walls.append(time.monotonic() - began)
        if proc.returncode != 0:
            raise SystemExit(f"drill failed (exit {proc.returncode}): {err[-2000:]}")
        recoveries.append(json.loads(out)["measurements"]["recovery_time"])
    return time.monotonic() - started, max(walls), statistics.median(recoveries)


def timed(argv: list[str], env: dict[str, str], cwd: Path) -> float:
    started = time.monotonic()
    done = subprocess.run(argv, env=env, cwd=cwd, capture_output=True, text=True,
                          check=False, timeout=900)
    if done.returncode != 0:
        raise SystemExit(f"{argv[0]}: exit {done.returncode}\n{done.stdout[-2000:]}"
                         f"{done.stderr[-2000:]}")
    return time.monotonic() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--sizes", default="1,2,4")
    parser.add_argument("--keep", type=Path, help="keep the results in DIR")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    work = args.keep or Path(tempfile.mkdtemp(prefix="dalp-dr-bench-fleet-"))
    work.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, DALP_DR_RESULTS=str(work / "results"),
               DALP_DR_STORE=f"sqlite:///{work / 'history.sqlite'}")
    names = [f"bench-{k}" for k in range(1, max(sizes) + 1)]
    print(f"labs up: {', '.join(names)} (not timed)", flush=True)
    labs = {name: dalp("lab", "up", "hot-warm", "--name", name) for name in names}
    # the named labs' inventories live outside the project
    env["DALP_DR_ALLOWED_DIRS"] = os.pathsep.join(lab["root"] for lab in labs.values())
    try:
        (work / "drills").mkdir(exist_ok=True)
        drills = [aimed(labs[name], work / "drills") for name in names]
        rows = []
        for n in sizes:
            wall, slowest, recovery = fleet(drills[:n], env)
            rows.append((n, wall, slowest, recovery))
            print(f"  N={n}: all done in {wall:.1f} s, slowest drill {slowest:.1f} s, "
                  f"median recovery {recovery:.3f} s", flush=True)
        base = rows[0][1]
        print("\nenvironments at once | wall (s) | vs N=1 | per drill (s) | median recovery")
        for n, wall, _, recovery in rows:
            print(f"{n:>20} | {wall:8.1f} | {wall / base:6.2f} | {wall / n:13.1f} | "
                  f"{recovery:.3f} s")

        collections = work / "collections"
        artifact = build(ROOT, work / "dist")
        subprocess.run([str(BIN / "ansible-galaxy"), "collection", "install", str(artifact),
                        "-p", str(collections), "--force"], check=True, capture_output=True)
        job = work / "job.yml"
        job.write_text(JOB.format(drill=drills[0]))
        job_env = dict(env, ANSIBLE_COLLECTIONS_PATH=str(collections),
                       PATH=f"{BIN}:{env.get('PATH', '')}")
        direct, through = [], []
        for i in range(args.runs):
            direct.append(timed([sys.executable, "-m", "dalp_dr", "drill", "run",
                                 str(drills[0]), "--json"], env, ROOT))
            through.append(timed([str(BIN / "ansible-playbook"), "-i", "localhost,", "-c",
                                  "local", "-e", f"ansible_python_interpreter={sys.executable}",
                                  str(job)], job_env, work))
            print(f"  run {i + 1}: drill run {direct[-1]:.1f} s, dalp.dr.drill "
                  f"{through[-1]:.1f} s", flush=True)
        d, t = statistics.median(direct), statistics.median(through)
        print(f"\ncollection path: median {t:.1f} s against drill run {d:.1f} s: "
              f"+{t - d:.2f} s per drill ({t / d:.2f}x)")
    finally:
        for name in names:
            dalp("lab", "down", "hot-warm", "--name", name)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
