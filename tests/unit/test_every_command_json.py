"""Every command speaks the output contract: walked over the whole click tree, each leaf
command given ``-o json`` prints exactly one JSON document on stdout, when it succeeds (or
gives its verdict, exit 1) and when its input is bad (the error object, exit code 2).

A command missing from CASES fails the test: a command added later gets its row here. A
command that would really run something (a drill, the scheduler, a lab, S3) has only the
bad-input case, and its row says why."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import click
import pytest

from dalp_dr.commands import cli, main
from tests.factories import fill_history, signed_bundle

ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Case:
    """``ok``: arguments that succeed or give the command's verdict without a lab (None:
    ``why`` says why not); ``bad``: arguments that are invalid input; ``pending``: the
    command is not on the contract yet (an expected failure, strict: it fails once the
    command is converted, so the marker is removed then)."""

    ok: tuple[str, ...] | None
    bad: tuple[str, ...]
    why: str = ""
    pending: frozenset[str] = frozenset()
    """which cases ("ok", "bad") do not hold yet"""
    says: str = ""
    """what the bad case's error message says (it failed for the reason meant)"""


def _c(ok: str | None, bad: str, why: str = "", pending: str = "", says: str = "") -> Case:
    return Case(tuple(ok.split()) if ok is not None else None, tuple(bad.split()), why,
                frozenset(pending.split()), says)


CASES: dict[str, Case] = {
    "backup status": _c(None, "backup status {inventory} --rpo 5M",
                        "reads the archive in S3 (needs the hot-cold lab)",
                        says="did you mean 5m?"),
    "collection build": _c("collection build --out {tmp}/dist",
                           "collection build --out {inventory}", says="not a directory"),
    "doctor": _c("doctor --drills {drills}", "doctor --drills {tmp}/nonexistent",
                 says="directory not found"),
    "drill list": _c("drill list --dir {drills}", "drill list --dir {tmp}/nonexistent",
                     says="directory not found"),
    "drill plan": _c("drill plan {drill} --no-preflight", "drill plan {tmp}/nonexistent.yaml"),
    "drill recover": _c(None, "drill recover no-such-run",
                        "puts an environment back (needs a run that died and its lab)"),
    "drill run": _c(None, "drill run {tmp}/nonexistent.yaml", "runs a drill against a lab"),
    "drill validate": _c("drill validate {drill}", "drill validate {twins}",
                         says="already defined by"),
    "completion": _c("completion bash", "completion tcsh"),
    "config show": _c("config show", "--store nosuch://x config show"),
    "export": _c("export", "export --from 2026Q5"),
    "export verify": _c("export verify {bundle} --public-key {public}",
                        "export verify {tmp}/nonexistent.tar.gz"),
    "history checkpoint": _c("history checkpoint", "history checkpoint --sign"),
    "history approve": _c("history approve 20260115T030000Z-aaaaaa --reviewer auditor --note ok",
                          "history approve no-such-run --reviewer auditor --note ok"),
    "history list": _c("history list", "history list --limit 0"),
    "history show": _c("history show 20260115T030000Z-aaaaaa", "history show no-such-run"),
    "history verify": _c("history verify", "history verify --expect-head not-a-head"),
    "keys init": _c("keys init --keys {tmp}/newkeys", "keys init --keys {tmp}/k --revoke"),
    "lab down": _c(None, "lab down no-such-topology", "takes a lab down (runs its playbook)"),
    "lab status": _c("--project-dir {project} lab status hot-warm",
                     "--project-dir {project} lab status no-such-topology"),
    "lab up": _c(None, "lab up no-such-topology", "builds a lab (runs its playbooks)"),
    "report": _c("report --quarter 2026Q1 --drills {drills}", "report --quarter 2026Q5"),
    "schedule export": _c("schedule export --awx --organization o --project p --inventory i "
                          "{drills}",
                          "schedule export --awx --organization o --project p --inventory i "
                          "{tmp}/nonexistent.yaml"),
    "schedule list": _c("schedule list --drills {drills}",
                        "schedule list --drills {tmp}/nonexistent"),
    "schedule removals": _c("schedule removals", "--store nosuch://x schedule removals"),
    "schedule status": _c("schedule status --drills {drills}",
                          "schedule status --drills {tmp}/nonexistent"),
    "schedule sync": _c("schedule sync --drills {drills}",
                        "schedule sync --drills {tmp}/nonexistent"),
    "scheduler run": _c(None, "scheduler run --drills {drills} --grace 5M",
                        "the scheduler service runs until it is stopped",
                        says="did you mean 5m?"),
    "store migrate": _c("store migrate", "--store nosuch://x store migrate"),
}


