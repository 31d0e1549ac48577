#!/usr/bin/python3
"""dalp_barman: the hot-cold pattern's backups and WAL archive kept by barman-cloud.

CloudNativePG, the operator self-hosted DALP keeps PostgreSQL with, backs up and archives
with barman-cloud (Debian: barman-cli-cloud). This file is the site side of that backend,
with the same commands and JSON results as ``dalp_dr/pgbackrest_tool.py`` (their common
command line and bucket access: ``dalp_dr/object_store.py``, dalp_s3.py on the site), so the
hot-cold playbooks drive either one: every backup, restore, WAL push and WAL fetch is done
by barman-cloud's own tools; this file only runs them (argv lists, never a shell), keeps the
credentials out of PostgreSQL's settings (they reach the tool in its environment, read from
the 0600 settings file), reads the tool's catalogue (``barman-cloud-backup-list --format
json``) and lists the WAL archive to find a gap.

Settings (--config, JSON, mode 0600): those of dalp_s3.py plus ``server_name`` (barman's
name for the cluster: the folder under the prefix) and ``bin_dir`` (where the barman-cloud
commands are: /usr/bin from Debian's barman-cli-cloud, or a virtualenv's bin). Layout, as
barman-cloud writes it:

    s3://bucket/prefix/<server_name>/base/<backup id>/...   backup.info, data.tar[.gz]
    s3://bucket/prefix/<server_name>/wals/<tli+log>/<segment>[.gz]

Runs on the database hosts as the database OS user, with Debian's python3 (boto3 there
too); dalp_s3.py sits beside it (the bucket listing and purge are shared).

Exit status of ``wal-fetch`` (PostgreSQL's restore_command): 0 restored; 1 not archived
(barman-cloud-wal-restore's own 1); 126 for anything else (its 2 network, 3 usage, 4 other:
a corrupt object), so that PostgreSQL stops the recovery instead of ending it early.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from datetime import datetime, timezone
from typing import Any, Callable, Dict, List, Optional, Set, Tuple

try:  # on the controller (dalp-dr backup status)
    from dalp_dr import object_store as base
except ImportError:  # on a database host: dalp_s3.py beside this file (also when this
    # file is run through a symlink, whose directory Python does not put on the path)
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import dalp_s3 as base  # type: ignore[import-not-found,no-redef]

Cfg = Dict[str, Any]
TOOLS = "/usr/bin"
NOT_ARCHIVED = 1
WAL_FETCH_FATAL = base.WAL_FETCH_FATAL
LISTING = "listing.json"
"""written last into a restore's spool: every WAL file name the archive held then"""
COMPRESSION = "--gzip"
"""backups and WAL gzip-compressed, as CloudNativePG's usual `compression: gzip`"""


class Failure(Exception):
    pass


def source_url(cfg: Cfg) -> str:
    prefix = (cfg.get("prefix") or "").strip("/")
    return f"s3://{cfg['bucket']}/{prefix}" if prefix else f"s3://{cfg['bucket']}"


def tool_env(cfg: Cfg) -> Dict[str, str]:
    """The environment barman-cloud runs with: the settings' credentials (never on a
    command line), AWS's usual variables otherwise."""
    env = dict(os.environ)
    env["AWS_DEFAULT_REGION"] = cfg.get("region") or "us-east-1"
    if cfg.get("access_key_id"):
        env["AWS_ACCESS_KEY_ID"] = cfg["access_key_id"]
        env["AWS_SECRET_ACCESS_KEY"] = cfg.get("secret_access_key") or ""
    return env


def argv(cfg: Cfg, tool: str, *args: str) -> List[str]:
    """barman-cloud-<tool> with the endpoint, then ``args`` (source URL and server name
    included by the caller, where the tool wants them)."""
    tools = cfg.get("bin_dir") or TOOLS
    command = [os.path.join(tools, f"barman-cloud-{tool}"), "--cloud-provider", "aws-s3"]
    if cfg.get("endpoint_url"):
        command += ["--endpoint-url", cfg["endpoint_url"]]
    return command + list(args)


