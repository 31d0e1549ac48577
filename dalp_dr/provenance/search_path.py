"""Where Ansible looks for what a play names: task files (against the includes that led
there, then the role's or the playbook's directory), roles (``roles/`` beside the playbook,
the roles path, the parent role's siblings, the playbook's directory), a role's ``main``
file, and the variables whose value is known before the run (``playbook_dir``,
``role_path``)."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from dalp_dr.config import ansible_roles_path
from dalp_dr.provenance.ansible_syntax import MAGIC_VAR


@dataclass(frozen=True)
class Context:
    """Where paths in the file being read resolve: Ansible's loader basedir (the playbook's
    directory), the role the file belongs to, and the raw paths of the includes that led
    to it (Ansible resolves a nested include against their directories)."""

    basedir: Path
    role: Path | None = None
    chain: tuple[str, ...] = ()
    depth: int = 0

    def nested(self, raw: str) -> Context:
        return Context(self.basedir, self.role, (*self.chain, raw), self.depth + 1)


def substitute_known(raw: str, ctx: Context) -> str:
    """Substitute the variables whose value is known before the run."""
    known = {"playbook_dir": str(ctx.basedir)}
    if ctx.role is not None:
        known["role_path"] = str(ctx.role)

    def swap(match: re.Match[str]) -> str:
        return known.get(match.group(1), match.group(0))

    return MAGIC_VAR.sub(swap, raw) if "{{" in raw else raw


def task_dirs(ctx: Context) -> list[Path]:
    """Where a relative task file is looked for, in Ansible's order (first found wins):
    against the directories of the includes that led here, then the playbook's (or the
    role's tasks/) directory."""
    dirs: list[Path] = []
    if ctx.role is not None:
        dirs.append(ctx.role / "tasks")
    cumulative: str | None = None
    for raw in reversed(ctx.chain):
        parent = os.path.dirname(raw)
        if cumulative is None:
            cumulative = parent
        elif not os.path.isabs(cumulative):
            cumulative = os.path.join(parent, cumulative)
        base = ctx.role / "tasks" if ctx.role is not None else ctx.basedir
        dirs.append(Path(os.path.normpath(base / cumulative)))
        if ctx.role is None:
            dirs.append(ctx.basedir)
    if ctx.role is not None:
        dirs.append(ctx.role)
    dirs.append(ctx.basedir)
    return list(dict.fromkeys(dirs))


def task_target(raw: str, ctx: Context) -> Path | None:
    raw = os.path.expanduser(raw)
    if os.path.isabs(raw):
        return Path(os.path.normpath(raw)) if os.path.isfile(raw) else None
    for directory in task_dirs(ctx):
        candidate = Path(os.path.normpath(directory / raw))
        if candidate.is_file():
            return candidate
    return None


def find_role(name: str, ctx: Context, parent_role: Path | None) -> Path | None:
    name = os.path.expanduser(name)
    if os.path.isabs(name):
        return Path(os.path.normpath(name)) if os.path.isdir(name) else None
    search = [ctx.basedir / "roles", *ansible_roles_path(ctx.basedir)]
    if parent_role is not None:
        search.append(parent_role.parent)
    search.append(ctx.basedir)
    for directory in search:
        candidate = Path(os.path.normpath(directory / name))
        if candidate.is_dir():
            return candidate
    return None


def main_file(directory: Path, name: str) -> Path | None:
    """A role's ``main`` (or ``tasks_from``) file: as named, or with .yml/.yaml/.json."""
    for candidate in (name, f"{name}.yml", f"{name}.yaml", f"{name}.json"):
        path = directory / candidate
        if path.is_file():
            return path
    return None
