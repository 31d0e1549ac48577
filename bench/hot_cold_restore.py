"""Bench: WAL-heavy hot-cold restore, per backup tool: the drill, the tool by hand, the floor.

    .venv/bin/python bench/hot_cold_restore.py [--backend NAME ...] [--wal-mib 1100] [--json]

For each backend (barman-cloud, pgBackRest), in one run:
1. its lab up (not timed), a small pgbench seed, a base backup with the tool
   (playbooks/hot-cold/backup.yml);
2. at least ``--wal-mib`` MiB of WAL from pgbench on site A (bench/wal_load.py), measured as
   the pg_current_wal_lsn() distance, pg_switch_wal(), then a wait (deadline) until the
   archiver has archived that segment;
3. by hand: the tool's own restore and restore_command, outside dalp-dr
   (bench/restore_by_hand.py), into a scratch data directory started on the cold site's port;
   download/restore and WAL replay (start -> pg_is_in_recovery() false) timed apart;
4. the floor: a copy of step 3's restored data directory taken before it started (so the same
   backup, restored by the tool, untimed) and every archived WAL segment fetched beforehand
   to a local directory with the tool (untimed), replayed with restore_command 'cp DIR/%f %p';
5. the drill (the backend's drill file, through DrillEngine): its recover phase's own timings;
6. the lab down.
Prints one table (rows per backend x drill, by hand, floor) and the ratios against the
targets: the drill's total restore time (download/restore + WAL replay) within 1.2x of the
tool's own run by hand; the WAL replay within 1.5x of the local-disk floor (pgBackRest's
asynchronous archive-get, by hand and in the drill; barman-cloud's drill, whose
restore_command fetches ahead in parallel as CloudNativePG's does; barman-cloud by hand has
no target: barman-cloud-wal-restore fetches one file per process, nothing ahead).
``--json`` prints the same figures as JSON instead of the table; progress goes to stderr.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import date
from pathlib import Path
from typing import Any, NamedTuple

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench import wal_load  # noqa: E402
from bench.restore_by_hand import by_hand  # noqa: E402
from bench.scratch_cluster import (  # noqa: E402
    PG,
    Site,
    as_pg,
    dir_bytes,
    lsn,
    scratch_root,
)
from dalp_dr import object_store  # noqa: E402
from dalp_dr.adapters.ansible import AnsibleRunner  # noqa: E402
from dalp_dr.drill.engine import DrillEngine  # noqa: E402
from dalp_dr.history import open_store  # noqa: E402
from dalp_dr.inventory import Inventory  # noqa: E402
from dalp_dr.lab import Lab  # noqa: E402
from dalp_dr.spec import load_drill  # noqa: E402


class Backend(NamedTuple):
    lab: str
    inventory: str
    drill: str


# backend -> (lab, inventory, drill file): the one place to change when a lab is renamed
BACKENDS: dict[str, Backend] = {
    "barman-cloud": Backend("hot-cold", "inventories/lab/hot-cold.yml",
                            "drills/hot-cold-restore.yaml"),
    "pgbackrest": Backend("hot-cold-pgbackrest", "inventories/lab/hot-cold-pgbackrest.yml",
                          "drills/hot-cold-pgbackrest-restore.yaml"),
}

WAL_PARALLEL = {"barman-cloud": "dalp_barman_wal_parallel",
                "pgbackrest": "dalp_pgbackrest_archive_get_processes"}
"""the inventory variable of the drill's WAL fetch processes (the by-hand run uses the same)"""
DRILL_TARGET = 1.2
"""the drill's total restore time within this many times the tool's own run by hand"""
REPLAY_TARGET = 1.5
"""WAL replay within this many times the local-disk floor, for the rows below"""
REPLAY_TARGETED = {("pgbackrest", "drill"), ("pgbackrest", "by hand"), ("barman-cloud", "drill")}
FETCH_PARALLEL = 8
"""the floor's untimed WAL fetch: tool processes at once"""
MIB = 1048576