def run(cfg: Cfg, tool: str, *args: str, timeout: Optional[float] = None
        ) -> "subprocess.CompletedProcess[str]":
    try:
        return subprocess.run(argv(cfg, tool, *args), env=tool_env(cfg), capture_output=True,
                              text=True, timeout=timeout, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise Failure(f"barman-cloud-{tool}: {exc}") from None


def checked(cfg: Cfg, tool: str, *args: str) -> str:
    proc = run(cfg, tool, *args)
    if proc.returncode != 0:
        said = " ".join((proc.stderr or proc.stdout).split())[-600:]
        raise Failure(f"barman-cloud-{tool} exited {proc.returncode}: {said}")
    return proc.stdout


# --- the catalogue ---------------------------------------------------------------------------

def catalogue(cfg: Cfg) -> List[Dict[str, Any]]:
    """barman-cloud-backup-list's JSON: every backup it knows, whatever its status."""
    out = checked(cfg, "backup-list", "--format", "json", source_url(cfg), cfg["server_name"])
    try:
        listed = json.loads(out)["backups_list"]
    except (ValueError, KeyError, TypeError):
        raise Failure(f"barman-cloud-backup-list: not the JSON expected: {out[:200]!r}") from None
    return [b for b in listed if isinstance(b, dict)]


def instant(text: Optional[str]) -> Optional[datetime]:
    """barman's times, aware: ISO with an offset, or the catalogue's ctime ('Tue Dec  1
    17:30:01 2026', the backup host's wall clock without its offset: read as this host's
    local time; ``status`` prefers the time the backup's backup.info object was stored)."""
    if not text:
        return None
    parsers: List[Callable[[str], datetime]] = [
        datetime.fromisoformat, lambda t: datetime.strptime(t, "%a %b %d %H:%M:%S %Y")]
    for parse in parsers:
        try:
            value = parse(text)
        except ValueError:
            continue
        return value if value.tzinfo else value.astimezone()
    return None


def stored_at(s3: Any, cfg: Cfg, backup_id: str) -> Optional[datetime]:
    """When the backup's backup.info was written (barman-cloud writes it last): S3's own
    clock, with its time zone; None when it cannot be read."""
    from botocore.exceptions import BotoCoreError, ClientError

    info = base.key(cfg, cfg["server_name"], "base", backup_id, "backup.info")
    try:
        modified = s3.head_object(Bucket=cfg["bucket"], Key=info)["LastModified"]
    except (BotoCoreError, ClientError):
        return None
    return modified if isinstance(modified, datetime) else None


def completed(cfg: Cfg) -> List[Dict[str, Any]]:
    """Completed backups, newest first."""
    done = [b for b in catalogue(cfg) if b.get("status") == "DONE"]
    return sorted(done, key=lambda b: instant(b.get("end_time")) or datetime.min.replace(
        tzinfo=timezone.utc), reverse=True)


def archived_wal(s3: Any, cfg: Cfg) -> List[Tuple[Any, str, datetime]]:
    """(segment number, name, last modified) of every archived WAL segment, in order."""
    found = []
    for obj in base.list_keys(s3, cfg, f"{cfg['server_name']}/wals"):
        name = obj["Key"].rsplit("/", 1)[-1].split(".", 1)[0]
        number = base.segment_number(name)
        if number and "." not in obj["Key"].rsplit("/", 1)[-1].replace(".gz", ""):
            found.append((number, name, obj["LastModified"]))
    return sorted(found)


def status(s3: Any, cfg: Cfg) -> Dict[str, Any]:
    now = datetime.now(timezone.utc)
    listed = catalogue(cfg)
    done = sorted((b for b in listed if b.get("status") == "DONE"),
                  key=lambda b: instant(b.get("end_time")) or now, reverse=True)
    newest = done[0] if done else None
    created = None
    if newest:
        created = stored_at(s3, cfg, newest["backup_id"]) or instant(newest.get("end_time"))
    segments = archived_wal(s3, cfg)
    newest_wal = segments[-1] if segments else None
    gap = None
    if newest and newest.get("begin_wal"):
        gap = base.find_gap(newest["begin_wal"], [name for _, name, _ in segments])
    return {
        "tool": "barman-cloud", "bucket": cfg["bucket"], "prefix": cfg.get("prefix", ""),
        "location": f"{source_url(cfg)}/{cfg['server_name']}",
        "backups": len(done),
        "newest_backup": newest.get("backup_id") if newest else None,
        "newest_backup_created": created.isoformat() if created else None,
        "newest_backup_age_s": round((now - created).total_seconds(), 1) if created else None,
        "newest_backup_start_segment": newest.get("begin_wal") if newest else None,
        "wal_segments": len(segments),
        "newest_wal": newest_wal[1] if newest_wal else None,
        "newest_wal_age_s": round((now - newest_wal[2]).total_seconds(), 1)
        if newest_wal else None,
        "wal_gap": gap,
        "wal_gap_object": f"{source_url(cfg)}/{cfg['server_name']}/wals/{gap[:16]}/{gap}.gz"
        if gap else None,
        "catalogue": [{k: b.get(k) for k in ("backup_id", "backup_name", "status",
                                              "begin_time", "end_time", "begin_wal",
                                              "end_wal", "size")} for b in listed],
    }


# --- backups and restores --------------------------------------------------------------------

def backup(cfg: Cfg, host: str, port: str) -> Dict[str, Any]:
    """A base backup by barman-cloud-backup (it connects to the server itself)."""
    label = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    started = time.monotonic()
    checked(cfg, "backup", COMPRESSION, "--immediate-checkpoint", "-h", host, "-p", port,
            "-n", f"dalp-{label}", source_url(cfg), cfg["server_name"])
    seconds = time.monotonic() - started
    mine = [b for b in catalogue(cfg) if b.get("backup_name") == f"dalp-{label}"]
    if not mine or mine[0].get("status") != "DONE":
        raise Failure(f"{source_url(cfg)}/{cfg['server_name']}: backup dalp-{label} is not "
                      f"in the catalogue as DONE ({mine[0].get('status') if mine else 'absent'})")
    return {"label": mine[0]["backup_id"], "name": f"dalp-{label}",
            "bytes": mine[0].get("size"), "seconds": round(seconds, 3),
            "start_segment": mine[0].get("begin_wal")}


def restore(cfg: Cfg, dest: str, label: Optional[str]) -> Dict[str, Any]:
    """barman-cloud-restore of the newest completed backup (or ``label``) into ``dest``:
    downloaded and extracted by the tool; WAL comes later, through restore_command."""
    done = completed(cfg)
    if not done:
        raise Failure(f"{source_url(cfg)}/{cfg['server_name']}/base/: no completed backup")
    chosen = done[0] if label in (None, "", "latest") else next(
        (b for b in done if label in (b.get("backup_id"), b.get("backup_name"))), None)
    if chosen is None:
        raise Failure(f"{source_url(cfg)}/{cfg['server_name']}/base/{label}: no such "
                      "completed backup")
    started = time.monotonic()
    proc = run(cfg, "restore", source_url(cfg), cfg["server_name"], chosen["backup_id"], dest)
    seconds = time.monotonic() - started
    if proc.returncode != 0:
        said = " ".join((proc.stderr or proc.stdout).split())[-600:]
        raise Failure(f"{source_url(cfg)}/{cfg['server_name']}/base/{chosen['backup_id']}/: "
                      f"barman-cloud-restore exited {proc.returncode}: {said}")
    size = 0
    for root, _dirs, files in os.walk(dest):
        for name in files:
            with contextlib.suppress(OSError):  # gone meanwhile: not restored
                size += os.lstat(os.path.join(root, name)).st_size
    return {"label": chosen["backup_id"], "bytes": size, "seconds": round(seconds, 3),
            "mib_per_s": round(size / 1048576 / seconds, 1) if seconds > 0 else None,
            "start_segment": chosen.get("begin_wal"),
            "created": (instant(chosen.get("end_time")) or datetime.now(timezone.utc))
            .isoformat()}


# --- PostgreSQL's archive_command and restore_command ----------------------------------------

def wal_push(cfg: Cfg, path: str) -> int:
    proc = run(cfg, "wal-archive", COMPRESSION, source_url(cfg), cfg["server_name"], path)
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr)
    return proc.returncode


