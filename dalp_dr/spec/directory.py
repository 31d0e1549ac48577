"""A set of drill files read together (a drill directory, or the files and directories given
to ``drill validate``): each file valid on its own, and no drill name defined twice (the
scheduler, the history and ``drill run`` know a drill by its name)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from dalp_dr.errors import InvalidInput, SpecError
from dalp_dr.spec.drill import LoadedDrill
from dalp_dr.spec.load import discover_drills, load_drill


@dataclass(frozen=True)
class DrillSet:
    """The drills that loaded, and the files that did not (with why), in file order."""

    drills: tuple[LoadedDrill, ...]
    problems: tuple[tuple[Path, InvalidInput], ...]


def drill_directory(directory: Path, *, field: str | None = None) -> list[Path]:
    """The drill files of ``directory``; invalid input when it is missing or not a
    directory (an empty answer would read as 'no drills')."""
    if not directory.exists():
        raise InvalidInput("drill directory not found", source=str(directory), field=field,
                           hint="check the path; the default is the project's drills/")
    if not directory.is_dir():
        raise InvalidInput("not a directory", source=str(directory), field=field,
                           hint="give the directory holding the drill files")
    return discover_drills(directory)


def expand(paths: Iterable[str | Path]) -> list[Path]:
    """Files as given, and every drill file of each directory given."""
    files: list[Path] = []
    for given in paths:
        path = Path(given)
        files.extend(drill_directory(path) if path.is_dir() else [path])
    return files


def load_set(files: Iterable[Path]) -> DrillSet:
    """Load every file; a drill name already defined by an earlier file makes the later
    file a problem naming both files."""
    drills: list[LoadedDrill] = []
    problems: list[tuple[Path, InvalidInput]] = []
    seen: dict[str, tuple[Path, LoadedDrill]] = {}
    for path in files:
        try:
            loaded = load_drill(path)
        except InvalidInput as exc:
            problems.append((path, exc))
            continue
        first = seen.get(loaded.spec.name)
        if first is not None and first[1].path != loaded.path:
            problems.append((path, SpecError(
                f"drill name '{loaded.spec.name}' is already defined by {first[0]}",
                source=str(path), field="name",
                hint="give each drill its own name (the scheduler and the history know a "
                     "drill by its name)")))
            continue
        seen.setdefault(loaded.spec.name, (path, loaded))
        drills.append(loaded)
    return DrillSet(tuple(drills), tuple(problems))


def load_directory(directory: Path, *, field: str | None = None) -> DrillSet:
    """Every drill of a directory (see :func:`load_set`); invalid input when it is
    missing."""
    return load_set(drill_directory(directory, field=field))
