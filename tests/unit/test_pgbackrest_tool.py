"""dalp_pgbackrest (dalp_dr/pgbackrest_tool.py), the site side of the pgBackRest backend:
its reading of ``pgbackrest info --output=json``, its gap detection over the repository's
WAL archive, how it hands pgBackRest its settings, and PostgreSQL's restore_command contract.
pgbackrest here is a FAKE (a shell script in a temporary bin dir, one per test, printing what
pgBackRest 2.45 prints and exiting with its codes); the bucket is moto's in-process S3. The
real pgbackrest runs against the moto server over TLS in
tests/lab/test_34_hot_cold_pgbackrest.py."""

from __future__ import annotations

import configparser
import contextlib
import io
import json
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from moto import mock_aws

from dalp_dr import object_store, pgbackrest_tool

SHA = "0123456789abcdef0123456789abcdef01234567"


def backup(label: str, start: int, stop: int, wal: str, size: int) -> dict[str, Any]:
    return {"archive": {"start": wal, "stop": wal}, "backrest": {"format": 5, "version": "2.45"},
            "database": {"id": 1, "repo-key": 1}, "error": False,
            "info": {"delta": size, "repository": {"delta": size // 4, "size": size // 4},
                     "size": size},
            "label": label, "lsn": {"start": "0/2000028", "stop": "0/2000100"}, "prior": None,
            "reference": None, "timestamp": {"start": start, "stop": stop}, "type": "full"}


INFO = [{"archive": [{"database": {"id": 1, "repo-key": 1}, "id": "15-1",
                      "max": "000000010000000000000009", "min": "000000010000000000000002"}],
         "backup": [backup("20261203-150000F", 1_796_310_000, 1_796_310_004,
                           "000000010000000000000007", 31_000_000),
                    backup("20261203-030000F", 1_796_266_800, 1_796_266_803,
                           "000000010000000000000002", 30_000_000)],
         "cipher": "none", "db": [{"id": 1, "repo-key": 1, "system-id": 7, "version": "15"}],
         "name": "site-a", "repo": [{"cipher": "none", "key": 1,
                                     "status": {"code": 0, "message": "ok"}}],
         "status": {"code": 0, "lock": {"backup": {"held": False}}, "message": "ok"}}]


def fake_pgbackrest(tmp_path: Path, script: str) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    path = bin_dir / "pgbackrest"
    path.write_text(f"#!/bin/sh\n{script}\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)


def settings(tmp_path: Path) -> dict[str, Any]:
    return {"bucket": "lab", "prefix": "hc-pgb", "stanza": "site-a", "region": "us-east-1",
            "repo_endpoint": "127.0.0.1", "repo_port": 55413, "ca_file": "/lab/tls/ca.crt",
            "pgbackrest_bin_dir": str(tmp_path / "bin"),
            "access_key_id": "AKIA-test", "secret_access_key": "secret-never-on-argv"}


def info_tool(tmp_path: Path, info: list[dict[str, Any]]) -> None:
    listed = tmp_path / "info.json"
    listed.write_text(json.dumps(info))
    fake_pgbackrest(tmp_path, f'cat "{listed}"')


@pytest.fixture
def bucket() -> Iterator[Any]:
    with mock_aws():
        s3 = object_store.client({"region": "us-east-1"})
        s3.create_bucket(Bucket="lab")
        yield s3


def archive(s3: Any, *segments: str) -> None:
    for name in segments:
        s3.put_object(Bucket="lab", Body=b"wal",
                      Key=f"hc-pgb/archive/site-a/15-1/{name[:16]}/{name}-{SHA}.gz")
    s3.put_object(Bucket="lab", Key="hc-pgb/archive/site-a/15-1/archive.info", Body=b"x")


def segment(n: int) -> str:
    return object_store.segment_name(1, n)


def test_status_reads_the_catalogue_and_the_newest_backups_wal(
        tmp_path: Path, bucket: Any) -> None:
    info_tool(tmp_path, INFO)
    archive(bucket, *(segment(n) for n in range(2, 10)))
    found = pgbackrest_tool.status(bucket, settings(tmp_path))
    assert found["tool"] == "pgbackrest" and found["backups"] == 2
    assert found["location"] == "s3://lab/hc-pgb/backup/site-a"
    assert found["newest_backup"] == "20261203-150000F"
    assert found["newest_backup_created"] == "2026-12-03T15:00:04+00:00"
    assert found["newest_backup_start_segment"] == "000000010000000000000007"
    assert found["newest_wal"] == "000000010000000000000009" and found["wal_segments"] == 8
    assert found["wal_gap"] is None and found["wal_gap_object"] is None
    assert found["archive"] == {"id": "15-1", "min": "000000010000000000000002",
                                "max": "000000010000000000000009"}
    assert [e["backup_id"] for e in found["catalogue"]] == ["20261203-030000F",
                                                           "20261203-150000F"]
    assert found["catalogue"][1]["size"] == 31_000_000
    assert found["catalogue"][1]["repo_size"] == 7_750_000


def test_a_missing_segment_after_the_newest_backup_is_named_as_the_object_it_would_be(
        tmp_path: Path, bucket: Any) -> None:
    info_tool(tmp_path, INFO)
    archive(bucket, *(segment(n) for n in (2, 3, 4, 7, 8, 10, 11)))  # 5, 6: before the backup
    found = pgbackrest_tool.status(bucket, settings(tmp_path))
    assert found["wal_gap"] == "000000010000000000000009"
    assert found["wal_gap_object"] == ("s3://lab/hc-pgb/archive/site-a/15-1/0000000100000000/"
                                       "000000010000000000000009-<sha1>.gz")


def test_no_stanza_yet_is_no_backup_and_no_wal(tmp_path: Path, bucket: Any) -> None:
    missing = [{"archive": [], "backup": [], "cipher": "none", "db": [], "name": "site-a",
                "repo": [{"cipher": "none", "key": 1,
                          "status": {"code": 1, "message": "missing stanza path"}}],
                "status": {"code": 1, "lock": {"backup": {"held": False}},
                           "message": "missing stanza path"}}]
    info_tool(tmp_path, missing)
    found = pgbackrest_tool.status(bucket, settings(tmp_path))
    assert found["backups"] == 0 and found["newest_backup"] is None
    assert found["newest_wal"] is None and found["wal_gap"] is None


def test_an_unreadable_repository_is_a_failure_with_pgbackrests_words(tmp_path: Path) -> None:
    broken = [{"name": "site-a", "status": {"code": 99, "message": "other",
                                            "lock": {"backup": {"held": False}}}}]
    info_tool(tmp_path, broken)
    with pytest.raises(pgbackrest_tool.Failure, match=r"stanza site-a: other \(status 99\)"):
        pgbackrest_tool.info(settings(tmp_path))
    fake_pgbackrest(tmp_path, "echo 'ERROR: [039]: HTTP request failed' >&2; exit 39")
    with pytest.raises(pgbackrest_tool.Failure,
                       match=r"pgbackrest info exited 39: ERROR: \[039\]: HTTP request failed"):
        pgbackrest_tool.info(settings(tmp_path))
    fake_pgbackrest(tmp_path, "echo 'not json'")
    with pytest.raises(pgbackrest_tool.Failure, match="not the JSON expected"):
        pgbackrest_tool.info(settings(tmp_path))


def test_pgbackrest_gets_its_settings_in_its_environment_never_on_its_command_line(
        tmp_path: Path) -> None:
    seen = tmp_path / "seen"
    fake_pgbackrest(tmp_path, f'echo "$@" > "{seen}"; env | grep ^PGBACKREST_ | sort >> "{seen}"; '
                              "echo '[{\"status\": {\"code\": 1}}]'")
    assert pgbackrest_tool.info(settings(tmp_path)) == {}
    argv, *env_lines = seen.read_text().splitlines()
    assert argv == "--no-config info --output=json"
    env = dict(line.split("=", 1) for line in env_lines)
    assert env["PGBACKREST_REPO1_S3_KEY_SECRET"] == "secret-never-on-argv"
    assert env["PGBACKREST_REPO1_S3_KEY"] == "AKIA-test"
    assert env["PGBACKREST_REPO1_TYPE"] == "s3" and env["PGBACKREST_REPO1_PATH"] == "/hc-pgb"
    assert env["PGBACKREST_REPO1_S3_URI_STYLE"] == "path"
    assert env["PGBACKREST_REPO1_STORAGE_CA_FILE"] == "/lab/tls/ca.crt"
    assert "PGBACKREST_REPO1_STORAGE_VERIFY_TLS" not in env  # verified with the lab CA
    assert env["PGBACKREST_STANZA"] == "site-a" and env["PGBACKREST_REPO1_BUNDLE"] == "y"
    assert "PGBACKREST_ARCHIVE_ASYNC" not in env  # only archive-get is asynchronous


def as_postgres_runs(command: str, name: str, dest: str) -> str:
    """restore_command after PostgreSQL's own substitution: %f, %p, %% (and %r, unused)."""
    out, i = [], 0
    while i < len(command):
        if command[i] == "%" and i + 1 < len(command):
            out.append({"f": name, "p": dest, "%": "%"}.get(command[i + 1], ""))
            i += 2
        else:
            out.append(command[i])
            i += 1
    return "".join(out)


def restore_command(tmp_path: Path, data: Path, spool: Path, parallel: int = 4,
                    **changed: Any) -> dict[str, Any]:
    config = tmp_path / "s3.json"
    config.write_text(json.dumps({**settings(tmp_path), **changed}))
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        code = pgbackrest_tool.main(["--config", str(config), "restore-command", "--pg-data",
                                     str(data), "--spool", str(spool),
                                     "--parallel", str(parallel)])
    assert code == 0
    return dict(json.loads(printed.getvalue()))


def run_restore_command(command: str, cwd: Path) -> int:
    """As PostgreSQL runs it: substituted, then ``sh -c`` in the data directory."""
    line = as_postgres_runs(command, "000000010000000000000003", "pg_wal/RECOVERYXLOG")
    return subprocess.run(["sh", "-c", line], cwd=cwd, check=False).returncode


def test_restore_command_is_archive_get_itself_reading_a_private_config(
        tmp_path: Path) -> None:
    data = tmp_path / "site-cold" / "data"
    data.mkdir(parents=True)
    seen = tmp_path / "seen"
    fake_pgbackrest(tmp_path, f'echo "$@" > "{seen}"; env | grep ^PGBACKREST_ >> "{seen}"; '
                              "exit 0")
    out = restore_command(tmp_path, data, tmp_path / "site-cold" / "wal", parallel=4)
    conf = tmp_path / "site-cold" / pgbackrest_tool.RESTORE_CONF
    assert out["config"] == str(conf)
    assert "secret-never-on-argv" not in out["restore_command"]
    assert stat.S_IMODE(conf.stat().st_mode) == 0o600
    assert run_restore_command(out["restore_command"], data) == 0
    argv, *env_lines = seen.read_text().splitlines()
    assert argv == (f"--config={conf} --stanza=site-a archive-get 000000010000000000000003 "
                    "pg_wal/RECOVERYXLOG")
    assert env_lines == []  # its settings are the file's alone
    parser = configparser.ConfigParser(interpolation=None)
    parser.read_string(conf.read_text())
    assert dict(parser["site-a"]) == {"pg1-path": str(data)}
    glob = parser["global"]
    assert glob["repo1-s3-key-secret"] == "secret-never-on-argv"
    assert glob["repo1-storage-ca-file"] == "/lab/tls/ca.crt" and glob["repo1-type"] == "s3"
    assert glob["archive-async"] == "y" and glob["process-max"] == "4"
    assert glob["archive-get-queue-max"] == pgbackrest_tool.ARCHIVE_GET_QUEUE
    assert glob["spool-path"] == str(tmp_path / "site-cold" / "wal")
    assert glob["lock-path"] == str(tmp_path / "site-cold" / "pgbackrest-lock")
    assert "stanza" not in glob  # named on the command line


@pytest.mark.parametrize(("pgbackrest_exit", "restore_command_exit"), [
    (0, 0),  # restored
    (1, 1),  # not archived: PostgreSQL ends the replay there
    (39, 126),  # HostConnectError-like: PostgreSQL must stop, not end the replay early
    (45, 126),  # FormatError: a corrupt object
    (125, 126),  # pgBackRest's highest error code: still not "not archived"
    (143, 143),  # killed by SIGTERM (a shutdown): passed through, as PostgreSQL expects
])
def test_restore_command_exit_codes_tell_not_archived_from_failed(
        tmp_path: Path, pgbackrest_exit: int, restore_command_exit: int) -> None:
    fake_pgbackrest(tmp_path, f"exit {pgbackrest_exit}")
    out = restore_command(tmp_path, tmp_path, tmp_path / "wal")
    assert run_restore_command(out["restore_command"], tmp_path) == restore_command_exit


def test_a_missing_pgbackrest_stops_the_replay(tmp_path: Path) -> None:
    out = restore_command(tmp_path, tmp_path, tmp_path / "wal")  # no pgbackrest in bin dir
    assert run_restore_command(out["restore_command"], tmp_path) > 125  # sh's 127: aborts


@pytest.mark.parametrize("stanza", ["global", "site-a]\n[global", "", "a b"])
def test_a_stanza_its_config_file_cannot_hold_as_a_section_is_refused(
        tmp_path: Path, stanza: str, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "s3.json"
    config.write_text(json.dumps({**settings(tmp_path), "stanza": stanza}))
    assert pgbackrest_tool.main(["--config", str(config), "restore-command", "--pg-data",
                                 str(tmp_path / "data"), "--spool", str(tmp_path / "wal")]) == 1
    assert "pgBackRest's config file" in capsys.readouterr().err


def test_a_percent_sign_in_a_path_survives_postgresqls_substitution(tmp_path: Path) -> None:
    data = tmp_path / "100%f" / "data"
    data.mkdir(parents=True)
    seen = tmp_path / "seen"
    fake_pgbackrest(tmp_path, f'echo "$1" > "{seen}"')
    out = restore_command(tmp_path, data, tmp_path / "wal")
    assert run_restore_command(out["restore_command"], data) == 0
    assert seen.read_text().strip() == f"--config={tmp_path}/100%f/{pgbackrest_tool.RESTORE_CONF}"


def test_a_setting_its_config_file_cannot_hold_is_refused_and_not_shown(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "s3.json"
    config.write_text(json.dumps({**settings(tmp_path), "secret_access_key": "abc\nrepo1-x=y"}))
    assert pgbackrest_tool.main(["--config", str(config), "restore-command", "--pg-data",
                                 str(tmp_path / "data"), "--spool", str(tmp_path / "wal")]) == 1
    err = capsys.readouterr().err
    assert "repo1-s3-key-secret" in err and "abc" not in err
    assert not (tmp_path / pgbackrest_tool.RESTORE_CONF).exists()


def test_a_failed_verify_names_what_pgbackrest_found(tmp_path: Path) -> None:
    listed = tmp_path / "info.json"
    listed.write_text(json.dumps(INFO))
    fake_pgbackrest(tmp_path, f"""case "$2" in
  info) cat "{listed}";;
  verify) echo 'stanza: site-a status: error'
          echo 'ERROR: [104]: invalid checksum: backup/site-a/20261203-150000F/bundle/1' >&2
          exit 104;;
esac""")
    with pytest.raises(pgbackrest_tool.Failure,
                       match=r"s3://lab/hc-pgb/: pgbackrest verify exited 104: .*bundle/1"):
        pgbackrest_tool.verify(settings(tmp_path))


def test_a_verify_that_exits_0_but_reports_invalid_files_fails(tmp_path: Path) -> None:
    """pgbackrest verify 2.45 exits 0 with a rotten file in a backup: its report decides."""
    listed = tmp_path / "info.json"
    listed.write_text(json.dumps(INFO))
    report = tmp_path / "report.txt"
    report.write_text("stanza: site-a\nstatus: error\n  archiveId: 15-1, total WAL checked: 4, "
                      "total valid WAL: 4\n    missing: 0, checksum invalid: 0, size invalid: 0,"
                      " other: 0\n  backup: 20261203-150000F, status: invalid, total files "
                      "checked: 1273, total valid files: 1272\n    missing: 0, checksum "
                      "invalid: 1, size invalid: 0, other: 0\n")
    fake_pgbackrest(tmp_path, f"""case "$2" in
  info) cat "{listed}";;
  verify) cat "{report}";;
esac""")
    with pytest.raises(pgbackrest_tool.Failure) as caught:
        pgbackrest_tool.verify(settings(tmp_path))
    assert "s3://lab/hc-pgb/backup/site-a/: pgbackrest verify found the repository invalid " \
           "(status: error, status: invalid, checksum invalid: 1)" in str(caught.value)
    assert "backup: 20261203-150000F, status: invalid" in str(caught.value)


def test_a_verify_that_outlasts_its_timeout_fails_saying_so(tmp_path: Path) -> None:
    """pgBackRest 2.45 retries reads past a truncated object's end for minutes: the
    settings' verify_timeout ends it with a reason, before the preflight's own timeout."""
    fake_pgbackrest(tmp_path, "sleep 30")
    with pytest.raises(pgbackrest_tool.Failure, match=r"s3://lab/hc-pgb/: pgbackrest verify "
                                                      r"did not finish within 0.5 s"):
        pgbackrest_tool.verify({**settings(tmp_path), "verify_timeout": 0.5})