def _fetch_status(cfg: Cfg, name: str, dest: str, listed: bool = False) -> int:
    """One barman-cloud-wal-restore, its status as restore_command must give it. ``listed``:
    the archive's listing holds ``name``, so the tool's 1 ("not archived", which it also
    gives for a missing bucket) is an error, not the end of the archive."""
    proc = run(cfg, "wal-restore", source_url(cfg), cfg["server_name"], name, dest)
    if proc.returncode == 0 or (proc.returncode == NOT_ARCHIVED and not listed):
        return proc.returncode
    sys.stderr.write(f"dalp_barman wal-fetch {name}: barman-cloud-wal-restore exited "
                     f"{proc.returncode}: {' '.join(proc.stderr.split())[-400:]}\n")
    return WAL_FETCH_FATAL


def wal_fetch(cfg: Cfg, name: str, dest: str, spool: Optional[str] = None,
              parallel: int = 1) -> int:
    """PostgreSQL's restore_command. With a spool directory and ``parallel`` > 1, as
    CloudNativePG does (``wal.maxParallel``), and as pgBackRest's asynchronous archive-get
    does, the next ``parallel - 1`` segments of the timeline are always being fetched ahead,
    in the background, each by its own barman-cloud-wal-restore, into the spool, while the
    replay goes on: every call tops the window up again, so fetching overlaps the replay.
    A segment asked for is taken from the spool, waited for while a background fetch of it
    runs, or else fetched here and now. A background fetch that failed is retried here, so
    its error reaches PostgreSQL (126). The archive is listed once (``listing.json``): a
    name it did not hold, and a segment found missing when it was fetched ahead
    (``<name>.missing``), is answered "not archived" at once, without a barman-cloud
    process, and nothing is fetched past it: a restore reads a lost site's archive, which
    nothing writes to any more (PostgreSQL probes for timeline history files it does not
    have on every start and promotion). The spool is the restore's (the playbook waits for
    the background fetches, then removes it, after the replay)."""
    number = base.segment_number(name)
    if spool is None or parallel <= 1:
        return _fetch_status(cfg, name, dest)
    os.makedirs(spool, mode=0o700, exist_ok=True)
    listed = _listing(cfg, spool)
    if listed is not None and name not in listed:
        return NOT_ARCHIVED  # a timeline history file or a segment the archive never held
    if number is None:
        return _fetch_status(cfg, name, dest, listed is not None)
    taken = base.spool_take(spool, name, dest)
    if taken == NOT_ARCHIVED:
        return NOT_ARCHIVED
    ahead = []
    for i in range(1, parallel):
        later = base.segment_name(number[0], number[1] + i)
        if listed is not None and later not in listed:
            break
        ahead.append(later)
    base.spool_fill(spool, ahead, lambda later: argv(
        cfg, "wal-restore", source_url(cfg), cfg["server_name"], later), tool_env(cfg),
        listed is not None)
    return 0 if taken == 0 else _fetch_status(cfg, name, dest, listed is not None)


