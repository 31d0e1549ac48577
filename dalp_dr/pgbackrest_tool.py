#!/usr/bin/python3
"""dalp_pgbackrest: the hot-cold pattern's backups and WAL archive kept by pgBackRest.

The site side of the pgBackRest backend (Debian: pgbackrest), with the same commands and JSON
results as ``dalp_dr/barman_cloud.py`` (their common command line and bucket access:
``dalp_dr/object_store.py``, dalp_s3.py on the site), so the hot-cold playbooks drive either.
Every backup, restore, verify, WAL push and WAL fetch is pgBackRest's own; this file only
runs it (argv lists, never a shell), reads its catalogue (``pgbackrest info --output=json``)
and lists the repository's WAL archive to find a gap.

pgBackRest's whole configuration reaches it in its environment (``PGBACKREST_*``, built here
from the 0600 settings file; ``--no-config`` so no /etc/pgbackrest.conf adds to it): the
credentials are on no command line and never in postgresql.conf. The one exception is a
restore's restore_command, which runs pgbackrest archive-get itself (no script started in front
of each WAL file): it reads a config file written for that restore, mode 0600
(``restore-command``).

Settings (--config, JSON, mode 0600): those of dalp_s3.py (whose ``endpoint_url`` is only for
the boto3 listing) plus ``stanza``, ``repo_endpoint`` and ``repo_port`` (pgBackRest's S3
endpoint: it speaks HTTPS only), ``ca_file`` (the CA that signed that endpoint's certificate:
verified, never switched off), ``pgbackrest_bin_dir`` (where pgbackrest is), optionally
``process_max`` and ``compress_type`` (the archive's and backups' compression; pgBackRest's
default gz when unset). The cluster is not in the settings (the two sites of a lab host share
one file): archive-push takes the data directory PostgreSQL runs it in, backup, restore and
restore-command get theirs on the command line; the spool (asynchronous archive-get) and lock
directories are beside it. Layout, as pgBackRest writes it (``repo1-bundle``):

    s3://bucket/prefix/backup/<stanza>/<label>/...                backup.manifest, bundle/<n>
    s3://bucket/prefix/archive/<stanza>/<pg version>-<db id>/<tli+log>/<segment>-<sha1>.gz

Runs on the database hosts as the database OS user, with Debian's python3 (boto3 there
too); dalp_s3.py sits beside it (the bucket listing and purge are shared).

The restore_command's exit status: 0 restored; 1 not archived (pgbackrest archive-get's own
1); 126 for anything else (pgBackRest's error codes are 25 to 125, all of which PostgreSQL
would take for "not archived": the replay would end early), so that PostgreSQL stops the
recovery instead.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import sys
import time
from datetime import datetime, timezone
from typing import Any, Dict, List, Optional, Tuple

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
ARCHIVE_GET_QUEUE = "1GiB"
RESTORE_CONF = "pgbackrest-restore.conf"
STANZA = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
"""a restore's pgBackRest config file, beside its data directory"""
"""how much WAL archive-get's asynchronous process fetches ahead into the spool"""
ARCHIVED = re.compile(r"^([0-9A-F]{24})-[0-9a-f]{40}(\.[a-z0-9]+)?$")
"""an archived segment's file name: the segment, its SHA-1, the compression's extension"""
NO_STANZA = (1, 3)
"""info's status codes for "no stanza yet" (missing stanza path, missing stanza data)"""
VERIFY_STATUS = re.compile(r"status: (\w+)")
VERIFY_COUNTS = re.compile(r"(missing|checksum invalid|size invalid|other): (\d+)")
STATUS_OK = (0, 2, 6)
"""info's status codes for a readable repository (ok, no backups yet, a backup running)"""


class Failure(Exception):
    pass


def source_url(cfg: Cfg) -> str:
    prefix = (cfg.get("prefix") or "").strip("/")
    return f"s3://{cfg['bucket']}/{prefix}" if prefix else f"s3://{cfg['bucket']}"


