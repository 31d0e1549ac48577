"""WAL for the restore bench: pgbench writes on a lab's site A until at least N MiB of WAL
have been written since a given LSN, the segment switched, and the archiver caught up.

The WAL comes from a database of its own (``bench_wal``: the drill's verify checks ``dalp``
only) in two parts: ``pgbench -i`` at a scale for about half the volume (bulk loads and index
builds), then pgbench's TPC-B-like writes in 10 s rounds until the volume is reached (small
updates, full-page images after each checkpoint). The volume is the LSN distance, measured
with pg_current_wal_lsn() on the server.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

from bench.scratch_cluster import PG, as_pg, lsn, psql

DB = "bench_wal"
MIB = 1048576


@dataclass
class WalLoad:
    start_lsn: int
    end_lsn: int
    """pg_switch_wal()'s LSN: the end of the last segment the archive must hold"""
    last_segment: str
    init_scale: int
    init_bytes: int
    rounds: int
    seconds: float
    archive_wait: float = 0.0

    @property
    def bytes(self) -> int:
        return self.end_lsn - self.start_lsn


def current_lsn(sock: str, port: int) -> int:
    return lsn(psql(sock, port, "select pg_current_wal_lsn()"))


def generate(sock: str, port: int, wal_mib: int, timeout: float) -> WalLoad:
    """pgbench on ``bench_wal`` until ``wal_mib`` MiB of WAL from now, then pg_switch_wal()."""
    deadline = time.monotonic() + timeout
    psql(sock, port, f"drop database if exists {DB}")
    psql(sock, port, f"create database {DB}")
    started = time.monotonic()
    start = current_lsn(sock, port)
    target = start + wal_mib * MIB
    scale = max(1, math.ceil(wal_mib / 2 / 16))  # about 16 MiB of WAL per scale unit
    as_pg(f"{PG}/pgbench", "-i", "-q", "-s", str(scale), "-h", sock, "-p", str(port), DB)
    init_bytes = current_lsn(sock, port) - start
    rounds = 0
    while current_lsn(sock, port) < target:
        if time.monotonic() > deadline:
            raise RuntimeError(f"{(current_lsn(sock, port) - start) / MIB:.0f} MiB of WAL "
                               f"after {timeout:.0f} s, not {wal_mib}")
        as_pg(f"{PG}/pgbench", "-n", "-c", "2", "-j", "2", "-T", "10", "-h", sock, "-p",
              str(port), DB)
        rounds += 1
    end, segment = psql(sock, port, "select s, pg_walfile_name(s) "
                                    "from (select pg_switch_wal() as s) switched").split("|")
    return WalLoad(start_lsn=start, end_lsn=lsn(end), last_segment=segment,
                   init_scale=scale, init_bytes=init_bytes, rounds=rounds,
                   seconds=time.monotonic() - started)


def last_archived(sock: str, port: int) -> str:
    return psql(sock, port, "select coalesce(last_archived_wal, '') from pg_stat_archiver")


def wait_archived(sock: str, port: int, segment: str, timeout: float) -> float:
    """Until the archiver has archived ``segment`` (names of one timeline sort as they
    were written): the seconds waited."""
    started = time.monotonic()
    while last_archived(sock, port)[:24] < segment:
        if time.monotonic() - started > timeout:
            said = psql(sock, port, "select concat_ws(' ', last_archived_wal, failed_count, "
                                    "last_failed_wal) from pg_stat_archiver")
            raise RuntimeError(f"{segment} not archived after {timeout:.0f} s "
                               f"(archived, failures, last failed: {said})")
        time.sleep(0.5)
    return time.monotonic() - started


def segments(first: str, last: str, per_log: int) -> list[str]:
    """The WAL segment names from ``first`` to ``last`` (one timeline), ``per_log``
    segments to a log id (0x100 for 16 MiB segments)."""
    tli = first[:8]
    assert last[:8] == tli, (first, last)
    number, end = (int(name[8:16], 16) * per_log + int(name[16:24], 16)
                   for name in (first, last))
    return [f"{tli}{n // per_log:08X}{n % per_log:08X}" for n in range(number, end + 1)]


def segments_per_log(sock: str, port: int) -> int:
    size = int(psql(sock, port, "select setting from pg_settings "
                                "where name = 'wal_segment_size'"))
    return 0x100000000 // size
