"""Provenance sealed into each run record: versions, controller, operator, file digests."""

from __future__ import annotations

import hashlib
import json
import textwrap
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from dalp_dr.commands import main
from dalp_dr.provenance import (
    OperatorSource,
    Provenance,
    operator_and_source,
    resolve_operator,
    run_provenance,
)
from dalp_dr.results import Outcome, RunResult, Trigger
from dalp_dr.spec import Scenario, Topology, load_drill

ROOT = Path(__file__).resolve().parents[2]


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip())
    return path


DRILL = """
name: tree
topology: hot-warm
scenario: failover
owner: sre
objectives: {rto: 30m, rpo: 5m}
inventory: inventory/hosts.yml
endpoint: {dsn: "host=127.0.0.1 dbname=x"}
phases:
  preflight: {playbook: playbooks/main.yml}
  inject: {playbook: playbooks/inject.yml}
  verify: {playbook: playbooks/main.yml}
  steady_state: {playbook: playbooks/main.yml}
"""


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """A small project exercising every include form the walker follows."""
    proj = tmp_path / "proj"
    write(proj / "drill.yaml", DRILL)
    write(proj / "inventory/hosts.yml", "all:\n  hosts:\n    db1: {}\n")
    write(proj / "inventory/group_vars/all.yml", "x: 1\n")
    pb = proj / "playbooks"
    write(pb / "main.yml", """
        - ansible.builtin.import_playbook: other.yml
        - hosts: all
          vars_files:
            - vars/common.yml
            - ["vars/missing.yml", "vars/fallback.yml"]
          roles:
            - role: web
          tasks:
            - ansible.builtin.import_tasks: tasks/a.yml
            - include_tasks:
                file: tasks/b.yml
            - block:
                - ansible.builtin.include_tasks: "dyn/{{ kind }}.yml"
              rescue:
                - ansible.builtin.include_role:
                    name: db
                    tasks_from: setup
            - include_tasks: tasks/shared.yml
            - ansible.builtin.include_tasks: "{{ item }}"
              loop: [tasks/looped.yml]
            - ansible.builtin.include_tasks: "{{ playbook_dir }}/tasks/magic.yml"
          handlers:
            - import_tasks: tasks/handler.yml
    """)
    write(pb / "inject.yml", "- hosts: all\n  tasks:\n    - ansible.builtin.debug: {}\n")
    write(pb / "other.yml", """
        - hosts: all
          tasks:
            - import_tasks: tasks/c.yml
    """)
    # a nested include resolves against the including file's directory first
    write(pb / "tasks/a.yml", "- ansible.builtin.include_tasks: nested.yml\n")
    write(pb / "tasks/nested.yml", "- ansible.builtin.debug: {msg: nested}\n")
    for name in ("b", "c", "looped", "magic", "handler", "unused"):
        write(pb / f"tasks/{name}.yml", f"- ansible.builtin.debug: {{msg: {name}}}\n")
    write(proj / "common/shared.yml", "- ansible.builtin.debug: {msg: shared}\n")
    (pb / "tasks/shared.yml").symlink_to("../../common/shared.yml")
    write(pb / "dyn/x.yml", "- ansible.builtin.include_tasks: ../tasks/c.yml\n")
    write(pb / "dyn/y.yaml", "- ansible.builtin.debug: {}\n")
    write(pb / "dyn/readme.txt", "not a task file\n")
    write(pb / "vars/common.yml", "a: 1\n")
    write(pb / "vars/fallback.yml", "b: 2\n")
    write(pb / "group_vars/all.yml", "c: 3\n")
    write(pb / "roles/web/tasks/main.yml", "- import_tasks: web-extra.yml\n")
    write(pb / "roles/web/tasks/web-extra.yml", "- ansible.builtin.debug: {}\n")
    write(pb / "roles/web/templates/site.j2", "{{ x }}\n")
    write(pb / "roles/web/meta/main.yml", "dependencies:\n  - base\n")
    write(pb / "roles/base/tasks/main.yml", "- ansible.builtin.debug: {}\n")
    write(pb / "roles/db/tasks/setup.yml", "- ansible.builtin.debug: {}\n")
    write(pb / "roles/unused/tasks/main.yml", "- ansible.builtin.debug: {}\n")
    return proj


