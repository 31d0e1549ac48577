"""Named labs (``lab up hot-warm --name eu-1``): the generated inventory, the slot table and
the name's rules, with a runner that records what it was asked to run."""

from __future__ import annotations

import json
import multiprocessing
import os
import shutil
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from dalp_dr import named_lab
from dalp_dr.adapters.base import PlaybookResult
from dalp_dr.commands import main
from dalp_dr.errors import InvalidInput, LabError
from dalp_dr.lab import Lab

ROOT = Path(__file__).resolve().parents[2]
HOT_WARM = ROOT / "inventories" / "lab" / "hot-warm.yml"


class Runner:
    """Every run succeeds; lab-down removes the lab root as the real one does."""

    def __init__(self) -> None:
        self.runs: list[tuple[str, Path]] = []

    def run(self, playbook: Path, inventory: Path, **_: Any) -> PlaybookResult:
        self.runs.append((f"{playbook.parent.name}/{playbook.name}", inventory))
        if playbook.name == "lab-down.yml":
            root = yaml.safe_load(inventory.read_text())["all"]["vars"]["dalp_lab_root"]
            shutil.rmtree(root, ignore_errors=True)
        now = datetime.now(UTC)
        return PlaybookResult(playbook=playbook.name, status="successful", rc=0,
                              started_at=now, ended_at=now,
                              artifact_data={"sites": {}} if "status" in playbook.name else {})


@pytest.fixture
def labs(tmp_path: Path) -> Path:
    return tmp_path / "named"


@pytest.fixture
def runner() -> Runner:
    return Runner()


@pytest.fixture
def lab(labs: Path, runner: Runner) -> Lab:
    return Lab(ROOT, runner, named_labs=labs)


@pytest.mark.parametrize("name", ["eu-1", "a", "0", "x" * 31, "a-b-c", "9lives"])
def test_good_names(name: str) -> None:
    assert named_lab.check_name(name) == name


@pytest.mark.parametrize("name", ["", "-eu", "EU-1", "eu_1", "eu.1", "x" * 32, "eu 1",
                                  "../x", "eu/1", "eu-1\n", "é"])
def test_bad_names_are_refused(name: str) -> None:
    with pytest.raises(InvalidInput, match="cannot name a lab"):
        named_lab.check_name(name)


@pytest.mark.parametrize("command", ["up", "status", "down"])
def test_the_cli_refuses_a_bad_name_with_2_naming_the_flag(
        command: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["lab", command, "hot-warm", "--name", "EU_1"]) == 2
    err = capsys.readouterr().err
    assert "--name" in err and "EU_1" in err


def test_generated_inventory_moves_every_port_root_and_environment() -> None:
    base = yaml.safe_load(HOT_WARM.read_text())
    before = json.dumps(base, sort_keys=True)
    root = Path("/x/named/eu-1/hot-warm")
    made = named_lab.named_inventory(base, name="eu-1", slot=3, root=root)
    assert json.dumps(base, sort_keys=True) == before  # the base is left as it was
    assert named_lab.ports(base) == {"dalp_route_port": 56432,
                                     "site-a.dalp_pg_port": 55432,
                                     "site-b.dalp_pg_port": 55433}
    assert named_lab.ports(made) == {"dalp_route_port": 26732,
                                     "site-a.dalp_pg_port": 25732,
                                     "site-b.dalp_pg_port": 25733}
    variables = made["all"]["vars"]
    assert variables["dalp_lab_root"] == str(root)
    assert variables["dalp_environment"] == "lab-eu-1"
    # everything else as it was (paths and the DSN derive from the root and the ports)
    changed = {"dalp_lab_root", "dalp_environment", "dalp_lab_name", "dalp_route_port"}
    for key, value in base["all"]["vars"].items():
        if key not in changed:
            assert variables[key] == value, key
    assert "{{ dalp_lab_root }}" in made["all"]["children"]["primary"]["hosts"]["site-a"][
        "dalp_pg_data"]
    # a real inventory again, as YAML
    text = named_lab.dump(made, name="eu-1", topology="hot-warm", slot=3)
    assert yaml.safe_load(text) == made


def test_two_slots_share_no_port() -> None:
    base = yaml.safe_load(HOT_WARM.read_text())
    seen: set[int] = set(named_lab.ports(base).values())
    for slot in range(1, named_lab.MAX_SLOTS + 1):
        made = named_lab.named_inventory(base, name="n", slot=slot, root=Path("/r"))
        mine = set(named_lab.ports(made).values())
        assert len(mine) == 3 and not mine & seen, slot
        seen |= mine


@pytest.mark.parametrize(("key", "value"), [
    ("dalp_s3_endpoint", "http://127.0.0.1:56432"),
    ("dalp_pid_dir", "/var/tmp/dalp-dr-lab/hot-warm/pids"),
])
def test_a_value_spelling_a_base_port_or_root_is_refused(key: str, value: str) -> None:
    base = yaml.safe_load(HOT_WARM.read_text())
    base["all"]["vars"][key] = value
    with pytest.raises(InvalidInput, match="spells the base lab's") as raised:
        named_lab.named_inventory(base, name="n", slot=1, root=Path("/r"))
    assert raised.value.field == key


