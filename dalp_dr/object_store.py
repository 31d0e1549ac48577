#!/usr/bin/python3
"""dalp_s3: object storage for the hot-cold backup tools' site scripts (boto3 only).

Shared by the controller and the database hosts. On a database host it is ``dalp_s3.py``,
installed beside the backup tool's script (``dalp_barman.py`` for barman-cloud,
``dalp_pgbackrest.py`` for pgBackRest) and imported by it; it runs with any Python >= 3.8
that has boto3 (Debian: python3-boto3). It holds what both tools' scripts need and neither
tool does for them: an S3 client from the settings file, listing a prefix (the WAL archive,
for a gap), WAL segment arithmetic, the lab's bucket set-up and purge, a restore_command's
quoting, a restore's WAL spool fetched ahead in the background (for a tool that has none of
its own), and the scripts' common command line (settings, exit statuses, JSON on stdout).

Settings come from a JSON file (--config, mode 0600):

    {"bucket": "...", "prefix": "...", "endpoint_url": null | "http://127.0.0.1:55450",
     "region": "us-east-1", "access_key_id": null | "...", "secret_access_key": null | "...",
     ... the tool's own settings}

With no keys the standard boto3 credential chain is used (instance profile, env, ...), so
the same file works against AWS S3.

Before barman-cloud and pgBackRest, the hot-cold lab archived with a WAL tool of this
project's own (``s3-archive``): retired, since no DALP estate restores with it
(docs/backup-tools.md).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from typing import Any, Callable, Dict, List, Optional, Tuple

Cfg = Dict[str, Any]  # typing.Dict: this file also runs on Python 3.8 hosts
NOT_FOUND = ("404", "NoSuchKey", "NotFound")
"""error codes of an object that does not exist (dalp_dr.adapters.aws_errors uses them too)"""
SEGMENT = re.compile(r"^([0-9A-F]{8})([0-9A-F]{8})([0-9A-F]{8})$")
WAL_FETCH_FATAL = 126
"""wal-fetch's exit status for an error (a corrupt object, an unreachable endpoint, a full
disk): PostgreSQL aborts recovery on a restore_command status above 125, where any other
non-zero status means "not archived" and would end the replay early, silently"""


class Failure(Exception):
    pass


def client(cfg: Cfg) -> Any:
    import boto3
    from botocore.config import Config

    kwargs = {"region_name": cfg.get("region") or "us-east-1",
              "config": Config(retries={"max_attempts": cfg.get("attempts", 3), "mode": "standard"},
                               connect_timeout=cfg.get("connect_timeout", 5),
                               read_timeout=cfg.get("read_timeout", 60),
                               s3={"addressing_style": "path"})}
    if cfg.get("endpoint_url"):
        kwargs["endpoint_url"] = cfg["endpoint_url"]
    if cfg.get("access_key_id"):
        kwargs["aws_access_key_id"] = cfg["access_key_id"]
        kwargs["aws_secret_access_key"] = cfg.get("secret_access_key")
    return boto3.client("s3", **kwargs)


def key(cfg: Cfg, *parts: str) -> str:
    return "/".join([cfg["prefix"].strip("/"), *parts]) if cfg.get("prefix") else "/".join(parts)


def list_keys(s3: Any, cfg: Cfg, sub: str) -> list[dict[str, Any]]:
    out = []
    paginator = s3.get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=cfg["bucket"], Prefix=key(cfg, sub) + "/"):
        out.extend(page.get("Contents", []))
    return out


def segment_number(name: str) -> tuple[int, int] | None:
    m = SEGMENT.match(name)
    if not m:
        return None
    return int(m.group(1), 16), int(m.group(2), 16) * 0x100 + int(m.group(3), 16)


def segment_name(tli: int, number: int) -> str:
    return f"{tli:08X}{number // 0x100:08X}{number % 0x100:08X}"


def find_gap(start_segment: str, names: list[str]) -> str | None:
    """The first segment missing on the backup's timeline, from its start segment up to the
    newest archived one; the start segment itself when nothing from it on was archived."""
    start = segment_number(start_segment)
    if start is None:
        return start_segment
    have = {n for n in (segment_number(name) for name in names) if n is not None}
    on_tli = sorted(n for n in have if n[0] == start[0] and n[1] >= start[1])
    if not on_tli:
        return start_segment
    for expect in range(start[1], on_tli[-1][1] + 1):
        if (start[0], expect) not in have:
            return segment_name(start[0], expect)
    return None


def purge(s3: Any, cfg: Cfg) -> dict[str, Any]:
    """Delete everything under the prefix (the lab's steady state: a fresh lineage)."""
    deleted = 0
    paginator = s3.get_paginator("list_objects_v2")
    prefix = cfg["prefix"].strip("/") + "/" if cfg.get("prefix") else ""
    if not prefix:
        raise Failure("refusing to purge a whole bucket: set a prefix")
    for page in paginator.paginate(Bucket=cfg["bucket"], Prefix=prefix):
        keys = [{"Key": o["Key"]} for o in page.get("Contents", [])]
        if keys:
            s3.delete_objects(Bucket=cfg["bucket"], Delete={"Objects": keys})
            deleted += len(keys)
    return {"deleted": deleted, "prefix": prefix}


def ensure_bucket(s3: Any, cfg: Cfg) -> dict[str, Any]:
    """Create the bucket unless it exists."""
    from botocore.exceptions import ClientError

    try:
        s3.head_bucket(Bucket=cfg["bucket"])
        return {"bucket": cfg["bucket"], "created": False}
    except ClientError:
        s3.create_bucket(Bucket=cfg["bucket"])
        return {"bucket": cfg["bucket"], "created": True}


# --- PostgreSQL's restore_command -----------------------------------------------------------

def restore_command_words(*words: str) -> str:
    """``words`` as the start of a restore_command: each shell-quoted (PostgreSQL runs it
    with ``sh -c``), every ``%`` written ``%%`` (PostgreSQL's own escapes are ``%f``, ``%p``,
    ``%r`` and ``%%``)."""
    return " ".join(shlex.quote(str(w)) for w in words).replace("%", "%%")


def write_private(path: str, text: str) -> None:
    """``text`` as ``path``, readable by its owner only (settings with credentials): written
    to a temporary file created 0600, then renamed over ``path``."""
    part = f"{path}.{os.getpid()}.part"
    fd = os.open(part, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(part, path)
    except BaseException:
        os.unlink(part)
        raise


# --- a restore's WAL spool, fetched ahead in the background ----------------------------------

SPOOL_WAIT_S = 300.0
"""how long a restore_command waits for a background fetch of its file before fetching it
itself"""
PENDING, MISSING, FAILED = ".pending", ".missing", ".failed"
"""beside a spooled file's name: a background fetch of it running (its PID inside); not in
the archive; the background fetch failed (asked again in the foreground, to tell its error)"""
PREFETCH = (
    'out=$1; listed=$2; shift 2; part="$out.$$.part"; "$@" "$part"; s=$?; '
    'if [ "$s" -eq 0 ]; then mv -f -- "$part" "$out"; '
    'elif [ "$s" -eq 1 ] && [ "$listed" = no ]; then : > "$out.missing"; '
    'else : > "$out.failed"; fi; '
    'rm -f -- "$part" "$out.pending"')
"""one background fetch: the tool's command with the file's temporary path (its own, so two
fetches of one file never write one file) appended; exit 0: renamed into place; 1 (not
archived): marked missing, unless the archive's listing holds the name (then the tool's 1
is an error it could not tell apart, such as a missing bucket: marked failed); else marked
failed. Its arguments are positional parameters, never part of the script."""
STALE_CLAIM_S = 2.0
"""a .pending file still without a PID this long after it was made: its restore_command died
between claiming the file and starting the fetch"""


def spool_take(spool: str, name: str, dest: str, wait: float = SPOOL_WAIT_S) -> Optional[int]:
    """``name`` from the spool into ``dest``: 0 taken, 1 not archived (marked missing);
    None when it is not there (never fetched, or its background fetch failed: the caller
    fetches it itself). A background fetch of it still running is waited for, ``wait``
    seconds at most, while its process lives."""
    ready = os.path.join(spool, name)
    pending, deadline = ready + PENDING, time.monotonic() + wait
    while time.monotonic() < deadline:
        try:
            with open(pending) as fh:
                pid = fh.read().strip()
        except FileNotFoundError:
            break
        if (pid and not _alive(int(pid))) or (not pid and _older(pending, STALE_CLAIM_S)):
            with contextlib.suppress(FileNotFoundError):
                os.remove(pending)  # its fetcher was killed, or never started: the caller's
            break
        time.sleep(0.01)
    if os.path.exists(ready + MISSING):
        return 1
    with contextlib.suppress(FileNotFoundError):
        os.remove(ready + FAILED)
    if not os.path.exists(ready):
        return None
    if os.stat(spool).st_dev == os.stat(os.path.dirname(os.path.abspath(dest))).st_dev:
        os.replace(ready, dest)
    else:
        shutil.move(ready, dest)
    return 0


def spool_fill(spool: str, names: List[str], argv_of: Callable[[str], List[str]],
               env: Dict[str, str], listed: bool) -> None:
    """Start a background fetch (``argv_of(name)`` plus the path to write) of each of
    ``names`` in order that is not spooled, being fetched or failed; none from the first
    known missing on. ``listed``: the archive's listing holds every one of ``names`` (so
    the tool's "not archived" is an error). Each runs in a session of its own, detached
    (its process group is its PID: the playbook ends the lot after the replay): the
    restore_command that started it returns at once."""
    for name in names:
        path = os.path.join(spool, name)
        if os.path.exists(path + MISSING):
            return
        if any(os.path.exists(path + mark) for mark in ("", PENDING, FAILED)):
            continue
        try:
            fd = os.open(path + PENDING, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            continue
        with os.fdopen(fd, "w") as fh:
            try:
                proc = subprocess.Popen(
                    ["/bin/sh", "-c", PREFETCH, "dalp-prefetch", path,
                     "yes" if listed else "no", *argv_of(name)],
                    env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL, start_new_session=True)
            except OSError:  # fetched by the caller when asked: its error is told then
                os.remove(path + PENDING)
                return
            except BaseException:  # never a claim without a fetcher behind it
                os.remove(path + PENDING)
                raise
            fh.write(str(proc.pid))


def _older(path: str, seconds: float) -> bool:
    try:
        return time.time() - os.stat(path).st_mtime > seconds
    except FileNotFoundError:
        return False


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


# --- the site scripts' command line ----------------------------------------------------------

Command = Callable[[Cfg, argparse.Namespace], Dict[str, Any]]
"""a command that prints one JSON object (its result) and exits 0, or raises"""
WalCommand = Callable[[Cfg, argparse.Namespace], int]
"""wal-push / wal-fetch: PostgreSQL's archive_command / restore_command, an exit status"""


def parser(prog: str) -> Tuple[argparse.ArgumentParser, Any]:
    """The commands every backup tool's script has (``wal-push``, ``restore-command``,
    ``restore``, ``status``, ``ensure-bucket``, ``purge --lab``); the script adds its own
    (``backup``, barman-cloud's ``wal-fetch``, and what else it has) to the returned
    subparsers."""
    top = argparse.ArgumentParser(prog=prog)
    top.add_argument("--config", required=True)
    sub = top.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("wal-push")
    p.add_argument("path")
    p.add_argument("name")
    p = sub.add_parser("restore-command", help="PostgreSQL's restore_command for a restore")
    p.add_argument("--pg-data", required=True, help="the restored cluster's data directory")
    p.add_argument("--spool", required=True, help="the restore's prefetch directory")
    p.add_argument("--parallel", type=int, default=1, help="WAL files fetched at once, ahead")
    p = sub.add_parser("restore")
    p.add_argument("dest")
    p.add_argument("--label")
    sub.add_parser("status")
    sub.add_parser("ensure-bucket")
    p = sub.add_parser("purge", help="lab only: delete everything under the prefix")
    p.add_argument("--lab", action="store_true", required=True)
    return top, sub


def main(prog: str, top: argparse.ArgumentParser, argv: Optional[List[str]],
         wal: Dict[str, WalCommand], commands: Dict[str, Command],
         failures: Tuple[type, ...] = ()) -> int:
    """Run one command of a backup tool's script. The WAL commands answer PostgreSQL with
    an exit status: any error of wal-fetch (a usage error, unreadable settings, an
    exception) is WAL_FETCH_FATAL, never 1, which PostgreSQL reads as "not archived" and
    ends the replay early. Every other command prints its result as one JSON object; its
    errors (``failures``, S3's, the file system's) print one line on stderr and exit 1."""
    fetching = "wal-fetch" in (sys.argv[1:] if argv is None else argv)
    try:
        args = top.parse_args(argv)
    except SystemExit as exc:
        if exc.code and fetching:
            return WAL_FETCH_FATAL
        raise
    try:
        with open(args.config) as fh:
            cfg = json.load(fh)
    except (OSError, ValueError) as exc:
        print(f"{prog}: {args.config}: {exc}", file=sys.stderr)
        return WAL_FETCH_FATAL if args.cmd == "wal-fetch" else 1
    if args.cmd in wal:
        if args.cmd != "wal-fetch":
            return wal[args.cmd](cfg, args)
        try:
            return wal[args.cmd](cfg, args)
        except Exception as exc:  # the spool, a tool that cannot start, settings
            # without a key: PostgreSQL must stop, not end the replay early (an uncaught
            # exception's exit 1 reads as "not archived")
            print(f"{prog} wal-fetch {args.name}: {exc}", file=sys.stderr)
            return WAL_FETCH_FATAL
    from botocore.exceptions import BotoCoreError, ClientError

    every: Dict[str, Command] = {
        "purge": lambda c, _: purge(client(c), c),
        "ensure-bucket": lambda c, _: ensure_bucket(client(c), c),
        **commands}
    try:
        out = every[args.cmd](cfg, args)
    except (Failure, ClientError, BotoCoreError, OSError, *failures) as exc:
        print(f"{prog} {args.cmd}: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    # a library, not a command: the retired s3-archive tool was run as this file (its
    # archive_command and restore_command). A server still configured that way must not
    # take an exit 0 for "archived" (its WAL would be recycled) nor 1 for "not archived"
    # (its replay would end early): wal-fetch gets 126, which stops the recovery.
    print("dalp_s3.py is a library of the backup tools' scripts, not a command: the "
          "s3-archive tool was retired (docs/backup-tools.md); run dalp_barman.py or "
          "dalp_pgbackrest.py", file=sys.stderr)
    sys.exit(WAL_FETCH_FATAL if "wal-fetch" in sys.argv[1:] else 1)
