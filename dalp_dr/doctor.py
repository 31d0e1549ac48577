"""``dalp-dr doctor``: does this machine have what the configured drills need?

Each row is ``ok``, ``warn`` (worth knowing, not blocking) or ``missing`` (a configured
drill cannot run; exit 1), with what to do about it. Checked: ansible-playbook, the
PostgreSQL binaries and their version for local (lab) inventories, the tools of the
topologies in use (pgbouncer for hot-warm routes, patroni and etcd for cloud-native, boto3
for hot-cold), the object storage endpoints of hot-cold inventories, the role drills' SQL
checks run as (warned when a superuser or able to signal backends or reach server files),
the history store, its schema version and that it takes a write, free space for a run of
each topology in use on the results filesystem (and the SQLite store's: ``reserve.py``), the
clock, the signing key that pins the history, and that evidence, history and checkpoint
files are readable by their owner only.
"""

from __future__ import annotations

import re
import shutil
import socket
import subprocess
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

from pydantic import BaseModel

from dalp_dr.clock import utcnow
from dalp_dr.durations import format_duration
from dalp_dr.errors import HintKey, InvalidInput, StoreError, words

if TYPE_CHECKING:
    from dalp_dr.history import HistoryStore
    from dalp_dr.reserve import Disks


class Health(StrEnum):
    OK = "ok"
    WARN = "warn"
    MISSING = "missing"


class Finding(BaseModel, frozen=True):
    check: str
    status: Health
    detail: str
    fix: str = ""
    needed_by: list[str] = []


def _run(argv: list[str]) -> str | None:
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=20, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return proc.stdout.strip() if proc.returncode == 0 else None


def _tool(name: str, needed_by: list[str], fix: str) -> Finding:
    found = shutil.which(name)
    if found:
        return Finding(check=name, status=Health.OK, detail=found, needed_by=needed_by)
    return Finding(check=name, status=Health.MISSING, detail=f"{name} is not on PATH",
                   fix=fix, needed_by=needed_by)


def diagnose(drills_dir: Path, store_url: str, results_dir: Path | None = None,
             keys_dir: Path | None = None, disks: Disks | None = None) -> list[Finding]:
    """``disks``: where free space is read (default: this host's filesystems)."""
    from dalp_dr.adapters.ansible import ansible_environment
    from dalp_dr.inventory import Inventory
    from dalp_dr.spec import discover_drills
    from dalp_dr.spec.directory import load_set

    findings: list[Finding] = []
    loaded = load_set(discover_drills(drills_dir) if drills_dir.is_dir() else [])
    drills: list[Any] = list(loaded.drills)
    for path, exc in loaded.problems:
        findings.append(Finding(check=f"drill {path.name}", status=Health.MISSING,
                                detail=str(exc), fix=words(HintKey.VALIDATE_DRILL)))
    names = [d.spec.name for d in drills]
    by_topology: dict[str, list[str]] = {}
    for d in drills:
        by_topology.setdefault(d.spec.topology.value, []).append(d.spec.name)

    playbook = shutil.which("ansible-playbook", path=ansible_environment()["PATH"])
    version = _run([playbook, "--version"]) if playbook else None
    findings.append(Finding(
        check="ansible-playbook", status=Health.OK if version else Health.MISSING,
        detail=(version.splitlines()[0] if version else "not found next to dalp-dr or on "
                "PATH"), fix="" if version else "pip install dalp-dr (it brings ansible-core)",
        needed_by=names))

    inventories: dict[Path, Inventory | None] = {}
    for d in drills:
        if d.inventory not in inventories:
            try:
                inventories[d.inventory] = Inventory(d.inventory)
            except InvalidInput as exc:
                inventories[d.inventory] = None
                findings.append(Finding(check=f"inventory {d.inventory.name}",
                                        status=Health.MISSING, detail=str(exc),
                                        fix="fix the inventory", needed_by=[d.spec.name]))
    pg_bins: dict[str, list[str]] = {}
    for d in drills:
        inventory = inventories.get(d.inventory)
        if inventory is None or not _local(inventory):
            continue
        try:
            pg_bin = str(inventory.variable("dalp_pg_bin"))
        except InvalidInput:
            continue
        pg_bins.setdefault(pg_bin, []).append(d.spec.name)
    for pg_bin, users in sorted(pg_bins.items()):
        out = _run([str(Path(pg_bin) / "pg_ctl"), "--version"])
        major = re.search(r"(\d+)\.\d+", out or "")
        ok = major is not None and int(major.group(1)) >= 15
        findings.append(Finding(
            check=f"PostgreSQL ({pg_bin})", status=Health.OK if ok else Health.MISSING,
            detail=out or "pg_ctl not found", needed_by=users,
            fix="" if ok else "apt install postgresql-15 (or set dalp_pg_bin)"))

    if "hot-warm" in by_topology:
        findings.append(_tool("pgbouncer", by_topology["hot-warm"], "apt install pgbouncer "
                              "(Debian puts it in /usr/sbin: keep that on PATH)"))
    if "cloud-native" in by_topology:
        findings.append(_tool("patroni", by_topology["cloud-native"], "apt install patroni"))
        findings.append(_tool("etcd", by_topology["cloud-native"], "apt install etcd-server"))
    if "hot-cold" in by_topology:
        boto = _run(["/usr/bin/python3", "-c", "import boto3; print(boto3.__version__)"])
        findings.append(Finding(
            check="python3-boto3", status=Health.OK if boto else Health.MISSING,
            detail=f"boto3 {boto} for the archive/restore commands" if boto else
            "the database hosts' python3 cannot import boto3",
            fix="" if boto else "apt install python3-boto3", needed_by=by_topology["hot-cold"]))
        findings.extend(_s3_endpoints(drills, inventories))
        findings.extend(_backup_tools(drills, inventories))

    findings.extend(_check_roles(drills, inventories))
    findings.extend(_store(store_url, results_dir, by_topology, disks))
    findings.append(_clock(store_url))
    if keys_dir is not None:
        findings.append(_signing_key(keys_dir))
    if results_dir is not None:
        findings.append(_file_modes(results_dir, store_url))
    return findings


