#!/usr/bin/python3
"""dalp_s3: WAL archiving and base backups in S3 for the hot-cold pattern (boto3 only).

Runs on the database hosts, as the database OS user, with any Python >= 3.8 that has boto3
(Debian: python3-boto3). It is PostgreSQL's archive_command / restore_command, the base
backup uploader, and the restore side's downloader. Settings come from a JSON file
(--config, mode 0600):

    {"bucket": "...", "prefix": "...", "endpoint_url": null | "http://127.0.0.1:55450",
     "region": "us-east-1", "access_key_id": null | "...", "secret_access_key": null | "..."}

With no keys the standard boto3 credential chain is used (instance profile, env, ...), so
the same file works against AWS S3. Layout under s3://bucket/prefix/:

    wal/<segment or .history>.gz              gzip of each archived WAL file
    basebackups/<label>/<file>                 pg_basebackup -Ft output (base.tar, pg_wal.tar,
                                               backup_manifest)
    basebackups/<label>/dalp-backup.json       written LAST: sizes, sha256, start segment;
                                               a backup without it is incomplete

Every command prints one JSON object on stdout; errors go to stderr with the object's key
and exit 1 (wal-fetch: exit 1 when the object does not exist, as restore_command must, and
126 on an error, so that PostgreSQL stops the recovery instead of ending it early).

A restore fetches its WAL ahead, like pgBackRest's asynchronous archive-get: `backup-fetch
--wal-dir DIR` also downloads, in parallel and checksum-verified, every archived WAL file
from the backup's start segment on (the first PREFETCH_MAX segments, and every timeline
history file) into DIR, and writes DIR/listing.json last: every WAL name the archive held
then. `wal-fetch --prefetched DIR` then serves a name from DIR, answers "not archived" at
once for a segment the archive cannot hold (it holds a later one on that timeline), and asks
S3 for anything else; neither of the first two imports boto3 (a Python process with boto3
costs a few tenths of a second per WAL file PostgreSQL asks for).
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import os
import re
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from typing import Any, Dict

Cfg = Dict[str, Any]  # typing.Dict: this file also runs on Python 3.8 hosts
MANIFEST = "dalp-backup.json"
NOT_FOUND = ("404", "NoSuchKey", "NotFound")
"""error codes of an object that does not exist (dalp_dr.adapters.aws_errors uses them too)"""
SEGMENT = re.compile(r"^([0-9A-F]{8})([0-9A-F]{8})([0-9A-F]{8})$")
WAL_FILE = re.compile(r"^[0-9A-F]{8}(\.history|[0-9A-F]{16}(\.partial|\.[0-9A-F]{8}\.backup)?)$")
"""a name restore_command may be asked for: a segment, a timeline history, a backup history"""
LISTING = "listing.json"
"""written last into a prefetch directory: the WAL names the archive held"""
PREFETCH_MAX = 64
"""segments fetched ahead at most (16 MiB each unpacked: 1 GiB); later ones come from S3"""
WAL_FETCH_FATAL = 126
"""wal-fetch's exit status for an error (a corrupt object, an unreachable endpoint, a full
disk): PostgreSQL aborts recovery on a restore_command status above 125, where any other
non-zero status means "not archived" and would end the replay early, silently"""


def transfer() -> Any:
    from boto3.s3.transfer import TransferConfig

    return TransferConfig(multipart_threshold=8 * 1024 * 1024, multipart_chunksize=16 * 1024 * 1024,
                          max_concurrency=8, use_threads=True)


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


def sha256_file(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1024 * 1024), b""):
            digest.update(chunk)
    return digest.hexdigest()


def list_keys(s3: Any, cfg: Cfg, sub: str) -> list[dict[str, Any]]:
    out = []
    paginator = s3.get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=cfg["bucket"], Prefix=key(cfg, sub) + "/"):
        out.extend(page.get("Contents", []))
    return out


# --- WAL -------------------------------------------------------------------------------------

def wal_push(s3: Any, cfg: Cfg, path: str, name: str) -> dict[str, Any]:
    from botocore.exceptions import ClientError

    with open(path, "rb") as fh:
        raw = fh.read()
    body = gzip.compress(raw, compresslevel=1)
    target = key(cfg, "wal", name + ".gz")
    try:
        head = s3.head_object(Bucket=cfg["bucket"], Key=target)
        if head.get("Metadata", {}).get("sha256") == hashlib.sha256(raw).hexdigest():
            return {"wal": name, "already": True}
        raise Failure(f"s3://{cfg['bucket']}/{target} exists with different content: "
                      "refusing to overwrite archived WAL (one archive location per lineage)")
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") not in NOT_FOUND:
            raise
    s3.put_object(Bucket=cfg["bucket"], Key=target, Body=body,
                  Metadata={"sha256": hashlib.sha256(raw).hexdigest(), "size": str(len(raw))})
    return {"wal": name, "bytes": len(raw), "stored": len(body)}


def wal_fetch(s3: Any, cfg: Cfg, name: str, dest: str) -> dict[str, Any] | None:
    from botocore.exceptions import ClientError

    target = key(cfg, "wal", name + ".gz")
    try:
        obj = s3.get_object(Bucket=cfg["bucket"], Key=target)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in NOT_FOUND:
            return None
        raise
    raw = gzip.decompress(obj["Body"].read())
    expected = obj.get("Metadata", {}).get("sha256")
    if expected and hashlib.sha256(raw).hexdigest() != expected:
        raise Failure(f"s3://{cfg['bucket']}/{target}: checksum mismatch (corrupt WAL object)")
    _write(dest, raw)
    return {"wal": name, "bytes": len(raw)}


def _write(dest: str, raw: bytes) -> None:
    tmp = dest + ".dalp-tmp"
    with open(tmp, "wb") as fh:
        fh.write(raw)
    os.replace(tmp, dest)


def wal_prefetched(directory: str, name: str, dest: str) -> dict[str, Any] | bool | None:
    """``name`` from a prefetch directory: its result when it is there; None when the
    archive cannot hold it (a segment the listing lacks though it holds a later one on the
    same timeline: the archiver uploads in order); False when only S3 can say (anything the
    listing lacks past its newest segment, a history file it lacks, a listed file that was
    not fetched ahead)."""
    if not WAL_FILE.fullmatch(name):
        raise Failure(f"{name}: not a WAL file name")
    try:
        with open(os.path.join(directory, LISTING)) as fh:
            listed = set(json.load(fh)["names"])
    except (OSError, ValueError, KeyError, TypeError):
        return False  # no complete prefetch: ask S3
    try:
        with open(os.path.join(directory, name), "rb") as fh:
            raw = fh.read()
    except FileNotFoundError:
        if name in listed:
            return False
        number = segment_number(name)
        if number is None:
            return False
        later = any(n is not None and n[0] == number[0] and n[1] > number[1]
                    for n in map(segment_number, listed))
        return None if later else False
    _write(dest, raw)
    return {"wal": name, "bytes": len(raw), "prefetched": True}


def wal_prefetch(s3: Any, cfg: Cfg, directory: str, start_segment: str | None,
                 limit: int = PREFETCH_MAX) -> dict[str, Any]:
    """The archived WAL a restore from ``start_segment`` asks for first into ``directory``,
    checksum-verified: every timeline history file and the first ``limit`` segments at or
    after its position (on any timeline); then the listing of the archive, last. A file that
    cannot be fetched is left out (restore_command then asks S3 for it, and says why)."""
    from botocore.exceptions import BotoCoreError, ClientError

    started = time.monotonic()
    # a key is data: only a key that is exactly wal/<WAL file name>.gz gives a file name
    under = key(cfg, "wal", "")
    names = sorted({k[len(under):-3] for k in (o["Key"] for o in list_keys(s3, cfg, "wal"))
                    if k.startswith(under) and k.endswith(".gz")
                    and WAL_FILE.fullmatch(k[len(under):-3])})
    start = segment_number(start_segment or "")
    numbered = [(n, name) for name, n in ((name, segment_number(name)) for name in names)
                if n is not None and (start is None or n[1] >= start[1])]
    segments = [name for (tli, number), name in sorted(numbered, key=lambda x: (x[0][1], x[0][0]))]
    wanted = [name for name in names if name.endswith(".history")] + segments[:limit]
    os.makedirs(directory, mode=0o700, exist_ok=True)
    skipped: list[str] = []

    def one(name: str) -> int:
        try:
            got = wal_fetch(s3, cfg, name, os.path.join(directory, name))
        except (Failure, ClientError, BotoCoreError, OSError) as exc:
            skipped.append(f"{name}: {exc}")
            return 0
        if got is None:
            skipped.append(f"{name}: listed, then gone")
            return 0
        return int(got["bytes"])

    with ThreadPoolExecutor(max_workers=4) as pool:
        total = sum(pool.map(one, wanted))
    _write(os.path.join(directory, LISTING), json.dumps({"names": names}).encode())
    return {"files": len(wanted) - len(skipped), "bytes": total,
            "seconds": round(time.monotonic() - started, 3),
            "left_to_s3": max(0, len(segments) - limit) + len(skipped),
            "skipped": sorted(skipped)[:10]}


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


# --- base backups ----------------------------------------------------------------------------

def backup_push(s3: Any, cfg: Cfg, directory: str, label: str) -> dict[str, Any]:
    files = sorted(f for f in os.listdir(directory) if os.path.isfile(os.path.join(directory, f)))
    if "base.tar" not in files:
        raise Failure(f"{directory}: no base.tar (expected pg_basebackup -Ft output)")
    entries: dict[str, dict[str, Any]] = {}
    started = time.monotonic()
    for name in files:
        path = os.path.join(directory, name)
        s3.upload_file(path, cfg["bucket"], key(cfg, "basebackups", label, name), Config=transfer())
        entries[name] = {"size": os.path.getsize(path), "sha256": sha256_file(path)}
    import tarfile
    with tarfile.open(os.path.join(directory, "base.tar")) as tar:
        member = tar.extractfile("backup_label")
        label_text = member.read().decode() if member else ""
    m = re.search(r"START WAL LOCATION: \S+ \(file ([0-9A-F]{24})\)", label_text)
    start_segment = m.group(1) if m else None
    manifest = {"label": label, "created": datetime.now(timezone.utc).isoformat(),
                "files": entries, "start_segment": start_segment, "backup_label": label_text}
    s3.put_object(Bucket=cfg["bucket"], Key=key(cfg, "basebackups", label, MANIFEST),
                  Body=json.dumps(manifest, indent=2).encode())
    total = sum(e["size"] for e in entries.values())
    return {"label": label, "bytes": total, "seconds": round(time.monotonic() - started, 3),
            "start_segment": start_segment}


def backups(s3: Any, cfg: Cfg) -> list[str]:
    """Complete backups (with a manifest), newest first."""
    found = []
    for obj in list_keys(s3, cfg, "basebackups"):
        if obj["Key"].endswith("/" + MANIFEST):
            found.append((obj["LastModified"], obj["Key"].split("/")[-2]))
    return [label for _, label in sorted(found, reverse=True)]


def read_manifest(s3: Any, cfg: Cfg, label: str) -> dict[str, Any]:
    from botocore.exceptions import ClientError

    target = key(cfg, "basebackups", label, MANIFEST)
    try:
        manifest: dict[str, Any] = json.loads(
            s3.get_object(Bucket=cfg["bucket"], Key=target)["Body"].read())
        return manifest
    except ClientError as exc:
        raise Failure(f"s3://{cfg['bucket']}/{target}: {exc}") from None


def backup_fetch(s3: Any, cfg: Cfg, dest: str, label: str | None,
                 wal_dir: str | None = None) -> dict[str, Any]:
    labels = backups(s3, cfg)
    if not labels:
        raise Failure(f"s3://{cfg['bucket']}/{key(cfg, 'basebackups')}/: no complete base backup")
    label = labels[0] if label in (None, "", "latest") else label
    manifest = read_manifest(s3, cfg, label)
    os.makedirs(dest, exist_ok=True)
    started = time.monotonic()

    def one(name: str) -> tuple[str, str]:
        path = os.path.join(dest, name)
        s3.download_file(cfg["bucket"], key(cfg, "basebackups", label, name), path,
                         Config=transfer())
        return name, path

    with ThreadPoolExecutor(max_workers=4) as pool:
        fetched = list(pool.map(one, sorted(manifest["files"])))
    seconds = time.monotonic() - started
    verify_started = time.monotonic()
    for name, path in fetched:
        want = manifest["files"][name]
        size = os.path.getsize(path)
        if size != want["size"] or sha256_file(path) != want["sha256"]:
            raise Failure(f"s3://{cfg['bucket']}/{key(cfg, 'basebackups', label, name)}: "
                          f"corrupt or truncated ({size} bytes, expected {want['size']}, "
                          "sha256 mismatch)")
    total = sum(f["size"] for f in manifest["files"].values())
    out = {"label": label, "bytes": total, "seconds": round(seconds, 3),
           "verify_seconds": round(time.monotonic() - verify_started, 3),
           "mib_per_s": round(total / 1048576 / seconds, 1) if seconds > 0 else None,
           "start_segment": manifest.get("start_segment"), "created": manifest.get("created")}
    if wal_dir:
        out["wal"] = wal_prefetch(s3, cfg, wal_dir, manifest.get("start_segment"))
    return out


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


# --- status ----------------------------------------------------------------------------------

def status(s3: Any, cfg: Cfg) -> dict[str, Any]:
    now = datetime.now(timezone.utc)
    labels = backups(s3, cfg)
    newest = read_manifest(s3, cfg, labels[0]) if labels else None
    wal = [o for o in list_keys(s3, cfg, "wal") if o["Key"].endswith(".gz")]
    segments = []
    for obj in wal:
        name = obj["Key"].rsplit("/", 1)[-1][:-3]
        number = segment_number(name)
        if number:
            segments.append((number, name, obj["LastModified"]))
    segments.sort()
    newest_wal = segments[-1] if segments else None  # highest timeline, then position
    gap = None
    if newest and newest.get("start_segment"):
        gap = find_gap(newest["start_segment"], [name for _, name, _ in segments])
    return {
        "bucket": cfg["bucket"], "prefix": cfg.get("prefix", ""),
        "backups": len(labels),
        "newest_backup": labels[0] if labels else None,
        "newest_backup_created": newest.get("created") if newest else None,
        "newest_backup_age_s": round((now - datetime.fromisoformat(newest["created"]))
                                     .total_seconds(), 1) if newest else None,
        "newest_backup_start_segment": newest.get("start_segment") if newest else None,
        "wal_segments": len(segments),
        "newest_wal": newest_wal[1] if newest_wal else None,
        "newest_wal_age_s": round((now - newest_wal[2]).total_seconds(), 1) if newest_wal else None,
        "wal_gap": gap,
        "wal_gap_object": f"s3://{cfg['bucket']}/{key(cfg, 'wal', gap + '.gz')}" if gap else None,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="dalp_s3")
    parser.add_argument("--config", required=True)
    sub = parser.add_subparsers(dest="cmd", required=True)
    for name, positional in (("wal-push", ("path", "name")), ("wal-fetch", ("name", "dest")),
                             ("backup-push", ("dir", "label")), ("backup-fetch", ("dest",))):
        p = sub.add_parser(name)
        for arg in positional:
            p.add_argument(arg)
        if name == "backup-fetch":
            p.add_argument("--label")
            p.add_argument("--wal-dir", help="also fetch the WAL a restore replays, ahead")
        if name == "wal-fetch":
            p.add_argument("--prefetched", help="a backup-fetch --wal-dir directory")
    sub.add_parser("status")
    sub.add_parser("ensure-bucket")
    p = sub.add_parser("purge", help="lab only: delete everything under the prefix")
    p.add_argument("--lab", action="store_true", required=True)
    args = parser.parse_args(argv)
    if args.cmd == "wal-fetch" and args.prefetched:
        try:
            ahead = wal_prefetched(args.prefetched, args.name, args.dest)
        except (Failure, OSError) as exc:
            print(f"dalp_s3 wal-fetch: {exc}", file=sys.stderr)
            return WAL_FETCH_FATAL
        if ahead is None:
            return 1
        if ahead is not False:
            print(json.dumps(ahead))
            return 0
    from botocore.exceptions import BotoCoreError, ClientError

    with open(args.config) as fh:
        cfg = json.load(fh)
    s3 = client(cfg)
    out: dict[str, Any] | None
    try:
        if args.cmd == "wal-push":
            out = wal_push(s3, cfg, args.path, args.name)
        elif args.cmd == "wal-fetch":
            out = wal_fetch(s3, cfg, args.name, args.dest)
            if out is None:
                return 1
        elif args.cmd == "backup-push":
            out = backup_push(s3, cfg, args.dir, args.label)
        elif args.cmd == "backup-fetch":
            out = backup_fetch(s3, cfg, args.dest, args.label, args.wal_dir)
        elif args.cmd == "purge":
            out = purge(s3, cfg)
        elif args.cmd == "ensure-bucket":
            out = ensure_bucket(s3, cfg)
        else:
            out = status(s3, cfg)
    except (Failure, ClientError, BotoCoreError, OSError) as exc:
        print(f"dalp_s3 {args.cmd}: {exc}", file=sys.stderr)
        return WAL_FETCH_FATAL if args.cmd == "wal-fetch" else 1
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
