"""Reading drill files: parse and validate, resolve paths inside the allowed roots,
discover a directory's drills. Errors name the file, the field and the fix."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

from pydantic import (
    ValidationError,
)

from dalp_dr import config, drill_yaml
from dalp_dr.drill_yaml import MAX_SHOWN, clip, shown
from dalp_dr.errors import HintKey, SpecError
from dalp_dr.spec.drill import DrillSpec, LoadedDrill, spec_digest
from dalp_dr.spec.parts import PhaseName


def _loc(loc: tuple[int | str, ...]) -> str:
    parts: list[str] = []
    for item in loc:
        if isinstance(item, int):
            parts.append(f"[{item}]")
        elif item.startswith(("function-", "constrained-")) or item == "[key]":
            continue
        else:
            parts.append(("." if parts else "") + item)
    return "".join(parts) or "(top level)"


def _from_validation(error: ValidationError, source: str) -> SpecError:
    # A misspelt key shows up twice: as unknown and as the missing one. The unknown one is
    # the message that tells the user what to fix.
    errors = sorted(error.errors(), key=lambda e: e["type"] != "extra_forbidden")
    first = errors[0]
    loc = tuple(p for p in first["loc"] if not (isinstance(p, str) and p in ("str", "int",
                "float", "bool", "nullable")))
    # user text (keys, values) is shown short: an error message never grows with the input
    field = clip(_loc(loc))
    kind = first["type"]
    if kind == "extra_forbidden":
        return SpecError(f"unknown field {shown(loc[-1])}", source=source, field=field,
                         hint="remove it or check its spelling")
    if kind == "missing":
        return SpecError("required field is missing", source=source, field=field,
                         hint="see README 'Drill format'")
    message = str(first["msg"]).removeprefix("Value error, ")
    if kind == "enum":
        expected = first.get("ctx", {}).get("expected", "")
        message = f"{shown(first.get('input'))} is not one of {expected}"
    hint = next((h for pattern, h in _HINTS if pattern.fullmatch(field)), None)
    return SpecError(clip(message, 2 * MAX_SHOWN), source=source, field=field, hint=hint)


_HINTS = [
    (re.compile(r"schedule\.timezone"), "an IANA time-zone name such as UTC, "
     "Europe/Amsterdam or America/New_York"),
    (re.compile(r"schedule(\.cron)?"), "'quarterly' or a 5-field cron expression: minute "
     "hour day month weekday, e.g. '0 3 1 1,4,7,10 *'"),
    (re.compile(r"checks\[\d+\]\.sql"), "write one SELECT that only reads: no ';', no "
     "COPY, INSERT, UPDATE, DELETE or side-effecting function; README 'Security'"),
]
"""what to do, by field, when the message itself does not say"""


def parse_drill(text: str, *, source: str) -> DrillSpec:
    """Parse and validate drill YAML text. Does not touch the file system."""
    data = drill_yaml.load(text, source=source)
    if not isinstance(data, dict):
        raise SpecError("a drill file must be a YAML mapping", source=source,
                        hint="start with 'name:', 'topology:', ...")
    try:
        return DrillSpec.model_validate(data)
    except ValidationError as exc:
        raise _from_validation(exc, source) from None


def allowed_roots(drill_dir: Path, *, project: Path | None = None,
                  extra: Sequence[Path] | None = None) -> list[Path]:
    """Where a drill's playbooks and inventory may live: the drill file's own directory,
    the project and the ``extra`` directories (by default as configured: see
    ``dalp_dr.config.project_dir`` and ``allowed_dirs``)."""
    roots = [drill_dir, (project if project is not None else config.project_dir()).resolve()]
    roots.extend(Path(p).resolve() for p in
                 (extra if extra is not None else config.allowed_dirs()))
    return roots


def _inside(path: Path, roots: list[Path], source: str, field: str) -> None:
    """Paths from a drill file never reach outside the allowed directories (symlinks
    followed): a definition cannot point Ansible at an arbitrary file."""
    if not any(path.is_relative_to(root) for root in roots):
        raise SpecError(f"{clip(str(path))} is outside the project and the allowed directories",
                        source=source, field=field,
                        hint="keep playbooks and inventories in the project, or list their "
                             "directory in DALP_DR_ALLOWED_DIRS")


def load_drill(path: Path | str) -> LoadedDrill:
    """Read, validate and resolve a drill file. Raises SpecError naming file and field."""
    file = Path(path)
    source = str(path)
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SpecError("drill file not found", source=source,
                        hint_key=HintKey.LIST_DRILLS) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError(f"cannot read drill file: {exc}", source=source) from None
    spec = parse_drill(text, source=source)
    base = file.resolve().parent
    roots = allowed_roots(base)

    inventory = (base / spec.inventory).resolve()
    _inside(inventory, roots, source, "inventory")
    if not inventory.is_file():
        raise SpecError(f"inventory file {clip(str(spec.inventory))} not found (resolved to "
                        f"{clip(str(inventory))})",
                        source=source, field="inventory",
                        hint="paths are relative to the drill file")
    playbooks: dict[PhaseName, Path] = {}
    for name, phase in spec.phases.items():
        resolved = (base / phase.playbook).resolve()
        _inside(resolved, roots, source, f"phases.{name.value}.playbook")
        if not resolved.is_file():
            raise SpecError(f"playbook {clip(str(phase.playbook))} not found (resolved to "
                            f"{clip(str(resolved))})",
                            source=source, field=f"phases.{name.value}.playbook",
                            hint="paths are relative to the drill file")
        playbooks[name] = resolved
    return LoadedDrill(path=file.resolve(), spec=spec, inventory=inventory, playbooks=playbooks,
                       spec_hash=spec_digest(spec))


def discover_drills(directory: Path) -> list[Path]:
    """Drill files in a directory, sorted by name."""
    return sorted(p for p in directory.glob("*.y*ml") if p.suffix in (".yaml", ".yml"))
