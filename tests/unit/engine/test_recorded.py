"""Every run is recorded in the history as it was returned, whatever its outcome, and a run
a guardrail refuses is recorded (``refused``) before anything runs."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from dalp_dr.checkpoints import Checkpointer
from dalp_dr.export import keys
from dalp_dr.history import HistoryStore, open_store
from dalp_dr.recovery import recover
from dalp_dr.results import Outcome, Trigger
from dalp_dr.spec import PhaseName
from tests.fakes import FakePlaybookRunner, Play, RunnerStatus
from tests.unit.engine.harness import DrillShape, EngineHarness, Run, failover

SCENARIOS: dict[str, tuple[Callable[[EngineHarness], Run], Outcome]] = {
    "preflight_failed": (lambda h: h.run({PhaseName.PREFLIGHT: Play(
        status=RunnerStatus.FAILED)}), Outcome.PREFLIGHT_FAILED),
    "failed": (lambda h: h.run({**failover(h.endpoint),
                                PhaseName.VERIFY: Play(status=RunnerStatus.FAILED)}),
               Outcome.FAILED),
    "aborted": (lambda h: h.run(failover(h.endpoint), at={PhaseName.RECOVER: h.interrupt}),
                Outcome.ABORTED),
    "missed at the deadline": (lambda h: h.run(
        {PhaseName.INJECT: Play(effect=h.endpoint.fail, reports_fault_instant=True),
         PhaseName.RECOVER: Play(blocks_until_canceled=True)}, DrillShape(deadline="50ms")),
        Outcome.MISSED),
}


def test_the_store_holds_a_passed_run_as_returned(passed_run: Run) -> None:
    assert passed_run.result.outcome is Outcome.PASSED
    assert passed_run.stored == passed_run.result


@pytest.mark.parametrize("scenario", SCENARIOS.values(), ids=SCENARIOS.keys())
def test_the_store_holds_the_run_as_returned(
        harness: EngineHarness, scenario: tuple[Callable[[EngineHarness], Run], Outcome]
) -> None:
    play, outcome = scenario
    run = play(harness)

    assert run.result.outcome is outcome
    assert run.stored == run.result
    (listed,) = harness.store.list_runs()
    assert (listed.run_id, listed.outcome) == (run.result.run_id, outcome)


REFUSALS = {
    "production, on demand without --confirm": (DrillShape(production=True), Trigger.CLI,
                                                "production"),
    "scheduled inside a change freeze": (DrillShape(frozen=True), Trigger.SCHEDULE,
                                         "engine test freeze"),
}


@pytest.mark.parametrize("refusal", REFUSALS.values(), ids=REFUSALS.keys())
def test_a_refused_run_is_recorded_and_nothing_runs(
        harness: EngineHarness, refusal: tuple[DrillShape, Trigger, str]) -> None:
    shape, trigger, why = refusal
    refused = harness.refused(shape, trigger)

    assert refused.runner.calls == []
    assert harness.endpoint.markers(refused.stored.run_id) == []
    assert refused.stored.outcome is Outcome.REFUSED
    assert refused.stored.trigger is trigger
    assert refused.stored.message is not None and why in refused.stored.message
    assert why in str(refused.error)


def test_a_result_the_store_did_not_take_is_recorded_later_as_the_run_ended(
        harness: EngineHarness) -> None:
    ended = harness.unrecorded(failover(harness.endpoint))
    assert harness.store.get(ended.run_id).outcome is Outcome.RUNNING

    steady = FakePlaybookRunner()
    recovered = recover(harness.store, ended.run_id, steady, progress=lambda _m: None)

    stored = harness.store.get(ended.run_id)
    assert recovered.recorded and stored.outcome is Outcome.PASSED
    assert stored.verdicts == ended.verdicts and stored.phases == ended.phases
    assert stored.message is not None and "recorded late" in stored.message
    assert steady.calls == []  # the run restored steady state itself: nothing is run again


def test_a_kept_result_the_journal_contradicts_is_not_recorded(
        harness: EngineHarness) -> None:
    ended = harness.unrecorded(failover(harness.endpoint))
    kept = Path(ended.evidence_dir) / "result.json"
    kept.write_text(ended.model_copy(update={"steady_state_restored": False,
                                             "outcome": Outcome.PASSED}).model_dump_json())

    recover(harness.store, ended.run_id, FakePlaybookRunner(), progress=lambda _m: None)

    stored = harness.store.get(ended.run_id)
    assert stored.outcome is Outcome.ABORTED  # by the journal alone, as after a crash


@pytest.fixture
def keyed(harness: EngineHarness, tmp_path: Path) -> Iterator[HistoryStore]:
    """The harness's history with a signing key: every seal signed, kept results vouched."""
    keys.init(tmp_path / "keys")
    store = open_store(f"sqlite:///{harness.root / 'history.sqlite'}",
                       results_dir=harness.results,
                       observer=Checkpointer(harness.results, tmp_path / "keys"))
    try:
        yield store
    finally:
        store.close()


def test_a_kept_result_signed_by_the_history_key_is_recorded_as_it_ended(
        harness: EngineHarness, keyed: HistoryStore) -> None:
    ended = harness.unrecorded(failover(harness.endpoint), keyed)
    assert (Path(ended.evidence_dir) / "result.json.sig").is_file()

    recover(keyed, ended.run_id, FakePlaybookRunner(), progress=lambda _m: None)

    assert keyed.get(ended.run_id).outcome is Outcome.PASSED


def test_a_kept_result_rewritten_without_the_key_is_set_aside(
        harness: EngineHarness, keyed: HistoryStore) -> None:
    # what someone with write access to the results directory, not the key, would do:
    # turn a failed run's kept result (and its journal's last record) into a pass
    ended = harness.unrecorded({**failover(harness.endpoint),
                                PhaseName.VERIFY: Play(status=RunnerStatus.FAILED)}, keyed)
    assert ended.outcome is Outcome.FAILED
    evidence = Path(ended.evidence_dir)
    forged = ended.model_copy(update={"outcome": Outcome.PASSED, "message": None})
    (evidence / "result.json").write_text(forged.model_dump_json(indent=2))
    [finished] = (evidence / "journal").glob("*-run.finished.json")
    record = json.loads(finished.read_text())
    finished.write_text(json.dumps({**record, "outcome": "passed"}))

    said: list[str] = []
    recover(keyed, ended.run_id, FakePlaybookRunner(), progress=said.append)

    assert keyed.get(ended.run_id).outcome is Outcome.ABORTED  # by its journal alone
    assert any("its kept result is set aside (the signature of its result.json does not "
               "hold)" in s for s in said), said
