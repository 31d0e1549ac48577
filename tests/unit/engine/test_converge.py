"""Convergence after verify (``converge:``) and the RTT objective: a probe met is a figure and
a timeline event and ends the RTT; one that never converges fails the drill and leaves the
RTT with a lower bound; DALP's ``no_data`` never counts as recovered. The platform's health
endpoint is a local HTTP server (``json_api``)."""

from __future__ import annotations

import time

from dalp_dr.results import Outcome, PhaseStatus, Status
from dalp_dr.spec import PhaseName
from tests.conftest import JsonApi
from tests.unit.engine.harness import DrillShape, EngineHarness, failover


def health_probe(api: JsonApi, timeout: str = "2s") -> str:
    return (f"[{{name: api-healthy, http: '{api.url}/health', json_field: status, "
            f"expect: {{equals: ok}}, timeout: {timeout}, interval: 100ms}}]")


def test_a_probe_met_ends_the_rtt(harness: EngineHarness, json_api: JsonApi) -> None:
    first: list[float] = []  # the platform takes a while after the database

    def health(*_: object) -> tuple[int, object]:
        first.append(time.monotonic())
        return 200, {"status": "ok" if time.monotonic() >= first[0] + 0.5 else "degraded"}

    json_api.pages["/health"] = (200, health)
    run = harness.run(failover(harness.endpoint),
                      DrillShape(rtt="10s", converge=health_probe(json_api)))

    assert run.result.outcome is Outcome.PASSED
    [probe] = run.result.convergence
    assert probe.met and probe.polls >= 2 and probe.seconds is not None
    m = run.result.measurements
    assert m is not None and m.rtt is not None and m.recovery_time is not None
    assert m.rtt >= probe.seconds > m.recovery_time  # the platform after the database
    assert run.verdict("rtt").status is Status.MET
    assert "converged: api-healthy" in [e.name for e in run.result.timeline]
    assert run.phase(PhaseName.CONVERGE).status is PhaseStatus.OK


def test_no_data_never_counts_as_recovered(harness: EngineHarness, json_api: JsonApi) -> None:
    json_api.pages["/health"] = (200, {"status": "no_data"})
    run = harness.run(failover(harness.endpoint),
                      DrillShape(rtt="1h", converge=health_probe(json_api, timeout="1s")))

    assert run.result.outcome is Outcome.FAILED
    [probe] = run.result.convergence
    assert not probe.met and "no data is not healthy" in probe.detail
    m = run.result.measurements
    assert m is not None and m.rtt is None
    assert m.rtt_lower_bound is not None and m.rtt_lower_bound >= 1.0
    rtt = run.verdict("rtt")
    assert rtt.status is Status.UNKNOWN and rtt.measured is None  # never met
    assert "not converged: api-healthy" in [e.name for e in run.result.timeline]
    assert run.phase(PhaseName.CONVERGE).status is PhaseStatus.FAILED


def test_an_rtt_longer_than_declared_is_missed(harness: EngineHarness,
                                               json_api: JsonApi) -> None:
    json_api.pages["/health"] = (200, {"status": "no_data"})
    run = harness.run(failover(harness.endpoint),
                      DrillShape(rtt="500ms", converge=health_probe(json_api, timeout="1s")))

    rtt = run.verdict("rtt")
    assert rtt.status is Status.MISSED and rtt.margin is not None and rtt.margin < 0
    assert "at least" in rtt.reason


def test_a_near_probe_follows_a_moving_reference(harness: EngineHarness,
                                                 json_api: JsonApi) -> None:
    """An indexer head within 2 blocks of a chain head that keeps moving (JSON-RPC)."""
    start = time.monotonic()

    def head() -> int:
        return 100 + int((time.monotonic() - start) * 10)

    def chain(*_: object) -> tuple[int, object]:
        return 200, {"jsonrpc": "2.0", "id": 1, "result": hex(head())}

    def indexer(*_: object) -> tuple[int, object]:  # catches up 40 blocks a second
        return 200, {"head": min(head(), 50 + int((time.monotonic() - start) * 50))}

    json_api.pages["/rpc"] = (200, chain)
    json_api.pages["/indexer"] = (200, indexer)
    probe = (f"[{{name: indexer-caught-up, http: '{json_api.url}/indexer', json_field: head, "
             f"near: {{jsonrpc: {{url: '{json_api.url}/rpc', method: eth_blockNumber}}, "
             "within: 2}, timeout: 5s, interval: 100ms}]")
    run = harness.run(failover(harness.endpoint), DrillShape(rtt="1m", converge=probe))

    assert run.result.outcome is Outcome.PASSED, run.result.message
    [met] = run.result.convergence
    assert met.met and met.reference is not None and met.polls > 1
    assert abs(int(met.reference) - int(met.value or 0)) <= 2
    rpc = [r for r in json_api.requests if r[1] == "/rpc"]
    assert rpc and b'"method": "eth_blockNumber"' in rpc[0][3]


def test_checks_run_after_the_platform_converged(harness: EngineHarness,
                                                 json_api: JsonApi) -> None:
    """With converge probes, a drill's checks judge the converged platform: here a check
    that can only pass once the API reports ok, which it does only after a while."""
    first: list[float] = []

    def health(*_: object) -> tuple[int, object]:
        first.append(time.monotonic())
        return 200, {"status": "ok" if time.monotonic() >= first[0] + 0.5 else "degraded"}

    json_api.pages["/health"] = (200, health)
    run = harness.run(failover(harness.endpoint), DrillShape(
        converge=health_probe(json_api),
        checks=(f"[{{name: api-ok, http: '{json_api.url}/health', json_field: status, "
                "expect: {equals: ok}}]")))

    assert run.result.outcome is Outcome.PASSED, run.result.message
    [check] = run.result.checks
    assert check.ok
    converge = run.phase(PhaseName.CONVERGE)
    assert converge.report["checks"][0]["name"] == "api-ok"
    assert "checks" not in run.phase(PhaseName.VERIFY).report


def test_a_check_failing_after_convergence_leaves_the_rtt_unmeasured(
        harness: EngineHarness, json_api: JsonApi) -> None:
    """Converged, but the platform is wrong (an event indexed twice): not fully recovered,
    so the RTT is never met."""
    json_api.pages["/health"] = (200, {"status": "ok"})
    json_api.pages["/indexer"] = (200, {"indexed_twice": 147})
    run = harness.run(failover(harness.endpoint), DrillShape(
        rtt="1h", converge=health_probe(json_api),
        checks=(f"[{{name: no-event-indexed-twice, http: '{json_api.url}/indexer', "
                "json_field: indexed_twice, expect: {equals: 0}}]")))

    assert run.result.outcome is Outcome.FAILED
    assert run.result.convergence[0].met and not run.result.checks[0].ok
    m = run.result.measurements
    assert m is not None and m.rtt is None and m.rtt_lower_bound is not None
    assert run.verdict("rtt").status is Status.UNKNOWN
