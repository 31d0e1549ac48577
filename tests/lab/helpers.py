"""Running the real CLI against the real lab, and reading the lab's real state."""

from __future__ import annotations

import errno
import json
import os
import pwd
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml

from dalp_dr.adapters.base import PlaybookResult

ROOT = Path(__file__).resolve().parents[2]
LABS = Path("/var/tmp/dalp-dr-lab")
LAB_ROOT = LABS / "hot-warm"
DRILL = ROOT / "drills" / "hot-warm-failover.yaml"
DATA_LOSS_DRILL = ROOT / "tests" / "lab" / "drills" / "hot-warm-data-loss.yaml"
DISK_LOST_DRILL = ROOT / "tests" / "lab" / "drills" / "hot-warm-disk-lost.yaml"
LAB_PASSWORD = "lab-only-4f1c9e2b7a"  # inventories/lab/hot-warm.yml: must never be written
SITE_PORTS = {"site-a": 55432, "site-b": 55433}  # inventories/lab/hot-warm.yml
ROUTE_PORT = 56432


def dalp(*args: str, results: Path | None = None, timeout: float = 600
         ) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    if results is not None:
        env["DALP_DR_RESULTS"] = str(results)
    return dalp_in(env, *args, timeout=timeout)


def dalp_in(env: dict[str, str], *args: str, timeout: float = 120
            ) -> subprocess.CompletedProcess[str]:
    """dalp-dr as a process with exactly this environment."""
    return subprocess.run([sys.executable, "-m", "dalp_dr", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout, check=False)


def run_passed(drill: Path, results: Path) -> dict[str, Any]:
    """`drill run --json` that must pass (exit 0, outcome passed); its result."""
    code, result, stderr = run_json(drill, results)
    assert code == 0, stderr
    assert result["outcome"] == "passed"
    return result


def run_json(drill: Path, results: Path) -> tuple[int, dict[str, Any], str]:
    proc = dalp("drill", "run", str(drill), "--json", results=results)
    try:
        payload = json.loads(proc.stdout) if proc.stdout.strip() else {}
    except json.JSONDecodeError:
        payload = {}
    return proc.returncode, payload, proc.stderr


def lab_status(topology: str = "hot-warm") -> dict[str, Any]:
    proc = dalp("lab", "status", topology, "--json")
    assert proc.returncode == 0, proc.stderr
    report: dict[str, Any] = json.loads(proc.stdout)[topology]
    return report


def assert_no_secret(results: Path, *secrets: str) -> None:
    """No evidence file, log or history byte contains a secret."""
    for path in results.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            for secret in secrets:
                assert secret.encode() not in data, path


@dataclass(frozen=True)
class HotWarmLab:
    """Where a hot-warm lab lives: its root, its sites' ports and its route's."""

    root: Path
    site_a: int
    site_b: int
    route: int


MAIN_LAB = HotWarmLab(LAB_ROOT, SITE_PORTS["site-a"], SITE_PORTS["site-b"], ROUTE_PORT)


def _superuser_row(lab: HotWarmLab, port: int, sql: str) -> list[str]:
    """One row of ``sql`` on the lab server at ``port``, as postgres over its socket."""
    done = subprocess.run(["runuser", "-u", "postgres", "--", str(PG_BIN / "psql"), "-h",
                           str(lab.root / "run"), "-p", str(port), "-d", "postgres", "-AtX",
                           "-c", sql], capture_output=True, text=True, check=False)
    return done.stdout.strip().split("|") if done.returncode == 0 else [done.stderr.strip()]


def assert_steady_state(lab: HotWarmLab = MAIN_LAB) -> None:
    """Site A writable primary, site B streaming from A, the route reaching A: read from
    the servers themselves (not through dalp-dr's `lab status`)."""
    import psycopg

    a = _superuser_row(lab, lab.site_a, "select pg_is_in_recovery(), (select string_agg("
                       "state, ',') from pg_stat_replication)")
    b = _superuser_row(lab, lab.site_b, "select pg_is_in_recovery(), (select sender_port"
                       " || ' ' || status from pg_stat_wal_receiver)")
    assert a == ["f", "streaming"], f"site A: in recovery, replicas: {a}"
    assert b == ["t", f"{lab.site_a} streaming"], \
        f"site B: in recovery, upstream port and state: {b}"
    with psycopg.connect(host="127.0.0.1", port=lab.route, dbname="dalp", user="dalp_app",
                         password=LAB_PASSWORD, connect_timeout=5) as conn:
        row = conn.execute("select inet_server_port()").fetchone()
    assert row is not None and row[0] == lab.site_a, f"the route reaches {row}"


def await_steady_state(lab: HotWarmLab = MAIN_LAB, timeout: float = 15.0) -> None:
    """``assert_steady_state`` once it holds, within ``timeout`` seconds (after a site was
    restarted by hand: its standby reconnects by itself)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            assert_steady_state(lab)
            return
        except AssertionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


@dataclass(frozen=True)
class SpareLab:
    """A second hot-warm lab (its own root and ports, beside the normal one): tests that
    drill dalp-dr's own faults run on it in their own xdist group, side by side with the
    normal lab's tests. ``drill(path)`` is a copy of a hot-warm drill aimed at it."""

    lab: HotWarmLab
    project: Path
    env: dict[str, str]
    """DALP_DR_PROJECT: the project whose inventories/lab/hot-warm.yml is this lab's"""

    def drill(self, path: Path) -> Path:
        drill = yaml.safe_load(path.read_text())
        drill["inventory"] = "hot-warm.yml"
        for phase in drill["phases"].values():
            phase["playbook"] = str((path.parent / phase["playbook"]).resolve())
        target = self.project / "inventories" / "lab" / path.name
        target.write_text(yaml.safe_dump(drill, sort_keys=False))
        return target


SPARE_LAB = HotWarmLab(LABS / "hot-warm-spare", 55532, 55533, 56532)


@dataclass(frozen=True)
class NamedLab:
    """A named hot-warm lab as `lab up hot-warm --name N --json` described it."""

    made: dict[str, Any]

    @property
    def name(self) -> str:
        return str(self.made["name"])

    @property
    def lab(self) -> HotWarmLab:
        ports = self.made["ports"]
        return HotWarmLab(Path(self.made["root"]), ports["site-a.dalp_pg_port"],
                          ports["site-b.dalp_pg_port"], ports["dalp_route_port"])

    def drill(self, folder: Path, *, renamed: bool = False) -> Path:
        """drills/hot-warm-failover.yaml aimed at this lab (its inventory and environment,
        the playbooks by absolute path), written into ``folder``; ``renamed``: the drill's
        name carries the lab's."""
        source = ROOT / "drills" / "hot-warm-failover.yaml"
        drill = yaml.safe_load(source.read_text())
        if renamed:
            drill["name"] = f"{drill['name']}-{self.name}"
        drill["inventory"] = self.made["inventory"]
        drill["environment"] = self.made["environment"]
        for phase in drill["phases"].values():
            phase["playbook"] = str((source.parent / phase["playbook"]).resolve())
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{self.name}.yaml"
        path.write_text(yaml.safe_dump(drill, sort_keys=False))
        return path


@contextmanager
def named_labs_up(names: tuple[str, ...]) -> Iterator[dict[str, NamedLab]]:
    """`lab up hot-warm --name N` for every name at once (each its own process, taking slots
    together); every one down after, whatever happened."""
    ups = {name: subprocess.Popen(
        [sys.executable, "-m", "dalp_dr", "lab", "up", "hot-warm", "--name", name, "--json"],
        cwd=ROOT, env=dict(os.environ), text=True, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, start_new_session=True) for name in names}
    failed = True
    try:
        made = {}
        for name, proc in ups.items():
            out, err = proc.communicate(timeout=600)
            assert proc.returncode == 0, err
            made[name] = NamedLab(json.loads(out))
        yield made
        failed = False
    finally:
        for proc in ups.values():
            if proc.poll() is None:  # its Ansible workers too: the whole session
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=30)
        downs = {name: dalp("lab", "down", "hot-warm", "--name", name) for name in names}
        if not failed:  # (a failure of its own is not hidden by this one)
            assert all(d.returncode == 0 for d in downs.values()), {
                n: d.stderr for n, d in downs.items()}