@dataclass
class Row:
    backend: str
    run: str
    """drill, by hand or floor"""
    restore: float | None
    """download/restore seconds (None for the floor: it starts from a copy)"""
    restore_bytes: int | None
    replay: float
    replay_bytes: int
    """WAL replayed: where redo ended, from the WAL load's start"""
    extra: dict[str, float] = field(default_factory=dict)

    @property
    def total(self) -> float:
        return (self.restore or 0.0) + self.replay


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def by_hand_and_floor(backend: str, inv: Inventory, backup: dict[str, Any],
                      load: wal_load.WalLoad, timeout: float) -> list[Row]:
    sock = str(inv.variable("dalp_pg_socket_dir"))
    port_a = int(inv.variable("dalp_pg_port", host="site-a"))
    port = int(inv.variable("dalp_pg_port", host="site-cold"))  # free until the drill
    scratch = scratch_root()
    tool = by_hand(backend, str(inv.variable("dalp_lab_root")), scratch,
                   int(inv.variable(WAL_PARALLEL[backend])))
    hand, floor = Site(scratch / "hand", port, sock), Site(scratch / "floor", port, sock)
    wal_dir = scratch / "floor-wal"
    try:
        hand.make()
        restore = tool.restore(str(backup["label"]), hand)
        restored = dir_bytes(hand.data)
        say(f"  by hand: restored {restored / MIB:.0f} MiB in {restore:.2f} s")
        hand.copy_to(floor)  # the floor's copy, before the restored cluster ever starts
        as_pg("mkdir", "-m", "0700", str(wal_dir))
        names = wal_load.segments(str(backup["start_segment"]),
                                  wal_load.last_archived(sock, port_a)[:24],
                                  wal_load.segments_per_log(sock, port_a))
        started = time.monotonic()
        with ThreadPoolExecutor(max_workers=FETCH_PARALLEL) as pool:
            list(pool.map(lambda name: tool.fetch(name, wal_dir / name), names))
        say(f"  floor: {len(names)} WAL segments fetched to local disk in "
            f"{time.monotonic() - started:.1f} s (untimed)")
        hand.prepare(tool.restore_command())
        replay, end = hand.replay(tool.server_env(), timeout)
        say(f"  by hand: WAL replay {replay:.2f} s")
        hand.stop()  # the port is the floor's now
        tool.close(60.0)  # nothing of the tool's still fetching beside the floor's replay
        floor.prepare(f"cp {object_store.restore_command_words(str(wal_dir))}/%f %p")
        floor_replay, floor_end = floor.replay(None, timeout)
        say(f"  floor: WAL replay {floor_replay:.2f} s")
    finally:
        hand.stop()
        floor.stop()
        tool.close(60.0)
        shutil.rmtree(scratch)
    return [Row(backend, "by hand", restore, restored, replay, end - load.start_lsn),
            Row(backend, "floor", None, None, floor_replay, floor_end - load.start_lsn)]


def drill_row(backend: str, runner: AnsibleRunner, load: wal_load.WalLoad) -> Row:
    with tempfile.TemporaryDirectory(prefix="dalp-dr-bench-") as tmp:
        engine = DrillEngine(runner=runner, results_dir=Path(tmp))
        store = open_store(f"sqlite:///{tmp}/h.sqlite")
        try:
            result = engine.run(engine.prepare(load_drill(ROOT / BACKENDS[backend].drill)),
                                store=store, operator="bench")
        finally:
            store.close()
    if result.outcome.value != "passed":
        raise RuntimeError(f"{backend} drill: {result.outcome.value}: {result.message}")
    recover = next(p for p in result.phases if p.phase.value == "recover")
    steps = {s["step"]: s for s in recover.report["dalp_phase_timings"]}
    restore = next(s for name, s in steps.items() if name.startswith("download and restore"))
    extra = {"recover phase": recover.duration}
    extra.update({name: float(s["seconds"]) for name, s in steps.items()
                  if name.startswith(("verify", "provision"))})
    end = lsn(recover.report["dalp_restore"]["replay"]["redo_done"])
    return Row(backend, "drill", float(restore["seconds"]), int(restore["bytes"]),
               float(steps["wal replay"]["seconds"]), end - load.start_lsn, extra)


def run_backend(backend: str, args: argparse.Namespace) -> dict[str, Any]:
    runner, spec = AnsibleRunner(), BACKENDS[backend]
    inv = Inventory(ROOT / spec.inventory)
    sock = str(inv.variable("dalp_pg_socket_dir"))
    port = int(inv.variable("dalp_pg_port", host="site-a"))
    lab = Lab(ROOT, runner)
    say(f"{backend}: lab {spec.lab} up (not timed)")
    try:
        lab.up(spec.lab)
        as_pg(f"{PG}/pgbench", "-i", "-q", "-s", str(args.seed_scale), "-h", sock, "-p",
              str(port), "dalp")
        done = runner.run(ROOT / "playbooks/hot-cold/backup.yml", ROOT / spec.inventory,
                          extravars={}, timeout=3600)
        if not done.ok:
            raise RuntimeError(f"{backend} backup: {done.describe_failure()}")
        backup = dict(done.artifact_data["dalp_backup"])
        say(f"  base backup {backup['label']} from {backup['start_segment']}")
        load = wal_load.generate(sock, port, args.wal_mib, args.timeout)
        say(f"  WAL: {load.bytes / MIB:.0f} MiB in {load.seconds:.0f} s (pgbench -i -s "
            f"{load.init_scale}: {load.init_bytes / MIB:.0f} MiB, then {load.rounds} x 10 s "
            f"of writes); last segment {load.last_segment}")
        load.archive_wait = wal_load.wait_archived(sock, port, load.last_segment, args.timeout)
        say(f"  archived {load.archive_wait:.0f} s after the switch")
        rows = by_hand_and_floor(backend, inv, backup, load, args.timeout)
        say(f"  drill {spec.drill}")
        rows.insert(0, drill_row(backend, runner, load))
    finally:
        say(f"  lab {spec.lab} down")
        lab.down(spec.lab)
    return {"backup": {k: backup.get(k) for k in ("label", "start_segment")},
            "wal": {"bytes": load.bytes, "mib": round(load.bytes / MIB, 1),
                    "generate_s": round(load.seconds, 1), "init_scale": load.init_scale,
                    "init_bytes": load.init_bytes, "write_rounds": load.rounds,
                    "archive_wait_s": round(load.archive_wait, 1)},
            "rows": rows, "ratios": ratios(backend, rows)}


