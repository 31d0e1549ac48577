"""A secret from the inventory never reaches the evidence or the history, even when a
playbook's failure message, its events and its report quote it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from dalp_dr.render import summary_text
from dalp_dr.results import Outcome
from dalp_dr.spec import PhaseName
from tests.fakes import Play, RunnerStatus
from tests.unit.engine.harness import SECRET, EngineHarness, NewHarness, Run, failover


@pytest.fixture(scope="module")
def leaky(new_harness: NewHarness) -> Iterator[tuple[EngineHarness, Run]]:
    """verify fails quoting the application password everywhere it can (the real
    summary.txt rendering, which shows every phase's message)"""
    harness = new_harness(summarize=summary_text)
    try:
        yield harness, harness.run({
            **failover(harness.endpoint),
            PhaseName.VERIFY: Play(status=RunnerStatus.FAILED,
                                   failure_message=f"login with {SECRET} was refused",
                                   event_text=f"psql 'dbname=app' -W {SECRET}",
                                   report={"dalp_notes": f"tried {SECRET}"}),
        })
    finally:
        harness.close()


def test_the_secret_is_in_no_evidence_file(leaky: tuple[EngineHarness, Run]) -> None:
    _, leaky_run = leaky
    assert leaky_run.result.outcome is Outcome.FAILED
    files = [p for p in leaky_run.evidence.rglob("*") if p.is_file()]
    names = {p.name for p in files}
    assert {"result.json", "summary.txt", "heartbeat.jsonl", "spec.json"} <= names
    assert any(p.parent.name == "verify" for p in files)  # the verify playbook's events
    leaked = [str(p) for p in files if SECRET in p.read_text(errors="replace")]
    assert leaked == []


def test_the_secret_is_not_in_the_stored_record(leaky: tuple[EngineHarness, Run]) -> None:
    harness, leaky_run = leaky
    assert SECRET not in leaky_run.stored.model_dump_json()
    for stored in harness.root.glob("history.sqlite*"):  # with its journal or WAL
        assert SECRET.encode() not in stored.read_bytes(), stored.name
