"""Finding 1: what a target prints, forwarded by one phase to the next, is data.

A phase publishes facts with set_stats (e.g. the leader name Patroni reported); the engine
hands them to the later phases as extra vars. Ansible templates extra vars, so a target whose
output held ``{{ lookup('pipe', ...) }}`` ran a command on the controller in the next phase.
Real ansible-playbook runs on localhost (no lab needed).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from dalp_dr.adapters.ansible import AnsibleRunner

PUBLISH = """\
- name: A target's output becomes a published fact
  hosts: all
  gather_facts: false
  tasks:
    - name: The target prints its leader's name
      ansible.builtin.command:
        argv: [printf, "%s", "{{ dalp_target_says }}"]
      register: said
      changed_when: false
    - name: Publish it
      ansible.builtin.set_stats:
        aggregate: false
        data:
          dalp_leader: "{{ said.stdout }}"
"""

CONSUME = """\
- name: A later phase uses the forwarded fact
  hosts: all
  gather_facts: false
  tasks:
    - name: Use it in a message and a command
      ansible.builtin.command:
        argv: [printf, "%s", "leader {{ dalp_leader }} / {{ dalp_timeline[0].detail }}"]
      register: used
      changed_when: false
    - name: Report what it saw
      ansible.builtin.set_stats:
        aggregate: false
        data:
          dalp_used: "{{ used.stdout }}"
"""


@pytest.fixture
def localhost(tmp_path: Path) -> Path:
    inventory = tmp_path / "inventory.yml"
    inventory.write_text("all:\n  hosts:\n    target:\n      ansible_connection: local\n"
                         "      ansible_python_interpreter: \"{{ ansible_playbook_python }}\"\n")
    return inventory


def test_a_published_fact_reaches_the_next_phase_as_data(tmp_path: Path, localhost: Path) -> None:
    marker = tmp_path / "pwned"
    # what the first playbook receives is itself data from a target: {% raw %} cannot help it
    attack = "{{ lookup('pipe', 'touch " + str(marker) + "') }}"
    publish, consume = tmp_path / "publish.yml", tmp_path / "consume.yml"
    publish.write_text(PUBLISH)
    consume.write_text(CONSUME)
    runner = AnsibleRunner(workdir=tmp_path)

    first = runner.run(publish, localhost, extravars={"dalp_target_says": attack}, timeout=120)
    assert first.ok, first.describe_failure()
    assert first.artifact_data["dalp_leader"] == attack
    assert not marker.exists()

    facts = {**first.artifact_data, "dalp_timeline": [{"event": "x", "detail": attack}]}
    second = runner.run(consume, localhost, extravars=facts, timeout=120)
    assert second.ok, second.describe_failure()
    assert second.artifact_data["dalp_used"] == f"leader {attack} / {attack}"
    assert not marker.exists()


def test_extra_vars_keep_their_types(tmp_path: Path, localhost: Path) -> None:
    """Numbers, booleans and nested values still arrive as such (only strings are tagged)."""
    playbook = tmp_path / "types.yml"
    playbook.write_text("""\
- name: Types
  hosts: all
  gather_facts: false
  tasks:
    - name: Check them
      ansible.builtin.assert:
        that:
          - dalp_rto_seconds == 120.5
          - dalp_count + 1 == 4
          - dalp_flag is sameas true
          - dalp_nested["items"][1] == 'b'
          - dalp_none is none
          - dalp_looks_like_a_number is string and dalp_looks_like_a_number == '12'
          - dalp_looks_like_a_time is string
""")
    result = AnsibleRunner(workdir=tmp_path).run(
        playbook, localhost, timeout=120,
        extravars={"dalp_rto_seconds": 120.5, "dalp_count": 3, "dalp_flag": True,
                   "dalp_nested": {"items": ["a", "b"]}, "dalp_none": None,
                   # strings stay strings (ansible-core 2.19 resolves a !unsafe YAML scalar's
                   # type: '12' became an int, a timestamp a datetime)
                   "dalp_looks_like_a_number": "12",
                   "dalp_looks_like_a_time": "2026-12-02 04:00:00+00:00"})
    assert result.ok, result.describe_failure()
