"""The dalp.dr collection and its execution environment, built with the real tools
(ansible-galaxy, pip, ansible-builder), and the drill module refusing bad input through a
real ansible-playbook (a drill that runs is the lab's: tests/lab/test_28_awx_runner.py)."""

from __future__ import annotations

import json
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
import yaml

from dalp_dr.collection import build
from dalp_dr.commands import main

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build(ROOT, tmp_path_factory.mktemp("collection"))


def _members(artifact: Path) -> dict[str, tarfile.TarInfo]:
    with tarfile.open(artifact) as tar:
        return {m.name: m for m in tar.getmembers()}


def test_the_collection_holds_the_module_the_job_playbook_and_the_roles(built: Path) -> None:
    members = _members(built)
    with tarfile.open(built) as tar:
        manifest = json.load(tar.extractfile("MANIFEST.json"))  # type: ignore[arg-type]
    info = manifest["collection_info"]
    assert (info["namespace"], info["name"]) == ("dalp", "dr")
    assert built.name == f"dalp-dr-{info['version']}.tar.gz"
    assert {"plugins/modules/drill.py", "playbooks/run.yml", "meta/runtime.yml"} <= set(members)
    roles = {name.split("/")[1] for name in members if name.startswith("roles/")
             and name.count("/") >= 2}
    shipped = {p.name for p in (ROOT / "playbooks" / "roles").iterdir()
               if not p.name.startswith("dalp_lab")}
    assert roles == shipped  # every role of the playbooks, no lab scaffolding
    for role in roles:  # roles with argument specs, as the playbooks have them
        assert f"roles/{role}/meta/argument_specs.yml" in members, role
    # links resolved (ansible-galaxy drops links that leave the collection): the WAL walk
    # module the dalp_pg role runs is a file in the artifact
    walk = members["roles/dalp_pg/library/dalp_wal_divergence.py"]
    assert walk.isfile() and walk.size > 1000
    assert not [m.name for m in members.values() if m.issym() or m.islnk()]


def test_the_module_documents_every_option_it_takes(built: Path, tmp_path: Path) -> None:
    collections = _installed(built, tmp_path)
    done = subprocess.run([str(VENV_BIN / "ansible-doc"), "--json", "dalp.dr.drill"],
                          env=_env(collections), capture_output=True, text=True, check=True)
    doc = json.loads(done.stdout)["dalp.dr.drill"]["doc"]
    assert set(doc["options"]) == {"drill", "project_dir", "results_dir", "store", "operator",
                                   "confirm", "wait_for_lock", "vault_password_file",
                                   "vault_id", "fail_on_miss"}
    assert doc["options"]["drill"]["required"] is True


def test_a_drill_file_that_is_not_there_fails_the_task_naming_it(built: Path,
                                                                  tmp_path: Path) -> None:
    collections = _installed(built, tmp_path)
    missing = tmp_path / "drills" / "nowhere.yaml"
    done = subprocess.run(
        [str(VENV_BIN / "ansible-playbook"), "-i", "localhost,", "-c", "local",
         "-e", f"ansible_python_interpreter={sys.executable}",
         "-e", f"dalp_dr_drill={missing}", "-e", f"dalp_dr_results_dir={tmp_path / 'results'}",
         "dalp.dr.run"], env=_env(collections), capture_output=True, text=True, check=False)
    assert done.returncode == 2, done.stdout  # a failed task: the job fails
    assert "dalp-dr drill run" in done.stdout and str(missing) in done.stdout
    assert "drill file not found" in done.stdout
    assert not (tmp_path / "results").exists()  # nothing started, nothing written


