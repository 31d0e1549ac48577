"""How Ansible spells what the file walker follows: templated strings, task actions (short,
``ansible.builtin.`` or ``ansible.legacy.``), literal loops, and YAML with Ansible's tags."""

from __future__ import annotations

import re
from typing import Any

import yaml

TEMPLATED = re.compile(r"\{\{|\{%")
MAGIC_VAR = re.compile(r"\{\{\s*(\w+)\s*\}\}")
ITEM = re.compile(r"\{\{\s*item\s*\}\}")

IMPORT_TASKS = {"import_tasks", "include_tasks"}
IMPORT_ROLE = {"import_role", "include_role"}
TASK_BLOCKS = ("block", "rescue", "always")
PLAY_TASKS = ("pre_tasks", "tasks", "post_tasks", "handlers")


def find_action(task: dict[str, Any], names: set[str]) -> tuple[str, Any] | None:
    for key, value in task.items():
        if not isinstance(key, str):
            continue
        short = key.removeprefix("ansible.builtin.").removeprefix("ansible.legacy.")
        if short in names:
            return short, value
    return None


class AnyTagLoader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # type: ignore[misc]
    """Safe loading that reads Ansible's tags (!vault, !unsafe) as the plain value."""


def _plain(loader: yaml.SafeLoader, _suffix: str, node: yaml.Node) -> Any:
    if isinstance(node, yaml.ScalarNode):
        return loader.construct_scalar(node)
    if isinstance(node, yaml.SequenceNode):
        return loader.construct_sequence(node, deep=True)
    if isinstance(node, yaml.MappingNode):
        return loader.construct_mapping(node, deep=True)
    return None


AnyTagLoader.add_multi_constructor("!", _plain)


def literal_items(task: dict[str, Any]) -> list[str] | None:
    """The items of a task's ``loop``/``with_items``/``with_list`` when they are literal
    strings (nothing templated), else None."""
    for key in ("loop", "with_items", "with_list"):
        items = task.get(key)
        if isinstance(items, list) and items and all(
                isinstance(i, str) and not TEMPLATED.search(i) for i in items):
            return [str(i) for i in items]
    return None