def ratios(backend: str, rows: list[Row]) -> list[dict[str, Any]]:
    by = {r.run: r for r in rows}
    found: list[dict[str, Any]] = [{
        "figure": "drill / by hand, total restore time",
        "ratio": by["drill"].total / by["by hand"].total, "target": DRILL_TARGET}]
    if "verify (pgbackrest verify)" in by["drill"].extra:
        found.append({"figure": "drill / by hand, total with the drill's verify",
                      "ratio": (by["drill"].total + by["drill"].extra[
                          "verify (pgbackrest verify)"]) / by["by hand"].total,
                      "target": None})
    for run in ("drill", "by hand"):
        found.append({"figure": f"{run} WAL replay / floor",
                      "ratio": by[run].replay / by["floor"].replay,
                      "target": REPLAY_TARGET if (backend, run) in REPLAY_TARGETED else None})
    for r in found:
        r["ratio"] = round(r["ratio"], 2)
        r["verdict"] = ("-" if r["target"] is None
                        else "met" if r["ratio"] <= r["target"] else "MISSED")
    return found


def render(report: dict[str, Any]) -> list[str]:
    lines = [f"WAL-heavy restore bench, {report['date']}, {report['cores']} cores", ""]
    head = (f"{'backend':<14}{'run':<9}{'restore s':>10}{'replay s':>10}{'total s':>9}"
            f"{'restore MiB/s':>15}{'replay MiB/s':>14}{'backup MiB':>12}{'WAL MiB':>9}")
    body = [head]
    for name, fig in report["backends"].items():
        wal = fig["wal"]
        lines.append(f"{name}: base backup {fig['backup']['label']}, WAL {wal['mib']:.0f} MiB "
                     f"(pgbench -i -s {wal['init_scale']}: {wal['init_bytes'] / MIB:.0f} MiB, "
                     f"then {wal['write_rounds']} x 10 s of writes), archived "
                     f"{wal['archive_wait_s']:.0f} s after the switch")
        for r in fig["rows"]:
            restore = "-" if r.restore is None else f"{r.restore:.2f}"
            rate, size = ("-", "-") if r.restore is None or not r.restore_bytes else (
                f"{r.restore_bytes / MIB / r.restore:.1f}", f"{r.restore_bytes / MIB:.0f}")
            body.append(f"{name:<14}{r.run:<9}{restore:>10}{r.replay:>10.2f}{r.total:>9.2f}"
                        f"{rate:>15}{r.replay_bytes / MIB / r.replay:>14.1f}{size:>12}"
                        f"{r.replay_bytes / MIB:>9.0f}")
    lines += ["", *body, ""]
    for name, fig in report["backends"].items():
        drill = fig["rows"][0]
        lines.append(f"{name} drill, outside the table: " + ", ".join(
            f"{k} {v:.2f} s" for k, v in drill.extra.items()))
    lines.append("")
    for name, fig in report["backends"].items():
        for r in fig["ratios"]:
            verdict = "(no target)" if r["target"] is None else \
                f"target <= {r['target']:g}x: {r['verdict']}"
            lines.append(f"{name:<14}{r['figure']:<48}{r['ratio']:>6.2f}x  {verdict}")
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--backend", action="append", choices=sorted(BACKENDS))
    parser.add_argument("--wal-mib", type=int, default=1100,
                        help="WAL to generate after the base backup (MiB)")
    parser.add_argument("--seed-scale", type=int, default=5,
                        help="pgbench scale of the seed in the base backup")
    parser.add_argument("--timeout", type=float, default=1800.0,
                        help="deadline of each wait: WAL load, archiving, a replay (s)")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()
    report: dict[str, Any] = {"date": date.today().isoformat(), "cores": os.cpu_count(),
                              "wal_mib": args.wal_mib, "backends": {}}
    for backend in args.backend or list(BACKENDS):
        report["backends"][backend] = run_backend(backend, args)
    if args.json:
        for fig in report["backends"].values():
            fig["rows"] = [{**asdict(r), "total": r.total} for r in fig["rows"]]
        print(json.dumps(report, indent=2))
    else:
        print("\n".join(render(report)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