def test_the_execution_environment_context_installs_dalp_dr_and_the_collection(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "ee"
    out.mkdir()
    # an earlier version's artifacts in the same directory: the image must get one of each
    (out / "dalp_dr-0.0.9-py3-none-any.whl").write_text("stale")
    (out / "dalp-dr-0.0.9.tar.gz").write_text("stale")
    code = main(["collection", "build", "--ee", "--out", str(out), "--json"])
    printed = capsys.readouterr()
    assert code == 0, printed.err
    context = Path(json.loads(printed.out)["context"])
    build_files = {p.name for p in (context / "_build" / "dalp").iterdir()}
    (wheel,) = [n for n in build_files if n.endswith(".whl")]
    assert wheel.startswith("dalp_dr-0.1.0")
    assert [n for n in build_files if n.endswith(".tar.gz")] == ["dalp-dr-0.1.0.tar.gz"]
    steps = (context / "Dockerfile").read_text()
    assert "pip install --no-cache-dir /tmp/dalp/dalp_dr-*.whl" in steps
    assert "ansible-galaxy collection install /tmp/dalp/dalp-dr-*.tar.gz" in steps
    assert 'PYCMD="/usr/bin/python3.11"' in steps
    definition = yaml.safe_load((out / "execution-environment.yml").read_text())
    assert definition["version"] == 3
    bindep = (context / "_build" / "bindep.txt").read_text()
    assert "openssh-clients" in bindep and "pgbackrest" in bindep
    # the wheel is built from a copy of the sources: nothing written into the checkout
    assert not (ROOT / "build").exists()


def _installed(artifact: Path, tmp_path: Path) -> Path:
    collections = tmp_path / "collections"
    subprocess.run([str(VENV_BIN / "ansible-galaxy"), "collection", "install", str(artifact),
                    "-p", str(collections)], capture_output=True, text=True, check=True)
    return collections


def _env(collections: Path) -> dict[str, str]:
    import os

    env = dict(os.environ)
    env.update(ANSIBLE_COLLECTIONS_PATH=str(collections), ANSIBLE_NOCOLOR="1",
               PATH=f"{VENV_BIN}:{env.get('PATH', '')}")
    return env


def _printed(outcome: str, *, recorded: bool = True) -> dict[str, object]:
    """What ``dalp-dr drill run --json`` prints for a run, trimmed to what the module reads,
    with a target's text where no artifact may carry it."""
    return {"run_id": "20261205T000000Z-abcdef", "drill": "hot-warm-failover",
            "environment": "lab-hot-warm", "outcome": outcome, "recorded": recorded,
            "started_at": "2026-12-05T00:00:00Z", "ended_at": "2026-12-05T00:00:30Z",
            "objectives": {"rto": 120.0, "rpo": 0.5},
            "measurements": {"recovery_time": 0.4, "data_loss_window": 0.8,
                             "data_loss_basis": "exact", "lost_writes": 7,
                             "divergence": {"reason": "{{ lookup('pipe', 'id') }}"}},
            "verdicts": [{"objective": "rpo", "status": "missed", "target": 0.5,
                          "measured": 0.8, "margin": -0.3, "reason": "a target said"}],
            "steady_state_restored": True, "evidence_dir": "/srv/results/x"}


@pytest.mark.parametrize(("outcome", "recorded", "module_args", "job_ok", "stats"), [
    # the job playbook: stats published whatever the outcome, the job fails unless passed
    ("passed", True, None, True, True),
    ("missed", True, None, False, True),
    ("inconclusive", True, None, False, True),
    # a run the history did not take fails the task itself: no stats, nothing "done"
    ("passed", False, None, False, False),
    # the module alone (fail_on_miss default true): a missed drill fails the task
    ("missed", True, {}, False, False),
])
def test_the_job_s_outcome_and_artifacts_follow_the_drill_s(
        built: Path, tmp_path: Path, outcome: str, recorded: bool,
        module_args: dict[str, object] | None, job_ok: bool, stats: bool) -> None:
    """The module and the job playbook against every outcome a drill can end with. A fake of
    dalp-dr's own CLI stands in for the drill (``FakeDalpDr``: a ``dalp_dr`` package first on
    PYTHONPATH printing a run's JSON; a real drill is tests/lab/test_28_awx_runner.py); the
    job runs through ansible-runner and its artifacts are read as AWX reads them."""
    import ansible_runner

    fake = tmp_path / "fake" / "dalp_dr"  # FakeDalpDr
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("")
    (tmp_path / "printed.json").write_text(json.dumps(_printed(outcome, recorded=recorded)))
    (fake / "__main__.py").write_text(
        "import sys\n"
        f"sys.stdout.write(open({str(tmp_path / 'printed.json')!r}).read())\n"
        f"sys.exit({0 if outcome == 'passed' else 1})\n")
    project = tmp_path / "job" / "project"
    project.mkdir(parents=True)
    if module_args is None:
        play: list[dict[str, object]] = [{"ansible.builtin.import_playbook": "dalp.dr.run"}]
    else:
        play = [{"name": "Module alone", "hosts": "localhost", "gather_facts": False,
                 "tasks": [{"name": "Drill", "dalp.dr.drill": {"drill": "x.yaml",
                                                               **module_args}}]}]
    (project / "job.yml").write_text(yaml.safe_dump(play))
    env = _env(_installed(built, tmp_path))
    env.update(PYTHONPATH=str(tmp_path / "fake"))
    runner = ansible_runner.run(
        private_data_dir=str(tmp_path / "job"), playbook="job.yml", quiet=True,
        inventory="localhost ansible_connection=local", envvars=env,
        extravars={"ansible_python_interpreter": sys.executable, "dalp_dr_drill": "x.yaml"})
    assert (runner.rc == 0) is job_ok, runner.stdout.read()
    (ended,) = [e for e in runner.events if e.get("event") == "playbook_on_stats"]
    artifacts = ended["event_data"].get("artifact_data") or {}
    if stats:
        assert "dalp_dr" in artifacts, (ended["event_data"], runner.stdout.read())
        published = artifacts["dalp_dr"]
        assert published["outcome"] == outcome and published["passed"] is (outcome == "passed")
        assert published["figures"]["data_loss_window"] == 0.8
        assert published["verdicts"] == [{"objective": "rpo", "population": None,
                                          "status": "missed", "target": 0.5,
                                          "measured": 0.8, "margin": -0.3}]
        assert published["evidence"] == "/srv/results/x"
    else:
        assert "dalp_dr" not in artifacts
    # no text a target printed reaches the artifacts AWX hands to the next node
    assert "lookup" not in json.dumps(artifacts) and "a target said" not in json.dumps(
        artifacts)
    if not recorded:
        assert "NOT RECORDED" in runner.stdout.read()
