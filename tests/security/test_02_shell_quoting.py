"""Finding 2: inventory and drill values are never run as shell code or SQL.

The hot-warm lab is built, drilled and taken down from a copy of its inventory whose lab root
(and so every data directory, socket directory and route file path) carries shell syntax: a
space, single quotes that close and reopen a quoted word, ``$(...)`` and ``;``. Rendered
into a shell string without quoting, the path runs ``touch /tmp/sec02-pwned`` or
``touch /tmp/sec02-owned`` (or breaks the command, and the lab or the drill fails). Quoted,
it is only a strange directory name: the lab comes up, the drill passes, the lab goes down,
and neither file exists. (The files are absolute: playbook shells run in ansible-runner's
private directory, which is removed after every playbook, so a file an injection left there
would be gone before anyone looked.)

Its own ports (HOSTILE_PORTS: neither the normal nor the spare hot-warm lab's), so its own
xdist group: side by side with the other labs, the normal hot-warm lab left up.
Every playbook of every topology is also read (no lab needed): each templated value in a shell
or raw script is shell-quoted, no command is a string with a templated value (it would be
split on its spaces), and no SQL fed to psql has a value spliced in.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.lab.helpers import LABS, ROOT, alive, lab_pids, lab_processes

pytestmark = [pytest.mark.lab, pytest.mark.xdist_group("hot-warm-hostile")]

# Two single quotes, so a path spliced between single quotes closes the quote, runs its
# middle as commands and reopens it (the issue's `/x'; touch owned; echo '`); $(...) for
# double-quoted and unquoted splices. Its slashes make it a few directories deep; short
# enough for a Unix socket path under it.
HOSTILE_NAME = "it's $(touch /tmp/sec02-pwned); touch /tmp/sec02-owned; echo 'lab"
HOSTILE_ROOT = LABS / HOSTILE_NAME
HOSTILE_TOP = LABS / HOSTILE_NAME.split("/")[0]  # "it's $(touch ": what lab down leaves
STRAY = (Path("/tmp/sec02-pwned"), Path("/tmp/sec02-owned"))
# site A, site B, the route: free in every lab inventory (inside the reserved 55400-56599)
HOSTILE_PORTS = {"site-a": 55632, "site-b": 55633, "route": 56632}

# The site's own commands (how it loses a node, reroutes its clients, ...): shell by design.
SITE_COMMANDS = {"dalp_lose_site_command", "dalp_lose_node_command", "dalp_reroute_command",
                 "dalp_node_return_command"}
SHELL_MODULES = {"ansible.builtin.shell", "ansible.builtin.raw", "shell", "raw"}
COMMAND_MODULES = {"ansible.builtin.command", "command"}
EXPRESSION = re.compile(r"{{(.*?)}}", re.S)
QUOTED = re.compile(r"\|\s*quote\s*$|map\('quote'\)\s*\|\s*join\(' '\)\s*$")


def _tasks(node: object) -> Iterator[dict[str, Any]]:
    if isinstance(node, list):
        for item in node:
            yield from _tasks(item)
    elif isinstance(node, dict):
        if any(str(key).startswith("ansible.builtin.") for key in node) \
                or SHELL_MODULES & node.keys() or COMMAND_MODULES & node.keys():
            yield node  # a task (include_tasks too: its vars may hold SQL)
        for value in node.values():
            yield from _tasks(value)


def _unquoted(script: str) -> list[str]:
    found = []
    for match in EXPRESSION.finditer(script):
        expression = " ".join(match.group(1).split())
        if not QUOTED.search(expression) and expression not in SITE_COMMANDS:
            found.append(expression)
    return found


def test_every_playbook_quotes_what_it_splices() -> None:
    problems = []
    for path in sorted((ROOT / "playbooks").rglob("*.yml")):
        if path.is_symlink():  # a link is read where it points (none among the .yml now)
            continue
        for task in _tasks(yaml.safe_load(path.read_text())):
            where = f"{path.relative_to(ROOT)}: {task.get('name')}"
            for module in SHELL_MODULES & task.keys():
                args = task[module]
                script = args if isinstance(args, str) else str(args.get("cmd", ""))
                problems += [f"{where}: unquoted {{{{ {e} }}}}" for e in _unquoted(script)]
            for module in COMMAND_MODULES & task.keys():
                args = task[module]
                command = args if isinstance(args, str) else args.get("cmd")
                if command is not None and "{{" in str(command):
                    problems.append(f"{where}: a templated command string (use argv)")
                stdin = "" if isinstance(args, str) else str(args.get("stdin", ""))
                argv = "" if isinstance(args, str) else str(args.get("argv", ""))
                if "psql" in argv and stdin.strip() != "{{ dalp_hh_sql }}":  # (dalp_hh psql)
                    # psql reads SQL and its own meta-commands: only \set may carry a value,
                    # as a quoted psql literal; the rest uses variables (:'x', :"x")
                    problems += [f"{where}: a value in the SQL: {line.strip()}"
                                 for line in stdin.splitlines()
                                 if "{{" in line and not line.lstrip().startswith("\\set ")]
            variables = task["vars"] if isinstance(task.get("vars"), dict) else {}
            for name in ("sql", "query", "dalp_hh_sql"):
                if "{{" in str(variables.get(name, "")):  # SQL built with a value in it
                    problems.append(f"{where}: a value in the SQL of vars.{name}")
    assert problems == [], "\n".join(problems)


def _run(args: list[str], *, env: dict[str, str], timeout: float
         ) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "dalp_dr", *args], env=env,
                          capture_output=True, text=True, timeout=timeout, check=False)


def _stray_files() -> list[Path]:
    return [path for path in STRAY if path.exists() or path.is_symlink()]


def _remove_by_force(root: Path) -> None:
    """What `lab down` could not remove (playbooks that break on the path): its processes
    killed, its directory removed, so its ports are free for the next run."""
    pids = lab_pids(root)
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while any(alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    shutil.rmtree(root, ignore_errors=True)
    shutil.rmtree(HOSTILE_TOP, ignore_errors=True)


def test_hostile_lab_root_is_only_a_path(tmp_path: Path) -> None:
    assert _stray_files() == [], "left by an earlier run: remove them first"
    assert len(str(HOSTILE_ROOT / "run" / f".s.PGSQL.{HOSTILE_PORTS['route']}")) < 108

    # A project of its own for `lab up/down hot-warm` (they read
    # inventories/lab/<topology>.yml): the real playbooks, the hostile inventory.
    project = tmp_path / "project"
    inventories = project / "inventories" / "lab"
    inventories.mkdir(parents=True)
    (project / "playbooks").symlink_to(ROOT / "playbooks")
    inventory = yaml.safe_load((ROOT / "inventories/lab/hot-warm.yml").read_text())
    inventory["all"]["vars"]["dalp_lab_root"] = str(HOSTILE_ROOT)
    inventory["all"]["vars"]["dalp_route_port"] = HOSTILE_PORTS["route"]
    for group in ("primary", "standby"):
        for name, host in inventory["all"]["children"][group]["hosts"].items():
            host["dalp_pg_port"] = HOSTILE_PORTS[name]
    (inventories / "hot-warm.yml").write_text(yaml.safe_dump(inventory, sort_keys=False))

    # The hot-warm drill, its inventory pointing at the copy, its playbooks the project's.
    drill = yaml.safe_load((ROOT / "drills/hot-warm-failover.yaml").read_text())
    drill["inventory"] = "hot-warm.yml"
    for phase in drill["phases"].values():
        phase["playbook"] = str((ROOT / "drills" / phase["playbook"]).resolve())
    drill_file = inventories / "hot-warm-failover.yaml"
    drill_file.write_text(yaml.safe_dump(drill, sort_keys=False))

    env = {**os.environ, "DALP_DR_RESULTS": str(tmp_path / "results")}
    lab_env = {**env, "DALP_DR_PROJECT": str(project)}
    drill_env = {**env, "DALP_DR_PROJECT": str(ROOT)}

    try:
        up = _run(["lab", "up", "hot-warm"], env=lab_env, timeout=600)
        assert up.returncode == 0, up.stderr
        assert (HOSTILE_ROOT / "site-a" / "data" / "postmaster.pid").is_file()
        assert (HOSTILE_ROOT / "site-b" / "data" / "standby.signal").is_file()

        run = _run(["drill", "run", str(drill_file), "--json"], env=drill_env,
                   timeout=900)
        result = json.loads(run.stdout) if run.stdout.strip() else {}
        assert run.returncode == 0, run.stderr
        assert result["outcome"] == "passed", result
        assert result["steady_state_restored"] is True
    finally:
        down = _run(["lab", "down", "hot-warm"], env=lab_env, timeout=300)
        left = lab_processes(HOSTILE_ROOT), HOSTILE_ROOT.exists()
        if down.returncode != 0 or any(left):
            _remove_by_force(HOSTILE_ROOT)
        stray = _stray_files()
        for path in stray:  # an injection that ran must not outlive this test
            path.unlink()
        shutil.rmtree(HOSTILE_TOP, ignore_errors=True)  # the directories above the lab root
        # (asserted here, so it is the failure reported even when the drill failed too)
        assert stray == [], f"a value ran as shell code: {stray}"
    assert down.returncode == 0, down.stderr
    assert left == ([], False), f"lab down left processes or the lab root: {left}"