@contextmanager
def spare_hot_warm_lab(project: Path) -> Iterator[SpareLab]:
    """`lab up hot-warm` from a project whose inventory puts the lab at SPARE_LAB; taken
    down after."""
    inventories = project / "inventories" / "lab"
    inventories.mkdir(parents=True)
    (project / "playbooks").symlink_to(ROOT / "playbooks")
    inventory = yaml.safe_load((ROOT / "inventories/lab/hot-warm.yml").read_text())
    variables = inventory["all"]["vars"]
    variables["dalp_lab_root"] = str(SPARE_LAB.root)
    variables["dalp_route_port"] = SPARE_LAB.route
    ports = {"site-a": SPARE_LAB.site_a, "site-b": SPARE_LAB.site_b}
    for group in ("primary", "standby"):
        for name, host in inventory["all"]["children"][group]["hosts"].items():
            host["dalp_pg_port"] = ports[name]
    (inventories / "hot-warm.yml").write_text(yaml.safe_dump(inventory, sort_keys=False))
    env = dict(os.environ, DALP_DR_PROJECT=str(project))
    up = dalp_in(env, "lab", "up", "hot-warm", timeout=600)
    assert up.returncode == 0, up.stderr
    try:
        yield SpareLab(SPARE_LAB, project, env)
    finally:
        down = dalp_in(env, "lab", "down", "hot-warm", timeout=600)
        assert down.returncode == 0, down.stderr


