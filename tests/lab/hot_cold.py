"""What the hot-cold lab tests share, whichever backup tool the lab runs (barman-cloud on the
`hot-cold` lab, pgBackRest on `hot-cold-pgbackrest`): the bucket's settings as the site's
settings file holds them, the tool's own catalogue, the lab's steady state, and WAL
archived on demand."""

from __future__ import annotations

import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from dalp_dr import barman_cloud, object_store, pgbackrest_tool
from dalp_dr.inventory import Inventory
from tests.lab.helpers import ROOT, alive, dalp, lab_processes, lab_status, run_json

TOOL_SETTINGS = {
    "barman-cloud": {"server_name": "dalp_barman_server_name"},
    "pgbackrest": {"stanza": "dalp_pgbackrest_stanza",
                   "repo_endpoint": "dalp_pgbackrest_endpoint",
                   "repo_port": "dalp_pgbackrest_port",
                   "ca_file": "dalp_pgbackrest_ca_file"},
}
"""the settings-file keys of each tool beyond the bucket's, from these inventory variables"""


@dataclass(frozen=True)
class HotColdLab:
    name: str
    """the lab's name (`dalp-dr lab up NAME`), also its inventory's file name"""

    @property
    def inventory(self) -> Path:
        return ROOT / "inventories" / "lab" / f"{self.name}.yml"

    def variable(self, name: str, host: str | None = None) -> Any:
        return Inventory(self.inventory).variable(name, host=host)

    @property
    def tool(self) -> str:
        return str(self.variable("dalp_backup_tool"))

    @property
    def root(self) -> Path:
        return Path(self.variable("dalp_lab_root"))

    @property
    def location(self) -> str:
        """s3://bucket/prefix"""
        return f"s3://{self.variable('dalp_s3_bucket')}/{self.variable('dalp_s3_prefix')}"

    def settings(self) -> dict[str, Any]:
        cfg = {key: self.variable(f"dalp_s3_{key}") for key in
               ("bucket", "prefix", "endpoint_url", "access_key_id", "secret_access_key")}
        cfg.update({key: self.variable(var) for key, var in TOOL_SETTINGS[self.tool].items()})
        return cfg

    def client(self) -> Any:
        return object_store.client(self.settings())

    def status(self) -> dict[str, Any]:
        """The tool's catalogue and the WAL archive's listing, as `backup status` reads them."""
        cfg = self.settings()
        read = pgbackrest_tool.status if self.tool == "pgbackrest" else barman_cloud.status
        return read(object_store.client(cfg), cfg)

    def assert_steady(self) -> None:
        state = lab_status(self.name)
        a, cold = state["sites"]["site-a"], state["sites"]["site-cold"]
        assert a["accepting"] and a["detail"]["in_recovery"] is False, a
        assert not cold["running"], cold
        assert state["route"]["backend_port"] == a["port"]
        assert state["backups"]["backups"] >= 1 and state["backups"]["tool"] == self.tool
        # nothing of a restore's left: no fetch still running (barman-cloud's fetches ahead,
        # pgBackRest's asynchronous archive-get), no config file with the S3 keys
        cold_root = Path(str(self.variable("dalp_pg_data", host="site-cold"))).parent
        assert lab_processes(cold_root) == []
        assert not (cold_root / "pgbackrest-restore.conf").exists()

    def psql_a(self, sql: str) -> str:
        port = str(self.variable("dalp_pg_port", host="site-a"))
        return subprocess.run(
            ["runuser", "-u", "postgres", "--", "/usr/lib/postgresql/15/bin/psql", "-XAtq",
             "-h", str(self.root / "run"), "-p", port, "-d", "dalp", "-c", sql],
            check=True, capture_output=True, text=True).stdout.strip()

    def pid_a(self) -> int:
        return int((self.root / "site-a/data/postmaster.pid").read_text().split()[0])

    def assert_refused_at_preflight(self, drill: Path, results: Path, named: str,
                                    status_says: str) -> None:
        """The drill stops at preflight (exit 1), its message naming ``named``, site A
        untouched; `backup status` exits 1 saying ``status_says``."""
        pid_a = self.pid_a()
        code, result, stderr = run_json(drill, results)
        assert code == 1, stderr
        assert result["outcome"] == "preflight_failed"
        assert named in result["phases"][0]["message"]
        assert alive(pid_a)  # the active site was not harmed
        shown = dalp("backup", "status", str(self.inventory))
        assert shown.returncode == 1 and status_says in shown.stdout, shown.stdout

    def switch_wal(self, count: int) -> str:
        """``count`` more WAL segments archived by the tool; the newest one's name."""
        before = self.status()["newest_wal"]
        for _ in range(count):
            self.psql_a("create temporary table t as select 1; select pg_switch_wal()")
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            newest = self.status()["newest_wal"]
            if newest and before and (segment(newest) >= segment(before) + count):
                return str(newest)
            time.sleep(0.5)
        pytest.fail(f"{count} WAL segments were not archived by {self.tool} within 90 s")


def segment(name: str) -> int:
    """A WAL segment's position on its timeline."""
    number = object_store.segment_number(name)
    assert number is not None, name
    return number[1]


def previous_segment(name: str) -> str:
    """The segment before ``name`` on its timeline."""
    return object_store.segment_name(1, segment(name) - 1)
