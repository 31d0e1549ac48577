"""A scratch PostgreSQL cluster for the restore bench: a restored data directory started on a
lab's port with recovery settings, timed from start to promotion, then stopped.

Layout of a site directory (as the lab's, so the restored cluster's own settings resolve):
``<dir>/data`` (the restored cluster), ``<dir>/site.conf`` (port, address, socket directory:
the cluster's dalp_lab.conf includes ``../site.conf``) and ``<dir>/postgresql.log``.
Everything runs as the postgres OS user (argv lists, never a shell); every wait is a deadline.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import tempfile
import time
from pathlib import Path

PG = "/usr/lib/postgresql/15/bin"
REDO_DONE = re.compile(r"redo done at ([0-9A-F]+/[0-9A-F]+)")


def as_pg(*argv: str, env: dict[str, str] | None = None, timeout: float | None = None,
          check: bool = True) -> subprocess.CompletedProcess[str]:
    """``argv`` as the postgres OS user (runuser keeps ``env``); a failure names its output."""
    proc = subprocess.run(["runuser", "-u", "postgres", "--", *argv], capture_output=True,
                          text=True, env=env, timeout=timeout, check=False)
    if check and proc.returncode != 0:
        said = " ".join((proc.stderr or proc.stdout).split())[-600:]
        raise RuntimeError(f"{argv[0]} exited {proc.returncode}: {said}")
    return proc


def psql(socket_dir: str, port: int, sql: str, db: str = "postgres") -> str:
    return as_pg(f"{PG}/psql", "-XAtq", "-v", "ON_ERROR_STOP=1", "-h", socket_dir, "-p",
                 str(port), "-d", db, "-c", sql).stdout.strip()


def lsn(text: str) -> int:
    high, low = text.split("/")
    return (int(high, 16) << 32) | int(low, 16)


def conf_literal(text: str) -> str:
    """``text`` as a postgresql.conf string literal."""
    return "'" + text.replace("\\", "\\\\").replace("'", "''") + "'"


def scratch_root() -> Path:
    """A fresh directory owned by postgres (mode 0700) under /var/tmp."""
    root = Path(tempfile.mkdtemp(prefix="dalp-bench-", dir="/var/tmp"))
    os.chown(root, *_postgres_ids())
    return root


def _postgres_ids() -> tuple[int, int]:
    import pwd

    entry = pwd.getpwnam("postgres")
    return entry.pw_uid, entry.pw_gid


def chown_tree(path: Path) -> None:
    subprocess.run(["chown", "-R", "postgres:postgres", "--", str(path)], check=True)


def dir_bytes(path: Path) -> int:
    return sum(f.lstat().st_size for f in path.rglob("*") if f.is_file() and not f.is_symlink())


class Site:
    """A restored cluster in ``dir``/data, to be started on ``port`` (127.0.0.1 only)."""

    def __init__(self, dir_: Path, port: int, socket_dir: str) -> None:
        self.dir, self.port, self.socket_dir = dir_, port, socket_dir
        self.data = dir_ / "data"
        self.log = dir_ / "postgresql.log"

    def make(self) -> None:
        """The site directory and an empty data directory (0700), owned by postgres."""
        as_pg("mkdir", "-p", "-m", "0700", str(self.dir), str(self.data))

    def copy_to(self, other: Site) -> None:
        """This (restored, never started) data directory into ``other``'s, as it is."""
        as_pg("mkdir", "-p", "-m", "0700", str(other.dir))
        as_pg("cp", "-a", "--", str(self.data), str(other.data))

    def prepare(self, restore_command: str) -> None:
        """site.conf, then the recovery settings the drill's playbook writes: replay through
        ``restore_command`` to the latest point, promote, never archive into the lost site's
        archive."""
        (self.dir / "site.conf").write_text(
            "listen_addresses = '127.0.0.1'\n"
            f"port = {int(self.port)}\n"
            f"unix_socket_directories = {conf_literal(self.socket_dir)}\n")
        with open(self.data / "postgresql.auto.conf", "a") as fh:
            fh.write(f"restore_command = {conf_literal(restore_command)}\n"
                     "recovery_target_timeline = 'latest'\n"
                     "recovery_target_action = 'promote'\n"
                     "archive_mode = off\n")
        (self.data / "recovery.signal").touch()
        chown_tree(self.dir)

    def replay(self, env: dict[str, str] | None, timeout: float) -> tuple[float, int]:
        """Start, replay, promote: the seconds from start to pg_is_in_recovery() false (as the
        drill's playbook measures them: asked once recovery.signal is gone, every 20 ms) and
        the LSN redo ended at."""
        started = time.monotonic()
        deadline = started + timeout
        start = as_pg(f"{PG}/pg_ctl", "start", "-w", "-t", str(int(timeout)), "-D",
                      str(self.data), "-l", str(self.log), env=env, check=False)
        if start.returncode != 0:
            raise RuntimeError(f"{self.data}: did not start: {self.tail()}")
        signal_file = self.data / "recovery.signal"
        while True:
            if not signal_file.exists() and as_pg(
                    f"{PG}/psql", "-XAtq", "-h", self.socket_dir, "-p", str(self.port), "-d",
                    "postgres", "-c", "select pg_is_in_recovery()",
                    check=False).stdout.strip() == "f":
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.data}: still in recovery after {timeout:.0f} s: "
                                   f"{self.tail()}")
            time.sleep(0.02)
        seconds = time.monotonic() - started
        found = REDO_DONE.findall(self.log.read_text(errors="replace"))
        if not found:
            raise RuntimeError(f"{self.log}: no 'redo done' line: {self.tail()}")
        return seconds, lsn(found[-1])

    def tail(self, lines: int = 5) -> str:
        try:
            return " | ".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def stop(self) -> None:
        """Stop the cluster if it runs (immediate: it is thrown away), by its postmaster's
        PID as a last resort."""
        pid_file = self.data / "postmaster.pid"
        if not pid_file.exists():
            return
        as_pg(f"{PG}/pg_ctl", "stop", "-w", "-t", "60", "-m", "immediate", "-D",
              str(self.data), check=False)
        if pid_file.exists():
            pid = int(pid_file.read_text().split()[0])
            if pid in processes_with(str(self.data)):  # still this cluster's postmaster
                os.kill(pid, signal.SIGKILL)


def processes_with(marker: str) -> list[int]:
    """PIDs whose command line names ``marker`` (a path of this bench's own scratch
    directory: only processes the bench started, or that they started, can carry it)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ")
            except OSError:
                continue
            if marker.encode() in cmdline:
                found.append(int(entry.name))
    return found
