"""The hot-cold restore's WAL prefetch (dalp_dr/s3_archive.py) against a moto S3 server (the
lab's stand-in for AWS S3): what is fetched ahead, what a bucket key may name, and what
restore_command (`wal-fetch --prefetched`) answers PostgreSQL for each kind of name."""

from __future__ import annotations

import gzip
import hashlib
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from dalp_dr import s3_archive

pytestmark = pytest.mark.xdist_group("s3-archive")

TOOL = Path(s3_archive.__file__)


def seg(number: int, tli: int = 1) -> str:
    return s3_archive.segment_name(tli, number)


@pytest.fixture
def archive(s3: str, tmp_path: Path) -> tuple[Any, dict[str, Any], Path]:
    cfg = {"bucket": f"wal-{tmp_path.name.lower().replace('_', '-')}"[:60], "prefix": "lab",
           "endpoint_url": s3, "access_key_id": "testing", "secret_access_key": "testing"}
    client = s3_archive.client(cfg)
    client.create_bucket(Bucket=cfg["bucket"])
    config = tmp_path / "s3.json"
    config.write_text(json.dumps(cfg))
    for name in [seg(3), seg(4), seg(5), seg(7), seg(8), "00000002.history"]:
        source = tmp_path / name
        source.write_bytes(name.encode() * 100)
        s3_archive.wal_push(client, cfg, str(source), name)
    # keys that are data, not WAL file names of this archive: never file names here
    client.put_object(Bucket=cfg["bucket"], Key="lab/wal/nested/" + seg(9) + ".gz",
                      Body=gzip.compress(b"x"))
    client.put_object(Bucket=cfg["bucket"], Key="lab/wal/..gz", Body=gzip.compress(b"x"))
    return client, cfg, config


def fetch(config: Path, directory: Path, name: str, dest: Path
          ) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(TOOL), "--config", str(config), "wal-fetch",
                           name, str(dest), "--prefetched", str(directory)],
                          capture_output=True, text=True, timeout=60, check=False)


def test_prefetch_takes_history_files_and_the_first_segments_from_the_start(
        archive: tuple[Any, dict[str, Any], Path], tmp_path: Path) -> None:
    client, cfg, _config = archive
    directory = tmp_path / "prefetched"
    out = s3_archive.wal_prefetch(client, cfg, str(directory), seg(4), limit=2)
    assert sorted(p.name for p in directory.iterdir()) == sorted(
        [seg(4), seg(5), "00000002.history", s3_archive.LISTING])
    assert (directory / seg(4)).read_bytes() == seg(4).encode() * 100
    assert out["files"] == 3 and out["left_to_s3"] == 2  # segments 7 and 8: past the limit
    listing = json.loads((directory / s3_archive.LISTING).read_text())["names"]
    assert listing == sorted([seg(3), seg(4), seg(5), seg(7), seg(8), "00000002.history"])


def test_restore_command_answers_from_the_prefetch_and_asks_s3_for_the_rest(
        archive: tuple[Any, dict[str, Any], Path], tmp_path: Path) -> None:
    client, cfg, config = archive
    directory = tmp_path / "prefetched"
    s3_archive.wal_prefetch(client, cfg, str(directory), seg(4), limit=2)
    dest = tmp_path / "RECOVERYXLOG"
    served = fetch(config, directory, seg(5), dest)
    assert served.returncode == 0 and json.loads(served.stdout)["prefetched"] is True
    assert dest.read_bytes() == seg(5).encode() * 100
    # a gap (the archive holds segment 7, so 6 was never archived): not archived, at once
    assert fetch(config, directory, seg(6), dest).returncode == 1
    # listed but past the prefetch limit: from S3
    from_s3 = fetch(config, directory, seg(8), dest)
    assert from_s3.returncode == 0 and "prefetched" not in json.loads(from_s3.stdout)
    # past the newest listed segment, or a history file the listing lacks: S3 says
    assert fetch(config, directory, seg(10), dest).returncode == 1
    assert fetch(config, directory, "00000003.history", dest).returncode == 1


def test_a_corrupt_object_is_left_to_s3_and_stops_the_recovery(
        archive: tuple[Any, dict[str, Any], Path], tmp_path: Path) -> None:
    client, cfg, config = archive
    target = s3_archive.key(cfg, "wal", seg(5) + ".gz")
    client.put_object(Bucket=cfg["bucket"], Key=target, Body=gzip.compress(b"tampered"),
                      Metadata={"sha256": hashlib.sha256(b"original").hexdigest()})
    directory = tmp_path / "prefetched"
    out = s3_archive.wal_prefetch(client, cfg, str(directory), seg(4), limit=8)
    assert not (directory / seg(5)).exists()
    assert any(seg(5) in line and "checksum mismatch" in line for line in out["skipped"])
    answer = fetch(config, directory, seg(5), tmp_path / "RECOVERYXLOG")
    # above 125: PostgreSQL aborts the recovery rather than ending it early at this file
    assert answer.returncode == s3_archive.WAL_FETCH_FATAL > 125, answer.stderr
    assert "checksum mismatch" in answer.stderr
