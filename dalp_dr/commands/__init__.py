"""The dalp-dr command line: parses, calls the library, renders. Exit codes are chosen here,
in :func:`main`, and by the commands (``Exit``):

0 objectives met; 1 objectives missed or drill failed; 2 invalid input; 130 interrupted.

One module per command group; what they share is in :mod:`dalp_dr.commands.shared`.
"""

from __future__ import annotations

import click

from dalp_dr.commands import hints
from dalp_dr.commands.backup import backup
from dalp_dr.commands.doctor import doctor
from dalp_dr.commands.drill import drill
from dalp_dr.commands.export import export
from dalp_dr.commands.history import history
from dalp_dr.commands.keys import keys
from dalp_dr.commands.lab import lab
from dalp_dr.commands.schedule import schedule
from dalp_dr.commands.scheduler import scheduler
from dalp_dr.commands.shared import (
    ERRORS,
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_INVALID,
    EXIT_OK,
    Exit,
    report,
)
from dalp_dr.commands.store import store
from dalp_dr.config import EnvVar, load_settings
from dalp_dr.console import err, unexpected
from dalp_dr.errors import DalpDrError, Interrupted, InvalidInput

__all__ = ["cli", "main"]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--results-dir", envvar=EnvVar.RESULTS, help="evidence directory [./results]")
@click.option("--store", envvar=EnvVar.STORE,
              help="history store URL [sqlite:///<results-dir>/history.sqlite]")
@click.option("--project-dir", envvar=EnvVar.PROJECT,
              help="where drills/, playbooks/, inventories/ live")
@click.option("--keys", "keys_dir", envvar=EnvVar.KEYS,
              help="the history's signing key directory (checkpoints and bundles) "
                   "[~/.config/dalp-dr]")
@click.version_option(package_name="dalp-dr")
@click.pass_context
def cli(ctx: click.Context, results_dir: str | None, store: str | None,
        project_dir: str | None, keys_dir: str | None) -> None:
    """Disaster-recovery drills for self-hosted DALP: measured RTO/RPO, kept in history."""
    ctx.obj = load_settings(results_dir=results_dir, store=store, project_dir=project_dir,
                            keys=keys_dir)


for _group in (drill, lab, backup, store, schedule, scheduler, doctor, keys, export, history):
    cli.add_command(_group)

hints.install()  # library errors name this CLI's options and commands from now on


def main(argv: list[str] | None = None) -> int:
    """Run one command; its outcome as an exit code (the one place errors become codes)."""
    ERRORS.use(None)
    try:
        cli.main(args=argv, prog_name="dalp-dr", standalone_mode=False)
    except Exit as exc:
        return exc.code
    except click.exceptions.Abort:
        err.print("interrupted")
        return EXIT_INTERRUPTED
    except click.ClickException as exc:
        exc.show()
        return EXIT_INVALID
    except Interrupted as exc:
        report("interrupted", f"{exc}")
        return EXIT_INTERRUPTED
    except KeyboardInterrupt:
        report("interrupted", "interrupted")
        return EXIT_INTERRUPTED
    except InvalidInput as exc:
        report("error", f"{exc}")
        return EXIT_INVALID
    except DalpDrError as exc:
        report("failed", f"failed: {exc}" if ERRORS.json_lines is None else f"{exc}")
        return EXIT_FAILED
    except Exception as exc:  # nobody expected it: exit 1, one line (DALP_DR_DEBUG=1: more)
        report("failed", unexpected(exc))
        return EXIT_FAILED
    return EXIT_OK
