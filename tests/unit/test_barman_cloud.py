"""dalp_barman (dalp_dr/barman_cloud.py), the site side of the barman-cloud backend, without S3:
its reading of barman-cloud-backup-list's catalogue and PostgreSQL's restore_command contract.
The barman-cloud commands here are FAKES (shell scripts in a temporary bin_dir, one per test,
printing what barman-cloud 3.4 prints and exiting with its codes); the real ones run against
the moto server in tests/lab/test_30_hot_cold.py."""

from __future__ import annotations

import contextlib
import io
import json
import os
import stat
import subprocess
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from dalp_dr import barman_cloud

CATALOGUE = {"backups_list": [
    {"backup_id": "20261201T030000", "backup_name": "dalp-20261201T030000Z", "status": "DONE",
     "begin_time": "Tue Dec  1 03:00:00 2026", "end_time": "Tue Dec  1 03:00:04 2026",
     "begin_wal": "000000010000000000000002", "end_wal": "000000010000000000000002",
     "size": 31_000_000},
    {"backup_id": "20261202T030000", "backup_name": None, "status": "FAILED",
     "begin_time": "Wed Dec  2 03:00:00 2026", "end_time": None, "begin_wal": None,
     "end_wal": None, "size": None},
    {"backup_id": "20261201T150000", "backup_name": "noon", "status": "DONE",
     "begin_time": "Tue Dec  1 15:00:00 2026", "end_time": "Tue Dec  1 15:00:05 2026",
     "begin_wal": "000000010000000000000009", "end_wal": "00000001000000000000000A",
     "size": 32_000_000},
]}