def _lab_inventories() -> dict[str, dict[str, int]]:
    found = {}
    for path in sorted((ROOT / "inventories" / "lab").rglob("*.yml")):
        found[str(path.relative_to(ROOT / "inventories" / "lab"))[:-4]] = named_lab.ports(
            yaml.safe_load(path.read_text()))
    return found


def test_no_named_port_meets_a_lab_port_of_any_topology() -> None:
    bases = _lab_inventories()
    assert "hot-warm" in bases and "hosts/hot-warm" in bases and len(bases) >= 11
    assert named_lab.port_clashes(bases) == []


def test_the_clash_check_can_fail(monkeypatch: pytest.MonkeyPatch) -> None:
    bases = _lab_inventories()
    # slot 11 moves a site's 55432 onto the route's 56432 at slot 1
    monkeypatch.setattr(named_lab, "MAX_SLOTS", 11)
    assert any("26532" in c for c in named_lab.port_clashes(bases))
    monkeypatch.setattr(named_lab, "MAX_SLOTS", 10)
    # another topology 100 below hot-warm: its slot 2 is hot-warm's slot 1
    bases["near"] = {"dalp_pg_port": 55332}
    assert named_lab.port_clashes(bases, ("hot-warm", "near"))


def test_slots_lowest_free_and_kept_per_name() -> None:
    table: dict[str, int] = {"a": 1, "c": 3}
    assert named_lab.take_slot(table, "b") == 2
    assert named_lab.take_slot(table, "a") == 1
    assert named_lab.take_slot(table, "d") == 4
    full = {f"n{i}": i for i in range(1, named_lab.MAX_SLOTS + 1)}
    with pytest.raises(LabError, match="every named lab slot"):
        named_lab.take_slot(full, "late")


def _take(labs: str, name: str, queue: Any) -> None:
    with named_lab.Slots(Path(labs)).locked() as table:
        slot = named_lab.take_slot(table, name)
        time.sleep(0.02)  # widen the window another process would race into
    queue.put((name, slot))


def test_concurrent_takers_never_share_a_slot(labs: Path) -> None:
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    names = [f"eu-{i}" for i in range(1, 7)]
    procs = [ctx.Process(target=_take, args=(str(labs), n, queue)) for n in names]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=30)
        assert p.exitcode == 0
    got = dict(queue.get(timeout=5) for _ in names)
    assert sorted(got.values()) == list(range(1, 7))
    assert json.loads((labs / "slots.json").read_text()) == got


