"""Human renderings of results: the plain-text summary (evidence) and rich tables (CLI).

Every string that comes from a run (drill, environment, messages, what playbooks reported,
store rows) is data: it reaches Rich only as ``Text`` (never parsed as markup or emoji
codes), and colour is given by styles, so these renderings are safe on any console.
"""

from __future__ import annotations

import io
import math
from collections.abc import Iterator, Sequence

from rich import box
from rich.console import Console, ConsoleOptions, RenderableType, RenderResult
from rich.padding import Padding
from rich.table import Table
from rich.text import Text

from dalp_dr.durations import format_duration, format_offset
from dalp_dr.history.listing import ListedRun
from dalp_dr.results import Measurements, ObjectiveVerdict, Outcome, RunResult, Status
from dalp_dr.timefmt import format_time
from dalp_dr.timeline import offset
from dalp_dr.verdict import SPLIT_BRAIN

_STYLE = {Status.MET: "green", Status.MISSED: "red", Status.UNKNOWN: "yellow"}
_OUTCOME_STYLE = {Outcome.PASSED: "bold green", Outcome.ABORTED: "bold yellow",
                  Outcome.RUNNING: "yellow"}


def _n(value: float | None) -> str:
    if value is None:
        return "-"
    return format_duration(value) if math.isfinite(value) else str(value)


def verdict_table(result: RunResult) -> Table:
    table = Table(title=Text(f"{result.drill}  run {result.run_id}"), box=box.SIMPLE_HEAVY)
    for col in ("figure", "measured", "objective", "verdict", "margin"):
        table.add_column(col)
    groups: list[tuple[str | None, Measurements | None]] = (
        [(name, m) for name, m in result.populations.items()] if result.populations
        else [(None, result.measurements)])
    objectives = (("recovery time", "rto", "recovery_time"),
                  ("data-loss window", "rpo", "data_loss_window"))
    for name, m in groups:
        prefix = f"{name}: " if name else ""
        by_name = {v.objective: v for v in result.verdicts if v.population == name}
        for label, objective, figure in objectives:
            verdict = by_name.get(objective)
            value = getattr(m, figure) if m else None
            bound = getattr(m, f"{figure}_lower_bound") if m else None
            measured = f">= {_n(bound)}" if value is None and bound is not None else _n(value)
            if figure == "data_loss_window" and m is not None and m.divergence is not None:
                measured += f" ({m.data_loss_basis.value})"
            target = f"{objective.upper()} {_n(result.objectives.get(objective))}"
            table.add_row(Text(prefix + label), measured, target,
                          Text(verdict.status.value, style=_STYLE[verdict.status]) if verdict
                          else "-", _n(verdict.margin) if verdict else "-")
        table.add_row(Text(prefix + "lost writes"),
                      str(m.lost_writes) if m and m.lost_writes is not None else "-")
        if m is not None and m.divergence is not None:
            _divergence_rows(table, prefix, m)
        table.add_row(Text(prefix + "write outage (client)"), _outage(m))
        if m is not None and m.split_brain is not None:
            _split_brain_rows(table, prefix, m, by_name.get(SPLIT_BRAIN),
                              result.objectives.get(SPLIT_BRAIN))
        if name is not None:
            table.add_section()
    m = result.measurements
    rtt = next((v for v in result.verdicts if v.objective == "rtt"
                and v.population == (groups[0][0] if result.populations else None)), None)
    label = "RTT (to converged)" if result.convergence else "RTT (to verified)"
    measured = (f">= {_n(m.rtt_lower_bound)}" if m and m.rtt is None
                and m.rtt_lower_bound is not None else _n(m.rtt) if m else "-")
    table.add_row(label, measured,
                  f"RTT {_n(result.objectives.get('rtt'))}" if "rtt" in result.objectives
                  else "",
                  Text(rtt.status.value, style=_STYLE[rtt.status]) if rtt else "",
                  _n(rtt.margin) if rtt else "")
    table.add_row("resolution", _n(m.resolution) if m else "-")
    return table