def _check_roles(drills: list[Any], inventories: dict[Path, Any]) -> list[Finding]:
    """The role each drill's SQL checks run as (the population's endpoint): a warning when
    it could act beyond reading. dalp-dr runs a check as one read-only query and refuses
    the side-effecting functions it can see, but a superuser (COPY ... TO PROGRAM) or a
    member of pg_signal_backend (pg_terminate_backend through a view or function) is
    trusted with more than a check needs."""
    from dalp_dr.adapters.postgres import PostgresEndpoint
    from dalp_dr.errors import EndpointError
    from dalp_dr.redact import Redactor

    found: list[Finding] = []
    for d in drills:
        populations = d.spec.client_populations()
        first = next(iter(populations))
        used = dict.fromkeys(
            [c.through or first for c in d.spec.checks if c.sql is not None]
            + [p.through or first for p in d.spec.converge if p.sql is not None]
            + [p.near.through or first for p in d.spec.converge
               if p.near is not None and p.near.sql is not None])
        for name in used:
            population = populations[name]
            way_in = population.endpoint.sql()
            check = f"check role {d.spec.name}" + (f" ({name})" if len(populations) > 1
                                                   else "")
            inventory = inventories.get(d.inventory)
            redactor = Redactor()
            try:
                if inventory is not None:
                    redactor.add(*inventory.secret_values())
                if way_in is None:  # the drill's validation requires one
                    raise InvalidInput("the population has no SQL way in")
                if way_in.dsn is not None:
                    dsn = way_in.dsn
                elif inventory is None:
                    raise InvalidInput("the inventory cannot be read")
                else:
                    assert way_in.from_inventory is not None
                    value = inventory.variable(way_in.from_inventory, host=way_in.host)
                    if not isinstance(value, str):
                        raise InvalidInput(f"inventory variable "
                                           f"'{way_in.from_inventory}' is not a DSN string")
                    dsn = " ".join(value.split())
                session = PostgresEndpoint(dsn, redactor, population.marker_table).connect(
                    timeout=5, read_only=True)
                try:
                    role, powers = session.role_powers()
                finally:
                    session.close()
            except (InvalidInput, EndpointError) as exc:
                found.append(Finding(check=check, status=Health.WARN, needed_by=[d.spec.name],
                                     detail=f"not checked: {redactor.text(str(exc))}",
                                     fix=words(HintKey.ENDPOINT_UNREACHABLE)))
                continue
            if powers:
                found.append(Finding(
                    check=check, status=Health.WARN, needed_by=[d.spec.name],
                    detail=f"the checks run as role {role}, which is "
                           + " and ".join("a superuser" if p == "superuser" else
                                          f"a member of {p}" for p in powers)
                           + ": more than a read-only check needs",
                    fix="run the checks as a role without superuser and without "
                        "pg_signal_backend, pg_execute_server_program, "
                        "pg_read_server_files and pg_write_server_files"))
            else:
                found.append(Finding(check=check, status=Health.OK, needed_by=[d.spec.name],
                                     detail=f"the checks run as role {role}: no superuser, "
                                            "cannot signal backends or reach server files"))
    return found


