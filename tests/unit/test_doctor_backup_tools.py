"""``dalp-dr doctor`` checks the command of each backup tool an inventory keeps its backups
with (issue 22): barman-cloud's and pgBackRest's, named with the drills that need them."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from types import SimpleNamespace

import pytest

from dalp_dr.doctor import Health, _backup_tools
from dalp_dr.inventory import Inventory


def inventory(tmp_path: Path, name: str, tool: str | None, *, bucket: bool = False
              ) -> tuple[Path, Inventory]:
    path = tmp_path / f"{name}.yml"
    variables: dict[str, str] = {"dalp_backup_tool": tool} if tool else {}
    if bucket:
        variables["dalp_s3_bucket"] = "backups"
    path.write_text(json.dumps({"all": {"vars": variables, "hosts": {"db1": {}}}}))
    return path, Inventory(path)


def test_each_tool_in_use_is_checked_for_the_drills_that_use_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    tool = bin_dir / "pgbackrest"
    tool.write_text("#!/bin/sh\n")
    tool.chmod(tool.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", str(bin_dir))  # the host's PATH: pgbackrest, no barman-cloud
    inventories = dict([inventory(tmp_path, "pgb", "pgbackrest"),
                        inventory(tmp_path, "barman", "barman-cloud"),
                        inventory(tmp_path, "plain", None),
                        inventory(tmp_path, "unnamed", None, bucket=True),
                        inventory(tmp_path, "old", "s3-archive", bucket=True)])
    paths = list(inventories)
    drills = [SimpleNamespace(spec=SimpleNamespace(name=n), inventory=p)
              for n, p in (("pgb-restore", paths[0]), ("barman-restore", paths[1]),
                           ("plain-failover", paths[2]), ("unnamed-restore", paths[3]),
                           ("old-restore", paths[4]))]

    found = {f.check: f for f in _backup_tools(drills, inventories)}

    assert set(found) == {"pgbackrest", "barman-cloud-backup", "backup tool s3-archive"}
    assert found["backup tool s3-archive"].status is Health.MISSING
    assert found["backup tool s3-archive"].needed_by == ["old-restore"]
    assert "barman-cloud or pgbackrest" in found["backup tool s3-archive"].fix
    assert found["pgbackrest"].status is Health.OK
    assert found["pgbackrest"].detail == os.fspath(tool)
    assert found["pgbackrest"].needed_by == ["pgb-restore"]
    assert found["barman-cloud-backup"].status is Health.MISSING
    # backups in a bucket with no tool named: barman-cloud, the default
    assert found["barman-cloud-backup"].needed_by == ["barman-restore", "unnamed-restore"]
    assert found["barman-cloud-backup"].fix == "apt install barman-cli-cloud"