def _outage(m: Measurements | None) -> str:
    """The write outage; when no write failed but one was held longer than a heartbeat
    interval (a route holding writes through the switch), how long it waited."""
    if m is None:
        return "-"
    held = m.longest_write_wait
    if m.write_outage == 0 and held is not None and held > m.resolution:
        return f"{_n(m.write_outage)} (no write failed; one waited {_n(held)})"
    return _n(m.write_outage)


def _divergence_rows(table: Table, prefix: str, m: Measurements) -> None:
    """What the divergence probe read from the old primary's WAL, or why it could not."""
    found = m.divergence
    assert found is not None
    if not found.available:  # the reason quotes a target: Text, never markup
        table.add_row(Text(prefix + "lost transactions (WAL)"),
                      Text(f"WAL of the old primary unavailable: {found.reason}"))
        return
    sampled = (f"; heartbeat sampled {_n(m.sampled_data_loss_window)}"
               if m.sampled_data_loss_window is not None else "")
    table.add_row(Text(prefix + "lost transactions (WAL)"),
                  Text(f"{found.lost_transactions} after the fork at {found.fork_lsn}"
                       f"{sampled}"))
    if found.never_acknowledged:
        table.add_row(Text(prefix + "none acknowledged"), Text(
            found.never_acknowledged + (f" (they span {_n(found.window)})"
                                        if found.window is not None else "")))
    if found.contradicted:
        table.add_row(Text(prefix + "exact window not used"), Text(found.contradicted))
    if found.tables:
        table.add_row(Text(prefix + "lost commits by table"),
                      Text(", ".join(f"{t.table} {t.commits}" for t in found.tables[:3])))


def convergence_table(result: RunResult) -> Table | None:
    """The converge probes: met when (seconds after the fault), or why not."""
    if not result.convergence:
        return None
    table = Table(title="convergence", box=box.SIMPLE)
    for col in ("probe", "met", "after fault", "value", "reference", "polls", "detail"):
        table.add_column(col)
    for probe in result.convergence:  # what targets answered is data: Text, never markup
        table.add_row(Text(probe.name), "yes" if probe.met else Text("NO", style="bold red"),
                      _n(probe.seconds), Text(probe.value or "-"),
                      Text(probe.reference or "-"), str(probe.polls), Text(probe.detail))
    return table


def _split_brain_rows(table: Table, prefix: str, m: Measurements,
                      verdict: ObjectiveVerdict | None, target: float | None) -> None:
    """Writes the old primary took after the promotion, and whether it was fenced."""
    figures = m.split_brain
    assert figures is not None
    writes = "-" if figures.writes is None else str(figures.writes)
    if figures.span:
        writes += f" over {_n(figures.span)}"
    table.add_row(Text(prefix + "split-brain writes"), writes,
                  "-" if target is None else f"at most {target:.0f}",
                  Text(verdict.status.value, style=_STYLE[verdict.status]) if verdict else "-",
                  f"{verdict.margin:.0f}" if verdict and verdict.margin is not None else "-")
    last = figures.last_old_primary_ack
    after = (last - m.fault_at).total_seconds() if last and m.fault_at else None
    when = ("" if after is None else " (took no write after the fault)" if after <= 0
            else f" (took writes until {format_offset(after)} after the fault)")
    fenced = {True: "yes" + when, False: "not shown" + when, None: "-"}[figures.fenced]
    table.add_row(Text(prefix + "old primary fenced"), fenced)


def split_brain_notes(result: RunResult) -> list[str]:
    """Why a split-brain objective could not be judged (the table shows only '-')."""
    return [f"{v.population}: {v.reason}" if v.population else v.reason
            for v in result.verdicts
            if v.objective == SPLIT_BRAIN and v.status is Status.UNKNOWN]


def step_table(result: RunResult) -> Table | None:
    """Steps a phase playbook timed itself (``dalp_phase_timings``), e.g. a restore's
    provision / download / restore / WAL replay, with bytes and throughput."""
    table = Table(title="phase steps", box=box.SIMPLE)
    for col in ("phase", "step", "duration", "bytes", "MiB/s"):
        table.add_column(col)
    rows = 0
    for phase in result.phases:
        steps = phase.report.get("dalp_phase_timings")
        if not isinstance(steps, list):
            continue
        for step in steps:
            if not isinstance(step, dict):
                continue
            seconds = _float(step.get("seconds"))
            size = _float(step.get("bytes"))
            rate = f"{size / 1048576 / seconds:.1f}" if size and seconds else ""
            table.add_row(phase.phase.value, Text(str(step.get("step", "?"))), _n(seconds),
                          f"{size / 1048576:.1f} MiB" if size is not None else "", rate)
            rows += 1
    return table if rows else None


