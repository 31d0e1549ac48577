"""Reading drill YAML safely: plain data only, no duplicate keys, bounded alias expansion,
and error messages of bounded length.

A drill file is read by the CLI and re-read by the scheduler every sync, so a small file
must never cost much: YAML aliases (``&a`` / ``*a``) share one node, and a
"billion laughs" document of a few hundred bytes stands for hundreds of millions of values
once anything walks it (validation, an error message that shows the value). The document's
node graph is measured before anything is built from it, and refused past a small budget.
Duplicate keys are refused too: YAML parsers keep the last one silently, so a reviewer can
read one value while the drill runs with another.
"""

from __future__ import annotations

import reprlib
from typing import Any

import yaml
from yaml.constructor import SafeConstructor
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from dalp_dr.errors import SpecError

MAX_BYTES = 1024 * 1024
"""a drill file is a few kilobytes; anything past this is refused before it is parsed"""

MAX_NODES = 20_000
"""values (scalars, lists, mappings) a drill document may have with its aliases expanded;
the shipped drills have about 100"""

MAX_SHOWN = 200
"""the longest a value (or a piece of user text) is shown in an error message"""

_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
"""libyaml's safe loader when PyYAML has it (ten times faster: a scheduler syncs hundreds of
drill files), the pure-Python one otherwise; both construct plain data only"""

_MERGE = "tag:yaml.org,2002:merge"

_repr = reprlib.Repr()
_repr.maxlevel = 3
_repr.maxlist = _repr.maxtuple = _repr.maxset = _repr.maxdict = 6
_repr.maxstring = _repr.maxother = 80


def clip(text: str, limit: int = MAX_SHOWN) -> str:
    """``text`` cut to about ``limit`` characters, saying how long it was."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... ({len(text)} characters)"


def shown(value: Any) -> str:
    """A short repr of a value from a drill file: nested containers are not expanded past a
    few levels and items, so showing a value never costs more than showing a few lines."""
    return clip(_repr.repr(value))


class _Refused(Exception):
    def __init__(self, message: str, field: str | None = None, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.field = field
        self.hint = hint


def _children(node: Node) -> list[Node]:
    if isinstance(node, SequenceNode):
        return list(node.value)
    if isinstance(node, MappingNode):
        return [part for pair in node.value for part in pair]
    return []


def _check_size(root: Node) -> None:
    """Refuse a document whose node graph, aliases expanded, has more than MAX_NODES values
    or refers to itself. Each distinct node is visited once (the expanded size of a shared
    node is computed once), so this costs as much as the text, however far it expands."""
    sizes: dict[int, int] = {}
    ancestors: set[int] = set()
    stack: list[tuple[Node, bool]] = [(root, False)]
    while stack:
        node, finished = stack.pop()
        key = id(node)
        if finished:
            ancestors.discard(key)
            size = 1 + sum(sizes[id(child)] for child in _children(node))
            if size > MAX_NODES:
                raise _Refused(f"the document has more than {MAX_NODES} values once its "
                               "aliases (*name) are expanded",
                               hint="write the values out; a drill file needs few aliases")
            sizes[key] = size
            continue
        if key in sizes:
            continue
        if key in ancestors:
            raise _Refused(f"an alias refers to a value that contains it (line "
                           f"{node.start_mark.line + 1})", hint="remove the recursive alias")
        ancestors.add(key)
        stack.append((node, True))
        stack.extend((child, False) for child in _children(node) if id(child) not in sizes)


def _path(parent: str, part: Any, index: bool = False) -> str:
    if index:
        return f"{parent}[{part}]"
    name = clip(str(part), 60)
    return f"{parent}.{name}" if parent else name


def _check_duplicates(root: Node) -> None:
    """Refuse a mapping that names a key twice (merge keys ``<<`` aside: what a mapping
    says itself overrides what it merges in, as YAML intends)."""
    constructor = SafeConstructor()
    seen: set[int] = set()
    stack: list[tuple[Node, str]] = [(root, "")]
    while stack:
        node, where = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        if isinstance(node, SequenceNode):
            stack.extend((item, _path(where, i, index=True)) for i, item in enumerate(node.value))
        elif isinstance(node, MappingNode):
            first: dict[Any, int] = {}
            for key_node, value_node in node.value:
                if isinstance(key_node, ScalarNode) and key_node.tag != _MERGE:
                    try:
                        key = constructor.construct_object(key_node)
                        hash(key)
                    except (yaml.YAMLError, TypeError, ValueError):
                        key = (key_node.tag, key_node.value)
                    line = key_node.start_mark.line + 1
                    if key in first:
                        raise _Refused(
                            f"duplicate key {shown(key)} at line {line} (first at line "
                            f"{first[key]})", field=_path(where, key),
                            hint="keep one: YAML would silently use the last")
                    first[key] = line
                    stack.append((value_node, _path(where, key)))
                else:
                    stack.append((value_node, where))


def _tab_near(text: str, mark: Any) -> tuple[int, int] | None:
    """Line and column (1-based) of the tab that broke the YAML: the first tab on the error's
    line or, when the parser stopped later, in the indentation of a line before it."""
    if mark is None:
        return None
    lines = text.splitlines()
    line = min(mark.line, len(lines) - 1)
    if line < 0:
        return None
    if "\t" in lines[line]:
        return line + 1, lines[line].index("\t") + 1
    for number in range(line - 1, -1, -1):
        indent = lines[number][:len(lines[number]) - len(lines[number].lstrip())]
        if "\t" in indent:
            return number + 1, indent.index("\t") + 1
    return None


def load(text: str, *, source: str) -> Any:
    """The plain data of one drill YAML document. Raises SpecError naming the file (and the
    key or line) for malformed YAML, duplicate keys, a document too large or expanding too
    far through its aliases."""
    if len(text) > MAX_BYTES:
        raise SpecError(f"the file has {len(text)} characters; a drill file has at most "
                        f"{MAX_BYTES}", source=source, hint="is this a drill file?")
    loader = _LOADER(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _check_size(node)
        _check_duplicates(node)
        return loader.construct_document(node)
    except _Refused as exc:
        raise SpecError(exc.message, source=source, field=exc.field, hint=exc.hint) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "unknown position"
        problem = clip(str(getattr(exc, "problem", None) or exc))
        tab = _tab_near(text, mark)
        if tab is not None:
            raise SpecError(f"a tab at line {tab[0]}, column {tab[1]}: YAML indents with "
                            "spaces only", source=source,
                            hint="replace the tab with spaces") from None
        raise SpecError(f"malformed YAML at {where}: {problem}", source=source,
                        hint="fix the YAML syntax") from None
    finally:
        loader.dispose()
