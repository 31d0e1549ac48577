#!/usr/bin/python
"""Ansible module ``dalp_wal_divergence``: what a failover lost, read from the old primary's WAL.

When a standby is promoted its new timeline forks from the old one at an LSN (the new
timeline's history file says where). Every transaction whose commit record the old primary
wrote at or after that LSN is lost: its commit is not on the new timeline. The old primary's
``pg_wal`` still holds that WAL until it is rewound or rebuilt; this module walks it with
``pg_waldump`` (PostgreSQL's own reader, run as the database OS user through ``run_as``, an
argv list) and returns, for each lost transaction, its id, commit time, the relations it wrote
and how many records it wrote. Nothing of the rows themselves: pg_waldump prints record
descriptions, never tuple data, and only ids, times and relation file numbers are kept.

``state: walk`` runs on the old primary's host. ``state: names`` runs on the new primary's host
and maps relation file numbers to table names through the recovered catalog (indexes and
TOAST tables to the table they belong to), with ``psql`` as the database OS user (the numbers
reach SQL only as integers inside a psql variable, quoted by psql).

The parsing functions are plain Python (``parse_history``, ``walk``): unit tests drive them with
pg_waldump's text. ``main`` is the Ansible entry point; it runs where the module is shipped
(AnsiballZ bundles ``ansible.module_utils``).
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import threading
from collections.abc import Iterable
from datetime import datetime, timezone
from typing import Any

DOCUMENTATION = r"""
module: dalp_wal_divergence
short_description: The transactions a failover lost, from the old primary's WAL (pg_waldump)
options:
  state:
    description: walk (on the old primary's host) or names (on the new primary's host)
    type: str
    default: walk
  run_as:
    description: the command prefix that runs as the database OS user, as argv words
    type: list
    elements: str
    default: []
  pg_bin: {description: PostgreSQL's bin directory, type: str, required: true}
  data_dir:
    description: >-
      walk - the old primary's data directory, or a copy of its pg_wal and global/pg_control
    type: str
  history: {description: walk - the new timeline's history file, as text, type: str}
  new_timeline: {description: walk - the new primary's timeline, type: int}
  relations:
    description: names - relation file numbers as [tablespace, database, filenode] triples
    type: list
    elements: list
  psql:
    description: names - psql's argv on the new primary (as the OS user, on its socket)
    type: list
    elements: str
  timeout: {description: seconds pg_waldump may take, type: float, default: 120}
"""

RETURN = r"""
available:
  description: walk - whether the old primary's WAL past the fork could be read
  type: bool
reason: {description: walk - why not, when not, type: str}
fork_lsn: {description: walk - where the new timeline forked, type: str}
old_timeline: {description: walk - the timeline the old primary wrote, type: int}
lost:
  description: walk - every lost transaction (xid, committed_at, lsn, relations, records)
  type: list
aborted_after_fork:
  description: walk - transactions that aborted after the fork (nothing lost)
  type: int
unfinished_after_fork:
  description: walk - transactions with records after the fork but no commit (not lost)
  type: int
newest_surviving_commit_at:
  description: walk - the old primary's newest commit before the fork
  type: str
end_lsn: {description: walk - where the last record read ends, type: str}
names:
  description: names - "tablespace/database/filenode" -> "database.schema.table"
  type: dict
"""

LSN = re.compile(r"^([0-9A-Fa-f]{1,8})/([0-9A-Fa-f]{1,8})$")
RECORD = re.compile(r"^rmgr: (\S+)\s+len \(rec/tot\):\s*\d+/\s*(\d+), tx:\s*(\d+), "
                    r"lsn: ([0-9A-Fa-f]+/[0-9A-Fa-f]+), prev [0-9A-Fa-f]+/[0-9A-Fa-f]+, "
                    r"desc: (.*)$")
BLOCK_REF = re.compile(r"blkref #\d+: rel (\d+)/(\d+)/(\d+)")
# COMMIT <time> ...; COMMIT_PREPARED <xid>: <time> ... (the same for ABORT)
END = re.compile(r"^(COMMIT|ABORT)(?:_PREPARED (\d+):)? "
                 r"(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(?:\.\d+)?) UTC")
PAGE = 8192
SUBXACTS = re.compile(r"subxacts: ([\d ]+)")
WAL_END = re.compile(r"error in WAL record at|invalid record length|invalid magic number|"
                     r"invalid record offset|record with incorrect prev-link|"
                     r"contrecord is requested|there is no contrecord flag|"
                     r"invalid resource manager ID|incorrect resource manager data checksum")


def lsn_value(text: str) -> int:
    """An LSN such as ``0/3000148`` as a number (ValueError for anything else)."""
    match = LSN.match(text.strip())
    if match is None:
        raise ValueError(f"not an LSN: {text[:40]!r}")
    return (int(match.group(1), 16) << 32) | int(match.group(2), 16)


def lsn_text(value: int) -> str:
    return f"{value >> 32:X}/{value & 0xFFFFFFFF:X}"


def parse_history(text: str, new_timeline: int) -> tuple[int, int]:
    """(parent timeline, fork LSN) of ``new_timeline`` from its history file: the last entry
    (``<parent tli> <switchpoint> <reason>``) is the switch that created it."""
    entries = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        fields = line.split()
        if len(fields) < 2:
            raise ValueError(f"timeline history line not understood: {line[:80]!r}")
        entries.append((int(fields[0]), lsn_value(fields[1])))
    if not entries:
        raise ValueError("the timeline history is empty")
    parent, fork = entries[-1]
    if parent >= new_timeline:
        raise ValueError(f"timeline {new_timeline}'s history names parent {parent}")
    return parent, fork


def _when(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=timezone.utc)  # noqa: UP017 (py3.8+)


LOST_LISTED = 20000
"""lost transactions listed one by one (the evidence); the figures count them all"""
RELATION_SETS = 5000
"""distinct sets of relations the lost transactions wrote, counted (the tables' figures)"""


def walk(lines: Iterable[str], fork: int) -> dict[str, Any]:
    """Every transaction pg_waldump's ``lines`` show ending at or after ``fork``.

    Records of a transaction before the fork count too (a transaction that wrote before the
    fork and committed after it is lost whole), as far back as ``lines`` go; a
    subtransaction's records belong to the top-level transaction that lists it in its
    commit. A transaction prepared before the fork (two-phase commit) survives, prepared,
    on the new primary: its COMMIT PREPARED after the fork loses nothing."""
    relations: dict[int, set[tuple[int, int, int]]] = {}
    records: dict[int, int] = {}
    after_fork: set[int] = set()
    prepared_before: set[int] = set()
    lost: list[dict[str, Any]] = []
    total = 0
    sets: dict[tuple[str, ...], int] = {}
    oldest: datetime | None = None
    newest: datetime | None = None
    aborted = resolved = 0
    ended: set[int] = set()
    newest_surviving: datetime | None = None
    end_lsn: int | None = None
    for line in lines:
        match = RECORD.match(line)
        if match is None:
            continue
        rmgr, length, xid = match.group(1), int(match.group(2)), int(match.group(3))
        lsn, desc = lsn_value(match.group(4)), match.group(5)
        end_lsn = lsn + length
        if xid:
            records[xid] = records.get(xid, 0) + 1
            relations.setdefault(xid, set()).update(
                (int(s), int(d), int(r)) for s, d, r in BLOCK_REF.findall(desc))
            if lsn >= fork:
                after_fork.add(xid)
        if rmgr != "Transaction":
            continue
        if desc.startswith("PREPARE") and lsn < fork:
            prepared_before.add(xid)
            continue
        end = END.match(desc)
        if end is None:
            continue
        kind, prepared, at = end.group(1), end.group(2), _when(end.group(3))
        top = int(prepared) if prepared else xid
        listed = SUBXACTS.search(desc)
        subs = [int(s) for s in listed.group(1).split()] if listed else []
        ended.update([top, *subs])
        if lsn < fork:
            if kind == "COMMIT" and (newest_surviving is None or at > newest_surviving):
                newest_surviving = at
            continue
        if prepared and top in prepared_before:
            resolved += 1  # prepared on the new primary too: nothing of it is lost
            continue
        if kind == "ABORT":
            aborted += 1
            continue
        wrote: set[tuple[int, int, int]] = set()
        count = 0
        for member in (top, *subs):
            wrote |= relations.get(member, set())
            count += records.get(member, 0)
        names = tuple(f"{s}/{d}/{r}" for s, d, r in sorted(wrote))
        total += 1
        oldest = at if oldest is None or at < oldest else oldest
        newest = at if newest is None or at > newest else newest
        if names in sets or len(sets) < RELATION_SETS:
            sets[names] = sets.get(names, 0) + 1
        if len(lost) < LOST_LISTED:
            lost.append({"xid": top, "committed_at": at.isoformat(), "lsn": lsn_text(lsn),
                         "relations": list(names), "records": count})
    return {
        "lost": lost, "lost_total": total,
        "relation_sets": [[list(names), n] for names, n in sets.items()],
        "oldest_lost_commit_at": oldest.isoformat() if oldest else None,
        "newest_lost_commit_at": newest.isoformat() if newest else None,
        "aborted_after_fork": aborted, "prepared_resolved_after_fork": resolved,
        "unfinished_after_fork": len(after_fork - ended),
        "newest_surviving_commit_at": newest_surviving.isoformat() if newest_surviving else None,
        "end_lsn": lsn_text(end_lsn) if end_lsn is not None else None,  # the last record's end
        "end": end_lsn,
    }


def _env() -> dict[str, str]:
    """The module's environment with a fixed locale (pg_controldata's labels are English;
    pg_waldump is told TZ=UTC on its own command line)."""
    return {**os.environ, "LC_ALL": "C.UTF-8", "LANG": "C.UTF-8"}


def _controldata(run_as: list[str], pg_bin: str, data_dir: str, timeout: float
                 ) -> dict[str, str]:
    proc = subprocess.run([*run_as, f"{pg_bin}/pg_controldata", data_dir], capture_output=True,
                          text=True, timeout=timeout, env=_env(), check=False)
    if proc.returncode != 0:
        raise LookupError((proc.stderr or proc.stdout).strip()[:300]
                          or f"pg_controldata exited {proc.returncode}")
    out: dict[str, str] = {}
    for line in proc.stdout.splitlines():
        key, sep, value = line.partition(":")
        if sep:
            out[key.strip()] = value.strip()
    return out


def _segment_start(lsn: int, size: int) -> int:
    return lsn - lsn % size


def run_walk(params: dict[str, Any]) -> dict[str, Any]:
    """The ``walk`` state: the old primary's WAL from just before the fork to its end."""
    run_as: list[str] = list(params.get("run_as") or [])
    pg_bin, data_dir = params["pg_bin"], params["data_dir"]
    timeout = float(params.get("timeout") or 120)
    new_tli = int(params["new_timeline"])
    old_tli, fork = parse_history(params.get("history") or "", new_tli)
    base = {"fork_lsn": lsn_text(fork), "old_timeline": old_tli, "new_timeline": new_tli}
    try:
        control = _controldata(run_as, pg_bin, data_dir, timeout)
    except (LookupError, OSError, subprocess.TimeoutExpired) as exc:
        return {**base, "available": False,
                "reason": f"the old primary's data directory cannot be read ({exc})"}
    tli_text = control.get("Latest checkpoint's TimeLineID", "")
    if not tli_text.isdigit():
        return {**base, "available": False,
                "reason": "the old primary's control file names no timeline"}
    if int(tli_text) != old_tli:
        return {**base, "available": False, "reason": (
            f"the old primary is on timeline {tli_text}, not {old_tli}: it was rewound or "
            "rebuilt before the probe ran, its WAL past the fork is gone")}
    size_text = control.get("Bytes per WAL segment", "16777216")
    size = int(size_text) if size_text.isdigit() else 16777216
    starts = [_segment_start(fork, size)]
    if starts[0] >= size:  # the segment before too: the newest commit that survived
        starts.insert(0, starts[0] - size)
    problem = ""
    for start in starts:
        argv = [*run_as, "env", "TZ=UTC", f"{pg_bin}/pg_waldump", "--path",
                f"{data_dir}/pg_wal", "--timeline", str(old_tli), "--start", lsn_text(start)]
        try:
            proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                    text=True, env=_env())
        except OSError as exc:
            return {**base, "available": False, "reason": f"pg_waldump did not start: {exc}"}
        assert proc.stdout is not None and proc.stderr is not None
        deadline = threading.Timer(timeout, proc.kill)  # the deadline holds while reading
        deadline.start()
        try:
            found = walk(proc.stdout, fork)
            stderr = proc.stderr.read()
            proc.wait()
        finally:
            deadline.cancel()
        if proc.returncode == -signal.SIGKILL:
            return {**base, "available": False,
                    "reason": f"pg_waldump did not finish within {timeout:.0f} s"}
        ended_cleanly = proc.returncode == 0 or bool(WAL_END.search(stderr))
        if found["end"] is None or not ended_cleanly:
            problem = stderr.strip().splitlines()[-1][:300] if stderr.strip() else \
                f"pg_waldump exited {proc.returncode}"
            continue  # the older segment may be gone: try from the fork's own
        if found["end"] + PAGE < fork:  # (page headers and alignment: within a page)
            return {**base, "available": False, "reason": (
                f"the old primary's WAL ends at {found['end_lsn']}, before the fork: not the "
                "WAL the standby followed")}
        found.pop("end")
        return {**base, "available": True, "reason": "", "scanned_from": lsn_text(start),
                **found}
    return {**base, "available": False,
            "reason": f"the old primary's WAL past the fork cannot be read ({problem})"}


NAMES_SQL = """
select f.spc || '/' || f.node || '|' ||
       coalesce((select quote_ident(n.nspname) || '.' || quote_ident(c.relname)
                 from pg_class c join pg_namespace n on n.oid = c.relnamespace
                 where c.oid = coalesce(toast.oid, idx.indrelid, r.oid)), '')
from (select (p->>0)::oid as spc, (p->>1)::oid as node
      from json_array_elements(:'pairs'::json) p) f
cross join lateral (select pg_filenode_relation(
    case when f.spc = (select dattablespace from pg_database
                       where datname = current_database()) then 0 else f.spc end,
    f.node) as oid) r
left join pg_index idx on idx.indexrelid = r.oid
left join pg_class toast on toast.reltoastrelid = coalesce(idx.indrelid, r.oid)
"""


def run_names(params: dict[str, Any]) -> dict[str, Any]:
    """The ``names`` state: relation file numbers -> database.schema.table on the new
    primary. A number the catalog does not know (a table dropped since) maps to nothing."""
    psql: list[str] = list(params["psql"])
    wanted: dict[int, set[tuple[int, int]]] = {}
    for triple in params.get("relations") or []:
        spc, db, node = (int(x) for x in triple)  # integers only reach SQL
        wanted.setdefault(db, set()).add((spc, node))
    timeout = float(params.get("timeout") or 120)
    names: dict[str, str] = {}
    if not wanted:
        return {"names": names}
    problems: list[str] = []
    databases = _query(psql, "postgres", "select oid || '|' || encode(convert_to(datname, "
                       "'UTF8'), 'hex') from pg_database where datallowconn", timeout, {})
    by_oid: dict[int, str] = {}
    for row in databases:
        oid, _, hexname = row.partition("|")
        try:
            by_oid[int(oid)] = bytes.fromhex(hexname).decode("utf-8")
        except ValueError:
            problems.append(f"a database row not understood: {row[:80]!r}")
    for db, pairs in sorted(wanted.items()):
        name = by_oid.get(db)
        if name is None:
            continue
        try:
            rows = _query(psql, name, NAMES_SQL, timeout,
                          {"pairs": json.dumps(sorted([s, n] for s, n in pairs))})
        except (LookupError, OSError, subprocess.TimeoutExpired) as exc:
            problems.append(f"database oid {db}: {exc}"[:300])  # its tables keep numbers
            continue
        for row in rows:
            key, _, table = row.partition("|")
            space, _, filenode = key.partition("/")
            if table and space.isdigit() and filenode.isdigit():
                names[f"{space}/{db}/{filenode}"] = f"{name}.{table}"
    return {"names": names, "problems": problems}


def conninfo_dbname(database: str) -> str:
    """A database name as a connection string that names only it: psql takes a ``-d`` value
    with an ``=`` in it as a connection string, so a name (which anyone allowed to create
    databases chooses) is never passed bare."""
    return "dbname='" + database.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _query(psql: list[str], database: str, sql: str, timeout: float,
           variables: dict[str, str]) -> list[str]:
    argv = [*psql, "-d", conninfo_dbname(database)]
    for key, value in variables.items():
        argv += ["-v", f"{key}={value}"]
    proc = subprocess.run(argv, input=sql, capture_output=True, text=True, timeout=timeout,
                          env=_env(), check=False)
    if proc.returncode != 0:
        raise LookupError(proc.stderr.strip()[:300] or f"psql exited {proc.returncode}")
    return [line for line in proc.stdout.splitlines() if line.strip()]


def main() -> None:
    from ansible.module_utils.basic import AnsibleModule

    module = AnsibleModule(argument_spec={
        "state": {"type": "str", "default": "walk", "choices": ["walk", "names"]},
        "run_as": {"type": "list", "elements": "str", "default": []},
        "pg_bin": {"type": "str", "required": True},
        "data_dir": {"type": "str"},
        "history": {"type": "str"},
        "new_timeline": {"type": "int"},
        "relations": {"type": "list", "elements": "list", "default": []},
        "psql": {"type": "list", "elements": "str"},
        "timeout": {"type": "float", "default": 120.0},
    }, required_if=[("state", "walk", ("data_dir", "history", "new_timeline")),
                    ("state", "names", ("psql",))], supports_check_mode=True)
    try:
        result = run_walk(module.params) if module.params["state"] == "walk" \
            else run_names(module.params)
    except (ValueError, LookupError, OSError, subprocess.TimeoutExpired) as exc:
        module.fail_json(msg=f"{module.params['state']}: {exc}")
    module.exit_json(changed=False, **result)


if __name__ == "__main__":
    main()