def options(cfg: Cfg, pg_data: Optional[str] = None, async_get: bool = False,
            spool: Optional[str] = None, parallel: Optional[int] = None) -> Dict[str, str]:
    """pgBackRest's options (its own names) from the settings and the cluster's data
    directory ``pg_data``: what it gets in its environment, or in a restore's config file."""
    beside = os.path.dirname(os.path.abspath(pg_data)) if pg_data else None
    prefix = (cfg.get("prefix") or "").strip("/")
    found: Dict[str, Any] = {
        "stanza": cfg["stanza"],
        "cmd": binary(cfg),
        "log-level-console": "off", "log-level-stderr": "warn", "log-level-file": "off",
        "repo1-type": "s3",
        "repo1-path": "/" + prefix,
        "repo1-s3-bucket": cfg["bucket"],
        "repo1-s3-endpoint": cfg.get("repo_endpoint") or "s3.amazonaws.com",
        "repo1-s3-region": cfg.get("region") or "us-east-1",
        "repo1-s3-uri-style": "path",
        "repo1-storage-port": cfg.get("repo_port"),
        "repo1-storage-ca-file": cfg.get("ca_file"),
        "repo1-s3-key": cfg.get("access_key_id"),
        "repo1-s3-key-secret": cfg.get("secret_access_key"),
        "repo1-bundle": "y",
        "compress-type": cfg.get("compress_type"),
        "process-max": parallel or cfg.get("process_max") or 2,
        "spool-path": spool or (os.path.join(beside, "pgbackrest-spool") if beside else None),
        "lock-path": os.path.join(beside, "pgbackrest-lock") if beside else None,
        "pg1-path": pg_data,
        "pg1-port": cfg.get("pg_port"),
        "pg1-socket-path": cfg.get("pg_socket_dir"),
    }
    if async_get:
        found.update({"archive-async": "y", "archive-get-queue-max": ARCHIVE_GET_QUEUE})
    return {name: str(value) for name, value in found.items() if value not in (None, "")}


def tool_env(cfg: Cfg, pg_data: Optional[str] = None, async_get: bool = False,
             spool: Optional[str] = None, parallel: Optional[int] = None) -> Dict[str, str]:
    """pgBackRest's configuration as its environment variables (its documented
    ``PGBACKREST_<OPTION>``): nothing on a command line."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PGBACKREST_")}
    for name, value in options(cfg, pg_data, async_get, spool, parallel).items():
        env["PGBACKREST_" + name.upper().replace("-", "_")] = value
    return env


def config_text(found: Dict[str, str]) -> str:
    """pgBackRest's config file (INI) holding ``found``: the stanza's own options (``pg1-*``)
    in the stanza's section, the rest in ``[global]``; the stanza itself is named on the
    command line. A value the format cannot hold (a line break, blanks at either end, which
    pgBackRest would cut) is refused, named by its option, never shown."""
    stanza = found.get("stanza", "")
    if not STANZA.match(stanza) or stanza == "global":
        raise Failure(f"stanza {stanza!r}: not a name pgBackRest's config file can hold as "
                      "a section (letters, digits, '_', '.', '-'; not 'global')")
    sections: Dict[str, Dict[str, str]] = {"global": {}, stanza: {}}
    for name, value in found.items():
        if name == "stanza":
            continue
        if "\n" in value or "\r" in value or value != value.strip():
            raise Failure(f"setting for pgBackRest option {name}: a value with a line break "
                          "or blanks at either end cannot go into its config file")
        sections[stanza if name.startswith("pg1-") else "global"][name] = value
    return "".join(f"[{title}]\n" + "".join(f"{k}={v}\n" for k, v in values.items()) + "\n"
                   for title, values in sections.items())


def binary(cfg: Cfg) -> str:
    return os.path.join(cfg.get("pgbackrest_bin_dir") or TOOLS, "pgbackrest")


def argv(cfg: Cfg, command: str, *args: str) -> List[str]:
    return [binary(cfg), "--no-config", command, *args]


def run(cfg: Cfg, command: str, *args: str, pg_data: Optional[str] = None,
        async_get: bool = False, timeout: Optional[float] = None,
        spool: Optional[str] = None, parallel: Optional[int] = None
        ) -> "subprocess.CompletedProcess[str]":
    try:
        return subprocess.run(argv(cfg, command, *args),
                              env=tool_env(cfg, pg_data, async_get, spool, parallel),
                              capture_output=True,
                              text=True, timeout=timeout, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise Failure(f"pgbackrest {command}: {exc}") from None


def said(proc: "subprocess.CompletedProcess[str]") -> str:
    return " ".join(((proc.stderr or "") + " " + (proc.stdout or "")).split())[-600:]


def checked(cfg: Cfg, command: str, *args: str, pg_data: Optional[str] = None) -> str:
    proc = run(cfg, command, *args, pg_data=pg_data)
    if proc.returncode != 0:
        raise Failure(f"pgbackrest {command} exited {proc.returncode}: {said(proc)}")
    return proc.stdout


# --- the catalogue ---------------------------------------------------------------------------

def info(cfg: Cfg) -> Dict[str, Any]:
    """``pgbackrest info --output=json`` for the stanza: {} when the stanza does not exist yet."""
    out = checked(cfg, "info", "--output=json")
    try:
        stanza = json.loads(out)[0]
        code = int(stanza["status"]["code"])
    except (ValueError, KeyError, IndexError, TypeError):
        raise Failure(f"pgbackrest info: not the JSON expected: {out[:200]!r}") from None
    if code in NO_STANZA:
        return {}
    if code not in STATUS_OK:
        raise Failure(f"pgbackrest info: stanza {cfg['stanza']}: "
                      f"{stanza['status'].get('message')} (status {code})")
    return dict(stanza)


def when(epoch: Any) -> Optional[datetime]:
    return datetime.fromtimestamp(int(epoch), timezone.utc) if epoch is not None else None


def entries(stanza: Dict[str, Any]) -> List[Dict[str, Any]]:
    """Every backup pgBackRest lists (it lists only completed ones), oldest first, in the
    catalogue shape ``backup status`` prints."""
    found = []
    for b in stanza.get("backup") or []:
        stamp = b.get("timestamp") or {}
        begin, end = when(stamp.get("start")), when(stamp.get("stop"))
        archive = b.get("archive") or {}
        sizes = b.get("info") or {}
        found.append({
            "backup_id": b.get("label"), "type": b.get("type"),
            "status": "page checksum errors" if b.get("error") else "ok",
            "begin_time": begin.isoformat() if begin else None,
            "end_time": end.isoformat() if end else None,
            "begin_wal": archive.get("start"), "end_wal": archive.get("stop"),
            "size": sizes.get("size"),
            "repo_size": (sizes.get("repository") or {}).get("size"),
        })
    return sorted(found, key=lambda e: e["end_time"] or "")


def archive_id(stanza: Dict[str, Any]) -> Optional[str]:
    """The archive of the stanza's current database (``15-1``): the newest one listed."""
    ids = [a.get("id") for a in stanza.get("archive") or [] if a.get("id")]
    return sorted(ids, key=lambda i: int(str(i).rsplit("-", 1)[-1]))[-1] if ids else None