def test_a_locked_table_is_waited_for_with_a_deadline(labs: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    import fcntl

    monkeypatch.setattr(named_lab, "LOCK_SECONDS", 0.3)
    labs.mkdir()
    with open(labs / "slots.lock", "a") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        # (flock locks belong to the open file: a second open of it is another holder)
        started = time.monotonic()
        with pytest.raises(LabError, match="stayed locked"), \
                named_lab.Slots(labs).locked():
            pass
        assert 0.3 <= time.monotonic() - started < 2


def test_up_status_down_of_a_named_lab(lab: Lab, labs: Path, runner: Runner) -> None:
    path = lab.up("hot-warm", name="eu-1")
    assert path == labs / "eu-1" / "hot-warm" / "inventory.yml"
    assert runner.runs == [("hot-warm/lab-up.yml", path)]
    assert [p.name for p in path.parent.iterdir()] == ["inventory.yml"]  # no temp left
    assert lab.named_ports("hot-warm", "eu-1")["dalp_route_port"] == 26532
    second = lab.up("hot-warm", name="eu-2")
    assert lab.named_ports("hot-warm", "eu-2")["dalp_route_port"] == 26632
    assert json.loads((labs / "slots.json").read_text()) == {"eu-1": 1, "eu-2": 2}
    again = lab.up("hot-warm", name="eu-1")  # a second up: the same slot, the same file
    assert again == path and lab.named_ports("hot-warm", "eu-1")["dalp_route_port"] == 26532

    status = lab.status("hot-warm", name="eu-2")
    assert status["present"] and status["inventory"] == str(second)
    assert status["environment"] == "lab-eu-2"
    assert lab.named_topologies("eu-2") == ["hot-warm"]

    lab.down("hot-warm", name="eu-1")
    assert runner.runs[-1] == ("hot-warm/lab-down.yml", path)
    assert not (labs / "eu-1").exists() and (labs / "eu-2" / "hot-warm").is_dir()
    assert json.loads((labs / "slots.json").read_text()) == {"eu-2": 2}
    assert lab.status("hot-warm", name="eu-1") == {"present": False, "name": "eu-1"}
    runs = len(runner.runs)
    lab.down("hot-warm", name="eu-1")  # nothing there: nothing run
    assert len(runner.runs) == runs
    # the freed slot is the next name's
    lab.up("hot-warm", name="eu-3")
    assert json.loads((labs / "slots.json").read_text()) == {"eu-2": 2, "eu-3": 1}


def test_the_unnamed_lab_runs_on_its_own_inventory(lab: Lab, labs: Path,
                                                   runner: Runner) -> None:
    assert lab.up("hot-warm") == HOT_WARM
    assert runner.runs == [("hot-warm/lab-up.yml", HOT_WARM)]
    assert not labs.exists()


@pytest.mark.parametrize(("topology", "hosts", "match"), [
    ("cloud-native", False, "cannot be named"),
    ("hot-warm-platform", False, "cannot be named"),
    ("hot-warm", True, "host lab cannot be named"),
    ("no-such", False, "no lab for topology"),
])
def test_refused_before_anything_runs(lab: Lab, labs: Path, runner: Runner, topology: str,
                                      hosts: bool, match: str) -> None:
    for action in (lab.up, lab.down, lab.status):
        with pytest.raises(InvalidInput, match=match):
            action(topology, hosts=hosts, name="eu-1")
    assert runner.runs == [] and not labs.exists()


def test_cli_up_prints_the_inventory(monkeypatch: pytest.MonkeyPatch, labs: Path,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    import dalp_dr.adapters.ansible

    monkeypatch.setattr(dalp_dr.adapters.ansible, "AnsibleRunner", Runner)
    monkeypatch.setattr(named_lab, "NAMED_LABS", labs)
    assert main(["lab", "up", "hot-warm", "--name", "eu-1", "--output", "json"]) == 0
    out = json.loads(capsys.readouterr().out)
    inventory = labs / "eu-1" / "hot-warm" / "inventory.yml"
    assert out["inventory"] == str(inventory) and out["environment"] == "lab-eu-1"
    assert out["ports"]["dalp_route_port"] == 26532
    assert main(["lab", "up", "hot-warm", "--name", "eu-1"]) == 0
    assert str(inventory) in capsys.readouterr().out.replace("\n", "")
    assert main(["lab", "status", "--name", "eu-1", "--output", "json"]) == 0
    assert list(json.loads(capsys.readouterr().out)) == ["hot-warm"]
    assert main(["lab", "down", "--name", "eu-1", "--output", "json"]) == 0
    assert json.loads(capsys.readouterr().out) == [
        {"topology": "hot-warm", "hosts": False, "name": "eu-1", "state": "down"}]
    assert not inventory.exists()
    assert main(["lab", "up", "cloud-native", "--name", "eu-1"]) == 2
    assert "cannot be named" in capsys.readouterr().err


def test_the_way_to_a_named_root_is_passable_whatever_the_umask(lab: Lab, labs: Path) -> None:
    import os

    old = os.umask(0o077)
    try:
        path = lab.up("hot-warm", name="eu-1")
    finally:
        os.umask(old)
    modes = [oct(p.stat().st_mode & 0o777) for p in (labs, labs / "eu-1", path.parent)]
    assert modes == ["0o755", "0o755", "0o700"]


def test_a_named_labs_directory_others_can_write_is_refused(lab: Lab, labs: Path,
                                                            runner: Runner) -> None:
    """Named labs live under /var/tmp, where anyone may create a directory first: one that
    another user could change (its inventory is code Ansible runs) is refused."""
    labs.mkdir(mode=0o755)
    labs.chmod(0o777)  # as a directory someone else made for everyone
    with pytest.raises(LabError, match="writable by others"):
        lab.up("hot-warm", name="eu-1")
    assert runner.runs == [] and not (labs / "slots.json").exists()


def test_a_lab_root_planted_as_a_link_is_refused(lab: Lab, labs: Path, runner: Runner,
                                                 tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (labs / "eu-1").mkdir(parents=True)
    (labs / "eu-1" / "hot-warm").symlink_to(elsewhere)
    with pytest.raises(LabError, match="not a directory"):
        lab.up("hot-warm", name="eu-1")
    assert runner.runs == [] and list(elsewhere.iterdir()) == []


@pytest.mark.parametrize("action", ["down", "status"])
def test_down_and_status_run_nothing_from_a_root_others_could_change(
        lab: Lab, labs: Path, runner: Runner, action: str) -> None:
    """A named lab whose way in another user could change (an inventory planted there is
    code Ansible would run, as whoever takes the lab down) is refused before anything is
    read. The root itself belongs to the database OS user once the lab is up: that is no
    refusal (lab up hands it over; nobody else reaches it through its parent)."""
    lab.up("hot-warm", name="eu-1")
    root = labs / "eu-1" / "hot-warm"
    if os.geteuid() == 0:
        os.chown(root, 101, 101)  # as lab up leaves it: the database OS user's
    assert lab.status("hot-warm", name="eu-1")["present"]
    (labs / "eu-1").chmod(0o777)  # as if someone else may write above it now
    runs = len(runner.runs)
    with pytest.raises(LabError, match="writable by others"):
        getattr(lab, action)("hot-warm", name="eu-1")
    assert len(runner.runs) == runs
    (labs / "eu-1").chmod(0o755)