def test_walker_follows_every_include_form(tree: Path) -> None:
    drill = load_drill(tree / "drill.yaml")
    prov = run_provenance(drill, "alice", OperatorSource.FLAG, project_dir=tree)
    pb = "playbooks"
    assert set(prov.files) == {
        "drill.yaml", "inventory/hosts.yml", "inventory/group_vars/all.yml",
        f"{pb}/main.yml", f"{pb}/inject.yml", f"{pb}/other.yml",  # import_playbook
        f"{pb}/group_vars/all.yml",  # beside the playbook: Ansible reads it
        f"{pb}/vars/common.yml", f"{pb}/vars/fallback.yml",  # vars_files (first found)
        f"{pb}/tasks/a.yml", f"{pb}/tasks/nested.yml",  # import_tasks, nested include
        f"{pb}/tasks/b.yml",  # include_tasks with file:
        f"{pb}/tasks/c.yml",  # from the imported playbook and from dyn/x.yml
        f"{pb}/tasks/shared.yml",  # a symlink, keyed as used
        f"{pb}/tasks/looped.yml", f"{pb}/tasks/magic.yml", f"{pb}/tasks/handler.yml",
        f"{pb}/dyn/x.yml", f"{pb}/dyn/y.yaml",  # templated: every YAML file of dyn/
        f"{pb}/roles/web/tasks/main.yml", f"{pb}/roles/web/tasks/web-extra.yml",
        f"{pb}/roles/web/templates/site.j2", f"{pb}/roles/web/meta/main.yml",
        f"{pb}/roles/base/tasks/main.yml",  # a role dependency
        f"{pb}/roles/db/tasks/setup.yml",  # include_role tasks_from
    }
    assert prov.files[f"{pb}/tasks/shared.yml"] == sha(tree / "common/shared.yml")
    for key, digest in prov.files.items():
        assert digest == sha(tree / key), key
    assert prov.unresolved == [
        f"{pb}/main.yml: dyn/{{{{ kind }}}}.yml: templated; hashed every *.yml/*.yaml in "
        f"{pb}/dyn/"]
    assert prov.operator == "alice" and prov.operator_source is OperatorSource.FLAG
    assert prov.project_dir == str(tree)


def test_paths_outside_the_project_are_absolute_and_misses_are_listed(tree: Path) -> None:
    write(tree / "playbooks/inject.yml", """
        - hosts: all
          vars_files: ["{{ env }}/vars.yml"]
          tasks:
            - ansible.builtin.include_tasks: tasks/gone.yml
            - ansible.builtin.import_role: {name: "{{ which }}"}
    """)
    drill = load_drill(tree / "drill.yaml")
    prov = run_provenance(drill, "a", OperatorSource.ENV, project_dir=tree / "playbooks")
    assert str(tree / "drill.yaml") in prov.files  # outside the project: absolute
    assert "main.yml" in prov.files and "tasks/a.yml" in prov.files
    assert "inject.yml: include_tasks tasks/gone.yml: not found" in prov.unresolved
    assert "inject.yml: role {{ which }}: templated, not hashed" in prov.unresolved
    assert any(u.startswith("inject.yml: {{ env }}/vars.yml: templated")
               for u in prov.unresolved)