def archived_wal(s3: Any, cfg: Cfg, archive: str) -> List[Tuple[Any, str, datetime]]:
    """(segment number, name, last modified) of every archived WAL segment, in order."""
    found = []
    for obj in base.list_keys(s3, cfg, f"archive/{cfg['stanza']}/{archive}"):
        m = ARCHIVED.match(obj["Key"].rsplit("/", 1)[-1])
        number = base.segment_number(m.group(1)) if m else None
        if m and number:
            found.append((number, m.group(1), obj["LastModified"]))
    return sorted(found)


def status(s3: Any, cfg: Cfg) -> Dict[str, Any]:
    now = datetime.now(timezone.utc)
    stanza = info(cfg)
    listed = entries(stanza)
    newest = listed[-1] if listed else None
    created = datetime.fromisoformat(newest["end_time"]) if newest and newest["end_time"] \
        else None
    archive = archive_id(stanza)
    segments = archived_wal(s3, cfg, archive) if archive else []
    newest_wal = segments[-1] if segments else None
    gap = None
    if newest and newest.get("begin_wal"):
        gap = base.find_gap(newest["begin_wal"], [name for _, name, _ in segments])
    location = f"{source_url(cfg)}/backup/{cfg['stanza']}"
    return {
        "tool": "pgbackrest", "bucket": cfg["bucket"], "prefix": cfg.get("prefix", ""),
        "location": location,
        "backups": len(listed),
        "newest_backup": newest["backup_id"] if newest else None,
        "newest_backup_created": created.isoformat() if created else None,
        "newest_backup_age_s": round((now - created).total_seconds(), 1) if created else None,
        "newest_backup_start_segment": newest.get("begin_wal") if newest else None,
        "wal_segments": len(segments),
        "newest_wal": newest_wal[1] if newest_wal else None,
        "newest_wal_age_s": round((now - newest_wal[2]).total_seconds(), 1)
        if newest_wal else None,
        "wal_gap": gap,
        # the object's name ends in its SHA-1, unknown for one that is not there
        "wal_gap_object": f"{source_url(cfg)}/archive/{cfg['stanza']}/{archive}/{gap[:16]}/"
                          f"{gap}-<sha1>.gz" if gap else None,
        "archive": {"id": archive, **{k: a.get(k) for a in stanza.get("archive") or []
                                      if a.get("id") == archive for k in ("min", "max")}},
        "catalogue": listed,
    }


