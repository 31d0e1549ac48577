"""The restore bench's "by hand": each backup tool's own restore as an operator runs it,
outside dalp-dr (no dalp wrapper, no catalogue read, no verify), from the lab's settings file
(``<lab root>/bin/s3.json``, the one the lab's archive_command reads).

* barman-cloud: ``barman-cloud-restore`` into the data directory, then PostgreSQL with
  ``restore_command = barman-cloud-wal-restore ... %f %p`` (the credentials in the
  server's environment, as CloudNativePG hands them; barman-cloud-wal-restore fetches one
  file per process: it has no prefetch of its own).
* pgBackRest: a pgbackrest.conf (mode 0600) with the lab's repository settings (S3 through
  stunnel, the lab CA), ``pgbackrest restore``, then ``restore_command = pgbackrest
  archive-get %f "%p"`` with ``archive-async`` as pgBackRest's user guide sets it up (a spool,
  ``archive-get-queue-max``, its own ``process-max`` for archive-get). The same process
  counts and queue as the drill's (restore 2; archive-get the inventory's
  ``dalp_pgbackrest_archive_get_processes``; the drill's queue), so the comparison is the tool
  against the tool under dalp-dr.

``fetch`` (untimed, for the local-disk floor) brings one archived WAL file to a local path
with the same tool, synchronously.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import time
from pathlib import Path
from typing import Any, Protocol

from bench.scratch_cluster import Site, as_pg, processes_with
from dalp_dr import object_store, pgbackrest_tool


class Tool(Protocol):
    def restore(self, backup: str, site: Site) -> float: ...
    def restore_command(self) -> str: ...
    def server_env(self) -> dict[str, str]: ...
    def fetch(self, name: str, dest: Path) -> None: ...
    def close(self, timeout: float) -> None: ...


class BarmanCloud:
    def __init__(self, settings: dict[str, Any], scratch: Path) -> None:
        self.cfg = settings
        prefix = (settings.get("prefix") or "").strip("/")
        self.source = f"s3://{settings['bucket']}" + (f"/{prefix}" if prefix else "")

    def _argv(self, tool: str, *args: str) -> list[str]:
        bin_dir = self.cfg.get("bin_dir") or "/usr/bin"
        return [os.path.join(bin_dir, f"barman-cloud-{tool}"), "--cloud-provider", "aws-s3",
                "--endpoint-url", self.cfg["endpoint_url"], *args]

    def server_env(self) -> dict[str, str]:
        return {**os.environ, "AWS_DEFAULT_REGION": self.cfg.get("region") or "us-east-1",
                "AWS_ACCESS_KEY_ID": self.cfg["access_key_id"],
                "AWS_SECRET_ACCESS_KEY": self.cfg["secret_access_key"]}

    def restore(self, backup: str, site: Site) -> float:
        started = time.monotonic()
        as_pg(*self._argv("restore", self.source, self.cfg["server_name"], backup,
                          str(site.data)), env=self.server_env())
        return time.monotonic() - started

    def restore_command(self) -> str:
        return object_store.restore_command_words(*self._argv("wal-restore", self.source,
                                       self.cfg["server_name"])) + " %f %p"

    def fetch(self, name: str, dest: Path) -> None:
        as_pg(*self._argv("wal-restore", self.source, self.cfg["server_name"], name,
                          str(dest)), env=self.server_env())

    def close(self, timeout: float) -> None:
        pass  # nothing outlives its command


class PgBackRest:
    RESTORE_PROCESSES = 2
    QUEUE = pgbackrest_tool.ARCHIVE_GET_QUEUE  # the drill's queue

    def __init__(self, settings: dict[str, Any], scratch: Path, wal_parallel: int) -> None:
        self.cfg = settings
        self.scratch = scratch
        self.archive_get_processes = wal_parallel
        self.conf = scratch / "pgbackrest.conf"
        self.pg_data: Path | None = None

    def _write_conf(self, pg_data: Path) -> None:
        cfg = self.cfg
        glob = {
            "repo1-type": "s3", "repo1-path": "/" + (cfg.get("prefix") or "").strip("/"),
            "repo1-s3-bucket": cfg["bucket"], "repo1-s3-endpoint": cfg["repo_endpoint"],
            "repo1-storage-port": cfg["repo_port"], "repo1-storage-ca-file": cfg["ca_file"],
            "repo1-s3-region": cfg.get("region") or "us-east-1", "repo1-s3-uri-style": "path",
            "repo1-s3-key": cfg["access_key_id"], "repo1-s3-key-secret":
                cfg["secret_access_key"],
            "process-max": self.RESTORE_PROCESSES, "archive-async": "y",
            "archive-get-queue-max": self.QUEUE,
            "spool-path": self.scratch / "pgbackrest-spool",
            "lock-path": self.scratch / "pgbackrest-lock",
            "log-level-console": "warn", "log-level-file": "off",
        }
        sections = {"global": glob,
                    "global:archive-get": {"process-max": self.archive_get_processes},
                    cfg["stanza"]: {"pg1-path": pg_data}}
        text = "".join(f"[{name}]\n" + "".join(f"{k}={v}\n" for k, v in values.items()) + "\n"
                       for name, values in sections.items())
        fd = os.open(self.conf, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
        shutil.chown(self.conf, "postgres", "postgres")
        as_pg("mkdir", "-p", "-m", "0700", str(glob["spool-path"]), str(glob["lock-path"]))

    def _argv(self, *args: str) -> list[str]:
        binary = os.path.join(self.cfg.get("pgbackrest_bin_dir") or "/usr/bin", "pgbackrest")
        return [binary, f"--config={self.conf}", f"--stanza={self.cfg['stanza']}", *args]

    def server_env(self) -> dict[str, str]:
        # its configuration is the file alone: nothing from PGBACKREST_* adds to it
        return {k: v for k, v in os.environ.items() if not k.startswith("PGBACKREST_")}

    def restore(self, backup: str, site: Site) -> float:
        self._write_conf(site.data)
        self.pg_data = site.data
        started = time.monotonic()
        as_pg(*self._argv("restore", "--type=none", f"--set={backup}"),
              env=self.server_env())
        return time.monotonic() - started

    def restore_command(self) -> str:
        return object_store.restore_command_words(*self._argv("archive-get")) + ' %f "%p"'

    def fetch(self, name: str, dest: Path) -> None:
        as_pg(*self._argv("--no-archive-async", "archive-get", name, str(dest)),
              env=self.server_env())

    def close(self, timeout: float) -> None:
        """Wait for archive-get's asynchronous process (started by PostgreSQL's
        restore_command, it fetches ahead and then exits) to end: by its PID if it outlives
        ``timeout``."""
        deadline = time.monotonic() + timeout
        while (left := processes_with(str(self.conf))) and time.monotonic() < deadline:
            time.sleep(0.2)
        for pid in left:
            os.kill(pid, signal.SIGKILL)


def by_hand(backend: str, lab_root: str, scratch: Path, wal_parallel: int) -> Tool:
    """The backend's tool from the lab's settings file; ``wal_parallel``: the drill's WAL
    fetch processes (pgBackRest's archive-get; barman-cloud by hand has none)."""
    with open(Path(lab_root) / "bin" / "s3.json") as fh:
        settings = json.load(fh)
    if backend == "pgbackrest":
        return PgBackRest(settings, scratch, wal_parallel)
    return BarmanCloud(settings, scratch)
