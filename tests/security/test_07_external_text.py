"""Finding 7: external text never crashes the CLI and never leaves a run `running`.

Everything a target prints, a playbook reports or a store row holds is data: printed as it
is (no Rich markup, no :emoji: codes), whatever brackets it contains. A command that still
fails unexpectedly ends with exit 1 and one line on stderr (DALP_DR_DEBUG=1: the
traceback), and a drill is recorded in the history before anything is derived from it.
"""

from __future__ import annotations

import io
import sqlite3
import textwrap
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from dalp_dr.adapters.base import CancelCheck, EventSink, PlaybookResult
from dalp_dr.commands import main
from dalp_dr.results import (
    CheckOutcome,
    Outcome,
    PhaseRecord,
    PhaseStatus,
    RunResult,
    TimelineEvent,
)
from dalp_dr.spec import PhaseName
from tests.factories import fill_history, make_run, record_runs

ROOT = Path(__file__).resolve().parents[2]

PAYLOADS = ["[/x]", "[bold]loud[/bold]", "[link=ht://e]g[/]", ":x: [red]"]
RUN_ID = "20260301T030000Z-eeeeee"


def hostile_run(base: Path, payload: str) -> RunResult:
    """A sealed run whose every free-text field carries ``payload``."""
    run = make_run(base, RUN_ID, f"d{payload}", datetime(2026, 3, 1, 3, tzinfo=UTC),
                   Outcome.FAILED, 12.0)
    at = run.started_at
    phase = PhaseRecord(phase=PhaseName.VERIFY, status=PhaseStatus.FAILED, started_at=at,
                        ended_at=at + timedelta(seconds=1), playbook=f"pb{payload}.yml",
                        message=f"phase said {payload}",
                        report={"dalp_notes": [f"note {payload}"],
                                "dalp_phase_timings": [{"step": f"step{payload}",
                                                        "seconds": 2, "bytes": 1048576}]})
    return run.model_copy(update={
        "environment": f"lab {payload}", "owner": f"own{payload}", "operator": f"op{payload}",
        "message": f"target said {payload}", "phases": [*run.phases, phase],
        "checks": [CheckOutcome(name="replicas", kind="sql", ok=False, value=payload,
                                detail=f"saw {payload}")],
        "timeline": [TimelineEvent(name=f"ev{payload}", at=at, source=f"src{payload}",
                                   detail=f"detail {payload}")]})


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.mark.parametrize("payload", PAYLOADS)
def test_history_prints_store_text_literally(configured: Path, payload: str,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    url = f"sqlite:///{configured / 'results' / 'history.sqlite'}"
    record_runs(url, [hostile_run(configured, payload)])

    code, out, err = cli(capsys, "history", "list")
    assert code == 0, err
    assert f"lab {payload}" in out and f"d{payload}" in out

    code, out, err = cli(capsys, "history", "show", RUN_ID)
    assert code == 0, err
    for text in (f"lab {payload}", f"own{payload}", f"op{payload}", f"target said {payload}",
                 f"phase said {payload}", f"note {payload}", f"step{payload}",
                 f"detail {payload}", f"ev{payload}"):
        assert text in out, (text, out)
    assert "❌" not in out  # :x: is text, not an emoji code


@pytest.mark.parametrize("payload", PAYLOADS)
def test_summary_text_keeps_external_text(tmp_path: Path, payload: str) -> None:
    from dalp_dr.render import summary_text

    summary = summary_text(hostile_run(tmp_path, payload))
    for text in (f"lab {payload}", f"target said {payload}", f"phase said {payload}",
                 f"d{payload}"):
        assert text in summary, (text, summary)


def test_a_non_finite_duration_from_a_playbook_is_printed_not_raised(tmp_path: Path) -> None:
    from dalp_dr.render import summary_text

    run = hostile_run(tmp_path, "x")
    phase = run.phases[-1].model_copy(update={"report": {"dalp_phase_timings": [
        {"step": "restore", "seconds": "inf", "bytes": "nan"}]}})
    assert "restore" in summary_text(run.model_copy(update={"phases": [phase]}))


def test_the_live_panel_shows_task_names_and_errors_literally() -> None:
    from dalp_dr.progress import LiveView

    console = Console(file=io.StringIO(), width=200, color_system=None)  # markup on: the
    view = LiveView(console)  # panel must not rely on the console to keep data literal
    view("run.started", {"run_id": "r1", "drill": "[/x]"})
    view("phase.started", {"phase": "verify[/bold]"})
    view("ansible.task", {"ansible_event": "playbook_on_task_start",
                          "task": "[link=http://e.vil]task[/link]"})
    view("heartbeat", {"acked": False, "error": "FATAL [/] :x:"})
    view.progress("check replicas: FAILED ([bold]x[/])")
    console.print(view.__rich__())
    shown = console.file.getvalue()  # type: ignore[attr-defined]
    for text in ("[/x]", "verify[/bold]", "[link=http://e.vil]task[/link]", "FATAL [/] :x:",
                 "([bold]x[/])"):
        assert text in shown, (text, shown)


def test_drill_list_prints_owner_and_environment_literally(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = (ROOT / "drills" / "hot-warm-failover.yaml").read_text()
    text = text.replace("owner: platform-sre", "owner: '[/x] sre :x:'")
    text = text.replace("../inventories", str(ROOT / "inventories"))
    text = text.replace("../playbooks", str(ROOT / "playbooks"))
    (tmp_path / "drills").mkdir()
    (tmp_path / "drills" / "hot-warm-failover.yaml").write_text(text)
    code, out, err = cli(capsys, "drill", "list", "--dir", str(tmp_path / "drills"))
    assert code == 0, err
    assert "[/x] sre :x:" in out


# --- an unexpected exception: exit 1, one line ------------------------------------------


def poison_chain_row(base: Path) -> None:
    """A chain row nested too deep for the JSON parser (RecursionError while reading it)."""
    conn = sqlite3.connect(base / "results" / "history.sqlite")
    conn.execute("update chain set evidence_json = ? where run_id = ?",
                 ("[" * 100_000 + "]" * 100_000, "20260401T030000Z-bbbbbb"))
    conn.commit()
    conn.close()


@pytest.mark.parametrize("command", [["history", "list"],
                                     ["history", "show", "20260401T030000Z-bbbbbb"],
                                     ["history", "verify"]])
def test_a_row_too_deep_to_parse_is_one_line_and_exit_1(
        configured: Path, capsys: pytest.CaptureFixture[str], command: list[str]) -> None:
    fill_history(configured)
    poison_chain_row(configured)
    code, _out, err = cli(capsys, *command)
    assert code == 1
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    assert "chain entry #2: unreadable" in lines[0]


# A command that raises what no command expects. It is added through click's public API to
# the real CLI group in a child process: main()'s contract, without patching dalp-dr.
RAISES = """
import sys
from dalp_dr import commands

@commands.cli.command("explode")
def explode() -> None:
    raise RuntimeError("boom with password=hunter2-secret inside")

sys.exit(commands.main(["explode"]))
"""


def test_an_unexpected_exception_is_exit_1_and_one_line(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    env = {**os.environ, "DALP_DR_RESULTS": str(tmp_path)}
    env.pop("DALP_DR_DEBUG", None)
    proc = subprocess.run([sys.executable, "-c", RAISES], env=env, capture_output=True,
                          text=True, timeout=60, check=False)
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert "RuntimeError" in lines[0] and "DALP_DR_DEBUG" in lines[0]
    assert "hunter2-secret" not in proc.stderr

    shown = subprocess.run([sys.executable, "-c", RAISES], env={**env, "DALP_DR_DEBUG": "1"},
                           capture_output=True, text=True, timeout=60, check=False)
    assert shown.returncode == 1 and "Traceback" in shown.stderr


def test_exit_codes_for_known_errors_are_unchanged(configured: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    assert cli(capsys, "history", "show", "nope")[0] == 2
    assert cli(capsys, "drill", "frobnicate")[0] == 2


# --- a drill is recorded before anything is derived from it --------------------------------

DRILL = """
name: external-text
topology: hot-warm
scenario: failover
environment: "lab [/x] :x:"
owner: "[bold]sre"
objectives: {rto: 30m, rpo: 5m}
inventory: inv.yml
endpoint: {dsn: "host=127.0.0.1 dbname=x"}
phases:
  preflight: {playbook: pb.yml}
  inject: {playbook: pb.yml}
  verify: {playbook: pb.yml}
  steady_state: {playbook: pb.yml}
"""


class RefusingPreflight:
    """A PlaybookRunner whose preflight fails, saying things with brackets in them."""

    def run(self, playbook: Path, inventory: Path, *, extravars: Mapping[str, Any],
            timeout: float, on_event: EventSink | None = None,
            cancel: CancelCheck | None = None, check: bool = False) -> PlaybookResult:
        now = datetime.now(UTC)
        return PlaybookResult(playbook=playbook.name, status="failed", rc=2, started_at=now,
                              ended_at=now, failed_task="[/] assert standby",
                              failure_message="standby lag [red]9000[/red] > [/x]",
                              artifact_data={"dalp_notes": ["[/x] lag"]})


def run_drill(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, **engine: Any
              ) -> tuple[RunResult, RunResult, list[str]]:
    """Run the drill on a fresh store; the result returned and the record stored."""
    from dalp_dr.drill.context import PreparedDrill
    from dalp_dr.drill.engine import DrillEngine
    from dalp_dr.history import open_store
    from dalp_dr.inventory import Inventory
    from dalp_dr.redact import Redactor
    from dalp_dr.spec import load_drill

    monkeypatch.setenv("DALP_DR_PROJECT", str(tmp_path))
    monkeypatch.delenv("DALP_DR_OPERATOR", raising=False)
    (tmp_path / "inv.yml").write_text("all:\n  hosts:\n    db1: {}\n")
    (tmp_path / "pb.yml").write_text("- hosts: all\n  tasks: []\n")
    (tmp_path / "drill.yaml").write_text(textwrap.dedent(DRILL).lstrip())
    drill = load_drill(tmp_path / "drill.yaml")
    progress: list[str] = []
    store = open_store(f"sqlite:///{tmp_path / 'results' / 'history.sqlite'}")
    try:
        result = DrillEngine(runner=RefusingPreflight(), results_dir=tmp_path / "results",
                             progress=progress.append, **engine).run(
            PreparedDrill(drill=drill, endpoints={}, redactor=Redactor(),
                          inventory=Inventory(drill.inventory)), store=store)
        stored = store.get(result.run_id)
    finally:
        store.close()
    return result, stored, progress


def test_a_drill_with_bracketed_text_is_recorded_and_summarised(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    result, stored, _progress = run_drill(tmp_path, monkeypatch)
    assert result.outcome is Outcome.PREFLIGHT_FAILED
    assert stored.outcome is Outcome.PREFLIGHT_FAILED  # never left `running`
    summary = (Path(result.evidence_dir) / "summary.txt").read_text()
    assert "lab [/x] :x:" in summary and "[red]9000[/red] > [/x]" in summary


def test_derived_output_that_fails_does_not_keep_the_run_from_being_recorded(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Seam: DrillEngine(summarize=...) renders summary.txt (render.summary_text by
    default). However it fails, the run is recorded and the failure is said."""

    def broken(_result: RunResult) -> str:
        raise RuntimeError("renderer bug")

    result, stored, progress = run_drill(tmp_path, monkeypatch, summarize=broken)
    assert stored.outcome is Outcome.PREFLIGHT_FAILED
    assert not (Path(result.evidence_dir) / "summary.txt").exists()
    assert [m for m in progress if "summary.txt" in m and "RuntimeError" in m]


def test_a_result_that_cannot_be_computed_is_still_recorded(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The last resort: a bug while computing the result (injected at dalp_dr.timeline.build,
    which every run calls) records the run as failed, naming the problem, and the error
    still reaches the caller (the CLI's exit 1 and one line)."""
    from dalp_dr import timeline

    def broken(**_kwargs: object) -> list[TimelineEvent]:
        raise ZeroDivisionError("[/x] bug password=hunter22")

    monkeypatch.setattr(timeline, "build", broken)
    with pytest.raises(ZeroDivisionError):
        run_drill(tmp_path, monkeypatch)
    from dalp_dr.history import open_store

    store = open_store(f"sqlite:///{tmp_path / 'results' / 'history.sqlite'}")
    try:
        (row,) = store.list_runs()
        stored = store.get(row.run_id)
    finally:
        store.close()
    assert stored.outcome is Outcome.FAILED and stored.message is not None
    assert "ZeroDivisionError" in stored.message and "hunter22" not in stored.message
    assert [p.phase for p in stored.phases] == [PhaseName.PREFLIGHT, PhaseName.STEADY_STATE]