# --- backups, restores, verification ---------------------------------------------------------

def stanza_create(cfg: Cfg, pg_data: str) -> Dict[str, Any]:
    """The stanza in the repository (a no-op when it exists for this cluster)."""
    checked(cfg, "stanza-create", pg_data=pg_data)
    return {"stanza": cfg["stanza"], "location": f"{source_url(cfg)}/backup/{cfg['stanza']}"}


def backup(cfg: Cfg, host: str, port: str, pg_data: str) -> Dict[str, Any]:
    """A full backup by pgbackrest (it connects to the server itself), bundled."""
    cfg = dict(cfg, pg_socket_dir=host, pg_port=port)
    stanza_create(cfg, pg_data)
    before = {e["backup_id"] for e in entries(info(cfg))}
    started = time.monotonic()
    checked(cfg, "backup", "--type=full", "--start-fast", pg_data=pg_data)
    seconds = time.monotonic() - started
    mine = [e for e in entries(info(cfg)) if e["backup_id"] not in before]
    if not mine:
        raise Failure(f"{source_url(cfg)}/backup/{cfg['stanza']}: pgbackrest backup ended but "
                      "no new backup is in its catalogue")
    return {"label": mine[-1]["backup_id"], "bytes": mine[-1]["size"],
            "repo_bytes": mine[-1]["repo_size"], "seconds": round(seconds, 3),
            "start_segment": mine[-1]["begin_wal"]}


def verify(cfg: Cfg) -> Dict[str, Any]:
    """``pgbackrest verify``: every backup file and archived WAL segment in the repository
    read back and checked against pgBackRest's own checksums (2.45's verify has no
    ``--set``: the whole repository); fails naming what it found. ``verify_timeout``
    (seconds, from the settings) bounds it: a truncated object makes pgBackRest 2.45 retry
    its ranged reads for many minutes, which would otherwise end only at the preflight
    phase's own timeout, without a word of why."""
    started = time.monotonic()
    limit = cfg.get("verify_timeout")
    try:
        proc = run(cfg, "verify", "--output=text", "--verbose",
                   timeout=float(limit) if limit else None)
    except Failure:
        if limit and time.monotonic() - started >= float(limit):
            raise Failure(f"{source_url(cfg)}/: pgbackrest verify did not finish within "
                          f"{float(limit):g} s (verify_timeout): a truncated or unreadable "
                          "object makes it retry its reads for minutes") from None
        raise
    seconds = round(time.monotonic() - started, 3)
    report = " ".join((proc.stdout or "").split())
    if proc.returncode != 0:
        raise Failure(f"{source_url(cfg)}/: pgbackrest verify exited {proc.returncode}: "
                      f"{said(proc)}")
    # it exits 0 when it found invalid files too: its report says so ("status: error", a
    # backup "status: invalid", a count of invalid files)
    bad = [f"status: {value}" for value in VERIFY_STATUS.findall(proc.stdout or "")
           if value not in ("ok", "valid")]
    bad += [f"{what}: {count}" for what, count in VERIFY_COUNTS.findall(proc.stdout or "")
            if int(count)]
    if bad:
        raise Failure(f"{source_url(cfg)}/backup/{cfg['stanza']}/: pgbackrest verify found "
                      f"the repository invalid ({', '.join(bad)}): {report[-600:]}")
    return {"status": "ok", "seconds": seconds, "report": report[-600:]}