def postmaster_pid(site: str) -> int:
    return int((LAB_ROOT / site / "data" / "postmaster.pid").read_text().split()[0])


def pg_ctl(site: str, action: str) -> None:
    """pg_ctl ACTION on a hot-warm lab site; a server it starts logs where the lab's own
    start does (roles/dalp_pg/tasks/start.yml), never to a pipe of ours."""
    subprocess.run(["runuser", "-u", "postgres", "--", "/usr/lib/postgresql/15/bin/pg_ctl",
                    action, "-w", "-m", "fast", "-D", str(LAB_ROOT / site / "data"),
                    "-l", str(LAB_ROOT / site / "postgresql.log")],
                   check=True, stdin=subprocess.DEVNULL, capture_output=True)


@dataclass(frozen=True)
class Proc:
    """A live process as /proc shows it (zombies are left out: already dead)."""

    pid: int
    ppid: int
    cmdline: str
    path: Path

    def cwd(self) -> str:
        try:
            return os.readlink(self.path / "cwd")
        except OSError:
            return ""

    def environ(self) -> list[bytes]:
        try:
            return (self.path / "environ").read_bytes().split(b"\0")
        except OSError:
            return []


def processes() -> Iterator[Proc]:
    """Every live process but this one."""
    for path in Path("/proc").iterdir():
        if not path.name.isdigit() or int(path.name) == os.getpid():
            continue
        try:
            cmdline = (path / "cmdline").read_bytes().replace(b"\0", b" ").decode(
                errors="replace").strip()
            state = (path / "stat").read_text().rsplit(") ", 1)[1].split()
        except (OSError, IndexError):
            continue
        if state[0] != "Z":
            yield Proc(int(path.name), int(state[1]), cmdline, path)


def _lab_procs(root: Path) -> list[tuple[int, str]]:
    """Every process whose command line or working directory is inside a lab root
    (postgres backends run in their data directory, moto in its lab root). Inside: the root
    itself or below it, never a sibling that shares its name's start (the hot-warm lab's
    /var/tmp/dalp-dr-lab/hot-warm and hot-warm-spare or hot-warm-platform run side by side)."""
    named = re.compile(re.escape(str(root).rstrip("/")) + r"(?=/|\s|$)")
    found = []
    for proc in processes():
        cwd = proc.cwd()
        if named.search(proc.cmdline) or named.match(cwd):
            found.append((proc.pid, f"{proc.pid}: {proc.cmdline} (cwd {cwd})"))
    return found


def lab_processes(root: Path = LAB_ROOT) -> list[str]:
    return [text for _, text in _lab_procs(root)]


def take_lab_down(topology: str, root: Path) -> float:
    """``lab down TOPOLOGY`` must succeed and leave no process under ``root`` and no
    ``root``; the seconds it took."""
    started = time.monotonic()
    proc = dalp("lab", "down", topology)
    assert proc.returncode == 0, proc.stderr
    took = time.monotonic() - started
    assert lab_processes(root) == []
    assert not root.exists()
    return took


def lab_pids(root: Path = LAB_ROOT) -> list[int]:
    return [pid for pid, _ in _lab_procs(root)]


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return not stat.split(") ", 1)[-1].startswith("Z")