def timeline_table(result: RunResult) -> Table | None:
    """The recovery decomposed: each moment with its offset from the fault."""
    if not result.timeline:
        return None
    fault_at = result.measurements.fault_at if result.measurements else None
    table = Table(title="recovery timeline", box=box.SIMPLE)
    for col in ("from fault", "event", "seen by", "detail"):
        table.add_column(col)
    for event in result.timeline:
        seconds = offset(event, fault_at)
        table.add_row(format_offset(seconds), Text(event.name),
                      Text(event.source), Text(event.detail or ""))
    return table


def _float(value: object) -> float | None:
    """A finite number from what a playbook reported, else None."""
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError, OverflowError):
        return None
    return number if math.isfinite(number) else None


def notes(result: RunResult) -> list[str]:
    """What phase playbooks said worth reading (``dalp_notes``): backup ages, WAL segment."""
    out: list[str] = []
    for phase in result.phases:
        items = phase.report.get("dalp_notes")
        if isinstance(items, list):
            out.extend(f"{phase.phase.value}: {item}" for item in items)
    return out


def print_result(console: Console, result: RunResult) -> None:
    console.print(verdict_table(result))
    for extra in (timeline_table(result), convergence_table(result), step_table(result)):
        if extra is not None:
            console.print(extra)
    for line in [*split_brain_notes(result), *notes(result),
                 *([result.clock_note] if result.clock_note else [])]:
        console.print(Text(f"note: {line}"))
    if result.clock_offsets:
        console.print(Text(f"target clocks: {clock_line(result)}"))
    style = _OUTCOME_STYLE.get(result.outcome, "bold red")
    console.print(Text.assemble("outcome: ", (result.outcome.value.upper(), style),
                                f"  ({result.message})" if result.message else ""))
    phases = "  ".join(f"{p.phase.value} {p.status.value} {format_duration(p.duration)}"
                       for p in result.phases)
    console.print(Text(f"phases: {phases}"))
    steady = {True: "restored", False: "NOT restored", None: "not needed"}[
        result.steady_state_restored]
    console.print(Text(f"steady state: {steady}"))
    console.print(Text(f"evidence: {result.evidence_dir}"))


def clock_line(result: RunResult) -> str:
    """Each target's clock against the controller's timeline: offset at preflight / after
    verify, and the larger uncertainty (``site-a +0.809/+0.812s +/-0.018s``)."""
    hosts: dict[str, list[tuple[float, float]]] = {}
    for o in result.clock_offsets:
        hosts.setdefault(o.host, []).append((o.offset, o.uncertainty))
    return "; ".join(
        f"{host} " + "/".join(f"{offset:+.3f}" for offset, _ in read)
        + f"s +/-{max(u for _, u in read):.3f}s" for host, read in hosts.items())


def summary_text(result: RunResult) -> str:
    console = Console(width=110, record=True, file=io.StringIO(), color_system=None,
                      markup=False, emoji=False, highlight=False)
    console.print(Text(f"dalp-dr drill {result.drill} ({result.topology}/{result.scenario}) "
                       f"environment {result.environment}, owner {result.owner}"))
    console.print(Text(f"trigger {result.trigger.value} by {result.operator}; started "
                       f"{format_time(result.started_at, millis=True)} ended "
                       f"{format_time(result.ended_at, millis=True)}"))
    console.print(Text(f"spec sha256 {result.spec_hash}"))
    print_result(console, result)
    for phase in result.phases:
        console.print(Text(f"  {phase.phase.value:<13} {phase.status.value:<8} "
                           f"{format_duration(phase.duration):>9}  {phase.playbook or ''}"
                           + (f"  {phase.message}" if phase.message else "")))
    return console.export_text()


