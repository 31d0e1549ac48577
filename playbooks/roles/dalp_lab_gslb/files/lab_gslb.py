"""Lab support for the hot-hot-platform lab (not product code): what its global load balancer
(HAProxy) and the sites' APIs say, read the way an operator would.

``health URL --expect ok --wait S``
    Polls ``GET URL`` until its JSON ``status`` is the expected one (at most S seconds; each
    request at most 1 s). Prints ``DALP_HEALTH <status> <epoch s>`` (the last answer, ``none``
    when nothing answered); exit 0 when it matched.

``state --socket SOCK --log LOG [--expect BACKEND=SERVER ...] [--wait S] [--since EPOCH]``
    HAProxy's own view: ``show stat`` on its runtime API (each server's status, whether it is a
    backup, its last check) and which server each backend sends its clients to (the first
    server up that is not a backup, else the first backup up), plus the server state changes
    its log recorded (ISO timestamps, from ``--since``). With ``--expect``, polls (at most S
    seconds) until each named backend sends its clients to that server. Prints one JSON
    document; exit 0 when every expectation was met.
"""

from __future__ import annotations

import argparse
import csv
import json
import re
import socket
import sys
import time
import urllib.error
import urllib.request
from datetime import datetime
from pathlib import Path
from typing import Any

# "2026-12-03T11:45:30.800456+00:00 Server be/srv is DOWN, reason: ..., info: "...", ..."
_CHANGE = re.compile(r"^(\S+) (?:Backup )?Server ([^/\s]+)/(\S+) is (UP|DOWN)\b(.*)$")


def health(url: str, expect: str, wait: float) -> int:
    deadline = time.monotonic() + wait
    status = "none"
    while True:
        try:
            with urllib.request.urlopen(url, timeout=1.0) as reply:
                body = reply.read()
        except urllib.error.HTTPError as exc:
            body = exc.read()
        except (OSError, ValueError):
            body = b""
        try:
            data = json.loads(body) if body else {}
            status = str(data.get("status", "unknown")) if isinstance(data, dict) else "unknown"
        except ValueError:
            status = "unknown"
        if not body:
            status = "none"
        if status == expect or time.monotonic() >= deadline:
            break
        time.sleep(0.1)
    print(f"DALP_HEALTH {status} {time.time():.6f}")
    return 0 if status == expect else 1


def _ask(path: str, command: str) -> str:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(2.0)
        sock.connect(path)
        sock.sendall(command.encode() + b"\n")
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks).decode()


def backends(path: str) -> dict[str, dict[str, Any]]:
    text = _ask(path, "show stat").lstrip("# ")
    out: dict[str, dict[str, Any]] = {}
    for row in csv.DictReader(text.splitlines()):
        name, server = row.get("pxname", ""), row.get("svname", "")
        if not name or server in ("FRONTEND", "BACKEND", ""):
            continue
        backend = out.setdefault(name, {"servers": {}, "serving": None})
        backend["servers"][server] = {
            "status": row.get("status", ""), "backup": row.get("bck") == "1",
            "seconds_since_change": int(row["lastchg"]) if row.get("lastchg") else None,
            "check": row.get("check_status", ""), "check_detail": row.get("last_chk", "")}
    for backend in out.values():  # (the servers in the config's order)
        up = [(n, s["backup"]) for n, s in backend["servers"].items()
              if s["status"].startswith("UP")]
        active = [n for n, backup in up if not backup] or [n for n, _ in up]
        backend["serving"] = active[0] if active else None
    return out


def changes(log: Path, since: float) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    try:
        lines = log.read_text(encoding="utf-8", errors="replace").splitlines()
    except FileNotFoundError:
        return out
    for line in lines:
        match = _CHANGE.match(line)
        if match is None:
            continue
        try:
            at = datetime.fromisoformat(match[1]).timestamp()
        except ValueError:
            continue
        if at < since:
            continue
        reason = re.search(r"reason: (.*?)(?:, check duration|\. |$)", match[5])
        out.append({"at": at, "backend": match[2], "server": match[3], "state": match[4],
                    "reason": reason[1] if reason else ""})
    return out


def state(path: str, log: Path, expect: dict[str, str], wait: float, since: float) -> int:
    deadline = time.monotonic() + wait
    while True:
        try:
            seen: dict[str, Any] = {"backends": backends(path), "error": None}
        except OSError as exc:
            seen = {"backends": {}, "error": f"runtime API {path}: {exc}"}
        unmet = {b: s for b, s in expect.items()
                 if seen["backends"].get(b, {}).get("serving") != s}
        if not unmet or time.monotonic() >= deadline:
            break
        time.sleep(0.1)
    seen.update(at=time.time(), unmet=unmet, changes=changes(log, since))
    print(json.dumps(seen))
    return 0 if not unmet and seen["error"] is None else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    h = sub.add_parser("health")
    h.add_argument("url")
    h.add_argument("--expect", default="ok")
    h.add_argument("--wait", type=float, default=0.0)
    s = sub.add_parser("state")
    s.add_argument("--socket", required=True)
    s.add_argument("--log", type=Path, required=True)
    s.add_argument("--expect", action="append", default=[], metavar="BACKEND=SERVER")
    s.add_argument("--wait", type=float, default=0.0)
    s.add_argument("--since", type=float, default=0.0)
    args = parser.parse_args(argv)
    if args.command == "health":
        return health(args.url, args.expect, args.wait)
    expect = dict(e.split("=", 1) for e in args.expect)
    return state(args.socket, args.log, expect, args.wait, args.since)


if __name__ == "__main__":
    sys.exit(main())
