"""What drill validation refuses and how it says so (issue 21): unit case, tabs, time-zone
typos, one drill name per drill, directories that are missing or hold several files; and a
plan that runs nothing works offline; times and offsets in the one format."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest

from dalp_dr.commands import main
from dalp_dr.durations import format_offset, parse_duration
from dalp_dr.errors import SpecError
from dalp_dr.spec import parse_drill
from dalp_dr.timefmt import format_clock, format_time

ROOT = Path(__file__).resolve().parents[2]
ORIGINAL = ROOT / "drills" / "hot-warm-failover.yaml"


def drill_text(**replace: str) -> str:
    """The shipped hot-warm drill, paths absolute (inside the project), lines replaced by
    key (``rto``, ``schedule``)."""
    text = ORIGINAL.read_text().replace("../", f"{ROOT}/")
    for key, line in replace.items():
        text, count = re.subn(rf"(?m)^(\s*){key}:.*$", r"\g<1>" + line.replace("\\", "\\\\"),
                              text, count=1)
        assert count == 1, key
    return text


def refused(text: str) -> SpecError:
    with pytest.raises(SpecError) as caught:
        parse_drill(text, source="d.yaml")
    return caught.value


@pytest.mark.parametrize(("given", "meant"), [("5M", "5m"), ("30S", "30s"), ("1H30M", "1h30m"),
                                              ("100MS", "100ms")])
def test_a_unit_in_the_wrong_case_is_refused_with_the_right_one(given: str, meant: str) -> None:
    with pytest.raises(ValueError, match=f"did you mean {meant}\\?"):
        parse_duration(given)
    assert parse_duration(meant).total_seconds() > 0


def test_an_objective_in_the_wrong_case_names_the_field() -> None:
    error = refused(drill_text(rto="rto: 5M"))
    assert error.field == "objectives.rto" and "did you mean 5m" in error.detail


def test_a_tab_says_tab_with_line_and_column() -> None:
    text = drill_text().replace("\n  rto:", "\n\trto:", 1)
    line = text.splitlines().index("\trto: 30m") + 1
    error = refused(text)
    assert f"a tab at line {line}, column 1" in error.detail
    assert error.hint == "replace the tab with spaces"


def test_a_time_zone_typo_gets_a_time_zone_hint() -> None:
    error = refused(drill_text(schedule="schedule: {cron: quarterly, timezone: "
                                        "Europe/Amsterdm}"))
    assert error.field == "schedule.timezone"
    assert "did you mean Europe/Amsterdam?" in error.detail
    assert error.hint is not None and "time-zone" in error.hint and "cron" not in error.hint


def test_a_bad_cron_keeps_the_cron_hint() -> None:
    error = refused(drill_text(schedule='schedule: "0 3 * *"'))
    assert error.field == "schedule" and error.hint is not None and "cron" in error.hint


@pytest.fixture
def twins(tmp_path: Path) -> Path:
    """A directory with two files defining the same drill name."""
    folder = tmp_path / "twins"
    folder.mkdir()
    for name in ("a.yaml", "b.yaml"):
        (folder / name).write_text(drill_text())
    return folder


@pytest.mark.parametrize("command", [["drill", "validate", "{dir}"],
                                     ["drill", "list", "--dir", "{dir}"],
                                     ["doctor", "--drills", "{dir}"]])
def test_one_drill_name_in_two_files_is_refused_naming_both(
        configured: Path, twins: Path, command: list[str],
        capsys: pytest.CaptureFixture[str]) -> None:
    code = main([part.format(dir=twins) for part in command])
    err = capsys.readouterr().err
    if command[0] == "doctor":  # a finding among others: the machine check fails (exit 1)
        assert code == 1
    else:
        assert code == 2
    assert "b.yaml" in err and "already defined by" in err and "a.yaml" in err


def test_validate_a_directory_checks_every_file_in_it(
        configured: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "drills"
    folder.mkdir()
    (folder / "good.yaml").write_text(drill_text())
    (folder / "bad.yaml").write_text(drill_text(rto="rto: 5M", name="name: other"))
    assert main(["drill", "validate", str(folder), "-o", "json"]) == 2
    document = json.loads(capsys.readouterr().out)
    assert [Path(d["file"]).name for d in document["drills"]] == ["good.yaml"]
    assert [(Path(p["file"]).name, p["field"]) for p in document["problems"]] == [
        ("bad.yaml", "objectives.rto")]
    assert document["error"]["exit_code"] == 2


@pytest.mark.parametrize("command", [["drill", "list", "--dir", "{missing}"],
                                     ["doctor", "--drills", "{missing}"],
                                     ["drill", "validate", "{missing}"]])
def test_a_missing_directory_is_invalid_input(
        configured: Path, tmp_path: Path, command: list[str],
        capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "nonexistent"
    assert main([part.format(missing=missing) for part in command]) == 2
    assert str(missing) in capsys.readouterr().err


def test_plan_without_preflight_needs_nothing_to_answer(
        configured: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The endpoint is a port nothing listens on: the plan is made anyway, nothing runs."""
    drill = tmp_path / "offline.yaml"
    text = drill_text()
    inventory = tmp_path / "inventory.yml"
    source = (ROOT / "inventories" / "lab" / "hot-warm.yml").read_text()
    inventory.write_text(re.sub(r"dalp_route_port: \d+", "dalp_route_port: 9", source))
    drill.write_text(re.sub(r"(?m)^inventory:.*$", f"inventory: {inventory}", text))
    assert main(["drill", "plan", str(drill), "--no-preflight", "-o", "json"]) == 0
    plan = json.loads(capsys.readouterr().out)
    assert plan["preflight_ok"] is None and plan["drill"] == "hot-warm-failover"


