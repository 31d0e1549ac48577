"""Named labs: many labs of one topology side by side (``dalp-dr lab up hot-warm --name eu-1``).

A named lab is the topology's lab inventory (``inventories/lab/<topology>.yml``) with its own
root, ports and environment name; the lab playbooks run unchanged against it:

* root: ``<NAMED_LABS>/<name>/<topology>`` (``dalp_lab_root``; every lab path derives from it);
* ports: every inventory variable named ``*_port`` (all vars, group vars, host vars) moved
  to ``base + PORT_OFFSET + SLOT_STRIDE * slot``: out of the base labs' 55400-58099 (and of
  the test labs beside them, e.g. +100 and +200) and below the kernel's ephemeral ports
  (32768-60999). The slot is the name's: one per name, kept in ``slots.json`` under an
  exclusive file lock, so two concurrent ``lab up --name`` never get the same one;
* environment: ``dalp_environment: lab-<name>`` (what a drill file's ``environment`` says).

The generated inventory is ``<root>/inventory.yml`` (written whole: a temporary file and a
rename). Only the topologies in ``NAMEABLE`` can be named: their lab and drill playbooks
take every path from ``dalp_lab_root`` and every port from the inventory, and processes are
found through PID files and data directories under the root (lab-down's last step waits for
the processes whose working directory is inside the root). ``named_inventory`` also refuses
an inventory that spells a base port or the base root in any other value (hot-cold's S3 URL,
hot-hot's DSNs, the platform labs' URLs and name servers do); cloud-native (one Patroni scope
and etcd cluster) and the platform labs (BIND, network namespaces, the host labs' lock) use
more than their inventory names.
"""

from __future__ import annotations

import copy
import fcntl
import json
import os
import re
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml

from dalp_dr import private_files
from dalp_dr.errors import InvalidInput, LabError

NAMED_LABS = Path("/var/tmp/dalp-dr-lab/named")
NAME = re.compile(r"[a-z0-9][a-z0-9-]{0,30}")
NAMEABLE = ("hot-warm",)
"""topologies whose lab was checked to run side by side with itself under another name"""
PORT_OFFSET = -30000
SLOT_STRIDE = 100
MAX_SLOTS = 10
"""slots 1..10: a topology's ports 1000 apart (a site's 55432, the route's 56432) are ten
strides apart, so they meet only from slot 11 on (``port_clashes`` checks every pair)"""
LOCK_SECONDS = 30.0
INVENTORY = "inventory.yml"


def check_name(name: str) -> str:
    """``name`` when it may name a lab; InvalidInput otherwise."""
    if not NAME.fullmatch(name):
        raise InvalidInput(f"'{name}' cannot name a lab", field="lab name",
                           hint="1 to 31 of a-z, 0-9 and '-', starting with a letter or digit")
    return name


def check_nameable(topology: str) -> None:
    if topology not in NAMEABLE:
        raise InvalidInput(
            f"the {topology} lab cannot be named: only a lab whose playbooks take every port, "
            "path and process from its inventory can run beside another of itself, and the "
            f"{topology} lab was not shown to", field="topology",
            hint=f"nameable: {', '.join(NAMEABLE)}")


def shifted(port: int, slot: int) -> int:
    return port + PORT_OFFSET + SLOT_STRIDE * slot


def named_root(labs: Path, name: str, topology: str) -> Path:
    return labs / name / topology


def environment_of(name: str) -> str:
    return f"lab-{name}"


def _variable_maps(group: dict[str, Any], label: str = ""
                   ) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every variable mapping of an inventory group, its hosts' and its children's, each
    with a label: "" for the top group's vars, else the host's or group's name and a dot."""
    if isinstance(group.get("vars"), dict):
        yield label, group["vars"]
    for host, variables in (group.get("hosts") or {}).items():
        if isinstance(variables, dict):
            yield f"{host}.", variables
    for child, sub in (group.get("children") or {}).items():
        if isinstance(sub, dict):
            yield from _variable_maps(sub, f"{child}.")