def leaf_commands(group: click.Group, prefix: tuple[str, ...] = ()) -> Iterator[str]:
    """Every command a person can run: the leaves, and a group that runs by itself."""
    for name, command in group.commands.items():
        path = (*prefix, name)
        if isinstance(command, click.Group):
            if command.invoke_without_command:
                yield " ".join(path)
            yield from leaf_commands(command, path)
        else:
            yield " ".join(path)


def test_every_command_has_its_row() -> None:
    assert sorted(leaf_commands(cli)) == sorted(CASES)


@pytest.fixture
def world(configured: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """A history of four sealed runs (the configured one), a signed bundle of it, the
    shipped drills, two drill files with one name, and a project whose lab is down; the
    commands run in tmp_path (a command that takes -o json for a file name writes there)."""
    tmp = configured
    monkeypatch.chdir(tmp)
    monkeypatch.setenv("DALP_DR_PROJECT", str(ROOT))
    url = fill_history(tmp)
    bundle, public = signed_bundle(url, tmp / "signer")
    twins = tmp / "twins"
    twins.mkdir()
    original = ROOT / "drills" / "hot-warm-failover.yaml"
    text = original.read_text().replace("../", f"{ROOT}/")  # inside the project: allowed
    for name in ("a.yaml", "b.yaml"):
        (twins / name).write_text(text)
    project = tmp / "project"
    (project / "inventories" / "lab").mkdir(parents=True)
    (project / "playbooks" / "hot-warm").mkdir(parents=True)
    (project / "playbooks" / "hot-warm" / "lab-up.yml").write_text("[]\n")
    (project / "inventories" / "lab" / "hot-warm.yml").write_text(
        f"all:\n  hosts:\n    localhost:\n  vars:\n    dalp_lab_root: {tmp / 'no-lab'}\n")
    return {"tmp": str(tmp), "drills": str(ROOT / "drills"),
                   "drill": str(original), "twins": str(twins), "bundle": str(bundle),
                   "public": str(public), "project": str(project),
                   "inventory": str(ROOT / "inventories" / "lab" / "hot-cold.yml")}


def _run(args: tuple[str, ...], world: dict[str, str],
         capsys: pytest.CaptureFixture[str]) -> tuple[int, object]:
    argv = [a.format(**world) for a in args]
    code = main([*argv, "-o", "json"])
    out, err = capsys.readouterr()
    assert not [line for line in err.splitlines() if line.startswith("[")], err  # Ansible's own
    try:
        return code, json.loads(out)  # one document, nothing before or after it
    except json.JSONDecodeError as exc:
        raise AssertionError(f"{' '.join(argv)} -o json: stdout is not one JSON document "
                             f"({exc}):\n{out}") from None


def _as_pending(case: Case, which: str, check: Callable[[], None]) -> None:
    """Run the check; a pending case must still fail it (strict), the others pass."""
    if which not in case.pending:
        check()
        return
    try:
        check()
    except AssertionError:
        pytest.xfail("not on the output contract yet (another part of issue 21)")
    pytest.fail(f"the {which} case holds now: remove it from the row's 'pending'")


@pytest.mark.parametrize("command", sorted(c for c, case in CASES.items() if case.ok))
def test_a_command_that_succeeds_prints_one_json_document(
        command: str, world: dict[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    case = CASES[command]
    assert case.ok is not None
    ok = case.ok

    def check() -> None:
        code, document = _run(ok, world, capsys)
        assert code in (0, 1), (command, code, document)
        assert not (isinstance(document, dict) and "error" in document), document

    _as_pending(case, "ok", check)


@pytest.mark.parametrize("command", sorted(CASES))
def test_bad_input_prints_the_json_error_object(
        command: str, world: dict[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    case = CASES[command]

    def check() -> None:
        code, document = _run(case.bad, world, capsys)
        assert code == 2, (command, document)
        assert isinstance(document, dict), document
        error = document["error"]
        assert {"message", "file", "field", "hint", "exit_code"} <= set(error), error
        assert error["exit_code"] == 2 and error["message"], error
        assert case.says in error["message"], error
        # the command refused its input, not -o itself (a command without -o refuses that)
        assert error["field"] not in ("-o", "--output") \
            and "no such option" not in error["message"].lower(), error

    _as_pending(case, "bad", check)


def test_a_row_without_a_success_case_says_why() -> None:
    assert all(case.why for case in CASES.values() if case.ok is None)