def restore(cfg: Cfg, dest: str, label: Optional[str]) -> Dict[str, Any]:
    """``pgbackrest restore`` of the newest backup (or ``label``) into the empty ``dest``
    (the repository was verified at preflight, before the fault; restore checks each file's
    checksum as it writes it). Recovery settings (restore_command, the target) are the
    playbook's alone: ``--type=none`` writes none; WAL comes later, through restore_command."""
    listed = entries(info(cfg))
    if not listed:
        raise Failure(f"{source_url(cfg)}/backup/{cfg['stanza']}/: no backup")
    chosen = listed[-1] if label in (None, "", "latest") else next(
        (e for e in listed if e["backup_id"] == label), None)
    if chosen is None:
        raise Failure(f"{source_url(cfg)}/backup/{cfg['stanza']}/{label}: no such backup")
    started = time.monotonic()
    proc = run(cfg, "restore", "--type=none", f"--set={chosen['backup_id']}", pg_data=dest)
    seconds = time.monotonic() - started
    if proc.returncode != 0:
        raise Failure(f"{source_url(cfg)}/backup/{cfg['stanza']}/{chosen['backup_id']}/: "
                      f"pgbackrest restore exited {proc.returncode}: {said(proc)}")
    size = 0
    for root, _dirs, files in os.walk(dest):
        for name in files:
            with contextlib.suppress(OSError):  # gone meanwhile: not restored
                size += os.lstat(os.path.join(root, name)).st_size
    return {"label": chosen["backup_id"], "bytes": size, "seconds": round(seconds, 3),
            "mib_per_s": round(size / 1048576 / seconds, 1) if seconds > 0 else None,
            "start_segment": chosen["begin_wal"],
            "created": chosen["end_time"] or datetime.now(timezone.utc).isoformat()}


# --- PostgreSQL's archive_command and restore_command ----------------------------------------

def wal_push(cfg: Cfg, path: str) -> int:
    proc = run(cfg, "archive-push", path, pg_data=os.getcwd())  # PostgreSQL's data directory
    if proc.returncode != 0:
        sys.stderr.write(f"dalp_pgbackrest wal-push {path}: {said(proc)}\n")
    return proc.returncode


def restore_command(cfg: Cfg, pg_data: str, spool: str, parallel: int) -> Dict[str, Any]:
    """PostgreSQL's restore_command for a restore into ``pg_data``: pgBackRest's own
    ``archive-get``, asynchronous (its own ``parallel`` processes fetch the next segments
    ahead into ``spool``, so most calls find theirs there), as its user guide sets it up and
    with no script in front of each call. Its settings, credentials included, go into a
    config file beside the data directory (``pgbackrest-restore.conf``, mode 0600, the
    database OS user's): none in postgresql.conf. Its exit status as PostgreSQL must read it:
    0 restored, 1 not archived (archive-get's own 1); any other status (pgBackRest's error
    codes are 25 to 125, which PostgreSQL would take for "not archived", ending the replay
    early) becomes 126, on which PostgreSQL stops the recovery."""
    found = options(cfg, pg_data, async_get=True, spool=spool, parallel=parallel)
    conf = os.path.join(os.path.dirname(os.path.abspath(pg_data)), RESTORE_CONF)
    base.write_private(conf, config_text(found))
    command = base.restore_command_words(
        found["cmd"], f"--config={conf}", f"--stanza={found['stanza']}", "archive-get")
    command += (f' %f "%p"; s=$?; [ "$s" -le {NOT_ARCHIVED} ] || [ "$s" -gt 125 ] '
                f'|| s={WAL_FETCH_FATAL}; exit "$s"')
    return {"restore_command": command, "config": conf}


def main(argv_: Optional[List[str]] = None) -> int:
    top, sub = base.parser("dalp_pgbackrest")
    p = sub.add_parser("backup")
    p.add_argument("--pg-host", required=True)
    p.add_argument("--pg-port", required=True)
    p.add_argument("--pg-data", required=True)
    sub.add_parser("verify")
    p = sub.add_parser("stanza-create")
    p.add_argument("--pg-data", required=True)
    return base.main("dalp_pgbackrest", top, argv_, wal={
        "wal-push": lambda cfg, a: wal_push(cfg, a.path),
    }, commands={
        "restore-command": lambda cfg, a: restore_command(cfg, a.pg_data, a.spool, a.parallel),
        "backup": lambda cfg, a: backup(cfg, a.pg_host, a.pg_port, a.pg_data),
        "restore": lambda cfg, a: restore(cfg, a.dest, a.label),
        "verify": lambda cfg, _: verify(cfg),
        "stanza-create": lambda cfg, a: stanza_create(cfg, a.pg_data),
        "status": lambda cfg, _: status(base.client(cfg), cfg),
    }, failures=(Failure,))


if __name__ == "__main__":
    sys.exit(main())
