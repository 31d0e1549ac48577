"""What the command modules share: exit codes, the settings of the invocation, the error
reporter, and the options several commands take (--json, --drills, the vault options).

``--vault-id`` and ``--vault-password-file`` are for the commands that read inventories and
run playbooks (drill run/plan/recover, scheduler run, doctor), as ansible-playbook takes them;
``ANSIBLE_VAULT_PASSWORD_FILE`` and ``ANSIBLE_VAULT_IDENTITY_LIST`` are honoured as well.
The secrets are loaded before the command does anything (dalp_dr.vault.activate).
"""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Callable, Sequence
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click
from pydantic import BaseModel
from rich.console import RenderableType
from rich.table import Table

from dalp_dr import vault
from dalp_dr.config import Settings
from dalp_dr.console import err, out
from dalp_dr.durations import parse_duration
from dalp_dr.errors import InvalidInput
from dalp_dr.results import Outcome

if TYPE_CHECKING:
    from dalp_dr.progress import JsonLines

EXIT_OK, EXIT_FAILED, EXIT_INVALID, EXIT_INTERRUPTED = 0, 1, 2, 130

F = TypeVar("F", bound=Callable[..., Any])
Row = TypeVar("Row", bound=BaseModel)


def outcome_exit_code(outcome: Outcome) -> int:
    """A finished run's exit code: objectives met 0, interrupted 130, anything else 1."""
    if outcome is Outcome.PASSED:
        return EXIT_OK
    if outcome is Outcome.ABORTED:
        return EXIT_INTERRUPTED
    return EXIT_FAILED


class Exit(Exception):
    """A command's verdict: main() returns this exit code."""

    def __init__(self, code: int) -> None:
        self.code = code


def settings_of(ctx: click.Context) -> Settings:
    """The settings the root group loaded from the global options and the environment."""
    settings = ctx.obj
    assert isinstance(settings, Settings)
    return settings


class ErrorChannel:
    """Where warnings and errors go: stderr as text, or JSON lines once a command run with
    --log-format json chose so; the final error also as one JSON object on stdout when the
    command line asked for JSON output (main() resets both for every invocation)."""

    def __init__(self) -> None:
        self.json_lines: JsonLines | None = None
        self.json_output = False

    def use(self, json_lines: JsonLines | None) -> None:
        self.json_lines = json_lines

    def report(self, kind: str, message: str) -> None:
        """A warning (or a note) as the run goes on."""
        if self.json_lines is not None:
            self.json_lines.emit(kind, message=message)
        else:
            err.print(f"{kind}: {message}" if kind in ("error", "warning") else message,
                      markup=False, soft_wrap=True)

    def fail(self, message: str, exit_code: int, *, kind: str = "error",
             file: str | None = None, field: str | None = None,
             hint: str | None = None) -> None:
        """The error that ends the command, in every channel that was asked for."""
        from dalp_dr.commands.output import json_error

        if self.json_lines is not None:
            self.json_lines.emit(kind, message=message, file=file, field=field, hint=hint,
                                 exit_code=exit_code)
        if self.json_output:
            click.echo(json_error(message, exit_code=exit_code, file=file, field=field,
                                  hint=hint))
        if self.json_lines is None:
            where = ": ".join(p for p in (file, field) if p)
            text = f"{where}: {message}" if where else message
            text += f" ({hint})" if hint else ""
            err.print(text if kind == "interrupted" else f"error: {text}", markup=False,
                      soft_wrap=True)


ERRORS = ErrorChannel()


class WarningsToErrors(logging.Handler):
    """Log records (Ansible's own warnings, see dalp_dr.ansible_warnings) as warnings of the
    error channel: a ``warning`` event on a JSON-lines stream, else a ``warning:`` line."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            ERRORS.report("warning", f"ansible: {record.getMessage()}")
        except Exception:  # a warning that cannot be shown must not end the command
            self.handleError(record)


def route_ansible_warnings() -> None:
    """Ansible's in-process warnings go through the error channel from now on (once)."""
    from dalp_dr.ansible_warnings import LOGGER

    if not any(isinstance(h, WarningsToErrors) for h in LOGGER.handlers):
        LOGGER.addHandler(WarningsToErrors())
        LOGGER.propagate = False


def report(kind: str, message: str) -> None:
    """A warning or an error line, as text or JSON (see :class:`ErrorChannel`)."""
    ERRORS.report(kind, message)


def duration_option(value: str | None, name: str) -> timedelta | None:
    """An option's duration (30s, 15m, 1h), or invalid input naming the option."""
    if value is None:
        return None
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise InvalidInput(str(exc), field=name, hint="a duration such as 30s, 15m or 1h"
                           ) from None


def keys_dir_of(ctx: click.Context, explicit: str | None) -> Path:
    """A command's own --keys, else the global one (both default to DALP_DR_KEYS)."""
    return Path(explicit) if explicit else settings_of(ctx).keys_dir


def drills_dir_of(ctx: click.Context, directory: str | None) -> Path:
    """The --drills/--dir directory, else the project's drills/."""
    return Path(directory) if directory else settings_of(ctx).project_dir / "drills"


def json_option(help_text: str | None = None) -> Callable[[F], F]:
    """``--json``: print the command's result as JSON."""
    return click.option("--json", "as_json", is_flag=True, help=help_text)


def print_rows(rows: Sequence[Row], as_json: bool, columns: Sequence[str],
               cells: Callable[[Row], Sequence[RenderableType]]) -> None:
    """Rows as a JSON list (--json), else as a table with these columns."""
    if as_json:
        click.echo(json.dumps([r.model_dump(mode="json") for r in rows], indent=2))
        return
    table = Table(box=None)
    for col in columns:
        table.add_column(col)
    for row in rows:
        table.add_row(*cells(row))
    out.print(table)


DRILLS_OPTION = click.option("--drills", "directory", type=click.Path(file_okay=False),
                             help="drill directory [<project>/drills]")


def vault_options(command: F) -> F:
    """``--vault-id`` and ``--vault-password-file``, activated before the command runs."""

    @click.option("--vault-id", "vault_ids", multiple=True, metavar="[LABEL@]SOURCE",
                  help="a vault identity, as ansible-playbook takes it (repeatable)")
    @click.option("--vault-password-file", "vault_password_files", multiple=True,
                  metavar="FILE", help="a vault password file or client script (repeatable)")
    @functools.wraps(command)
    def wrapper(*args: Any, vault_ids: tuple[str, ...] = (),
                vault_password_files: tuple[str, ...] = (), **kwargs: Any) -> Any:
        vault.activate(vault.VaultIdentities.from_options(vault_ids, vault_password_files))
        return command(*args, **kwargs)

    return wrapper  # type: ignore[return-value]