def ports(inventory: dict[str, Any]) -> dict[str, int]:
    """Every ``*_port`` variable of an inventory: ``variable`` (all's vars),
    ``host.variable`` or ``group.variable`` -> port."""
    found: dict[str, int] = {}
    for label, variables in _variable_maps(inventory.get("all") or {}):
        for key, value in variables.items():
            port = _as_port(value)
            if key.endswith("_port") and port is not None:
                found[label + key] = port
    return found


def _as_port(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    return None


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from _strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from _strings(v)


def named_inventory(base: dict[str, Any], *, name: str, slot: int, root: Path
                    ) -> dict[str, Any]:
    """The named lab's inventory: ``base`` (a lab inventory as loaded) with its own root,
    every ``*_port`` moved to its slot, and its environment name. InvalidInput when the base
    spells a port or its root anywhere but in those variables (a value that would be
    shared)."""
    if not 1 <= slot <= MAX_SLOTS:
        raise LabError(f"slot {slot} is not one of 1..{MAX_SLOTS}")
    inventory = copy.deepcopy(base)
    top = inventory.setdefault("all", {})
    variables = top.setdefault("vars", {})
    base_root = str(variables.get("dalp_lab_root", ""))
    if not base_root:
        raise InvalidInput("the lab inventory has no dalp_lab_root", field="dalp_lab_root")
    base_ports = {str(p) for p in ports(base).values()}
    for _, mapping in _variable_maps(top):
        for key, value in list(mapping.items()):
            port = _as_port(value)
            if key.endswith("_port") and port is not None:
                mapping[key] = shifted(port, slot)
            elif key != "dalp_lab_root":
                for text in _strings(value):
                    spelled = [p for p in base_ports if re.search(rf"(?<!\d){p}(?!\d)", text)]
                    if spelled or base_root in text:
                        raise InvalidInput(
                            f"variable {key} spells the base lab's "
                            f"{'port ' + spelled[0] if spelled else 'root'}: a named lab "
                            "would share it", field=key,
                            hint="derive it from dalp_lab_root or a *_port variable")
    variables["dalp_lab_root"] = str(root)
    variables["dalp_environment"] = environment_of(name)
    variables["dalp_lab_name"] = name
    return inventory


def trusted(folder: Path) -> None:
    """``folder`` and every directory above it cannot be changed by anyone but this user
    and root: each a real directory (no link), owned by root or this user, writable by
    nobody else unless sticky and root's (``/var/tmp``). LabError otherwise: the slot table
    and the named labs' inventories (which Ansible would run code from) live there, under a
    directory everyone may create in."""
    me = os.geteuid()
    for part in [*reversed(folder.parents), folder]:
        try:
            st = os.lstat(part)
        except FileNotFoundError:
            return  # what is missing is made by this user (passable)
        if stat.S_ISLNK(st.st_mode) or not stat.S_ISDIR(st.st_mode):
            raise LabError(f"{part} is not a directory (a link?): named labs refuse it")
        open_to_others = st.st_mode & (stat.S_IWGRP | stat.S_IWOTH)
        if st.st_uid not in (0, me) or (
                open_to_others and not (st.st_mode & stat.S_ISVTX and st.st_uid == 0)):
            raise LabError(f"{part} is owned by uid {st.st_uid} or writable by others "
                           f"(mode {stat.S_IMODE(st.st_mode):o}): named labs refuse it")


def trusted_root(root: Path) -> None:
    """A named lab's root: every directory above it this user's alone (``trusted``), and the
    root itself a real directory, no link. (Lab up hands the root to the database OS user,
    who runs the lab's servers in it; through a parent that is this user's alone nobody else
    can reach it.) LabError otherwise."""
    trusted(root.parent)
    try:
        st = os.lstat(root)
    except FileNotFoundError:
        return
    if not stat.S_ISDIR(st.st_mode):
        raise LabError(f"{root} is not a directory (a link?): named labs refuse it")


def passable(folder: Path) -> None:
    """``folder`` there, trusted (``trusted``); made 0755 when missing (whatever the umask):
    the database OS user passes through it to a lab root."""
    trusted(folder)
    if not folder.is_dir():
        folder.mkdir(parents=True, exist_ok=True)
        folder.chmod(0o755)
    trusted(folder)


class Slots:
    """Which name holds which slot (``slots.json`` in ``labs``), changed only under an
    exclusive lock on ``slots.lock`` (waited for at most LOCK_SECONDS)."""

    def __init__(self, labs: Path) -> None:
        self._labs = labs
        self._file = labs / "slots.json"

    @contextmanager
    def locked(self) -> Iterator[dict[str, int]]:
        """The table, under the lock; what the caller leaves in it is written back."""
        passable(self._labs)
        with open(self._labs / "slots.lock", "a") as lock:
            if not private_files.flock_within(lock, fcntl.LOCK_EX, LOCK_SECONDS):
                raise LabError(f"the named labs' slot table ({self._file}) stayed locked for "
                               f"{LOCK_SECONDS:.0f} s")
            try:
                table = self._read()
                before = dict(table)
                yield table
                if table != before:
                    private_files.atomic_write(
                        self._file, json.dumps(table, indent=2, sort_keys=True) + "\n")
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _read(self) -> dict[str, int]:
        try:
            data = json.loads(self._file.read_text())
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            raise LabError(f"the named labs' slot table {self._file} is unreadable: {exc}"
                           ) from exc
        if not isinstance(data, dict) or not all(
                isinstance(k, str) and isinstance(v, int) for k, v in data.items()):
            raise LabError(f"the named labs' slot table {self._file} is not a name -> slot map")
        return data

    def peek(self, name: str) -> int | None:
        with self.locked() as table:
            return table.get(name)


def take_slot(table: dict[str, int], name: str) -> int:
    """The name's slot in ``table``: the one it holds, else the lowest free one (taken)."""
    if name in table:
        return table[name]
    free = sorted(set(range(1, MAX_SLOTS + 1)) - set(table.values()))
    if not free:
        raise LabError(f"every named lab slot (1..{MAX_SLOTS}) is taken: "
                       f"{', '.join(sorted(table))}; take a named lab down first")
    table[name] = free[0]
    return free[0]


def port_clashes(bases: dict[str, dict[str, int]], nameable: tuple[str, ...] = NAMEABLE
                 ) -> list[str]:
    """Where a named lab's port (any nameable topology, any slot) meets another's or a base
    lab's (``bases``: each lab inventory's ports, hosts labs too); empty when none does."""
    taken: dict[int, str] = {}
    clashes = []
    for topology, found in sorted(bases.items()):
        for key, port in found.items():
            taken.setdefault(port, f"{topology} {key}")
    for topology in nameable:
        for slot in range(1, MAX_SLOTS + 1):
            for key, port in bases[topology].items():
                moved, owner = shifted(port, slot), f"{topology} {key} slot {slot}"
                if not 1024 <= moved < 32768:
                    clashes.append(f"{owner}: {moved} outside 1024..32767")
                if moved in taken and taken[moved] != owner:
                    clashes.append(f"{owner}: {moved} is {taken[moved]}'s")
                taken.setdefault(moved, owner)
    return clashes


def load(path: Path) -> dict[str, Any]:
    data = yaml.safe_load(path.read_text())
    if not isinstance(data, dict):
        raise InvalidInput(f"{path} is not an inventory", field="inventory")
    return data


def dump(inventory: dict[str, Any], *, name: str, topology: str, slot: int) -> str:
    return (f"# dalp-dr named lab '{name}' ({topology}, slot {slot}): generated by "
            "`lab up --name`; removed by `lab down --name`\n"
            + yaml.safe_dump(inventory, sort_keys=False, default_flow_style=False))
