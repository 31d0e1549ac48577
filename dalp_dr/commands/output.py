"""One output contract for every command: ``-o table|json|csv`` (``--json`` is ``-o json``),
or ``-o FILE`` whose extension names the format (``r.json``, ``r.csv``, ``r.txt``; ``export``
also ``.html`` and ``.pdf``). A format given twice that disagrees (``--json -o r.csv``,
``export --format html -o r.json``) is refused, exit 2, before anything runs.

A command declares what it prints once, as data (a mapping or a list of mappings) and as the
table or text a person reads; :class:`Output` renders whichever was asked for. Under a JSON
format the errors are JSON too (:func:`json_error`, printed by ``main``): one object
``{"error": {"message", "file", "field", "hint", "exit_code"}}`` on stdout, where the success
object would have been.
"""

from __future__ import annotations

import csv
import functools
import io
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any, TypeVar

import click
from rich.console import Console, RenderableType

from dalp_dr import csv_safe
from dalp_dr.console import out
from dalp_dr.errors import InvalidInput

F = TypeVar("F", bound=Callable[..., Any])


class Format(StrEnum):
    TABLE = "table"
    JSON = "json"
    CSV = "csv"
    HTML = "html"
    PDF = "pdf"


COMMON = (Format.TABLE, Format.JSON, Format.CSV)
"""what every command prints"""

EXTENSIONS = {".json": Format.JSON, ".csv": Format.CSV, ".txt": Format.TABLE,
              ".html": Format.HTML, ".htm": Format.HTML, ".pdf": Format.PDF}


@dataclass(frozen=True)
class Output:
    """Where a command's result goes (``path`` None: stdout) and in which format."""

    format: Format
    path: Path | None = None

    @property
    def is_json(self) -> bool:
        return self.format is Format.JSON

    def text(self, text: str) -> None:
        """Finished text in the chosen format: to the file (owner-only, written whole), or
        stdout."""
        if self.path is None:
            click.echo(text, nl=not text.endswith("\n"))
        else:
            from dalp_dr.private_files import atomic_write

            self.path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write(self.path, text)

    def json(self, value: Any) -> None:
        self.text(json.dumps(value, indent=2, default=str, sort_keys=False) + "\n")

    def table(self, renderable: RenderableType | Callable[[Console], None]) -> None:
        """A table (or a function printing on a console) for a person."""
        if self.path is None:
            _print(out, renderable)
            return
        buffer = io.StringIO()
        _print(Console(file=buffer, width=160, highlight=False, markup=False, emoji=False,
                       color_system=None), renderable)
        self.text(buffer.getvalue())

    def record(self, data: Mapping[str, Any],
               human: RenderableType | Callable[[Console], None]) -> None:
        """One result: ``data`` as JSON or a one-row CSV, else ``human``."""
        if self.format is Format.JSON:
            self.json(data)
        elif self.format is Format.CSV:
            self.text(to_csv([data]))
        else:
            self.table(human)

    def rows(self, data: Sequence[Mapping[str, Any]],
             human: RenderableType | Callable[[Console], None],
             columns: Sequence[str] | None = None) -> None:
        """Several results: a JSON list, CSV (``columns``, else every key in order of first
        appearance), else ``human``."""
        if self.format is Format.JSON:
            self.json(list(data))
        elif self.format is Format.CSV:
            self.text(to_csv(data, columns))
        else:
            self.table(human)


def _print(console: Console, renderable: RenderableType | Callable[[Console], None]) -> None:
    if callable(renderable) and not hasattr(renderable, "__rich_console__"):
        renderable(console)
    else:
        console.print(renderable)