def test_times_carry_their_zone_and_offsets_the_one_duration_format() -> None:
    moment = datetime(2026, 10, 1, 1, 0, 0, 250_000, tzinfo=UTC)
    assert format_time(moment) == "2026-10-01 01:00:00 UTC"
    assert format_time(moment, "Europe/Amsterdam") == "2026-10-01 03:00:00 Europe/Amsterdam"
    assert format_time(moment, millis=True) == "2026-10-01 01:00:00.250 UTC"
    assert format_clock(moment, "UTC") == "01:00:00.250 UTC"
    assert format_time(None) == "-"
    assert (format_offset(71.57), format_offset(-0.25), format_offset(0)) == (
        "+1m12s", "-0.250s", "+0.000s")


@pytest.mark.parametrize(("line", "field"), [
    ("dalp_backup_tool: pgbackup", "dalp_backup_tool"),
    ("dalp_backup_tool: s3-archive", "dalp_backup_tool"),
    ("dalp_barman_server_name: ''", "dalp_barman_server_name"),
    # an inventory written for s3-archive: its script's path would be overwritten by the
    # barman-cloud script, which then imports itself
    ('dalp_s3_tool: "{{ dalp_lab_root }}/bin/dalp_s3.py"', "dalp_s3_tool")])
def test_a_backup_tool_setting_the_playbooks_cannot_use_is_invalid_input(
        configured: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], line: str,
        field: str) -> None:
    """An unknown dalp_backup_tool (the playbooks would take it for barman-cloud), the
    retired s3-archive, or barman-cloud without its server name, is refused before anything
    starts."""
    key = line.split(":", 1)[0]
    inventory = tmp_path / "inventory.yml"
    source = (ROOT / "inventories" / "lab" / "hot-cold.yml").read_text()
    inventory.write_text(re.sub(rf"(?m)^(\s*){key}:.*$", rf"\g<1>{line}", source, count=1))
    drill = tmp_path / "barman.yaml"
    text = (ROOT / "drills" / "hot-cold-restore.yaml").read_text().replace(
        "../", f"{ROOT}/")
    drill.write_text(re.sub(r"(?m)^inventory:.*$", f"inventory: {inventory}", text))
    assert main(["drill", "plan", str(drill), "--no-preflight", "-o", "json"]) == 2
    captured = capsys.readouterr()
    error = json.loads(captured.out)["error"]
    assert error["file"] == str(inventory) and error["field"].startswith(field)
    assert error["hint"] and error["exit_code"] == 2
    if "s3-archive" in line:
        assert "was retired" in error["message"] and "barman-cloud" in error["hint"]
    if "dalp_s3.py" in line:
        assert "dalp_barman.py" in error["hint"]


def test_the_default_tool_asks_its_server_name_of_the_database_hosts_only(
        tmp_path: Path) -> None:
    """No dalp_backup_tool: barman-cloud, whose server name only the database hosts (groups
    primary and cold) need; the route and object store hosts that see the bucket do not."""
    from dalp_dr.adapters.s3 import check_backup_tool
    from dalp_dr.errors import InventoryError
    from dalp_dr.inventory import Inventory

    def inventory(site_vars: dict[str, str]) -> Inventory:
        path = tmp_path / "inventory.json"
        path.write_text(json.dumps({"all": {"vars": {"dalp_s3_bucket": "backups"}, "children": {
            "primary": {"hosts": {"site-a": site_vars}},
            "cold": {"hosts": {"site-cold": site_vars}},
            "route": {"hosts": {"route-1": {}}}}}}))
        return Inventory(path)

    check_backup_tool(inventory({"dalp_barman_server_name": "site-a"}))  # nothing raised
    with pytest.raises(InventoryError) as refused:
        check_backup_tool(inventory({}))
    assert refused.value.field == "dalp_barman_server_name (host site-a)"
