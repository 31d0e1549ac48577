"""The dalp-dr command line: parses, calls the library, renders. Exit codes are chosen here,
in :func:`main`, and by the commands (``Exit``):

0 objectives met; 1 objectives missed or drill failed; 2 invalid input; 130 interrupted.

One module per command group; what they share is in :mod:`dalp_dr.commands.shared`.
"""

from __future__ import annotations

import sys

import click

from dalp_dr.commands import hints
from dalp_dr.commands.backup import backup
from dalp_dr.commands.collection import collection
from dalp_dr.commands.completion import completion
from dalp_dr.commands.config import config
from dalp_dr.commands.doctor import doctor
from dalp_dr.commands.drill import drill
from dalp_dr.commands.export import export
from dalp_dr.commands.history import history
from dalp_dr.commands.keys import keys
from dalp_dr.commands.lab import lab
from dalp_dr.commands.output import wants_json
from dalp_dr.commands.report import report
from dalp_dr.commands.schedule import schedule
from dalp_dr.commands.scheduler import scheduler
from dalp_dr.commands.shared import (
    ERRORS,
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_INVALID,
    EXIT_OK,
    Exit,
    route_ansible_warnings,
)
from dalp_dr.commands.store import store
from dalp_dr.config import VARIABLES, load_settings
from dalp_dr.console import unexpected
from dalp_dr.errors import DalpDrError, Interrupted, InvalidInput

__all__ = ["cli", "main"]


def _epilog() -> str:
    """The root help's list of every DALP_DR_* variable (``\b``: click keeps the lines)."""
    width = max(len(v.name.value) for v in VARIABLES)
    lines = [f"  {v.name.value:<{width}}  {v.description}"
             + (f" [{v.default}]" if v.default else "") for v in VARIABLES]
    return ("\b\nConfiguration, each overriding the one before: defaults, "
            "/etc/dalp-dr/config.yaml,\n$XDG_CONFIG_HOME/dalp-dr/config.yaml (keys: the "
            "variables' names without DALP_DR_,\nlower case), DALP_DR_* variables, flags. "
            "'dalp-dr config show' prints what is in effect.\n\n\b\nEnvironment variables:\n"
            + "\n".join(lines)
            + "\n\n\b\nCompletion: eval \"$(dalp-dr completion bash)\" (or zsh; fish: "
              "dalp-dr completion fish)")


@click.group(context_settings={"help_option_names": ["-h", "--help"]}, epilog=_epilog())
@click.option("--results-dir", help="evidence directory [<project>/results]; "
                                    "DALP_DR_RESULTS")
@click.option("--store", help="history store URL [sqlite:///<results-dir>/history.sqlite]; "
                              "DALP_DR_STORE")
@click.option("--project-dir", help="where drills/, playbooks/, inventories/ live; "
                                    "DALP_DR_PROJECT")
@click.option("--keys", "keys_dir",
              help="the history's signing key directory (checkpoints and bundles) "
                   "[~/.config/dalp-dr]; DALP_DR_KEYS")
@click.version_option(package_name="dalp-dr")
@click.pass_context
def cli(ctx: click.Context, results_dir: str | None, store: str | None,
        project_dir: str | None, keys_dir: str | None) -> None:
    """Disaster-recovery drills for self-hosted DALP: measured RTO/RPO, kept in history."""
    ctx.obj = load_settings(results_dir=results_dir, store=store, project_dir=project_dir,
                            keys=keys_dir)


for _group in (drill, lab, backup, store, schedule, scheduler, doctor, keys, export, history,
               report, config, completion, collection):
    cli.add_command(_group)

hints.install()  # library errors name this CLI's options and commands from now on
route_ansible_warnings()  # Ansible's own [WARNING] lines: events on a JSON stream, not text


def main(argv: list[str] | None = None) -> int:
    """Run one command; its outcome as an exit code (the one place errors become codes).

    Every error is reported once, in one shape: ``error: <message> (<hint>)`` on stderr; a
    JSON object ``{"error": {...}}`` on stdout when the command line asked for JSON output
    (``-o json``, ``--json``, ``-o FILE.json``); an event on the JSON-lines stream of
    ``--log-format json``."""
    ERRORS.use(None)
    args = list(sys.argv[1:] if argv is None else argv)
    ERRORS.json_output = wants_json(args)
    try:
        cli.main(args=args, prog_name="dalp-dr", standalone_mode=False)
    except Exit as exc:
        return exc.code
    except (click.exceptions.Abort, KeyboardInterrupt):
        return _failed("interrupted", EXIT_INTERRUPTED, kind="interrupted")
    except Interrupted as exc:
        return _failed(f"{exc}", EXIT_INTERRUPTED, kind="interrupted")
    except click.ClickException as exc:
        param = getattr(exc, "param", None)
        field = (param.opts[0] if param is not None and param.opts else
                 param.name if param is not None else None)
        return _failed(exc.format_message(), EXIT_INVALID, field=field,
                       hint=_usage_hint(exc))
    except InvalidInput as exc:
        return _failed(exc.detail, EXIT_INVALID, file=exc.source, field=exc.where(),
                       hint=hints.hint_text(exc))
    except DalpDrError as exc:
        return _failed(Exception.__str__(exc), EXIT_FAILED, hint=hints.hint_text(exc))
    except Exception as exc:  # nobody expected it: exit 1, one line (DALP_DR_DEBUG=1: more)
        return _failed(unexpected(exc), EXIT_FAILED)
    return EXIT_OK


def _usage_hint(exc: click.ClickException) -> str | None:
    ctx = getattr(exc, "ctx", None)
    if ctx is None:
        return None
    return f"see '{ctx.command_path} --help'"


def _failed(message: str, code: int, *, kind: str = "error", file: str | None = None,
            field: str | None = None, hint: str | None = None) -> int:
    ERRORS.fail(message, code, kind=kind, file=file, field=field, hint=hint)
    return code