def fake_tool(bin_dir: Path, name: str, script: str) -> None:
    bin_dir.mkdir(exist_ok=True)
    path = bin_dir / f"barman-cloud-{name}"
    path.write_text(f"#!/bin/sh\n{script}\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)


def settings(tmp_path: Path) -> dict[str, object]:
    return {"bucket": "lab", "prefix": "hc", "server_name": "site-a",
            "endpoint_url": "http://127.0.0.1:1", "bin_dir": str(tmp_path / "bin"),
            "access_key_id": "AKIA-test", "secret_access_key": "secret-never-on-argv"}


def test_the_newest_completed_backup_is_chosen_from_the_catalogue(tmp_path: Path) -> None:
    catalogue = tmp_path / "catalogue.json"
    catalogue.write_text(json.dumps(CATALOGUE))
    fake_tool(tmp_path / "bin", "backup-list", f'cat "{catalogue}"')
    done = barman_cloud.completed(settings(tmp_path))
    assert [b["backup_id"] for b in done] == ["20261201T150000", "20261201T030000"]
    # the catalogue's ctime has no offset: this host's local time
    assert barman_cloud.instant(done[0]["end_time"]) == datetime(2026, 12, 1, 15, 0,
                                                                 5).astimezone()
    assert barman_cloud.instant("2026-12-01T15:00:05+01:00") == datetime(2026, 12, 1, 14, 0,
                                                                         5, tzinfo=UTC)


def test_the_catalogue_is_asked_with_the_endpoint_and_credentials_off_the_command_line(
        tmp_path: Path) -> None:
    seen = tmp_path / "seen"
    fake_tool(tmp_path / "bin", "backup-list",
              f'echo "$@" > "{seen}"; echo "$AWS_SECRET_ACCESS_KEY" >> "{seen}"; '
              "echo '{\"backups_list\": []}'")
    assert barman_cloud.completed(settings(tmp_path)) == []
    argv, secret = seen.read_text().splitlines()
    assert argv == ("--cloud-provider aws-s3 --endpoint-url http://127.0.0.1:1 --format json "
                    "s3://lab/hc site-a")
    assert secret == "secret-never-on-argv"


def test_a_tool_that_fails_is_a_failure_with_its_words(tmp_path: Path) -> None:
    fake_tool(tmp_path / "bin", "backup-list",
              "echo 'ERROR: Bucket lab does not exist' >&2; exit 1")
    with pytest.raises(barman_cloud.Failure, match="exited 1: ERROR: Bucket lab does not exist"):
        barman_cloud.catalogue(settings(tmp_path))
    fake_tool(tmp_path / "bin", "backup-list", "echo 'not json'")
    with pytest.raises(barman_cloud.Failure, match="not the JSON expected"):
        barman_cloud.catalogue(settings(tmp_path))


@pytest.mark.parametrize(("barman_exit", "restore_command_exit"), [
    (0, 0),  # restored
    (1, 1),  # not archived: PostgreSQL ends the replay there
    (2, 126),  # network error: PostgreSQL must stop, not end the replay early
    (3, 126),  # usage error
    (4, 126),  # anything else (a corrupt object)
])
def test_restore_command_exit_codes_tell_not_archived_from_failed(
        tmp_path: Path, barman_exit: int, restore_command_exit: int) -> None:
    fake_tool(tmp_path / "bin", "wal-restore", f"exit {barman_exit}")
    config = tmp_path / "s3.json"
    config.write_text(json.dumps(settings(tmp_path)))
    code = barman_cloud.main(["--config", str(config), "wal-fetch",
                              "000000010000000000000003", str(tmp_path / "dest")])
    assert code == restore_command_exit


def test_an_unreadable_settings_file_stops_the_replay(tmp_path: Path) -> None:
    assert barman_cloud.main(["--config", str(tmp_path / "absent.json"), "wal-fetch",
                              "000000010000000000000003", str(tmp_path / "x")]) == 126


def archive_with(tmp_path: Path, names: list[str], broken: tuple[str, ...] = ()) -> Path:
    """A fake barman-cloud-wal-restore over a directory standing for the archive: it logs
    each name asked for; ``broken`` ones fail as a network error would (exit 2)."""
    archive = tmp_path / "archive"
    archive.mkdir()
    for name in names:
        (archive / name).write_text(f"wal {name}")
    log = tmp_path / "asked.log"
    broken_case = "|".join(broken) or "none"
    fake_tool(tmp_path / "bin", "wal-restore",
              f'for a; do name=$dest; dest=$a; done; echo "$name" >> "{log}"; '
              f'case "$name" in {broken_case}) exit 2;; esac; '
              f'[ -f "{archive}/$name" ] || exit 1; cp "{archive}/$name" "$dest"')
    return log


SEG = [f"0000000100000000000000{n:02X}" for n in range(1, 8)]


def fetch(tmp_path: Path, name: str, parallel: int = 4) -> int:
    """One restore_command call, then a wait (deadline) for the background fetches it
    started, so each test sees the spool as they left it."""
    config = tmp_path / "s3.json"
    config.write_text(json.dumps(settings(tmp_path)))
    (tmp_path / "pg_wal").mkdir(exist_ok=True)
    code = barman_cloud.main(["--config", str(config), "wal-fetch", name,
                              str(tmp_path / "pg_wal" / "RECOVERYXLOG"), "--spool",
                              str(tmp_path / "spool"), "--parallel", str(parallel)])
    settled(tmp_path / "spool")
    return code


def settled(spool: Path, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while list(spool.glob("*.pending")):
        assert time.monotonic() < deadline, f"still fetching: {list(spool.glob('*.pending'))}"
        time.sleep(0.01)


def test_wal_is_fetched_ahead_in_parallel_and_served_from_the_spool(tmp_path: Path) -> None:
    log = archive_with(tmp_path, SEG[:3])
    restored = tmp_path / "pg_wal" / "RECOVERYXLOG"
    assert fetch(tmp_path, SEG[0]) == 0 and restored.read_text() == f"wal {SEG[0]}"
    assert sorted(log.read_text().split()) == SEG[:4]  # the one asked for and 3 ahead
    assert fetch(tmp_path, SEG[1]) == 0 and restored.read_text() == f"wal {SEG[1]}"
    assert fetch(tmp_path, SEG[2]) == 0 and restored.read_text() == f"wal {SEG[2]}"
    assert fetch(tmp_path, SEG[3]) == 1  # not archived when it was fetched ahead
    assert sorted(log.read_text().split()) == SEG[:4]  # all four answered from the spool
    assert fetch(tmp_path, "00000002.history") == 1  # not a segment: asked at once
    assert log.read_text().split()[-1] == "00000002.history"


def test_a_segment_that_failed_ahead_is_asked_again_and_its_failure_stops_the_replay(
        tmp_path: Path) -> None:
    log = archive_with(tmp_path, SEG[:5], broken=(SEG[2],))
    assert fetch(tmp_path, SEG[0], parallel=3) == 0
    spool = tmp_path / "spool"
    assert [p.name for p in spool.glob(f"{SEG[2]}*")] == [f"{SEG[2]}.failed"]  # not kept
    assert fetch(tmp_path, SEG[1], parallel=3) == 0
    assert fetch(tmp_path, SEG[2], parallel=3) == 126  # asked again: the error stands
    assert log.read_text().split().count(SEG[2]) == 2


def test_with_the_archive_listed_a_name_it_lacks_costs_no_barman_process(
        tmp_path: Path) -> None:
    log = archive_with(tmp_path, SEG[:2])
    (tmp_path / "spool").mkdir()
    (tmp_path / "spool" / "listing.json").write_text(json.dumps({"names": SEG[:2]}))
    assert fetch(tmp_path, SEG[0]) == 0
    assert sorted(log.read_text().split()) == SEG[:2]  # only the listed one fetched ahead
    assert fetch(tmp_path, "00000002.history") == 1  # a timeline probe: answered at once
    assert fetch(tmp_path, SEG[1]) == 0 and fetch(tmp_path, SEG[2]) == 1
    assert sorted(log.read_text().split()) == SEG[:2]


@pytest.mark.parametrize("parallel", [1, 4])
def test_a_barman_cloud_that_cannot_be_started_stops_the_replay(
        tmp_path: Path, parallel: int) -> None:
    """A missing or unstartable barman-cloud-wal-restore (a wrong bin_dir, no
    barman-cli-cloud) is an error, not "not archived": an uncaught exception's exit 1 would
    end the replay early and the drill could pass on a restore that stopped at the backup."""
    (tmp_path / "bin").mkdir()  # no barman-cloud-wal-restore in it
    assert fetch(tmp_path, SEG[0], parallel=parallel) == 126


def test_the_restore_command_is_wal_fetch_with_the_spool_and_no_credentials(
        tmp_path: Path) -> None:
    """restore-command's answer, substituted and run with ``sh -c`` in the data directory
    as PostgreSQL runs it, fetches through the spool (a % in a path written %%)."""
    archive_with(tmp_path, SEG[:2])
    config = tmp_path / "s3.json"
    config.write_text(json.dumps(settings(tmp_path)))
    data = tmp_path / "data"
    (data / "pg_wal").mkdir(parents=True)
    spool = tmp_path / "50%p spool"
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        assert barman_cloud.main(["--config", str(config), "restore-command", "--pg-data",
                                  str(data), "--spool", str(spool), "--parallel", "2"]) == 0
    command = json.loads(printed.getvalue())["restore_command"]
    assert "secret-never-on-argv" not in command and "50%%p" in command
    line = command.replace("%%", "\0").replace("%f", SEG[0]) \
        .replace("%p", "pg_wal/RECOVERYXLOG").replace("\0", "%")
    assert subprocess.run(["sh", "-c", line], cwd=data, check=False).returncode == 0
    assert (data / "pg_wal" / "RECOVERYXLOG").read_text() == f"wal {SEG[0]}"
    assert (spool / SEG[1]).read_text() == f"wal {SEG[1]}"  # fetched ahead


def test_a_listed_segment_the_tool_calls_not_archived_stops_the_replay(
        tmp_path: Path) -> None:
    """barman-cloud-wal-restore exits 1 for "not archived" and also for a bucket it cannot
    find: for a name the archive's listing holds, 1 is an error (126), never the end of the
    replay, whether it came ahead (marked failed, asked again) or here."""
    log = archive_with(tmp_path, [])  # the tool finds nothing...
    (tmp_path / "spool").mkdir()
    (tmp_path / "spool" / "listing.json").write_text(json.dumps({"names": SEG[:3]}))
    assert fetch(tmp_path, SEG[0], parallel=3) == 126  # ...which the listing contradicts
    assert sorted(p.name for p in (tmp_path / "spool").glob("*.failed")) == \
        [f"{SEG[1]}.failed", f"{SEG[2]}.failed"]  # ahead: failed, not missing
    assert fetch(tmp_path, SEG[1], parallel=3) == 126
    assert log.read_text().split().count(SEG[1]) == 2


def test_a_claim_whose_fetch_never_started_is_not_waited_for(tmp_path: Path) -> None:
    """A restore_command killed between claiming a file (``.pending``) and starting its
    fetch leaves an empty claim: after a moment it is taken for what it is."""
    archive_with(tmp_path, SEG[:1])
    spool = tmp_path / "spool"
    spool.mkdir()
    claim = spool / f"{SEG[0]}.pending"
    claim.write_text("")
    old = time.time() - 10
    os.utime(claim, (old, old))
    started = time.monotonic()
    assert fetch(tmp_path, SEG[0], parallel=2) == 0
    assert time.monotonic() - started < 10 and not claim.exists()
