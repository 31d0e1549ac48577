"""``dalp-dr schedule export --awx``: the drills as a playbook of awx.awx job templates and
schedules. Its tasks are checked against the argument specs of the real awx.awx modules
(the collection the ``ansible`` package bundles, a test dependency), its RRULEs against
the rules AWX's API applies, and bad input is one message and exit 2."""

from __future__ import annotations

import importlib
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator

from dalp_dr.commands import main
from dalp_dr.schedule import awx

ROOT = Path(__file__).resolve().parents[2]
ORIGINAL = ROOT / "drills" / "hot-warm-failover.yaml"
BASE = ("schedule", "export", "--awx", "--organization", "Default", "--project", "dalp-dr",
        "--inventory", "production", "--start", "2026-01-01")


def drill(directory: Path, name: str, schedule: str) -> Path:
    """A copy of the shipped hot-warm drill with its own name and schedule."""
    directory.mkdir(parents=True, exist_ok=True)
    text = ORIGINAL.read_text().replace("../", f"{ROOT}/")
    text = text.replace("name: hot-warm-failover", f"name: {name}", 1)
    text = text.replace("schedule: quarterly", f"schedule: {schedule}", 1)
    path = directory / f"{name}.yaml"
    path.write_text(text)
    return path


@pytest.fixture
def checkout(configured: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An AWX project's checkout: two drills under drills/ and the job playbook."""
    monkeypatch.setenv("DALP_DR_PROJECT", str(ROOT))
    project = configured / "project"
    drill(project / "drills", "quarterly-drill", "quarterly")
    drill(project / "drills", "weekday-drill",
          "{cron: '30 9 * * 1-5', timezone: America/New_York}")
    (project / "playbooks").mkdir()
    (project / "playbooks" / "dalp-dr-run.yml").write_text("---\n- import_playbook: x\n")
    return project


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main([*BASE, *args])
    out, err = capsys.readouterr()
    return code, out, err


def exported(checkout: Path, capsys: pytest.CaptureFixture[str], *extra: str
             ) -> list[dict[str, Any]]:
    code, out, err = run(capsys, "--project-dir", str(checkout), *extra,
                         str(checkout / "drills"))
    assert code == 0, err
    play = yaml.safe_load(out)
    assert isinstance(play, list) and len(play) == 1
    tasks: list[dict[str, Any]] = play[0]["tasks"]
    return tasks


def test_one_job_template_and_one_schedule_per_drill(
        checkout: Path, capsys: pytest.CaptureFixture[str]) -> None:
    tasks = exported(checkout, capsys, "--execution-environment", "dalp-dr ee",
                     "--credential", "ssh: dalp", "--credential", "vault: dalp")
    assert [t["name"] for t in tasks] == [
        "Job template: dalp-dr drill quarterly-drill", "Schedule: dalp-dr drill quarterly-drill",
        "Job template: dalp-dr drill weekday-drill", "Schedule: dalp-dr drill weekday-drill"]
    template = tasks[2]["awx.awx.job_template"]
    assert template["name"] == "dalp-dr drill weekday-drill"
    assert template["playbook"] == "playbooks/dalp-dr-run.yml"
    assert template["extra_vars"] == {"dalp_dr_drill": "drills/weekday-drill.yaml"}
    assert (template["organization"], template["project"], template["inventory"]) == (
        "Default", "dalp-dr", "production")
    assert template["execution_environment"] == "dalp-dr ee"
    assert template["credentials"] == ["ssh: dalp", "vault: dalp"]
    assert template["allow_simultaneous"] is False
    asks = {k: v for k, v in template.items() if k.startswith("ask_")}
    assert set(asks) == set(awx.ASK_ON_LAUNCH) and not any(asks.values())
    schedules = [t["awx.awx.schedule"] for t in tasks[1::2]]
    assert [s["unified_job_template"] for s in schedules] == [
        "dalp-dr drill quarterly-drill", "dalp-dr drill weekday-drill"]
    assert [s["rrule"] for s in schedules] == [
        "DTSTART;TZID=UTC:20260101T030000 RRULE:FREQ=DAILY;INTERVAL=1;BYMONTH=1,4,7,10;"
        "BYMONTHDAY=1;BYHOUR=3;BYMINUTE=0;BYSECOND=0",
        "DTSTART;TZID=America/New_York:20260101T093000 RRULE:FREQ=DAILY;INTERVAL=1;"
        "BYDAY=MO,TU,WE,TH,FR;BYHOUR=9;BYMINUTE=30;BYSECOND=0"]


def test_optional_options_left_out_are_not_sent(checkout: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    template = exported(checkout, capsys)[0]["awx.awx.job_template"]
    assert "execution_environment" not in template
    assert "credentials" not in template


def _argument_spec(module_name: str) -> dict[str, Any]:
    """The argument spec a real awx.awx module builds, caught as it hands it over."""
    module = importlib.import_module(f"ansible_collections.awx.awx.plugins.modules."
                                     f"{module_name}")
    caught: dict[str, Any] = {}

    class Caught(Exception):
        pass

    def catch(argument_spec: dict[str, Any], **_: Any) -> None:
        caught.update(argument_spec)
        raise Caught

    with pytest.MonkeyPatch.context() as patch, pytest.raises(Caught):
        patch.setattr(module, "ControllerAPIModule", catch)
        module.main()
    return caught


def test_the_tasks_are_valid_for_the_real_awx_awx_modules(
        checkout: Path, capsys: pytest.CaptureFixture[str]) -> None:
    tasks = exported(checkout, capsys, "--execution-environment", "ee",
                     "--credential", "c")
    specs = {name: _argument_spec(name) for name in ("job_template", "schedule")}
    assert "allow_simultaneous" in specs["job_template"]
    for task in tasks:
        (module,) = (k for k in task if k.startswith("awx.awx."))
        spec = specs[module.removeprefix("awx.awx.")]
        result = ArgumentSpecValidator(spec).validate(task[module])
        assert not result.error_messages, (module, result.error_messages)
    # the check can fail: a parameter the module does not have is an error
    wrong = dict(tasks[0]["awx.awx.job_template"], concurrent_jobs=False)
    assert ArgumentSpecValidator(specs["job_template"]).validate(wrong).error_messages


def test_the_playbook_passes_ansible_playbook_syntax_check(
        checkout: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """ansible-playbook resolves awx.awx.job_template and awx.awx.schedule (the collection
    of the ansible package) and reads the file as Ansible will."""
    out = tmp_path / "awx.yml"
    code, _, err = run(capsys, "--project-dir", str(checkout), "--out", str(out),
                       str(checkout / "drills"))
    assert code == 0, err
    env = {**os.environ, "ANSIBLE_LOCAL_TEMP": str(tmp_path / "ansible-tmp"),
           "ANSIBLE_HOME": str(tmp_path / "ansible-home")}
    proc = subprocess.run([str(Path(sys.executable).parent / "ansible-playbook"),
                           "--syntax-check", "-i", "localhost,", str(out)],
                          capture_output=True, text=True, env=env, timeout=120, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def awx_refuses(rrule: str) -> list[str]:
    """What AWX's API says of an rrule (awx/api/serializers: SchedulePreviewSerializer.
    validate_rrule, its regular-expression checks, as of AWX 24)."""
    found = []
    dtstarts = re.findall(r".*?(DTSTART(;[^:]+)?\:[0-9]+T[0-9]+Z?)", rrule)
    rules = re.findall(r".*?(RULE\:[^\s]*)", rrule)
    if len(dtstarts) != 1:
        found.append("one valid DTSTART")
    if re.findall(r".*?(DTSTART:[0-9]+T[0-9]+) ", rrule):
        found.append("naive DTSTART")
    if "rrule:" not in rrule.lower() or "exdate:" in rrule.lower() or \
            "rdate:" in rrule.lower():
        found.append("rules")
    for rule in rules:
        if "interval" not in rule.lower() or "secondly" in rule.lower():
            found.append("INTERVAL, not SECONDLY")
        if re.match(r".*?BYDAY[\:\=][0-9]+[a-zA-Z]{2}", rule):
            found.append("BYDAY with a numeric prefix")
        if "COUNT" in rule and "UNTIL" in rule:
            found.append("COUNT and UNTIL")
    return found


def test_the_rrules_pass_awxs_own_checks(checkout: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    tasks = exported(checkout, capsys)
    rrules = [t["awx.awx.schedule"]["rrule"] for t in tasks if "awx.awx.schedule" in t]
    assert rrules and all(awx_refuses(r) == [] for r in rrules)
    assert awx_refuses("DTSTART:20260101T030000 RRULE:FREQ=DAILY")  # the check can fail


def test_out_replaces_the_file_whole(checkout: Path, capsys: pytest.CaptureFixture[str],
                                     tmp_path: Path) -> None:
    out = tmp_path / "exports" / "awx.yml"
    out.parent.mkdir()
    out.write_text("old\n")
    code, stdout, err = run(capsys, "--project-dir", str(checkout), "--out", str(out),
                            "-o", "json", str(checkout / "drills"))
    assert code == 0, err
    assert yaml.safe_load(out.read_text())[0]["tasks"]
    assert sorted(p.name for p in out.parent.iterdir()) == ["awx.yml"]  # no temporary left
    document = yaml.safe_load(stdout)  # JSON: the summary, the playbook is in the file
    assert document["out"] == str(out) and "playbook" not in document
    assert [d["drill"] for d in document["drills"]] == ["quarterly-drill", "weekday-drill"]
    code, stdout, _ = run(capsys, "--project-dir", str(checkout), str(checkout / "drills"))
    assert stdout == out.read_text()


def test_json_without_out_carries_the_playbook(checkout: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "--project-dir", str(checkout), "--json",
                         str(checkout / "drills"))
    assert code == 0, err
    document = yaml.safe_load(out)
    assert yaml.safe_load(document["playbook"])[0]["tasks"]


def test_a_job_playbook_missing_from_the_checkout_is_warned_of(
        checkout: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "--project-dir", str(checkout), "--playbook", "site/run.yml",
                       str(checkout / "drills"))
    assert code == 0
    assert "site/run.yml is not in" in err
    code, _, err = run(capsys, "--project-dir", str(checkout), str(checkout / "drills"))
    assert "is not in" not in err


@pytest.mark.parametrize(("schedule", "says"), [
    ("{cron: '30 2 * * *', timezone: Europe/Berlin}", "skip or repeat"),
    ("'0 3 1 * 1'", "both day of month and day of week"),
    ("'0 3 * * */2'", "counts from Sunday"),
])
def test_a_drill_without_an_exact_awx_schedule_is_refused(
        checkout: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path, schedule: str,
        says: str) -> None:
    bad = drill(checkout / "drills", "bad-drill", schedule)
    out = tmp_path / "awx.yml"
    code, stdout, err = run(capsys, "--project-dir", str(checkout), "--out", str(out),
                            str(checkout / "drills"))
    assert code == 2
    assert f"error: {bad}: schedule: " in err and says in err
    assert len(err.strip().splitlines()) == 1
    assert not out.exists() and stdout == ""


@pytest.mark.parametrize(("args", "says"), [
    (("--inventory", "{{ lookup('env', 'HOME') }}"), '--inventory: "{{ lookup'),
    (("--credential", "{% if x %}"), "--credential: '{% if x %}' holds a Jinja delimiter"),
    (("--playbook", "{# x #}.yml"), "--playbook:"),
    (("--organization", " "), "--organization: is empty"),
    (("--start", "1 Jan"), "--start: not a date"),
])
def test_bad_options_are_refused(checkout: Path, capsys: pytest.CaptureFixture[str],
                                 args: tuple[str, ...], says: str) -> None:
    code, out, err = run(capsys, "--project-dir", str(checkout), *args,
                         str(checkout / "drills"))
    assert (code, out) == (2, "")
    assert says in err, err


def test_without_awx_there_is_no_format(checkout: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["schedule", "export", "--organization", "o", "--project", "p",
                 "--inventory", "i", str(checkout / "drills")])
    assert code == 2
    assert "--awx: say which format" in capsys.readouterr().err


def test_a_drill_outside_the_checkout_or_with_jinja_in_its_path_is_refused(
        checkout: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    outside = drill(tmp_path / "elsewhere", "outside-drill", "quarterly")
    code, _, err = run(capsys, "--project-dir", str(checkout), str(outside))
    assert code == 2 and f"{outside}: --project-dir: the drill file is outside" in err
    jinja = drill(checkout / "{{ evil }}", "jinja-drill", "quarterly")
    code, _, err = run(capsys, "--project-dir", str(checkout), str(jinja))
    assert code == 2 and "holds a Jinja delimiter" in err and str(jinja) in err


def test_an_invalid_drill_file_is_refused(checkout: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    (checkout / "drills" / "broken.yaml").write_text("name: broken\n")
    code, _, err = run(capsys, "--project-dir", str(checkout), str(checkout / "drills"))
    assert code == 2 and "broken.yaml" in err