def flatten(data: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested mappings as dotted keys; lists as JSON text (one CSV cell)."""
    flat: dict[str, Any] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten(value, f"{name}."))
        elif isinstance(value, list | tuple):
            flat[name] = json.dumps(value, default=str)
        else:
            flat[name] = "" if value is None else value
    return flat


def to_csv(rows: Iterable[Mapping[str, Any]], columns: Sequence[str] | None = None) -> str:
    flat = [flatten(r) for r in rows]
    if columns is None:
        seen: dict[str, None] = {}
        for row in flat:
            seen.update(dict.fromkeys(row))
        columns = list(seen)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(columns), extrasaction="ignore",
                            lineterminator="\r\n")  # RFC 4180: a CR in a cell is quoted
    writer.writeheader()
    for row in flat:
        writer.writerow({k: csv_safe.cell(row.get(k, "")) for k in columns})
    return buffer.getvalue()


def resolve(value: str | None, *, json_alias: bool, formats: Sequence[Format],
            default: Format, alias: str | None = None, alias_flag: str = "--format") -> Output:
    """The output a command was asked for, from ``-o`` (a format or a file), ``--json`` and
    (``export``) ``--format``; invalid input when they disagree or the format is not one of
    ``formats``."""
    named = [(f, flag) for f, flag in ((Format.JSON if json_alias else None, "--json"),
                                        (alias, alias_flag)) if f]
    path: Path | None = None
    chosen: Format | None = None
    if value is not None:
        try:
            chosen = Format(value.lower())
        except ValueError:
            path = Path(value)
            chosen = EXTENSIONS.get(path.suffix.lower())
            if chosen is None:
                raise InvalidInput(
                    f"cannot tell the format of '{value}' from its extension", field="-o",
                    hint="a format (" + ", ".join(formats) + ") or a file ending in "
                    + ", ".join(e for e, f in EXTENSIONS.items() if f in formats)) from None
    for other, flag in named:
        try:
            wanted = Format(str(other).lower())
        except ValueError:
            raise InvalidInput(f"unknown format '{other}'", field=flag,
                               hint="one of " + ", ".join(formats)) from None
        if chosen is not None and wanted is not chosen:
            raise InvalidInput(f"{flag} {wanted} disagrees with -o {value} ({chosen})",
                               field="-o", hint="give the format once") from None
        chosen = wanted
    chosen = chosen or default
    if chosen not in formats:
        raise InvalidInput(f"this command does not write {chosen}", field="-o",
                           hint="one of " + ", ".join(formats))
    return Output(chosen, path)


def output_options(formats: Sequence[Format] = COMMON,
                   default: Format = Format.TABLE) -> Callable[[F], F]:
    """``-o/--output FORMAT|FILE`` and ``--json``; the command gets ``output: Output``."""
    names = ", ".join(formats)

    def decorate(command: F) -> F:
        @click.option("-o", "--output", "output_value", metavar="FORMAT|FILE",
                      help=f"{names} [{default}], or a file whose extension names the format")
        @click.option("--json", "json_alias", is_flag=True, help="the same as -o json")
        @functools.wraps(command)
        def wrapper(*args: Any, output_value: str | None = None, json_alias: bool = False,
                    **kwargs: Any) -> Any:
            output = resolve(output_value, json_alias=json_alias, formats=formats,
                             default=default)
            return command(*args, output=output, **kwargs)

        return wrapper  # type: ignore[return-value]

    return decorate


def wants_json(argv: Sequence[str]) -> bool:
    """Whether a command line asks for JSON output (so that its errors, even a usage error
    before the options are parsed, are JSON too)."""
    args = list(argv)
    for i, arg in enumerate(args):
        if arg == "--":
            break
        value: str | None = None
        if arg == "--json":
            return True
        if arg in ("-o", "--output") and i + 1 < len(args):
            value = args[i + 1]
        elif arg.startswith("--output="):
            value = arg.split("=", 1)[1]
        elif arg.startswith("-o") and len(arg) > 2 and not arg.startswith("--"):
            value = arg[2:]
        if value is not None and (value.lower() == "json" or value.lower().endswith(".json")):
            return True
    return False


def json_error(message: str, *, exit_code: int, file: str | None = None,
               field: str | None = None, hint: str | None = None) -> str:
    """The one JSON shape of an error."""
    return json.dumps({"error": {"message": message, "file": file, "field": field,
                                 "hint": hint, "exit_code": exit_code}}, indent=2)
