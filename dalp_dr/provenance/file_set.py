"""The files a record names: sha256 by key (the path as used, relative to the project
directory when inside it), and the notes on what could not be read."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from dalp_dr.integrity import file_sha256

_YAML_SUFFIXES = (".yml", ".yaml")
MAX_FILES = 5000
"""the most files a record's provenance hashes (a templated include of a huge directory
must not turn a drill's start into a walk of the file system)"""


@dataclass
class FileSet:
    """sha256 by key of every file added, and what could not be read or followed."""

    project: Path
    files: dict[str, str] = field(default_factory=dict)
    unresolved: list[str] = field(default_factory=list)
    _dirs: set[str] = field(default_factory=set)

    def key(self, path: Path) -> str:
        path = Path(os.path.normpath(os.path.abspath(path)))
        return str(path.relative_to(self.project)) if path.is_relative_to(self.project) \
            else str(path)

    def note(self, text: str) -> None:
        if text not in self.unresolved:
            self.unresolved.append(text)

    def add_file(self, path: Path) -> bool:
        key = self.key(path)
        if key in self.files:
            return True
        if len(self.files) >= MAX_FILES:
            self.note(f"more than {MAX_FILES} files: the rest were not hashed")
            return False
        try:
            self.files[key] = file_sha256(path)
        except OSError as exc:
            self.note(f"{key}: unreadable ({exc.strerror or exc})")
            return False
        return True

    def add_tree(self, directory: Path, *, yaml_only: bool = False,
                 recursive: bool = True) -> list[Path]:
        """Every (non-hidden) file under ``directory``, symlinks followed once."""
        found = [p for p in _tree(directory, recursive)
                 if not yaml_only or p.suffix in _YAML_SUFFIXES]
        for path in found:
            self.add_file(path)
        return found

    def _beside(self, directory: Path, names: tuple[str, ...]) -> None:
        for name in names:
            sub = directory / name
            if sub.is_dir() and self.key(sub) not in self._dirs:
                self._dirs.add(self.key(sub))
                self.add_tree(sub)


def _tree(directory: Path, recursive: bool) -> Iterator[Path]:
    """Files under a directory by their path as seen through it (symlinks followed, each
    real directory once), sorted; hidden files and caches left out."""
    seen: set[str] = set()

    def walk(folder: Path) -> Iterator[Path]:
        real = os.path.realpath(folder)
        if real in seen:
            return
        seen.add(real)
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError:
            return
        for entry in entries:
            if entry.name.startswith(".") or entry.name == "__pycache__":
                continue
            path = folder / entry.name
            if entry.is_dir():
                if recursive:
                    yield from walk(path)
            elif entry.is_file():
                yield path

    yield from walk(directory)