PG_BIN = Path("/usr/lib/postgresql/15/bin")


def as_pg(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["runuser", "-u", "postgres", "--", *argv], check=True,
                          capture_output=True, text=True)


def pg_start(root: Path, port: int) -> None:
    """Start (again) the throwaway server of ``postgres_server`` on its port and socket."""
    as_pg(str(PG_BIN / "pg_ctl"), "start", "-w", "-D", str(root / "data"), "-l",
          str(root / "log"), "-o", f"-p {port} -k {root} -c listen_addresses=127.0.0.1")


@contextmanager
def postgres_server(root: Path, port: int, databases: tuple[str, ...]) -> Iterator[str]:
    """A throwaway PostgreSQL 15 server (initdb under ``root``, loopback and socket only,
    trust auth), stopped and removed afterwards. Yields the URL prefix
    ``postgresql://postgres@127.0.0.1:PORT`` (append ``/dbname``)."""
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    shutil.chown(root, "postgres", "postgres")
    data = root / "data"
    as_pg(str(PG_BIN / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust", "-E",
          "UTF8", "--locale=C.UTF-8")
    try:
        pg_start(root, port)
    except BaseException:  # not started (the port taken?): nothing left behind either
        shutil.rmtree(root, ignore_errors=True)
        raise
    try:
        for name in databases:
            as_pg(str(PG_BIN / "createdb"), "-h", str(root), "-p", str(port), name)
        yield f"postgresql://postgres@127.0.0.1:{port}"
    finally:
        as_pg(str(PG_BIN / "pg_ctl"), "stop", "-w", "-m", "fast", "-D", str(data))
        shutil.rmtree(root, ignore_errors=True)


@contextmanager
def moto_server() -> Iterator[str]:
    """A moto server (AWS APIs that cannot run here) on a free loopback port; its URL."""
    import socket
    import time

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen([str(Path(sys.executable).parent / "moto_server"), "-H",
                               "127.0.0.1", "-p", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "moto server did not start"
                time.sleep(0.2)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.terminate()
        server.wait(timeout=10)


def run_read_only(drill: Path, playbook: str, workdir: Path, *, check: bool
                  ) -> tuple[PlaybookResult, list[str], list[str]]:
    """``playbook`` (beside the drill's preflight playbook), with the extra vars the drill's
    preflight gets, with or without --check. Returns the result, the tasks that reported a
    change and the tasks skipped (host: task): run both ways, the skipped tasks show what
    check mode skipped that a real run does (a command it could not prove read-only)."""
    from dalp_dr.adapters.ansible import AnsibleRunner
    from dalp_dr.drill.steps import phase_extravars
    from dalp_dr.spec import PhaseName, load_drill

    loaded = load_drill(drill)
    events: list[dict[str, Any]] = []
    result = AnsibleRunner(workdir=workdir).run(
        loaded.playbooks[PhaseName.PREFLIGHT].parent / playbook, loaded.inventory,
        extravars=phase_extravars(loaded, PhaseName.PREFLIGHT, "check-mode", workdir / "ev"),
        timeout=180, on_event=events.append, check=check)
    changed, skipped = [], []
    for event in events:
        data = event.get("event_data") or {}
        where = f"{data.get('host')}: {data.get('task')}"
        if event.get("event") == "runner_on_ok" and (data.get("res") or {}).get("changed"):
            changed.append(where)
        if event.get("event") == "runner_on_skipped":
            skipped.append(where)
    return result, changed, skipped


READ_ONLY_PLAYBOOKS = ["preflight.yml", "lab-status.yml"]
"""the playbooks every topology declares check-mode safe (dalp_supports_check_mode)"""


def assert_read_only_under_check(drill: Path, playbook: str, workdir: Path) -> None:
    """Run with and without --check, the read-only ``playbook`` succeeds, changes nothing,
    and check mode skips nothing a real run does (its report is the real state): so
    `drill plan` may run it with --check."""
    real, real_changed, real_skipped = run_read_only(drill, playbook, workdir, check=False)
    checked, changed, skipped = run_read_only(drill, playbook, workdir, check=True)
    assert real.ok and checked.ok, checked.describe_failure() or real.describe_failure()
    assert (real_changed, changed) == ([], [])
    assert sorted(skipped) == sorted(real_skipped)
    assert checked.artifact_data.keys() == real.artifact_data.keys() != set()


def drill_leftovers(results: Path) -> list[str]:
    """Processes a drill run with ``DALP_DR_RESULTS=results`` started that outlive it if it
    is careless: dalp-dr itself, ansible-playbook and its workers, anything running from
    ansible-runner's private dir. (They inherit that variable: labs run side by side, and
    the other lab's drills are not ours.)"""
    marker = f"DALP_DR_RESULTS={results}".encode()
    return [f"{proc.pid}: {proc.cmdline}" for proc in processes()
            if any(mark in proc.cmdline for mark in ("ansible-playbook", "dalp-dr-runner-",
                                                     "-m dalp_dr drill"))
            and marker in proc.environ()]


@dataclass
class Watched:
    """A `drill run` the test watched: exit code, stdout, stderr (as it came)."""

    returncode: int
    stdout: str
    stderr: str

    @property
    def said(self) -> str:
        """stdout with its line wrapping undone (the result wraps at the terminal width)."""
        return " ".join(self.stdout.split())

    @property
    def run_id(self) -> str:
        found = re.search(r"run (\S+): ", self.stderr)
        assert found is not None, self.stderr
        return found.group(1)


def run_and_act(env: dict[str, str], drill: Path, when: str,
                act: Callable[[subprocess.Popen[str]], None], *args: str,
                timeout: float = 300) -> Watched:
    """`drill run DRILL` with ``env``; ``act`` is called (with the process) as the first
    progress line containing ``when`` appears (e.g. ``phase verify ...``)."""
    proc = subprocess.Popen([sys.executable, "-m", "dalp_dr", "drill", "run", str(drill), *args],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    assert proc.stderr is not None
    seen = []
    for line in proc.stderr:
        seen.append(line)
        if when in line:
            try:
                act(proc)
            except BaseException:
                # the drill runs on: let it finish (its steady state puts the lab back) before
                # the failure propagates, or the next test meets it halfway through a failover
                proc.communicate(timeout=timeout)
                raise
            break
    else:
        proc.wait(timeout)
        raise AssertionError(f"{when!r} never came:\n" + "".join(seen))
    out, rest = proc.communicate(timeout=timeout)
    return Watched(proc.returncode, out, "".join(seen) + rest)


VAULT_PASSWORD = "vault-pass-93c1d0e7"


def vaulted(tmp_path: Path, value: str) -> str:
    """``dalp_app_password: !vault |`` and its block, indented for all.vars; the vault's
    password in tmp_path/vault-pass."""
    password_file = tmp_path / "vault-pass"
    password_file.write_text(VAULT_PASSWORD + "\n")
    out = subprocess.run(
        [str(Path(sys.executable).parent / "ansible-vault"), "encrypt_string",
         "--vault-password-file", str(password_file), "--name", "dalp_app_password", value],
        check=True, capture_output=True, text=True).stdout
    return "\n".join("    " + line if i else line
                     for i, line in enumerate(out.strip().splitlines()))


def vaulted_drill(tmp_path: Path, drill: Path, inventory: Path) -> Path:
    """A copy of ``drill`` whose inventory is a copy of ``inventory`` with the lab's
    application password vaulted (the vault's password in tmp_path/vault-pass); its
    playbooks by absolute path."""
    plain = f"dalp_app_password: {LAB_PASSWORD}"
    text = inventory.read_text()
    assert plain in text
    return drill_with_inventory(tmp_path, drill,
                                text.replace(plain, vaulted(tmp_path, LAB_PASSWORD)))


def drill_with_inventory(tmp_path: Path, drill: Path, inventory: str) -> Path:
    """A copy of ``drill`` in tmp_path, its playbooks by absolute path, its inventory the
    text ``inventory`` (tmp_path/inventory.yml)."""
    (tmp_path / "inventory.yml").write_text(inventory)
    lines = []
    for line in drill.read_text().splitlines():
        key, _, value = line.strip().partition(": ")
        if line.startswith("inventory:"):
            line = f"inventory: {tmp_path / 'inventory.yml'}"
        elif key == "playbook":
            line = line.replace(value, str((drill.parent / value).resolve()))
        lines.append(line)
    (tmp_path / "drill.yaml").write_text("\n".join(lines) + "\n")
    return tmp_path / "drill.yaml"


def site_a_shell(tmp_path: Path, drill: Path, shell: str) -> Path:
    """A copy of ``drill`` (playbooks by absolute path) whose inventory is the hot-warm lab's
    with site A's shell (``ansible_shell_executable``) the script ``shell``: what the raw
    tasks that read site A's clock and stamp the fault run in."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    script = tmp_path / "site-a-shell"
    script.write_text("#!/bin/sh\n" + shell + "\n")
    script.chmod(0o755)
    text = (ROOT / "inventories" / "lab" / "hot-warm.yml").read_text()
    anchor = "          dalp_site: a\n"
    assert anchor in text
    return drill_with_inventory(tmp_path, drill, text.replace(
        anchor, anchor + f"          ansible_shell_executable: {script}\n"))


def ip(*args: str) -> str:
    """What `ip ARGS...` prints (as root, on the controller)."""
    return subprocess.run(["ip", *args], check=True, capture_output=True, text=True).stdout


def assert_lab_route_follows_the_bridges(seconds: float = 15.0) -> None:
    """The unreachable route for 198.18.0.0/15 goes with the last lab bridge. A host lab on
    the other CI worker may be coming up or going down meanwhile (its route and its bridge
    are two steps): with no bridge and the route still there, wait (a deadline) for either
    a bridge to appear or the route to go."""
    deadline = time.monotonic() + seconds
    while (": dalp-" not in ip("-o", "link", "show", "type", "bridge")
           and "198.18.0.0/15" in ip("route", "show", "type", "unreachable")):
        assert time.monotonic() < deadline, "the unreachable route outlived the last lab bridge"
        time.sleep(0.2)


def connect_from(netns: str | None, address: tuple[str, int]) -> str:
    """"ok", or how a TCP connect to the address failed (at most 2 s), seen from a lab host's
    namespace or (None) from the controller."""
    probe = ("import socket, sys\n"
             "try:\n"
             f"    socket.create_connection({address!r}, timeout=2).close()\n"
             "except OSError as exc:\n"
             "    print(type(exc).__name__, exc.errno); sys.exit(0)\n"
             "print('ok')\n")
    prefix = ["ip", "netns", "exec", netns] if netns else []
    return subprocess.run([*prefix, sys.executable, "-c", probe], capture_output=True,
                          text=True, timeout=30, check=True).stdout.strip()


CUT_OFF = ("TimeoutError None", f"OSError {errno.EHOSTUNREACH}", f"OSError {errno.ENETUNREACH}")
"""what connect_from says across a partition: a timeout, or unreachable; never ok"""


def assert_host_lab_gone(root: Path, netns: tuple[str, ...], bridge: str, user: str) -> None:
    """After `lab down TOPOLOGY --hosts`: no namespace, veth or bridge of the lab, no process
    under its root, no root, no lab user and no sudo rule of it."""
    namespaces = ip("netns", "list")
    assert not [name for name in netns if name in namespaces], namespaces
    links = ip("-o", "link", "show")
    assert bridge not in links, links
    assert lab_processes(root) == []
    assert not root.exists()
    try:
        pwd.getpwnam(user)
    except KeyError:
        pass  # gone, as it should be
    else:
        raise AssertionError(f"the lab user {user} is still there")
    assert not Path(f"/etc/sudoers.d/dalp-dr-lab-{user}").exists()


def host_lab_sql(root: Path, site: str, sql: str, *, db: str = "postgres") -> str:
    """One value from a host lab site's server, as the database OS user on its socket
    (``root``/``site``/run, port 5432)."""
    return subprocess.run(
        ["runuser", "-u", "postgres", "--", str(PG_BIN / "psql"), "-XAtq",
         "-h", str(root / site / "run"), "-p", "5432", "-d", db, "-c", sql],
        check=True, capture_output=True, text=True, timeout=30).stdout.strip()


def timeline_offsets(result: dict[str, Any]) -> dict[str, float]:
    """Seconds from the fault of each recovery-timeline event (first of each name)."""
    fault = datetime.fromisoformat(result["measurements"]["fault_at"])
    out: dict[str, float] = {}
    for event in result["timeline"]:
        out.setdefault(event["name"],
                       (datetime.fromisoformat(event["at"]) - fault).total_seconds())
    return out
