"""Ansible's own warnings never reach a JSON-lines stream as text: a playbook's (a real one,
run by ansible-runner on localhost) arrive as events of the runner, and those of Ansible
code running in this process (reading an inventory) become ``warning`` events."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from dalp_dr.adapters.ansible import AnsibleRunner
from dalp_dr.ansible_warnings import split
from dalp_dr.commands import main

ROOT = Path(__file__).resolve().parents[2]

PLAYBOOK = """\
- hosts: all:nosuchgroup
  gather_facts: false
  vars:
    environment: reserved
  tasks:
    - name: say something
      ansible.builtin.debug:
        msg: hello
"""
"""an unmatched host pattern and a reserved variable name: two warnings"""


def test_a_playbook_s_warnings_are_events_not_stderr(
        tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    playbook = tmp_path / "warn.yml"
    playbook.write_text(PLAYBOOK)
    inventory = tmp_path / "inventory.yml"
    inventory.write_text("all:\n  hosts:\n    localhost:\n      ansible_connection: local\n"
                         "      ansible_python_interpreter: '{{ ansible_playbook_python }}'\n")
    events: list[dict[str, Any]] = []
    result = AnsibleRunner().run(playbook, inventory, extravars={}, timeout=120,
                                 on_event=events.append)
    assert result.ok, result.failure_message
    warnings = [str(e.get("stdout")) for e in events if e.get("event") == "warning"]
    assert any("Could not match supplied host pattern" in w for w in warnings), warnings
    assert any("reserved name 'environment'" in w for w in warnings), warnings
    captured = capfd.readouterr()
    assert "WARNING" not in captured.err and "WARNING" not in captured.out


def test_split_keeps_a_warning_s_origin_lines_with_it() -> None:
    text = ("note\n[WARNING]: first\nOrigin: x.yml:4:5\n\n4   a: b\n"
            "[DEPRECATION WARNING]: second\n")
    assert split(text) == (["[WARNING]: first\nOrigin: x.yml:4:5\n\n4   a: b",
                            "[DEPRECATION WARNING]: second"], "note\n")


def test_an_inventory_warning_is_a_json_event_on_the_run_s_stream(
        configured: Path, capfd: pytest.CaptureFixture[str]) -> None:
    """The inventory has a group name Ansible warns about, the endpoint does not answer:
    the run stops before it starts, and stderr holds nothing but JSON lines."""
    tmp = configured
    source = (ROOT / "inventories" / "lab" / "hot-warm.yml").read_text()
    inventory = tmp / "inventory.yml"
    inventory.write_text(re.sub(r"dalp_route_port: \d+", "dalp_route_port: 9", source)
                         .replace("    route:\n", "    odd-group:\n      hosts:\n"
                                  "        route-lab: {}\n    route:\n"))
    text = (ROOT / "drills" / "hot-warm-failover.yaml").read_text().replace("../", f"{ROOT}/")
    drill = tmp / "drill.yaml"
    drill.write_text(re.sub(r"(?m)^inventory:.*$", f"inventory: {inventory}", text))
    assert main(["drill", "run", str(drill), "--log-format", "json"]) == 2
    captured = capfd.readouterr()
    lines = [json.loads(line) for line in captured.err.splitlines()]  # each one is JSON
    warnings = [e for e in lines if e["event"] == "warning"]
    assert any("[WARNING]: Invalid characters were found in group names" in e["message"]
               for e in warnings), lines
    assert lines[-1]["event"] == "error" and lines[-1]["exit_code"] == 2
