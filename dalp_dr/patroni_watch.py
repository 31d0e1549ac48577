#!/usr/bin/python3
"""patroni_watch: what the DCS and each Patroni member said, moment by moment, during a drill.

Runs next to the DCS (stdlib only, any Python >= 3.8), started by a cloud-native inject
playbook just before the fault and stopped by verify. Each source is polled every
``--interval`` in a thread of its own (a member that hangs delays nobody else):

* the DCS view: one etcd v3 range over the cluster prefix (``<namespace><scope>/``) through
  etcd's JSON gateway: the leader key, the sync key, each member key;
* each member's own view: Patroni's REST ``GET /patroni`` (role, state, timeline), which
  Patroni answers from a live query of its PostgreSQL.

Twice per interval the latest answers are appended to ``--out`` as one JSON line when they
differ from the previous line (a file stays small; every line is a change). ``summary``
turns such a file into the recovery timeline operators tune ``ttl`` and ``loop_wait`` with:

    leader key gone        the old leader's key released or expired in the DCS
    new leader elected     another member holds the leader key
    new primary promoted   that member's PostgreSQL runs as primary (Patroni's live view)
    old leader demoted     the old leader, last seen running as primary, is seen not to
                           (Patroni's live view: stopping, stopped, demoted, a replica): it
                           accepts no more writes. An isolated leader demotes itself once it
                           cannot reach the DCS; seen only where its REST API can be reached
    sync standby set       the DCS sync key names the new leader and a synchronous standby
    old leader rejoined    the old leader runs as a replica on the new timeline
    cluster whole          every member running, one primary, replicas on its timeline, sync set

Instants have the resolution of ``--interval`` plus one request round trip (bounded by
``--request-timeout``). The watcher stops when ``--stop-file`` exists or after
``--max-seconds``, whichever comes first, so a crashed drill cannot leave it running long.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import ssl
import sys
import threading
import time
import urllib.error
import urllib.request
from typing import Any, Dict, List

Obs = Dict[str, Any]  # typing.Dict: this file also runs on Python 3.8 hosts
RUNNING = ("running", "streaming")


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def _prefix_end(prefix: str) -> str:
    return prefix[:-1] + chr(ord(prefix[-1]) + 1)


class Watcher:
    def __init__(self, etcd_url: str, prefix: str, members: Dict[str, str], timeout: float,
                 context: ssl.SSLContext | None) -> None:
        self.etcd_url = etcd_url.rstrip("/")
        self.prefix = prefix if prefix.endswith("/") else prefix + "/"
        self.members = members
        self.timeout = timeout
        self.context = context

    def _request(self, url: str, body: Dict[str, Any] | None = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(url, data=data,
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=self.timeout, context=self.context) as resp:
            return json.loads(resp.read().decode())

    def dcs(self) -> Obs:
        try:
            reply = self._request(self.etcd_url + "/v3/kv/range", {
                "key": _b64(self.prefix), "range_end": _b64(_prefix_end(self.prefix))})
        except (OSError, ValueError, urllib.error.URLError) as exc:
            return {"error": str(exc)[:200]}
        out: Obs = {"leader": None, "sync": None, "members": {}}
        for kv in reply.get("kvs") or []:
            key = base64.b64decode(kv["key"]).decode()[len(self.prefix):]
            value = base64.b64decode(kv.get("value") or "").decode()
            if key == "leader":
                out["leader"] = value
            elif key == "sync":
                try:
                    sync = json.loads(value)
                    out["sync"] = {"leader": sync.get("leader"),
                                   "sync_standby": sync.get("sync_standby")}
                except ValueError:
                    out["sync"] = {"raw": value[:200]}
            elif key.startswith("members/"):
                try:
                    member = json.loads(value)
                except ValueError:
                    member = {}
                out["members"][key[len("members/"):]] = {
                    "role": _role(member.get("role")), "state": member.get("state"),
                    "timeline": member.get("timeline")}
        return out

    def member(self, url: str) -> Obs:
        try:
            reply = self._request(url.rstrip("/") + "/patroni")
        except urllib.error.HTTPError as exc:
            # Patroni answers 503 with a JSON body when PostgreSQL is not running
            try:
                reply = json.loads(exc.read().decode())
            except (OSError, ValueError):
                return {"error": f"HTTP {exc.code}"}
        except (OSError, ValueError, urllib.error.URLError) as exc:
            return {"error": str(getattr(exc, "reason", exc))[:200]}
        return {"role": _role(reply.get("role")), "state": reply.get("state"),
                "timeline": reply.get("timeline")}

    def poll_forever(self, name: str, probe: Any, latest: Dict[str, Obs], interval: float,
                     stop: threading.Event) -> None:
        """One thread per source, so a member that hangs does not delay what the others say."""
        while not stop.is_set():
            tick = time.monotonic()
            latest[name] = probe()
            stop.wait(max(0.0, interval - (time.monotonic() - tick)))

    def start(self, interval: float, stop: threading.Event) -> Dict[str, Obs]:
        latest: Dict[str, Obs] = {}
        probes = [("dcs", self.dcs)] + [
            ("rest/" + name, (lambda url=url: self.member(url)))
            for name, url in self.members.items()]
        for name, probe in probes:
            latest[name] = probe()
            threading.Thread(target=self.poll_forever, args=(name, probe, latest, interval, stop),
                             daemon=True).start()
        return latest


def _role(role: Any) -> Any:
    return "primary" if role in ("master", "primary", "leader") else role


def watch(args: argparse.Namespace) -> int:
    members = dict(m.split("=", 1) for m in args.member)
    context = None
    if args.cacert or args.cert:
        context = ssl.create_default_context(cafile=args.cacert)
        if args.cert:
            context.load_cert_chain(args.cert, args.key)
    watcher = Watcher(args.etcd, args.prefix, members, args.request_timeout, context)
    deadline = time.monotonic() + args.max_seconds
    previous: Obs | None = None
    stop = threading.Event()
    latest = watcher.start(args.interval, stop)
    with open(args.out, "a", encoding="utf-8") as out:
        while time.monotonic() < deadline and not os.path.exists(args.stop_file):
            tick = time.monotonic()
            snapshot = dict(latest)
            obs = {"dcs": snapshot["dcs"],
                   "rest": {name: snapshot["rest/" + name] for name in members}}
            if obs != previous:
                out.write(json.dumps({"t": round(time.time(), 3), **obs}, sort_keys=True) + "\n")
                out.flush()
                previous = obs
            time.sleep(max(0.0, args.interval / 2 - (time.monotonic() - tick)))
        stop.set()
        out.write(json.dumps({"t": round(time.time(), 3), "stopped": True}) + "\n")
    return 0


def load(path: str) -> List[Obs]:
    records = []
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            line = line.strip()
            if line:
                try:
                    records.append(json.loads(line))
                except ValueError:
                    continue  # a line cut short by a crash: the rest still counts
    return [r for r in records if "dcs" in r]


def _first(records: List[Obs], test: Any, after: float) -> Obs | None:
    for rec in records:
        if rec["t"] >= after and test(rec):
            return rec
    return None


def _dcs_leader(rec: Obs) -> str | None:
    dcs = rec.get("dcs") or {}
    return None if "error" in dcs else dcs.get("leader")


def summarize(records: List[Obs], old_leader: str, since: float = 0.0) -> Dict[str, Any]:
    """The milestones of one leader change, from watch records (see the module doc)."""
    events: List[Dict[str, Any]] = []

    def add(name: str, rec: Obs | None, detail: str) -> float | None:
        if rec is None:
            return None
        events.append({"event": name, "at": rec["t"], "detail": detail, "source": "patroni watch"})
        return float(rec["t"])

    def dcs_ok(rec: Obs) -> bool:
        return "error" not in (rec.get("dcs") or {"error": "none"})

    def rest(rec: Obs, name: str) -> Obs:
        return (rec.get("rest") or {}).get(name) or {"error": "not watched"}

    def running_primary(obs: Obs) -> bool:
        return obs.get("role") == "primary" and obs.get("state") == "running"

    # the old leader demoted: the first answer after the fault that is not a running primary,
    # when an earlier answer was (never an unanswered poll: no answer is no evidence)
    demoted: Obs | None = None
    primary_seen = unanswered = False
    for rec in records:
        obs = rest(rec, old_leader)
        if "error" in obs:
            unanswered = primary_seen
            continue
        if running_primary(obs):
            primary_seen, unanswered = True, False
        elif rec["t"] >= since and primary_seen:
            demoted = rec
            break

    gone = _first(records, lambda r: dcs_ok(r) and _dcs_leader(r) != old_leader, since)
    if gone is not None:
        holder = _dcs_leader(gone)
        holder_text = ("key absent: released or expired" if holder is None
                       else "taken over by " + holder)
        add("leader key gone", gone, f"{old_leader} no longer holds the leader key ({holder_text})")
    elected = _first(records, lambda r: _dcs_leader(r) not in (None, old_leader), since)
    new = _dcs_leader(elected) if elected else None
    result: Dict[str, Any] = {"old_leader": old_leader, "new_leader": new, "events": events,
                              "observations": len(records)}

    def add_demoted() -> None:
        if demoted is None:
            return
        obs = rest(demoted, old_leader)
        add("old leader demoted", demoted,
            "{} runs as primary no more: role {}, state {}{}".format(
                old_leader, obs.get("role"), obs.get("state"),
                " (its REST API had not answered since it was last seen a running primary:"
                " it may have stopped earlier)" if unanswered else ""))

    if elected is None or new is None:
        add_demoted()
        result["last"] = records[-1] if records else None
        return result
    t_elected = add("new leader elected", elected, new + " holds the leader key in the DCS")
    assert t_elected is not None

    promoted = _first(records, lambda r: running_primary(rest(r, new)), since)
    timeline = rest(promoted, new).get("timeline") if promoted else "?"
    add("new primary promoted", promoted, f"{new} runs as primary on timeline {timeline}")

    def sync_set(rec: Obs) -> bool:
        sync = (rec.get("dcs") or {}).get("sync") or {}
        return sync.get("leader") == new and bool(sync.get("sync_standby"))

    synced = _first(records, sync_set, t_elected)
    add("sync standby set", synced, "synchronous standby {} for {}".format(
        ((synced or {}).get("dcs") or {}).get("sync", {}).get("sync_standby"), new))

    def on_new_timeline(rec: Obs, name: str) -> bool:
        me, primary = rest(rec, name), rest(rec, new)
        return (me.get("role") == "replica" and me.get("state") in RUNNING
                and me.get("timeline") is not None
                and me.get("timeline") == primary.get("timeline"))

    rejoined = _first(records, lambda r: on_new_timeline(r, old_leader), t_elected)
    add("old leader rejoined", rejoined, "{} runs as a replica on timeline {}".format(
        old_leader, rest(rejoined, old_leader).get("timeline") if rejoined else "?"))

    def whole(rec: Obs) -> bool:
        members = rec.get("rest") or {}
        primaries = [n for n, m in members.items() if m.get("role") == "primary"]
        return (_dcs_leader(rec) == new and primaries == [new] and sync_set(rec)
                and rest(rec, new).get("state") == "running"
                and all(on_new_timeline(rec, n) for n in members if n != new))

    complete = _first(records, whole, t_elected)
    members_seen = len((complete or {}).get("rest") or {})
    add("cluster whole", complete,
        f"{members_seen} members running, {new} primary, replicas on its timeline")
    add_demoted()
    result["last"] = records[-1]
    return result


def main(argv: List[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="patroni_watch", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    w = sub.add_parser("watch", help="observe the DCS and members until stopped")
    w.add_argument("--etcd", required=True, help="etcd client URL, e.g. http://127.0.0.1:2379")
    w.add_argument("--prefix", required=True, help="<namespace><scope>/, e.g. /service/dalp/")
    w.add_argument("--member", action="append", default=[], help="NAME=REST_URL (repeat)")
    w.add_argument("--out", required=True)
    w.add_argument("--stop-file", required=True)
    w.add_argument("--interval", type=float, default=0.1)
    w.add_argument("--request-timeout", type=float, default=0.5)
    w.add_argument("--max-seconds", type=float, default=900.0)
    w.add_argument("--cacert")
    w.add_argument("--cert")
    w.add_argument("--key")
    s = sub.add_parser("summary", help="print the recovery timeline of a watch file as JSON")
    s.add_argument("file")
    s.add_argument("--old-leader", required=True)
    s.add_argument("--since", type=float, default=0.0, help="epoch seconds (the fault)")
    args = parser.parse_args(argv)
    if args.command == "watch":
        return watch(args)
    try:
        records = load(args.file)
    except OSError as exc:
        print(f"cannot read {args.file}: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(summarize(records, args.old_leader, args.since), sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
