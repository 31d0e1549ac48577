"""Bench: `dalp-dr export verify` on a bundle holding a ~1 GiB evidence file.

    .venv/bin/python bench/bundle_verify.py [--size-mib 1024] [--content zeros|random]

Records one sealed run whose evidence directory holds one big file (written in 1 MiB chunks:
zeros, which gzip shrinks about a thousand times, the shape of a decompression bomb; or
random bytes), writes a genuine signed bundle of it with the real writer (in a child
process) and runs, as processes the way an operator runs them, with the child's own peak
memory (ru_maxrss from wait4):

* baseline: `dalp-dr export verify` on a tiny bundle (four small runs): what a Python
  interpreter that imports dalp_dr and verifies anything needs;
* `dalp-dr export verify` on the big bundle (it must verify: exit 0).

Target: the big verify under 100 MB peak RSS, however large the members. Not a timed test;
it prints figures.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from dalp_dr.export import bundle, keys  # noqa: E402
from dalp_dr.results import Outcome  # noqa: E402
from tests.factories import fill_history, make_run, record_runs, select  # noqa: E402

TARGET_MB = 100
MIB = 1 << 20


def write_big_history(work: Path, size_mib: int, content: str) -> str:
    """One sealed run whose evidence holds a file of ``size_mib`` MiB; returns the store."""
    url = f"sqlite:///{work / 'results' / 'history.sqlite'}"
    run = make_run(work, "20260701T030000Z-b1gb1g", "hot-warm-failover",
                   datetime(2026, 7, 1, 3, tzinfo=UTC), Outcome.PASSED, 1.5)
    zeros = bytes(MIB)
    with (Path(run.evidence_dir) / "pg_wal-archive.bin").open("wb") as fh:
        for _ in range(size_mib):
            fh.write(zeros if content == "zeros" else os.urandom(MIB))
    record_runs(url, [run])  # sealing hashes the evidence (in chunks)
    return url


def write_bundle_child(url: str, destination: str, key_directory: str) -> None:
    bundle.write_bundle(select(url), Path(destination), Path(key_directory), [])


def run_measured(*args: str) -> tuple[float, float, str]:
    """Wall seconds, the child's own peak RSS in MB (wait4) and its output."""
    started = time.perf_counter()
    proc = subprocess.Popen([sys.executable, *args], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT,
                            env=dict(os.environ, DALP_DR_RESULTS=str(ROOT / "results")))
    assert proc.stdout is not None
    output = proc.stdout.read().decode(errors="replace")
    _pid, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{args}: exit {os.waitstatus_to_exitcode(status)}\n{output[-2000:]}")
    return elapsed, usage.ru_maxrss / 1024, output


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--content", choices=["zeros", "random"], default="zeros")
    parser.add_argument("--write-bundle", nargs=3, metavar=("URL", "DEST", "KEYS"),
                        help=argparse.SUPPRESS)  # the child that writes the big bundle
    args = parser.parse_args()
    if args.write_bundle:
        write_bundle_child(*args.write_bundle)
        return
    work = Path(tempfile.mkdtemp(prefix="dalp-dr-bench-verify-"))
    try:
        keydir = work / "keys"
        keys.init(keydir)
        tiny_work = work / "tiny"
        tiny = tiny_work / "tiny.tar.gz"
        bundle.write_bundle(select(fill_history(tiny_work)), tiny, keydir, [])

        started = time.perf_counter()
        big_work = work / "big"
        url = write_big_history(big_work, args.size_mib, args.content)
        print(f"history: one sealed run with {args.size_mib} MiB of {args.content} evidence "
              f"in {time.perf_counter() - started:.1f} s (not timed below)")
        big = work / "big.tar.gz"
        write_t, write_m, _ = run_measured(__file__, "--write-bundle", url, str(big),
                                           str(keydir))
        shutil.rmtree(big_work)  # the bundle stands alone
        print(f"bundle written by the real writer in {write_t:.1f} s (peak {write_m:.0f} MB, "
              f"not part of the target): {big.stat().st_size / 1e6:.1f} MB on disk")

        cli = ["-m", "dalp_dr", "export", "verify", "--keys", str(keydir)]
        base_t, base_m, _ = run_measured(*cli, str(tiny))
        big_t, big_m, output = run_measured(*cli, str(big))
        assert "bundle intact: 1 records" in output, output
        rate = args.size_mib / max(big_t - base_t, 1e-6)
        print()
        print(f"{'':44} {'time':>8} {'peak RSS':>9}   target")
        print(f"{'baseline: export verify, tiny bundle':44} {base_t:7.2f}s {base_m:6.0f} MB")
        print(f"{f'export verify, {args.size_mib} MiB member ({args.content})':44} "
              f"{big_t:7.2f}s {big_m:6.0f} MB   < {TARGET_MB} MB: "
              f"{'ok' if big_m < TARGET_MB else 'MISSED'}")
        print(f"{'  over baseline':44} {big_t - base_t:7.2f}s {big_m - base_m:+6.0f} MB   "
              f"({rate:.0f} MiB/s hashed)")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
