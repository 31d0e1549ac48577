"""The drills as AWX (Automation Platform) job templates and schedules: an Ansible playbook
of ``awx.awx.job_template`` and ``awx.awx.schedule`` tasks, so that an organisation that
prefers AWX keeps the drills' cadence there. Running it (with the controller's host and
token in the environment, as the collection reads them) makes one job template per drill,
``dalp-dr drill NAME``, and one schedule of the same name firing when dalp-dr's own
scheduler would (:mod:`dalp_dr.schedule.rrule`). ``schedule status`` and ``report`` still
judge the cadence from the shared history, wherever the runs were started.

A job template runs a playbook file of its project (a collection's playbook such as
``dalp.dr.run`` cannot be named there), so each one runs :attr:`AwxTarget.playbook` with the
drill file, relative to the project, in ``dalp_dr_drill``; it takes nothing at launch
(every ``ask_*_on_launch`` off) and never runs twice at once. Credentials are named, never
given: their secrets stay in AWX.

The playbook is YAML written by ``yaml.safe_dump``. Ansible would render Jinja in any
value, and AWX renders it again in a job template's extra variables when the job runs, so a
value holding a Jinja delimiter (``{{``, ``{%``, ``{#``) is refused rather than marked
``!unsafe`` (which would protect only the first of the two).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel

from dalp_dr.errors import InvalidInput, SpecError
from dalp_dr.schedule.rrule import recurrence
from dalp_dr.spec import LoadedDrill

DEFAULT_PLAYBOOK = "playbooks/dalp-dr-run.yml"
DRILL_VAR = "dalp_dr_drill"
"""the job template's extra variable naming the drill file (as ``dalp.dr.run`` reads it)"""
JINJA = ("{{", "{%", "{#")
ASK_ON_LAUNCH = ("ask_variables_on_launch", "ask_limit_on_launch", "ask_tags_on_launch",
                 "ask_skip_tags_on_launch", "ask_job_type_on_launch",
                 "ask_verbosity_on_launch", "ask_inventory_on_launch",
                 "ask_credential_on_launch", "ask_execution_environment_on_launch",
                 "ask_forks_on_launch", "ask_instance_groups_on_launch",
                 "ask_job_slice_count_on_launch", "ask_labels_on_launch",
                 "ask_timeout_on_launch", "ask_diff_mode_on_launch",
                 "ask_scm_branch_on_launch")
HEADER = ("# Written by `dalp-dr schedule export --awx`: every drill as an AWX job template\n"
          "# and its schedule. Run it with the controller in the environment\n"
          "# (CONTROLLER_HOST, CONTROLLER_OAUTH_TOKEN); the awx.awx collection is needed.\n")


class AwxTarget(BaseModel, frozen=True):
    """Where the job templates go in AWX, by name (the command line's options)."""

    organization: str
    project: str
    """the AWX project whose checkout holds the drill files and :attr:`playbook`"""
    inventory: str
    project_dir: Path
    """the local checkout of that project: drill files are given relative to it"""
    playbook: str = DEFAULT_PLAYBOOK
    execution_environment: str | None = None
    credentials: tuple[str, ...] = ()


class ExportedDrill(BaseModel, frozen=True):
    """One drill as exported."""

    drill: str
    file: str
    """the drill file relative to the project (``dalp_dr_drill``)"""
    job_template: str
    schedule: str
    """the drill's cron expression and zone"""
    rrule: str


class AwxExport(BaseModel, frozen=True):
    drills: tuple[ExportedDrill, ...]
    playbook: str
    """the playbook's YAML text"""


def template_name(drill: str) -> str:
    return f"dalp-dr drill {drill}"


def _plain(value: str, *, source: str | None, field: str | None) -> str:
    """``value``, refused when Ansible or AWX would render Jinja in it."""
    if not value.strip():
        raise InvalidInput("is empty", source=source, field=field,
                           hint="give the name as AWX knows it")
    if any(mark in value for mark in JINJA):
        raise InvalidInput(f"{value!r} holds a Jinja delimiter ({', '.join(JINJA)}): "
                           "Ansible and AWX would render it", source=source, field=field,
                           hint="use a name or path without '{{', '{%' or '{#'")
    return value


