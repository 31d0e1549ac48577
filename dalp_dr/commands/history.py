"""``dalp-dr history``: list, show, verify and checkpoint the sealed history of runs."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click
from rich.console import Console
from rich.table import Table
from rich.text import Text

from dalp_dr.commands.completion import complete_run_id
from dalp_dr.commands.output import Format, Output, output_options
from dalp_dr.commands.shared import EXIT_FAILED, Exit, report, settings_of
from dalp_dr.commands.shared import report as report_line
from dalp_dr.config import Settings
from dalp_dr.console import err
from dalp_dr.durations import format_duration
from dalp_dr.errors import HintKey, InvalidInput, NoHistory, TamperedHistory, UnknownRun
from dalp_dr.results import Outcome
from dalp_dr.timefmt import format_time

if TYPE_CHECKING:
    from dalp_dr.integrity import VerifyReport
    from dalp_dr.results import RunResult


@click.group()
def history() -> None:
    """Past drill runs."""


@history.command("list")
@click.option("--drill", "drill_name", help="only this drill")
@click.option("--environment", help="only runs in this environment")
@click.option("--outcome", "outcomes", multiple=True, metavar="OUTCOME",
              type=click.Choice([o.value for o in Outcome], case_sensitive=False),
              help="only runs that ended so (repeatable): "
                   + ", ".join(o.value for o in Outcome))
@click.option("--from", "start", metavar="WHEN",
              help="runs started from then: 2026Q3, 2026-07-01 or an ISO time (UTC unless "
                   "it says otherwise)")
@click.option("--to", "end", metavar="WHEN",
              help="runs started before then; a quarter or a day includes all of it")
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 1_000_000))
@output_options()
@click.pass_context
def history_list(ctx: click.Context, drill_name: str | None, environment: str | None,
                 outcomes: tuple[str, ...], start: str | None, end: str | None, limit: int,
                 output: Output) -> None:
    """List runs, newest first, with their RTO and RPO verdicts and margins, as their seals
    say they were (a row edited after its seal is marked ROW EDITED and shows the sealed
    values, a changed record TAMPERED); a warning names the first problem of the whole
    history, a note how many runs the limit hid. Listing is not the check: exit 0 unless
    the store cannot be read ('history verify' exits 1); no history yet is an empty list."""
    # lazy: the history store (SQLAlchemy, psycopg) is heavy at start-up
    from dalp_dr.export.records import parse_bound
    from dalp_dr.history import checkpointer, open_store
    from dalp_dr.history.base import RunFilter
    from dalp_dr.history.listing import RunPage, list_page
    from dalp_dr.history.views import audit
    from dalp_dr.render import history_table

    where = RunFilter(drill=drill_name or None, environment=environment or None,
                      outcomes=tuple(Outcome(o.lower()) for o in outcomes),
                      start=parse_bound(start, end=False, field="--from") if start else None,
                      end=parse_bound(end, end=True, field="--to") if end else None)
    if where.start and where.end and where.start >= where.end:
        raise InvalidInput("--from is not before --to", field="--from",
                           hint="give a period that starts before it ends")
    settings = settings_of(ctx)
    problems: list[str] = []
    try:
        store = open_store(settings.store_url, results_dir=settings.results_dir, create=False)
    except NoHistory as exc:
        page = RunPage(runs=(), total=0)
        report("note", f"{exc} (nothing recorded there; nothing was created)")
    else:
        try:
            page = list_page(store, where, limit)
            problems = [str(p) for p in audit(store, checkpointer(settings),
                                              check_evidence=False).problems]
        finally:
            store.close()
    data = [r.model_dump(mode="json") for r in page.runs]
    footer = (f"{len(page.runs)} of {page.total} runs shown (--limit {limit})"
              if page.hidden else None)
    output.rows(data, history_table(page.runs, caption=footer))
    if footer is not None and (output.format is not Format.TABLE or output.path is not None):
        report("note", footer)  # the table's caption says it on a terminal
    if problems:  # a page can hide an edited run: the whole history says so
        report("warning", f"history does NOT verify: {problems[0]} (rows show sealed "
               "values where a row was edited; 'dalp-dr history verify' is the check)")


def _audit(settings: Settings, no_evidence: bool = False,
           expect_head: str | None = None) -> tuple[VerifyReport, str]:
    # lazy: the history store (SQLAlchemy, psycopg) is heavy at start-up
    from dalp_dr.history import checkpointer, open_store
    from dalp_dr.history.views import audit

    # no history yet: verify fails (nothing to hold the checkpoints against), creating nothing
    store = open_store(settings.store_url, results_dir=settings.results_dir, create=False)
    try:
        report = audit(store, checkpointer(settings), check_evidence=not no_evidence,
                       expect_head=expect_head)
        where = store.describe()
    finally:
        store.close()
    return report, where


@history.command("verify")
@click.option("--no-evidence", is_flag=True, help="check records and links only, not the "
                                                  "evidence files")
@click.option("--expect-head", metavar="[SEQ:]DIGEST",
              help="a chain head written down earlier ('history checkpoint'): it must be in "
                   "this chain")
@output_options()
@click.pass_context
def history_verify(ctx: click.Context, no_evidence: bool, expect_head: str | None,
                   output: Output) -> None:
    """Recompute the history's hash chain and evidence digests and hold them against every
    signed checkpoint; exit 1 naming the first changed, deleted, reordered, unsealed or
    rewritten record, or evidence that is missing or changed."""
    from dalp_dr.integrity import ProblemKind  # lazy: ~13 ms (hashing, models) at start-up

    report, where = _audit(settings_of(ctx), no_evidence, expect_head)
    tampered = any(p.kind is ProblemKind.TAMPERED for p in report.problems)
    verdict = "intact" if not report.problems else "tampered" if tampered else "not verified"

    def human(console: Console) -> None:
        if report.problems:
            return
        console.print(Text(
            f"history intact: {report.records} sealed records, chain head "
            f"#{report.head_seq} {report.head} ({where}); {report.checkpoints} signed "
            "checkpoint(s) agree"
            + (f"; {report.unsealed_running} run(s) in progress, sealed when they end"
               if report.unsealed_running else "")), soft_wrap=True)

    output.record({**report.model_dump(mode="json"), "intact": report.intact,
                   "verdict": verdict, "store": where}, human)
    if report.problems:
        say = err.print
        say(f"history {verdict.upper()}: first problem: {report.problems[0]}", markup=False,
            soft_wrap=True)
        if any(p.kind is ProblemKind.UNPINNED for p in report.problems):
            say("  (unpinned entries: review them, then 'dalp-dr history checkpoint "
                "--sign' pins the chain as it is now)", markup=False, soft_wrap=True)
        for problem in report.problems[1:10]:
            say(f"  also: {problem}", markup=False, soft_wrap=True)
        if len(report.problems) > 10:
            say(f"  ... {len(report.problems) - 10} more", markup=False)
    if not output.is_json:
        for note in report.notes:
            err.print(f"note: {note}", markup=False, soft_wrap=True)
    if report.problems:
        raise Exit(EXIT_FAILED)


@history.command("checkpoint")
@click.option("--sign", "sign_now", is_flag=True,
              help="verify the history, then sign its current head now (a history sealed "
                   "before its key existed, or to pin it before an audit)")
@output_options()
@click.pass_context
def history_checkpoint(ctx: click.Context, sign_now: bool, output: Output) -> None:
    """Print the latest signed chain head (for a ticket or an auditor's file); later,
    'history verify --expect-head SEQ:DIGEST' shows the chain still holds it."""
    # lazy: the history store (SQLAlchemy, psycopg) and cryptography are heavy at start-up
    from dalp_dr import checkpoints
    from dalp_dr.history import checkpointer
    from dalp_dr.integrity import ProblemKind

    settings = settings_of(ctx)
    pinned = checkpointer(settings)
    if sign_now:
        report, _where = _audit(settings)
        blocking = [p for p in report.problems if p.kind is not ProblemKind.UNPINNED]
        if blocking:
            raise TamperedHistory(f"history does not verify, not signed: {blocking[0]} "
                                  "(see 'dalp-dr history verify')")
        if report.head_seq == 0:
            raise InvalidInput("the history has no sealed record yet", field="--sign")
        first = (report.latest_checkpoint_seq or 0) + 1
        if first <= report.head_seq:
            err.print(f"pinning entries #{first}..#{report.head_seq} as they are now (no "
                      "signed checkpoint covered them: review them with 'history list' / "
                      "'history show' first)", markup=False, soft_wrap=True)
        pinned.sign_head(report.head_seq, report.head)
    latest = checkpoints.newest(pinned.sources()[0], pinned.trusted())
    if latest is None:
        message = ("no signed checkpoint (no signing key, or nothing sealed since it was "
                   "created): 'dalp-dr keys init', then 'dalp-dr history checkpoint --sign'")
        output.record({"checkpoint": None, "message": message}, lambda console: None)
        report_line("error", message)
        raise Exit(EXIT_FAILED)
    source, cp = latest

    def human(console: Console) -> None:
        console.print(Text(f"checkpoint {cp.seq}:{cp.head}"), soft_wrap=True)
        console.print(Text(f"signed {format_time(cp.at)} by {cp.key_fingerprint} ({source})"),
                      soft_wrap=True)

    output.record({"checkpoint": f"{cp.seq}:{cp.head}", "source": source,
                   **cp.model_dump(mode="json")}, human)


@history.command("show")
@click.argument("run_id", shell_complete=complete_run_id)
@output_options()
@click.pass_context
def history_show(ctx: click.Context, run_id: str, output: Output) -> None:
    """Show one run: figures, verdicts, phases and where its evidence is."""
    # lazy: the history store (SQLAlchemy, psycopg) is heavy at start-up
    from dalp_dr.history import open_store
    from dalp_dr.history.views import seal_of
    from dalp_dr.integrity import evidence_location

    settings = settings_of(ctx)
    try:
        store = open_store(settings.store_url, results_dir=settings.results_dir, create=False)
    except NoHistory as exc:
        raise UnknownRun(f"no run '{run_id}': {exc}", hint_key=HintKey.LIST_RUNS) from None
    try:
        result = store.get(run_id)
        seal, problem = seal_of(store, result.run_id, result.outcome)
    finally:
        store.close()
    evidence = evidence_location(result.evidence_dir, settings.results_dir)
    output.record({**result.model_dump(mode="json"), "seal": seal.value,
                   "seal_problem": problem, "evidence_now": evidence},
                  lambda console: _show_run(console, result, seal.value, problem, evidence))
    if problem is not None:
        report_line("error", f"this record does NOT match its seal ({seal.value}): {problem}; "
                             "see 'dalp-dr history verify'")
        raise Exit(EXIT_FAILED)


def _show_run(out: Console, result: RunResult, seal: str, problem: str | None,
              evidence: Path | None) -> None:
    """One run for a person; table cells from the record are Text: never read as markup."""
    from dalp_dr.render import print_result  # lazy: imports the history store's types

    out.print(f"{result.drill} ({result.topology}/{result.scenario}) environment "
              f"{result.environment}, owner {result.owner}; {result.trigger.value} by "
              f"{result.operator}; spec sha256 {result.spec_hash[:16]}", markup=False)
    print_result(out, result)
    table = Table(box=None, title="phases")
    for col in ("phase", "status", "started", "duration", "playbook", "note"):
        table.add_column(col)
    for p in result.phases:
        table.add_row(p.phase.value, p.status.value, format_time(p.started_at, millis=True),
                      format_duration(p.duration), Text(p.playbook or ""),
                      Text(p.message or ""))
    out.print(table)
    prov = result.provenance
    if prov is None:
        out.print("provenance: not recorded (the run predates provenance records)")
    else:
        out.print(f"provenance: dalp-dr {prov.dalp_dr_version}, ansible-core "
                  f"{prov.ansible_core_version or 'not installed'}, controller "
                  f"{prov.controller}; operator {prov.operator} (from "
                  f"{prov.operator_source.value})", markup=False)
        files = Table(box=None, title="files read (sha256, first 16 hex digits; --json: all)")
        files.add_column("file")
        files.add_column("sha256")
        for name, digest in prov.files.items():
            files.add_row(Text(name), Text(digest[:16]))
        out.print(files)
        for note in prov.unresolved:
            out.print(f"not resolved before the run: {note}", markup=False)
    out.print(f"evidence now: {evidence or 'none'}", markup=False)
    if problem is None:
        out.print(f"seal: {seal}", markup=False)


@history.command("approve")
@click.argument("run_id", metavar="RUN", shell_complete=complete_run_id)
@click.option("--reviewer", required=True, help="who signs off (name, role)")
@click.option("--note", required=True, help="what was reviewed and concluded")
@output_options()
@click.pass_context
def history_approve(ctx: click.Context, run_id: str, reviewer: str, note: str,
                    output: Output) -> None:
    """Sign off a sealed run as its reviewer: appends an approval record (reviewer, time,
    note) sealed into the history's hash chain, so 'history verify' catches an edited or
    deleted approval. The report shows every approval with its run."""
    # lazy: the history store (SQLAlchemy, psycopg) is heavy at start-up
    from dalp_dr.clock import utcnow
    from dalp_dr.history import open_history
    from dalp_dr.history.approvals import Approval

    settings = settings_of(ctx)
    store = open_history(settings, create=False)
    try:
        result = store.get(run_id)  # an exact id or a unique prefix
        approval = Approval.new(result.run_id, reviewer, note, utcnow())
        entry = store.approve(approval)
    finally:
        store.close()
    data = {**approval.model_dump(mode="json"), "chain_seq": entry.seq,
            "chain_digest": entry.digest}
    output.record(data, Text(
        f"approved run {approval.run_id} by {approval.reviewer} at "
        f"{format_time(approval.approved_at)}; sealed as chain entry #{entry.seq} "
        f"({entry.digest[:16]}...)"))
