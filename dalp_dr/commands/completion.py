"""Shell completion: ``dalp-dr completion bash|zsh|fish`` prints the script (click's shell
completion), and :func:`complete_run_id` completes a run id argument from the history
(``history show``, ``history approve``, ``drill recover``)::

    eval "$(dalp-dr completion bash)"     # ~/.bashrc
    eval "$(dalp-dr completion zsh)"      # ~/.zshrc
    dalp-dr completion fish > ~/.config/fish/completions/dalp-dr.fish
"""

from __future__ import annotations

import click
from click.shell_completion import CompletionItem, get_completion_class

from dalp_dr.commands.output import Format, Output, output_options

SHELLS = ("bash", "zsh", "fish")
COMPLETE_VARIABLE = "_DALP_DR_COMPLETE"
"""what the script sets when it asks dalp-dr for completions (click's protocol)"""
RUN_IDS = 500
"""completions come from the newest this many runs"""

INSTALL = {"bash": 'eval "$(dalp-dr completion bash)" in ~/.bashrc',
           "zsh": 'eval "$(dalp-dr completion zsh)" in ~/.zshrc',
           "fish": "dalp-dr completion fish > ~/.config/fish/completions/dalp-dr.fish"}


def complete_run_id(ctx: click.Context, _param: click.Parameter,
                    incomplete: str) -> list[CompletionItem]:
    """The run ids in the configured history that start with what was typed, newest first,
    each with its drill, outcome and start as help. The command line's own --store,
    --results-dir and --project-dir count; no history (or one that cannot be read) completes
    nothing, and creates nothing."""
    from dalp_dr.config import load_settings
    from dalp_dr.errors import DalpDrError
    from dalp_dr.history import open_store

    params = ctx.find_root().params
    try:
        settings = load_settings(results_dir=params.get("results_dir"),
                                 store=params.get("store"),
                                 project_dir=params.get("project_dir"),
                                 keys=params.get("keys_dir"))
        store = open_store(settings.store_url, results_dir=settings.results_dir,
                           create=False)
    except DalpDrError:
        return []
    try:
        runs = store.list_runs(limit=RUN_IDS)
    except DalpDrError:
        return []
    finally:
        store.close()
    return [CompletionItem(r.run_id, help=f"{r.drill} {r.outcome.value} "
                                          f"{r.started_at:%Y-%m-%d %H:%M} UTC")
            for r in runs if r.run_id.startswith(incomplete)]


@click.command("completion")
@click.argument("shell", type=click.Choice(SHELLS))
@output_options()
@click.pass_context
def completion(ctx: click.Context, shell: str, output: Output) -> None:
    """Print the shell completion script for SHELL (commands, options, run ids): bash and
    zsh: eval "$(dalp-dr completion bash)" in ~/.bashrc or ~/.zshrc; fish: dalp-dr
    completion fish > ~/.config/fish/completions/dalp-dr.fish."""
    cls = get_completion_class(shell)
    assert cls is not None  # click knows every shell of SHELLS
    script = cls(ctx.find_root().command, {}, "dalp-dr", COMPLETE_VARIABLE).source()
    if output.format is Format.TABLE:
        output.text(script)  # the script itself, as the shell reads it
    else:
        output.record({"shell": shell, "script": script, "install": INSTALL[shell]},
                      script)
