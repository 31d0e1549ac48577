"""Bench: the hot-cold drill's restore (download + restore + WAL replay) against the raw floor.

    .venv/bin/python bench/hot_cold_restore.py [--scale 70]

Brings the hot-cold lab up, seeds site A with pgbench (scale 70 is about 1 GiB), takes a base
backup to the lab's S3 (moto), then on the same objects, in one run:
* the raw floor: boto3 download of the backup objects (download_file each, in parallel, with
  the same multipart settings as the drill), tar extract, start with the same
  restore_command, wait for promotion: the same work with no orchestration and no checks;
* the drill (drills/hot-cold-restore.yaml): its recover phase's download + restore + replay
  steps as the playbook timed them.
Prints both, the ratio (target: drill within 1.3x of the floor) and throughput.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from dalp_dr import s3_archive  # noqa: E402
from dalp_dr.adapters.ansible import AnsibleRunner  # noqa: E402
from dalp_dr.drill.engine import DrillEngine  # noqa: E402
from dalp_dr.history import open_store  # noqa: E402
from dalp_dr.inventory import Inventory  # noqa: E402
from dalp_dr.lab import Lab  # noqa: E402
from dalp_dr.spec import load_drill  # noqa: E402

DRILL = ROOT / "drills" / "hot-cold-restore.yaml"
INVENTORY = ROOT / "inventories" / "lab" / "hot-cold.yml"
PG = "/usr/lib/postgresql/15/bin"


def as_pg(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["runuser", "-u", "postgres", "--", *argv], check=True,
                          capture_output=True, text=True)


def raw_floor(inv: Inventory, cfg: dict[str, object], label: str) -> dict[str, float]:
    """download + extract + start/replay/promote with nothing but boto3, tar and pg_ctl."""
    s3 = s3_archive.client(cfg)
    root = Path(tempfile.mkdtemp(prefix="floor-", dir="/var/tmp"))
    shutil.chown(root, "postgres", "postgres")
    data = root / "data"
    manifest = s3_archive.read_manifest(s3, cfg, label)
    t0 = time.monotonic()
    with ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(lambda name: s3.download_file(
            cfg["bucket"], s3_archive.key(cfg, "basebackups", label, name), str(root / name),
            Config=s3_archive.TRANSFER), manifest["files"]))
    t1 = time.monotonic()
    as_pg("mkdir", "-m", "0700", str(data))
    for name in manifest["files"]:
        shutil.chown(root / name, "postgres", "postgres")
    as_pg("tar", "-xf", str(root / "base.tar"), "-C", str(data))
    as_pg("tar", "-xf", str(root / "pg_wal.tar"), "-C", str(data / "pg_wal"))
    t2 = time.monotonic()
    port = str(inv.variable("dalp_pg_port", host="site-cold"))
    (root / "site.conf").write_text(f"listen_addresses = '127.0.0.1'\nport = {port}\n")
    tool, conf, py = (inv.variable("dalp_s3_tool"), inv.variable("dalp_s3_config"),
                      inv.variable("dalp_s3_python"))
    with open(data / "postgresql.auto.conf", "a") as fh:
        fh.write(f"restore_command = '{py} {tool} --config {conf} wal-fetch %f %p'\n"
                 "recovery_target_action = 'promote'\narchive_mode = off\n")
    (data / "recovery.signal").touch()
    subprocess.run(["chown", "-R", "postgres:postgres", str(root)], check=True)
    sock = str(inv.variable("dalp_pg_socket_dir"))
    as_pg(f"{PG}/pg_ctl", "start", "-w", "-t", "3600", "-D", str(data), "-l",
          str(root / "log"))
    while as_pg(f"{PG}/psql", "-XAtq", "-h", sock, "-p", port, "-d", "postgres", "-c",
                "select pg_is_in_recovery()").stdout.strip() != "f":
        time.sleep(0.05)
    t3 = time.monotonic()
    as_pg(f"{PG}/pg_ctl", "stop", "-w", "-m", "immediate", "-D", str(data))
    shutil.rmtree(root)
    return {"download": t1 - t0, "restore": t2 - t1, "wal replay": t3 - t2}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--scale", type=int, default=70)
    args = parser.parse_args()
    runner = AnsibleRunner()
    Lab(ROOT, runner).up("hot-cold")
    inv = Inventory(INVENTORY)
    sock, port = str(inv.variable("dalp_pg_socket_dir")), str(inv.variable("dalp_pg_port",
                                                                           host="site-a"))
    print(f"seeding pgbench scale {args.scale} ...", flush=True)
    t = time.monotonic()
    as_pg(f"{PG}/pgbench", "-i", "-q", "-s", str(args.scale), "-h", sock, "-p", port, "dalp")
    print(f"  seeded in {time.monotonic() - t:.0f}s", flush=True)
    backup = runner.run(ROOT / "playbooks/hot-cold/backup.yml", INVENTORY, extravars={},
                        timeout=3600)
    assert backup.ok, backup.describe_failure()
    label = backup.artifact_data["dalp_backup"]["label"]
    size = int(backup.artifact_data["dalp_backup"]["bytes"])
    print(f"  base backup {label}: {size / 1048576:.0f} MiB", flush=True)
    cfg = {k: inv.variable(f"dalp_s3_{k}") for k in ("bucket", "prefix", "endpoint_url")}
    cfg.update(access_key_id=inv.variable("dalp_s3_access_key_id"),
               secret_access_key=inv.variable("dalp_s3_secret_access_key"))

    floor = raw_floor(inv, cfg, label)
    print(f"  raw floor: {json.dumps({k: round(v, 2) for k, v in floor.items()})}", flush=True)

    with tempfile.TemporaryDirectory() as tmp:
        engine = DrillEngine(runner=runner, results_dir=Path(tmp))
        store = open_store(f"sqlite:///{tmp}/h.sqlite")
        result = engine.run(engine.prepare(load_drill(DRILL)), store=store, operator="bench")
        store.close()
    assert result.outcome.value == "passed", (result.outcome, result.message)
    recover = next(p for p in result.phases if p.phase.value == "recover")
    steps = {s["step"]: float(s["seconds"]) for s in recover.report["dalp_phase_timings"]}

    keys = ("download", "checksums", "wal download", "restore", "wal replay")
    floor["checksums"] = 0.0  # the floor trusts what it downloaded
    floor["wal download"] = 0.0  # the floor fetches each WAL file during its replay
    drill_total = sum(steps[k] for k in keys)
    floor_total = sum(floor[k] for k in keys)
    print()
    print(f"{'step':<14}{'drill':>10}{'floor':>10}")
    for k in keys:
        print(f"{k:<14}{steps[k]:>9.2f}s{floor[k]:>9.2f}s")
    print(f"{'total':<14}{drill_total:>9.2f}s{floor_total:>9.2f}s")
    print(f"backup size {size / 1048576:.0f} MiB; drill download "
          f"{size / 1048576 / steps['download']:.0f} MiB/s, floor "
          f"{size / 1048576 / floor['download']:.0f} MiB/s")
    ratio = drill_total / floor_total
    verdict = "met" if ratio <= 1.3 else "MISSED"
    print(f"ratio drill / floor {ratio:.2f}x  target <= 1.3x: {verdict}")
    m = result.measurements
    assert m is not None
    print(f"drill recovery time {m.recovery_time}s, data-loss window {m.data_loss_window}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