def _checked_target(target: AwxTarget) -> AwxTarget:
    for field in ("organization", "project", "inventory", "playbook",
                  "execution_environment"):
        value = getattr(target, field)
        if value is not None:
            _plain(value, source=None, field=f"--{field.replace('_', '-')}")
    for credential in target.credentials:
        _plain(credential, source=None, field="--credential")
    return target


def _relative(loaded: LoadedDrill, project_dir: Path) -> str:
    try:
        return loaded.path.resolve().relative_to(project_dir.resolve()).as_posix()
    except ValueError:
        raise InvalidInput(f"the drill file is outside the AWX project's checkout "
                           f"{project_dir}: a job template can only run files of its "
                           "project", source=str(loaded.path), field="--project-dir",
                           hint="give the checkout the drill files are in") from None


def _job_template(loaded: LoadedDrill, file: str, target: AwxTarget) -> dict[str, Any]:
    name = template_name(loaded.spec.name)
    args: dict[str, Any] = {
        "name": name,
        "description": f"dalp-dr drill {loaded.spec.name} ({file})",
        "organization": target.organization,
        "project": target.project,
        "inventory": target.inventory,
        "playbook": target.playbook,
        "job_type": "run",
        "extra_vars": {DRILL_VAR: file},
        "allow_simultaneous": False,
        "survey_enabled": False,
        **dict.fromkeys(ASK_ON_LAUNCH, False),
    }
    if target.execution_environment is not None:
        args["execution_environment"] = target.execution_environment
    if target.credentials:
        args["credentials"] = list(target.credentials)
    args["state"] = "present"
    return {"name": f"Job template: {name}", "awx.awx.job_template": args}


def _schedule(loaded: LoadedDrill, rrule: str, target: AwxTarget) -> dict[str, Any]:
    name = template_name(loaded.spec.name)
    schedule = loaded.spec.schedule
    return {"name": f"Schedule: {name}", "awx.awx.schedule": {
        "name": name,
        "description": f"{schedule.cron} {schedule.timezone}, as the drill file says",
        "unified_job_template": name,
        "organization": target.organization,
        "rrule": rrule,
        "enabled": True,
        "state": "present",
    }}


def _walk_strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, Mapping):
        return [s for k, v in value.items() for s in (*_walk_strings(k), *_walk_strings(v))]
    if isinstance(value, list | tuple):
        return [s for item in value for s in _walk_strings(item)]
    return []


def export(drills: Sequence[LoadedDrill], target: AwxTarget, *, start: datetime
           ) -> AwxExport:
    """The playbook making ``drills`` job templates and schedules in AWX; each schedule's
    DTSTART is the drill's first fire time at or after ``start``. InvalidInput (naming the
    file and field) for a drill without an exact AWX schedule, a file outside the project,
    or a value Ansible would render."""
    target = _checked_target(target)
    tasks: list[dict[str, Any]] = []
    exported: list[ExportedDrill] = []
    for loaded in drills:
        source = str(loaded.path)
        file = _plain(_relative(loaded, target.project_dir), source=source,
                      field="--project-dir")
        made = recurrence(loaded.spec.schedule, source, start)
        drill_tasks = [_job_template(loaded, file, target),
                       _schedule(loaded, made.text, target)]
        for text in _walk_strings(drill_tasks):  # whatever else reached the tasks
            _plain(text, source=source, field=None)
        tasks += drill_tasks
        exported.append(ExportedDrill(
            drill=loaded.spec.name, file=file, job_template=template_name(loaded.spec.name),
            schedule=f"{loaded.spec.schedule.cron} {loaded.spec.schedule.timezone}",
            rrule=made.text))
    names = [e.drill for e in exported]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise SpecError(f"drill name(s) {', '.join(twice)} defined more than once: their "
                        "job templates would be one", field="name",
                        hint="give each drill its own name")
    play = [{"name": "dalp-dr drills as AWX job templates and schedules",
             "hosts": "localhost", "connection": "local", "gather_facts": False,
             "tasks": tasks}]
    text = HEADER + yaml.safe_dump(play, sort_keys=False, explicit_start=True,
                                   default_flow_style=False, width=1000,
                                   allow_unicode=True)
    return AwxExport(drills=tuple(exported), playbook=text)