def _signing_key(keys_dir: Path) -> Finding:
    from dalp_dr.export import keys

    private = keys_dir / keys.PRIVATE
    if not private.is_file():
        return Finding(check="signing key", status=Health.WARN,
                       detail=f"none at {private}: the history is sealed but no signed "
                              "checkpoint pins it, and exports cannot be signed",
                       fix=words(HintKey.SET_UP_SIGNING))
    mode = private.stat().st_mode & 0o777
    if mode & 0o077:
        return Finding(check="signing key", status=Health.MISSING,
                       detail=f"{private} has mode {mode:o}: others can read it",
                       fix=f"chmod 600 {private}")
    return Finding(check="signing key", status=Health.OK,
                   detail=f"{private} (mode {mode:o}): every seal signs a checkpoint")


def _file_modes(results_dir: Path, store_url: str) -> Finding:
    """Evidence, history and checkpoint files: the owner's alone (or the group's with
    DALP_DR_GROUP_ACCESS). Reported as a warning: drills still run."""
    from dalp_dr import private_files

    candidates = [results_dir]
    if store_url.startswith("sqlite://"):
        db = Path(store_url.removeprefix("sqlite://"))
        candidates += [db, db.with_name(f"{db.name}-wal"), db.with_name(f"{db.name}-shm")]
    if results_dir.is_dir():
        for run in results_dir.iterdir():
            candidates.append(run)
            if run.is_dir() and not run.is_symlink():
                candidates.extend(run.rglob("*"))
    too_open = [why for path in candidates if (why := private_files.too_open(path))]
    if not too_open:
        return Finding(check="file modes", status=Health.OK,
                       detail=f"{results_dir}: evidence, history and checkpoints readable by "
                              "their owner only" + (" and group" if
                                                    private_files.dir_mode() & 0o070 else ""))
    return Finding(check="file modes", status=Health.WARN,
                   detail=f"{len(too_open)} path(s) readable beyond their owner; first: "
                          f"{too_open[0]}",
                   fix=f"chmod -R go-rwx {results_dir} (DALP_DR_GROUP_ACCESS=1 lets the "
                       "group read)")


def _local(inventory: Any) -> bool:
    try:
        return str(inventory.variable("ansible_connection")) == "local"
    except InvalidInput:
        return False


_BACKUP_TOOL_COMMANDS = {
    "barman-cloud": ("barman-cloud-backup", "apt install barman-cli-cloud"),
    "pgbackrest": ("pgbackrest", "apt install pgbackrest"),
}
"""the command each backup tool needs on this host (``backup status`` runs it here), and how
to install it"""


def _variable(inventory: Any, name: str) -> Any:
    try:
        return inventory.variable(name)
    except InvalidInput:  # not set
        return None


def _backup_tools(drills: list[Any], inventories: dict[Path, Any]) -> list[Finding]:
    """The backup tools' commands (barman-cloud, pgBackRest), where an inventory keeps its
    backups with one."""
    from dalp_dr.adapters.s3 import RETIRED_BACKUP_TOOLS, backup_tool_of

    users: dict[str, list[str]] = {}
    retired: dict[str, list[str]] = {}
    for path, inventory in inventories.items():
        if inventory is None:
            continue
        tool = backup_tool_of(_variable(inventory, "dalp_backup_tool"),
                              _variable(inventory, "dalp_s3_bucket"))
        named = [d.spec.name for d in drills if d.inventory == path]
        if tool in _BACKUP_TOOL_COMMANDS:
            users.setdefault(tool, []).extend(named)
        elif tool in RETIRED_BACKUP_TOOLS:
            retired.setdefault(str(tool), []).extend(named)
    found = [_tool(_BACKUP_TOOL_COMMANDS[tool][0], sorted(names), _BACKUP_TOOL_COMMANDS[tool][1])
             for tool, names in sorted(users.items()) if names]
    found.extend(Finding(check=f"backup tool {tool}", status=Health.MISSING,
                         detail=f"retired: {RETIRED_BACKUP_TOOLS[tool]}", needed_by=sorted(names),
                         fix="set dalp_backup_tool to barman-cloud or pgbackrest "
                             "(docs/backup-tools.md)")
                 for tool, names in sorted(retired.items()) if names)
    return found


def _s3_endpoints(drills: list[Any], inventories: dict[Path, Any]) -> list[Finding]:
    found = []
    for path, inventory in sorted(inventories.items(), key=lambda kv: str(kv[0])):
        if inventory is None:
            continue
        try:
            url = inventory.variable("dalp_s3_endpoint_url")
        except InvalidInput:
            continue
        users = [d.spec.name for d in drills if d.inventory == path]
        if not url:
            continue
        parsed = urlparse(str(url))
        port = parsed.port or (443 if parsed.scheme == "https" else 80)
        try:
            socket.create_connection((parsed.hostname or "", port), timeout=3).close()
            found.append(Finding(check=f"object storage {parsed.netloc}", status=Health.OK,
                                 detail=f"{url} answers ({path.name})", needed_by=users))
        except OSError as exc:
            lab = _lab(inventory)
            found.append(Finding(
                check=f"object storage {parsed.netloc}",
                status=Health.WARN if lab else Health.MISSING,
                detail=f"{url} does not answer: {exc}" + (" (the lab is down)" if lab else ""),
                fix=words(HintKey.START_HOT_COLD_LAB) if lab else "check dalp_s3_endpoint_url "
                    "and the network", needed_by=users))
    return found