def _listing(cfg: Cfg, spool: str) -> Optional[Set[str]]:
    """Every WAL file name the archive holds, listed once per restore into the spool
    (``listing.json``, written last); None when the archive cannot be listed (each name is
    then asked of barman-cloud)."""
    path = os.path.join(spool, LISTING)
    try:
        with open(path) as fh:
            return set(json.load(fh)["names"])
    except FileNotFoundError:
        pass
    except (OSError, ValueError, KeyError, TypeError):
        return None
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        keys = base.list_keys(base.client(cfg), cfg, f"{cfg['server_name']}/wals")
    except (BotoCoreError, ClientError, base.Failure):
        return None
    names = sorted({_stem(o["Key"].rsplit("/", 1)[-1]) for o in keys})
    part = path + ".part"
    with open(part, "w") as fh:
        json.dump({"names": names}, fh)
    os.replace(part, path)
    return set(names)


def _stem(object_name: str) -> str:
    """A WAL file's name from its object's (barman-cloud adds the compression's suffix)."""
    for suffix in (".gz", ".bz2", ".snappy", ".xz", ".lz4", ".zst"):
        if object_name.endswith(suffix):
            return object_name[: -len(suffix)]
    return object_name


def restore_command(config: str, spool: str, parallel: int) -> Dict[str, Any]:
    """PostgreSQL's restore_command for a restore: this script's ``wal-fetch`` (the settings
    file ``config`` holds the credentials; none reach postgresql.conf), fetching ahead into
    ``spool`` with ``parallel`` barman-cloud-wal-restore processes."""
    command = base.restore_command_words(
        sys.executable, os.path.abspath(__file__), "--config", os.path.abspath(config), "wal-fetch")
    command += " %f %p " + base.restore_command_words("--spool", spool, "--parallel",
                                                      str(parallel))
    return {"restore_command": command}


def main(argv_: Optional[List[str]] = None) -> int:
    top, sub = base.parser("dalp_barman")
    p = sub.add_parser("backup")
    p.add_argument("--pg-host", required=True)
    p.add_argument("--pg-port", required=True)
    p = sub.add_parser("wal-fetch", help="restore_command: one WAL file, fetching ahead")
    p.add_argument("name")
    p.add_argument("dest")
    p.add_argument("--spool", help="a restore's prefetch directory")
    p.add_argument("--parallel", type=int, help="WAL files fetched at once, ahead")
    return base.main("dalp_barman", top, argv_, wal={
        "wal-push": lambda cfg, a: wal_push(cfg, a.path),
        "wal-fetch": lambda cfg, a: wal_fetch(cfg, a.name, a.dest, a.spool, a.parallel or 1),
    }, commands={
        "restore-command": lambda _, a: restore_command(a.config, a.spool, a.parallel),
        "backup": lambda cfg, a: backup(cfg, a.pg_host, a.pg_port),
        "restore": lambda cfg, a: restore(cfg, a.dest, a.label),
        "status": lambda cfg, _: status(base.client(cfg), cfg),
    }, failures=(Failure,))


if __name__ == "__main__":
    sys.exit(main())
