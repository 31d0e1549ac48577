"""Every file a drill's run reads, found as Ansible finds it.

The drill file, the inventory (and its ``group_vars``/``host_vars``), every phase playbook
and what it pulls in (``import_tasks``, ``include_tasks``, ``import_playbook``,
``vars_files``, ``include_vars``, roles through ``roles:``/``include_role``/``import_role``/
role dependencies, the playbook directory's ``group_vars``/``host_vars``/``library``/
``module_utils``), resolved as Ansible resolves them. A path templated beyond
``playbook_dir``/``role_path`` (and ``item`` over a literal ``loop``) cannot be resolved
before the run: every ``*.yml``/``*.yaml`` file of the directory it points into is hashed
instead, and the include is listed in ``unresolved``.

Files are keyed by their path as used (a symlinked task file under its own name, hashed by
the content it resolves to), relative to the project directory when inside it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from dalp_dr.provenance.ansible_syntax import (
    IMPORT_ROLE,
    IMPORT_TASKS,
    ITEM,
    PLAY_TASKS,
    TASK_BLOCKS,
    TEMPLATED,
    AnyTagLoader,
    find_action,
    literal_items,
)
from dalp_dr.provenance.file_set import FileSet
from dalp_dr.provenance.search_path import (
    Context,
    find_role,
    main_file,
    substitute_known,
    task_dirs,
    task_target,
)

if TYPE_CHECKING:
    from dalp_dr.spec import LoadedDrill

_PLAYBOOK_DIRS = ("group_vars", "host_vars", "library", "module_utils")
"""directories next to a playbook that Ansible reads without being told"""
_INVENTORY_DIRS = ("group_vars", "host_vars")
_MAX_DEPTH = 40
"""include nesting followed at most (an include loop ends here)"""


def drill_files(drill: LoadedDrill, project: Path) -> tuple[dict[str, str], list[str]]:
    """sha256 by key of every file a run of ``drill`` reads, and what could not be resolved."""
    walker = _Walker(project)
    try:
        walker.add_file(drill.path)
        walker.add_inventory(drill.inventory)
        for playbook in dict.fromkeys(drill.playbooks.values()):
            walker.playbook(playbook)
    except Exception as exc:  # a record is never lost to its provenance: say what happened
        walker.note(f"file walk stopped early: {type(exc).__name__}: {exc}")
    return dict(sorted(walker.files.items())), walker.unresolved


@dataclass
class _Walker(FileSet):
    """Follows playbooks, task files, vars files and roles as Ansible does, adding every
    file it reads."""

    _walked: set[tuple[str, str, str, tuple[str, ...]]] = field(default_factory=set)
    _roles: set[str] = field(default_factory=set)

    # -- reading -----------------------------------------------------------------------------

    def add_inventory(self, inventory: Path) -> None:
        if inventory.is_dir():
            self.add_tree(inventory)
        else:
            self.add_file(inventory)
            self._beside(inventory.parent, _INVENTORY_DIRS)

    def _read(self, path: Path) -> Any:
        try:
            return yaml.load(path.read_text(encoding="utf-8"), Loader=AnyTagLoader)
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
            self.note(f"{self.key(path)}: not followed, cannot be parsed "
                      f"({type(exc).__name__})")
            return None

    def _first_time(self, kind: str, path: Path, ctx: Context) -> bool:
        chain = tuple(os.path.dirname(raw) for raw in ctx.chain)
        marker = (kind, self.key(path), str(ctx.role or ""), chain)
        if marker in self._walked:
            return False
        self._walked.add(marker)
        if ctx.depth > _MAX_DEPTH:
            self.note(f"{self.key(path)}: includes nested deeper than {_MAX_DEPTH} not "
                      "followed")
            return False
        return True

    # -- playbooks ---------------------------------------------------------------------------

    def playbook(self, path: Path, depth: int = 0) -> None:
        path = Path(os.path.normpath(os.path.abspath(path)))
        ctx = Context(basedir=path.parent, depth=depth)
        if not self.add_file(path) or not self._first_time("playbook", path, ctx):
            return
        self._beside(path.parent, _PLAYBOOK_DIRS)
        data = self._read(path)
        if not isinstance(data, list):
            return
        for play in data:
            if isinstance(play, dict):
                self._play(play, path, ctx)

    def _play(self, play: dict[str, Any], path: Path, ctx: Context) -> None:
        imported = find_action(play, {"import_playbook"})
        if imported is not None:
            raw = imported[1]
            if isinstance(raw, str):
                self._import_playbook(raw.strip(), path, ctx)
            return
        vars_files = play.get("vars_files")
        if isinstance(vars_files, str):
            vars_files = [vars_files]
        if isinstance(vars_files, list):
            for entry in vars_files:
                # a list entry is a list of alternatives: the first one found is loaded
                alternatives = entry if isinstance(entry, list) else [entry]
                self._vars_file([a for a in alternatives if isinstance(a, str)], path, ctx)
        roles = play.get("roles")
        if isinstance(roles, list):
            for entry in roles:
                self._role_entry(entry, path, ctx)
        for section in PLAY_TASKS:
            self._tasks(play.get(section), path, ctx)

    def _import_playbook(self, raw: str, path: Path, ctx: Context) -> None:
        raw = substitute_known(raw, ctx)
        where = path.parent
        if TEMPLATED.search(raw):
            for found in self._templated(raw, [where], path):
                self.playbook(found, ctx.depth + 1)
            return
        target = Path(raw) if os.path.isabs(raw) else where / raw
        if target.is_file():
            self.playbook(target, ctx.depth + 1)
        elif raw.count(".") >= 2 and "/" not in raw:
            self.note(f"{self.key(path)}: import_playbook {raw}: a collection playbook, "
                      "not hashed")
        else:
            self.note(f"{self.key(path)}: import_playbook {raw}: not found")

    def _vars_file(self, alternatives: list[str], path: Path, ctx: Context) -> None:
        for raw in alternatives:
            raw = substitute_known(raw, ctx)
            if TEMPLATED.search(raw):
                self._templated(raw, [ctx.basedir], path)
                return
            target = Path(os.path.normpath(ctx.basedir / os.path.expanduser(raw)))
            if target.is_file():
                self.add_file(target)
                return
        if alternatives:
            self.note(f"{self.key(path)}: vars_files {' | '.join(alternatives)}: not found")

    # -- task lists --------------------------------------------------------------------------

    def _tasks(self, tasks: Any, path: Path, ctx: Context) -> None:
        if not isinstance(tasks, list):
            return
        for task in tasks:
            if not isinstance(task, dict):
                continue
            for section in TASK_BLOCKS:
                self._tasks(task.get(section), path, ctx)
            found = find_action(task, IMPORT_TASKS)
            if found is not None:
                self._task_include(found[0], found[1], path, ctx, literal_items(task))
                continue
            found = find_action(task, IMPORT_ROLE)
            if found is not None:
                self._role_entry(found[1], path, ctx)
                continue
            found = find_action(task, {"include_vars"})
            if found is not None:
                self._include_vars(found[1], path, ctx)

    def task_file(self, target: Path, ctx: Context) -> None:
        if not self.add_file(target) or not self._first_time("tasks", target, ctx):
            return
        self._tasks(self._read(target), target, ctx)

    def _task_include(self, action: str, value: Any, path: Path, ctx: Context,
                      items: list[str] | None = None) -> None:
        raw = value.get("file", value.get("_raw_params")) if isinstance(value, dict) else value
        if not isinstance(raw, str) or not raw.strip():
            self.note(f"{self.key(path)}: {action} without a file name not followed")
            return
        raw = substitute_known(raw.strip(), ctx)
        if items is not None and ITEM.search(raw):
            for item in items:  # include_tasks "{{ item }}" over a literal loop
                literal = item.replace("\\", "\\\\")  # not a regex replacement template
                self._task_include(action, ITEM.sub(literal, raw), path, ctx)
            return
        inner = ctx.nested(raw)
        if TEMPLATED.search(raw):
            for found in self._templated(raw, task_dirs(ctx), path):
                self.task_file(found, inner)
            return
        target = task_target(raw, ctx)
        if target is None:
            self.note(f"{self.key(path)}: {action} {raw}: not found")
            return
        self.task_file(target, inner)

    def _include_vars(self, value: Any, path: Path, ctx: Context) -> None:
        if isinstance(value, dict):
            raw = value.get("file", value.get("_raw_params"))
            if raw is None and isinstance(value.get("dir"), str):
                raw, is_dir = value["dir"], True
            else:
                is_dir = False
        else:
            raw, is_dir = value, False
        if not isinstance(raw, str) or not raw.strip():
            return
        raw = substitute_known(raw.strip(), ctx)
        stack = [p for p in (ctx.role, path.parent, ctx.basedir) if p is not None]
        dirs: list[Path] = []
        for base in stack:
            if base.name == "tasks":
                dirs += [base.parent / "vars", base.parent]
            dirs += [base / "vars", base]
        dirs = list(dict.fromkeys(dirs))
        if TEMPLATED.search(raw):
            self._templated(raw, dirs, path, recursive=is_dir)
            return
        for directory in dirs:
            candidate = Path(os.path.normpath(directory / os.path.expanduser(raw)))
            if is_dir and candidate.is_dir():
                self.add_tree(candidate)
                return
            if not is_dir and candidate.is_file():
                self.add_file(candidate)
                return
        self.note(f"{self.key(path)}: include_vars {raw}: not found")

    # -- roles -------------------------------------------------------------------------------

    def _role_entry(self, entry: Any, path: Path, ctx: Context,
                    parent_role: Path | None = None) -> None:
        name: Any
        options: dict[str, Any] = {}
        if isinstance(entry, str):
            name = entry
        elif isinstance(entry, dict):
            name, options = entry.get("role", entry.get("name")), entry
        else:
            return
        if not isinstance(name, str) or not name.strip():
            return
        name = substitute_known(name.strip(), ctx)
        if TEMPLATED.search(name):
            self.note(f"{self.key(path)}: role {name}: templated, not hashed")
            return
        role = find_role(name, ctx, parent_role)
        if role is None:
            what = "a collection role, not hashed" if name.count(".") >= 2 and "/" not in name \
                else "not found"
            self.note(f"{self.key(path)}: role {name}: {what}")
            return
        self.role(role, ctx, options)

    def role(self, role: Path, ctx: Context, options: dict[str, Any]) -> None:
        inner = Context(basedir=ctx.basedir, role=role, depth=ctx.depth + 1)
        key = self.key(role)
        if key not in self._roles:
            self._roles.add(key)
            self.add_tree(role)
            meta = main_file(role / "meta", "main")
            data = self._read(meta) if meta is not None else None
            deps = data.get("dependencies") if isinstance(data, dict) else None
            if isinstance(deps, list):
                for dep in deps:
                    self._role_entry(dep, meta or role, inner, parent_role=role)
        for folder, option in (("tasks", "tasks_from"), ("handlers", "handlers_from")):
            chosen = options.get(option, "main")
            if not isinstance(chosen, str):
                continue
            if TEMPLATED.search(chosen):
                self.note(f"{key}: {option} {chosen}: templated (the role's every file is "
                          "hashed)")
                continue
            found = main_file(role / folder, chosen)
            if found is not None:
                self.task_file(found, inner)

    # -- templated paths ---------------------------------------------------------------------

    def _templated(self, raw: str, bases: list[Path], path: Path,
                   recursive: bool = False) -> list[Path]:
        """Hash every YAML file of the directory a templated path points into (its
        template-free leading directories, looked up like the path itself would be)."""
        parts = raw.split("/")
        static: list[str] = []
        for part in parts[:-1]:
            if TEMPLATED.search(part):
                break
            static.append(part)
        prefix = os.path.expanduser("/".join(static)) if static else ""
        directory: Path | None = None
        if raw.startswith("/") and prefix.strip("/") == "":
            pass  # templated right below the root: nothing sensible to hash
        elif os.path.isabs(prefix):
            directory = Path(os.path.normpath(prefix)) if os.path.isdir(prefix) else None
        else:
            for base in bases:
                candidate = Path(os.path.normpath(base / prefix))
                if candidate.is_dir():
                    directory = candidate
                    break
        if directory is None:
            self.note(f"{self.key(path)}: {raw}: templated, and no directory it could point "
                      "into was found")
            return []
        found = self.add_tree(directory, yaml_only=True, recursive=recursive)
        self.note(f"{self.key(path)}: {raw}: templated; hashed every *.yml/*.yaml in "
                  f"{self.key(directory)}/")
        return found