def _lab(inventory: Any) -> bool:
    try:
        return bool(inventory.variable("dalp_lab"))
    except InvalidInput:
        return False


def _store(store_url: str, results_dir: Path | None, by_topology: dict[str, list[str]],
           disks: Disks | None) -> list[Finding]:
    from dalp_dr.history import open_store
    from dalp_dr.reserve import LOCAL_DISKS

    try:
        store = open_store(store_url, results_dir=results_dir)
    except (StoreError, InvalidInput) as exc:
        return [Finding(check="history store", status=Health.MISSING, detail=str(exc),
                        fix=words(HintKey.STORE_UNUSABLE))]
    try:
        found = [Finding(check="history store", status=Health.OK, detail=store.describe()),
                 store_writes(store)]
        if results_dir is not None:
            found.extend(free_space(store, results_dir, by_topology, disks or LOCAL_DISKS))
        return found
    finally:
        store.close()


def store_writes(store: HistoryStore) -> Finding:
    """Whether the store takes a write (one that leaves nothing behind), as every run's
    record needs before its fault."""
    from dalp_dr.reserve import prove_writable

    try:
        prove_writable(store)
    except StoreError as exc:
        return Finding(check="history store writes", status=Health.MISSING, detail=str(exc),
                       fix="make the store writable (free space and permissions where it "
                           "is; DALP_DR_STORE naming a primary, not a read-only standby)")
    return Finding(check="history store writes", status=Health.OK,
                   detail="took a write and removed it (a lease of its own)")


def free_space(store: HistoryStore, results_dir: Path, by_topology: dict[str, list[str]],
               disks: Disks) -> list[Finding]:
    """Free space on each filesystem a run writes to against the largest need among the
    drills' topologies (measured from their past runs: ``reserve.py``); missing where
    preflight would refuse a drill, naming those drills."""
    from dalp_dr.reserve import Space, check, run_needs

    try:
        checked = {t: check(run_needs(store, t, results_dir), disks) for t in by_topology}
    except StoreError as exc:
        return [Finding(check="results space", status=Health.MISSING, detail=str(exc),
                        fix=words(HintKey.STORE_UNUSABLE))]
    largest: dict[Path, Space] = {}
    users: dict[Path, list[str]] = {}
    short: dict[Path, list[str]] = {}
    for topology, spaces in sorted(checked.items()):
        for space in spaces:
            where = space.directory
            if where not in largest or space.need > largest[where].need:
                largest[where] = space
            users.setdefault(where, []).extend(by_topology[topology])
            if space.short:
                short.setdefault(where, []).extend(by_topology[topology])
    return [Finding(check="results space" if where == results_dir else "history store space",
                    status=Health.MISSING if where in short else Health.OK,
                    detail=space.describe(), needed_by=short.get(where, users[where]),
                    fix=space.fix() + " (preflight refuses the drills named)"
                    if where in short else "")
            for where, space in largest.items()]


def _clock(store_url: str) -> Finding:
    now = utcnow()
    if now.year < 2024:
        return Finding(check="clock", status=Health.MISSING, detail=f"the clock says {now}",
                       fix="set the time (NTP); drill timings and leases depend on it")
    if store_url.startswith(("postgresql://", "postgres://")):
        import psycopg

        try:
            with psycopg.connect(store_url, connect_timeout=5) as db:
                row = db.execute("select clock_timestamp()").fetchone()
        except (psycopg.Error, OSError):
            row = None
        if row is not None:
            skew = abs((row[0] - utcnow()).total_seconds())
            return Finding(check="clock", status=Health.OK if skew < 2 else Health.WARN,
                           detail=f"{format_duration(skew)} from the store server's clock",
                           fix="" if skew < 2 else "synchronise clocks (NTP): leases use the "
                                                   "server's clock, timings this host's")
    synced = _run(["timedatectl", "show", "-p", "NTPSynchronized", "--value"])
    if synced == "yes":
        return Finding(check="clock", status=Health.OK, detail="NTP synchronised")
    return Finding(check="clock", status=Health.WARN,
                   detail=f"{now:%Y-%m-%d %H:%M:%S} UTC; NTP state " +
                   ("not synchronised" if synced == "no" else "unknown (no timedatectl)"),
                   fix="keep the clock synchronised (NTP)")