def test_a_shared_role_beside_the_topology_directories_is_hashed_whole(
        tree: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A phase playbook in its topology directory applying a role from the playbook tree's
    shared roles (``playbooks/roles``, where the runner points ansible-playbook): every file
    of the role (tasks, defaults, argument specs) is in the file set. A role elsewhere is
    found only on ANSIBLE_ROLES_PATH, as Ansible finds it; without it the record says so."""
    shared = tree / "playbooks/roles"
    write(shared / "pg_state/tasks/main.yml", "- ansible.builtin.include_tasks: query.yml\n")
    write(shared / "pg_state/tasks/query.yml", "- ansible.builtin.debug: {}\n")
    write(shared / "pg_state/defaults/main.yml", "dalp_pg_wait: 10\n")
    write(shared / "pg_state/meta/argument_specs.yml",
          "argument_specs:\n  main:\n    options: {dalp_pg_wait: {type: int}}\n")
    write(tree / "elsewhere/site_roles/audit/tasks/main.yml", "- ansible.builtin.debug: {}\n")
    write(tree / "playbooks/topo/inject.yml", """
        - hosts: all
          tasks:
            - ansible.builtin.import_role: {name: pg_state}
            - ansible.builtin.include_role: {name: audit}
    """)
    text = (tree / "drill.yaml").read_text()
    (tree / "drill.yaml").write_text(text.replace("playbooks/inject.yml",
                                                  "playbooks/topo/inject.yml"))
    monkeypatch.delenv("ANSIBLE_ROLES_PATH", raising=False)
    role, other = "playbooks/roles/pg_state", "elsewhere/site_roles/audit"
    prov = run_provenance(load_drill(tree / "drill.yaml"), "a", OperatorSource.ENV,
                          project_dir=tree)
    assert {f"{role}/tasks/main.yml", f"{role}/tasks/query.yml", f"{role}/defaults/main.yml",
            f"{role}/meta/argument_specs.yml"} <= set(prov.files)
    assert not any(k.startswith(other) for k in prov.files)
    assert any("role audit: not found" in u for u in prov.unresolved), prov.unresolved
    monkeypatch.setenv("ANSIBLE_ROLES_PATH", str(tree / "elsewhere/site_roles"))
    prov = run_provenance(load_drill(tree / "drill.yaml"), "a", OperatorSource.ENV,
                          project_dir=tree)
    assert f"{other}/tasks/main.yml" in prov.files and f"{role}/tasks/main.yml" in prov.files
    assert not any("role audit" in u for u in prov.unresolved), prov.unresolved


def test_include_loops_and_ansible_tags_do_not_stop_the_walk(tree: Path) -> None:
    write(tree / "playbooks/inject.yml", """
        - hosts: all
          vars: {secret: !vault "$ANSIBLE_VAULT;1.1;AES256 0000", raw: !unsafe "{{x}}"}
          tasks:
            - ansible.builtin.include_tasks: tasks/loop.yml
    """)
    write(tree / "playbooks/tasks/loop.yml", "- ansible.builtin.include_tasks: loop.yml\n")
    prov = run_provenance(load_drill(tree / "drill.yaml"), "a", OperatorSource.ENV,
                          project_dir=tree)
    assert "playbooks/tasks/loop.yml" in prov.files
    assert not any("cannot be parsed" in u for u in prov.unresolved)


def test_operator_resolution_order(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DALP_DR_OPERATOR", "envuser")
    monkeypatch.setenv("SUDO_USER", "sudoer")
    monkeypatch.setenv("LOGNAME", "osuser")
    assert operator_and_source("flaguser") == ("flaguser", OperatorSource.FLAG)
    assert operator_and_source(None) == ("envuser", OperatorSource.ENV)
    monkeypatch.setenv("DALP_DR_OPERATOR", "  ")  # blank: not a name
    assert operator_and_source("") == ("sudoer", OperatorSource.SUDO)
    monkeypatch.delenv("SUDO_USER")
    assert operator_and_source(None) == ("osuser", OperatorSource.OS_USER)
    assert resolve_operator(" flaguser ") == "flaguser"
    assert resolve_operator() == "osuser"


def _refusing_drill(tmp_path: Path, production: bool) -> Path:
    inventory = "all:\n  vars:\n"
    inventory += "    dalp_production: true\n" if production else (
        "    dalp_change_freezes:\n"
        "      - {from: '2000-01-01T00:00:00Z', to: '2999-01-01T00:00:00Z'}\n")
    write(tmp_path / "inv.yml", inventory + "  hosts:\n    db1: {}\n")
    write(tmp_path / "pb.yml", "- hosts: all\n  tasks:\n    - import_tasks: t.yml\n")
    write(tmp_path / "t.yml", "- ansible.builtin.debug: {}\n")
    text = DRILL.replace("inventory/hosts.yml", "inv.yml")
    for name in ("main", "inject"):
        text = text.replace(f"playbooks/{name}.yml", "pb.yml")
    return write(tmp_path / "drill.yaml", text)


@pytest.mark.parametrize("trigger", [Trigger.CLI, Trigger.SCHEDULE])
def test_engine_seals_provenance_and_the_resolved_operator(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, trigger: Trigger) -> None:
    """A run refused by a guardrail is recorded before anything runs: the record carries
    the operator (SUDO_USER under sudo, 'scheduler' for a scheduled run) and the files."""
    from dalp_dr.drill.context import PreparedDrill
    from dalp_dr.drill.engine import DrillEngine
    from dalp_dr.errors import GuardrailRefused
    from dalp_dr.history import open_store
    from dalp_dr.inventory import Inventory
    from dalp_dr.redact import Redactor

    monkeypatch.delenv("DALP_DR_OPERATOR", raising=False)
    monkeypatch.setenv("SUDO_USER", "carol")
    monkeypatch.setenv("DALP_DR_PROJECT", str(tmp_path))
    drill = load_drill(_refusing_drill(tmp_path, production=trigger is Trigger.CLI))
    store = open_store(f"sqlite:///{tmp_path / 'h.sqlite'}")
    try:
        engine = DrillEngine(runner=None, results_dir=tmp_path / "results")  # type: ignore[arg-type]
        prepared = PreparedDrill(drill=drill, endpoints={}, redactor=Redactor(),
                                 inventory=Inventory(drill.inventory))
        with pytest.raises(GuardrailRefused):
            engine.run(prepared, store=store, trigger=trigger,
                       operator="scheduler" if trigger is Trigger.SCHEDULE else None)
        (row,) = store.list_runs()
        result = store.get(row.run_id)
    finally:
        store.close()
    assert result.outcome is Outcome.REFUSED and result.provenance is not None
    prov = result.provenance
    if trigger is Trigger.CLI:
        assert (result.operator, prov.operator_source) == ("carol", OperatorSource.SUDO)
    else:
        assert (result.operator, prov.operator_source) == ("scheduler",
                                                            OperatorSource.SCHEDULER)
    assert prov.operator == result.operator and prov.controller
    assert prov.files == {name: sha(tmp_path / name)
                          for name in ("drill.yaml", "inv.yml", "pb.yml", "t.yml")}


def test_real_drill_hashes_its_playbooks_and_their_roles() -> None:
    drill = load_drill(ROOT / "drills" / "hot-warm-failover.yaml")
    prov = run_provenance(drill, "a", OperatorSource.OS_USER, project_dir=ROOT)
    pb, roles = "playbooks/hot-warm", "playbooks/roles"
    expected = {
        "drills/hot-warm-failover.yaml", "inventories/lab/hot-warm.yml",
        *(f"{pb}/{p.name}" for p in drill.playbooks.values()),
        # every role a phase applies, whole: tasks, defaults, argument specs
        *(str(p.relative_to(ROOT)) for name in ("dalp_pg", "dalp_route")
          for p in (ROOT / roles / name).rglob("*") if p.is_file()),
    }
    assert f"{roles}/dalp_pg/tasks/standby.yml" in expected  # from steady-state.yml
    assert f"{roles}/dalp_route/tasks/switch_pgbouncer.yml" in expected  # tasks_from templated
    assert f"{roles}/dalp_pg/meta/argument_specs.yml" in expected
    assert expected <= set(prov.files)
    assert not any(k.startswith(f"{roles}/dalp_hh/") for k in prov.files)  # not applied
    assert len(drill.playbooks) == 6 and all(".." not in k for k in prov.files)
    for key, digest in prov.files.items():
        assert digest == sha(ROOT / key), key
    assert any("tasks_from switch_{{ dalp_route_kind }}" in u for u in prov.unresolved)
    assert prov.ansible_core_version and prov.dalp_dr_version


def test_real_hot_hot_drill_hashes_its_roles_without_unresolved_paths() -> None:
    prov = run_provenance(load_drill(ROOT / "drills" / "hot-hot-site-loss.yaml"), "a",
                          OperatorSource.OS_USER, project_dir=ROOT)
    assert "playbooks/roles/dalp_hh/tasks/psql.yml" in prov.files
    assert not any("tasks/tasks" in k for k in prov.files)
    assert prov.unresolved == []


def _record(provenance: Provenance | None, run_id: str) -> RunResult:
    at = datetime(2026, 1, 1, 3, 0, tzinfo=UTC)
    return RunResult(
        run_id=run_id, drill="hot-warm-failover", topology=Topology.HOT_WARM,
        scenario=Scenario.FAILOVER, environment="lab", owner="sre", trigger=Trigger.CLI,
        operator=provenance.operator if provenance else "bob", spec_hash="ab" * 32,
        started_at=at, ended_at=at, outcome=Outcome.REFUSED, objectives={"rto": 1, "rpo": 1},
        measurements=None, verdicts=[], phases=[], steady_state_restored=None,
        evidence_dir="", message="refused: test", provenance=provenance)


def test_history_show_prints_the_provenance(tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    from dalp_dr.history import open_store
    from dalp_dr.history.base import record_final

    files = {"playbooks/hot-warm/verify.yml": "0123456789abcdef" + "f" * 48,
             "[bold red]odd[/bold red].yml": "fedcba9876543210" + "0" * 48}
    prov = Provenance(dalp_dr_version="9.8.7", ansible_core_version="2.19.1",
                      controller="ctl.example.net", operator="alice",
                      operator_source=OperatorSource.SUDO, files=files,
                      unresolved=["x.yml: [i]{{ y }}[/i].yml: templated"])
    results = tmp_path / "results"
    results.mkdir()
    store = open_store(f"sqlite:///{results / 'history.sqlite'}")
    try:
        record_final(store, _record(prov, "20260101T030000Z-aaaaaa"))
        record_final(store, _record(None, "20260101T030000Z-bbbbbb"))
    finally:
        store.close()

    args = ["--results-dir", str(results), "history", "show"]
    assert main([*args, "20260101T030000Z-aaaaaa"]) == 0
    out = capsys.readouterr().out
    assert "dalp-dr 9.8.7, ansible-core 2.19.1, controller ctl.example.net" in out
    assert "operator alice (from SUDO_USER)" in out
    assert "playbooks/hot-warm/verify.yml" in out and "0123456789abcdef" in out
    assert "0123456789abcdef" + "f" * 48 not in out  # shortened in the table
    assert "[bold red]odd[/bold red].yml" in out  # data, not markup
    assert "[i]{{ y }}[/i].yml" in out

    assert main([*args, "--json", "20260101T030000Z-aaaaaa"]) == 0
    shown: dict[str, Any] = json.loads(capsys.readouterr().out)
    assert shown["provenance"]["files"] == files
    assert shown["provenance"]["operator_source"] == "SUDO_USER"

    assert main([*args, "20260101T030000Z-bbbbbb"]) == 0
    assert "provenance: not recorded" in capsys.readouterr().out


def test_records_without_provenance_still_load() -> None:
    old = _record(None, "r").model_dump(mode="json")
    del old["provenance"]
    assert RunResult.model_validate(old).provenance is None