def _objective_cell(figure: float | None, status: Status | None,
                    margin: float | None) -> Text:
    """A measured figure and, under it, its verdict and margin (``45.000s`` /
    ``missed -15.000s``)."""
    cell = Text(_n(figure))
    if status is not None:
        shown = "" if margin is None or not math.isfinite(margin) else \
            (" +" if margin >= 0 else " ") + format_duration(margin)
        cell.append("\n")
        cell.append(status.value + shown, style=_STYLE[status])
    return cell


_OTHERS = ("env", "trigger", "started (UTC)", "outcome", "recovery / RTO",
           "data loss / RPO", "seal")
_OTHERS_WIDTH = 66
"""what the columns beside the keys need at least to stay readable (folded)"""


class HistoryTable:
    """The listed runs, as a table where it fits, else one block per run. Run ids and drill
    names are keys a person pastes into another command: each stays whole on one line at
    any terminal width (the other columns fold, or the runs are stacked, instead)."""

    def __init__(self, rows: Sequence[ListedRun], caption: str | None = None) -> None:
        self.rows = rows
        self.caption = caption

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        widest_id = max((len(r.run_id) for r in self.rows), default=6)
        widest_drill = max((len(r.drill) for r in self.rows), default=5)
        if widest_id + widest_drill + _OTHERS_WIDTH <= options.max_width or not self.rows:
            yield self._table(widest_id, widest_drill)
        else:
            yield from self._stacked(options.max_width)
        if self.caption and not (widest_id + widest_drill + _OTHERS_WIDTH
                                 <= options.max_width or not self.rows):
            yield Text(self.caption)

    def _table(self, widest_id: int, widest_drill: int) -> Table:
        table = Table(box=box.SIMPLE_HEAVY, caption=self.caption, caption_justify="left")
        table.add_column("run id", no_wrap=True, min_width=widest_id)
        table.add_column("drill", no_wrap=True, min_width=widest_drill)
        for col in _OTHERS:
            table.add_column(col, overflow="fold", min_width=10 if col.startswith("started")
                             else None)
        for r in self.rows:  # every cell from the store is data: Text, never markup
            table.add_row(Text(r.run_id), Text(r.drill), Text(r.environment),
                          Text(r.trigger), f"{r.started_at:%Y-%m-%d\n%H:%M:%S}",
                          _outcome(r), *_figures(r), _seal(r))
        return table

    def _stacked(self, width: int) -> Iterator[RenderableType]:
        for r in self.rows:
            keys = Text(r.run_id, style="bold")
            if len(r.run_id) + 2 + len(r.drill) <= width:
                keys.append("  " + r.drill)
            else:
                keys.append("\n" + r.drill)
            yield keys
            rto, rpo = _figures(r)
            line = Text.assemble(
                r.environment, "  ", r.trigger, "  ",
                f"{r.started_at:%Y-%m-%d %H:%M:%S} UTC  ", _outcome(r),
                "  recovery ", rto.split("\n")[0], *(
                    (" RTO ", rto.split("\n")[1]) if "\n" in rto.plain else ()),
                "  data loss ", rpo.split("\n")[0], *(
                    (" RPO ", rpo.split("\n")[1]) if "\n" in rpo.plain else ()),
                "  seal ", _seal(r))
            yield Padding(line, (0, 0, 0, 2))


def _outcome(r: ListedRun) -> Text:
    return Text(r.outcome.value, style=_OUTCOME_STYLE.get(r.outcome, "red"))


def _figures(r: ListedRun) -> tuple[Text, Text]:
    return (_objective_cell(r.recovery_time, r.rto_verdict, r.rto_margin),
            _objective_cell(r.data_loss_window, r.rpo_verdict, r.rpo_margin))


def _seal(r: ListedRun) -> Text:
    if r.seal.value in ("tampered", "row_edited"):
        return Text(r.seal.value.upper().replace("_", " "), style="bold red")
    return Text(r.seal.value)


def history_table(rows: Sequence[ListedRun], caption: str | None = None) -> HistoryTable:
    """The listed runs for a person (see :class:`HistoryTable`)."""
    return HistoryTable(rows, caption)
