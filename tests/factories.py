"""Builders shared by tests and benches: synthetic heartbeat timelines and their
measurement, sealed runs with evidence files on disk, a small SQLite history of them, its
selection and a signed export bundle written by the real writer.

Tests import shared builders from here (fixtures from tests/conftest.py), never from another
test module."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

from dalp_dr.export import bundle, keys, records
from dalp_dr.history import HistoryStore, open_store
from dalp_dr.measure import measure
from dalp_dr.results import (
    HeartbeatSample,
    Measurements,
    ObjectiveVerdict,
    Outcome,
    PhaseRecord,
    PhaseStatus,
    RunResult,
    Status,
    Trigger,
)
from dalp_dr.spec import PhaseName, Scenario, Topology
from dalp_dr.split_brain import split_brain
from dalp_dr.verdict import judge_split_brain

# --- synthetic heartbeat timelines (100 ms interval) --------------------------------------------

T0 = datetime(2026, 11, 26, 12, 0, 0, tzinfo=UTC)
INTERVAL = 0.1  # heartbeat interval, seconds


def at(seconds: float) -> datetime:
    """The instant ``seconds`` after T0."""
    return T0 + timedelta(seconds=seconds)


def timeline(acked_until: float, down_until: float, end: float, *, latency: float = 0.005
             ) -> list[HeartbeatSample]:
    """Acks every 100 ms until `acked_until`, errors until `down_until`, acks until `end`."""
    samples = []
    seq, t = 0, 0.0
    while t <= end + 1e-9:
        seq += 1
        ok = t <= acked_until + 1e-9 or t >= down_until - 1e-9
        samples.append(HeartbeatSample(seq=seq, sent_at=at(t), ended_at=at(t + latency),
                                       acked=ok, error=None if ok else "connection refused"))
        t = round(t + INTERVAL, 6)
    return samples


DOWN = "down"
"""``attempts``: the attempts of a span fail"""
UNTOLD = "untold"
"""``attempts``: the attempts of a span are acknowledged by a server that did not say its
timeline (evidence from before the heartbeat recorded it)"""


def attempts(*spans: tuple[float, float, int | str], latency: float = 0.005
             ) -> list[HeartbeatSample]:
    """One population's attempts every 100 ms over consecutive spans (from s, to s,
    outcome): acknowledged on the timeline given (by server "tl<N>:5432"), failing for
    DOWN, acknowledged without a timeline for UNTOLD."""
    samples: list[HeartbeatSample] = []
    for start, end, outcome in spans:
        t = start
        while t <= end + 1e-9:
            ok = outcome != DOWN
            line = outcome if isinstance(outcome, int) else None
            samples.append(HeartbeatSample(
                seq=len(samples) + 1, sent_at=at(t), ended_at=at(t + latency), acked=ok,
                error=None if ok else "connection refused", timeline=line,
                server=f"tl{line}:5432" if line is not None else None))
            t = round(t + INTERVAL, 6)
    return samples


def run(samples: list[HeartbeatSample], fault: float, surviving: set[int] | None,
        verified: float | None = None) -> Measurements:
    """The measurements of ``samples`` for a fault at ``fault`` s, observed until the last
    sample ended."""
    return measure(samples, fault_at=at(fault), surviving=surviving,
                   verified_at=at(verified) if verified is not None else None, interval=INTERVAL,
                   observed_until=max(s.ended_at for s in samples))


def split_brain_run(result: RunResult, target: int = 0) -> RunResult:
    """``result`` with the split_brain objective judged on a population whose old primary,
    cut off with it, took its writes until 4.0 s, 1 s past the promotion at 3.0 s (11
    split-brain writes), then refused them (fenced); fault at 2.05 s."""
    samples = attempts((0, 4.0, 1), (4.1, 5.0, DOWN))
    figures = split_brain(samples, fault_at=at(2.05), promoted_at=at(3.0))
    m = result.measurements or run(samples, 2.05, None)
    return result.model_copy(update={
        "objectives": {**result.objectives, "split_brain": float(target)},
        "measurements": m.model_copy(update={"split_brain": figures, "fault_at": at(2.05)}),
        "verdicts": [*result.verdicts, judge_split_brain(target, figures)]})


# --- sealed runs and their history ---------------------------------------------------------------


def make_run(base: Path, run_id: str, drill: str, started: datetime, outcome: Outcome,
             recovery: float | None, topology: Topology = Topology.HOT_WARM) -> RunResult:
    evidence = base / "results" / run_id
    (evidence / "journal").mkdir(parents=True)
    (evidence / "journal" / "0001-run.started.json").write_text('{"kind": "run.started"}')
    (evidence / "summary.txt").write_text(f"{drill} {outcome.value}\n")
    measured = None if recovery is None else Measurements(
        fault_at=started + timedelta(seconds=5), recovered_at=started + timedelta(seconds=6),
        verified_at=started + timedelta(seconds=7), recovery_time=recovery, rtt=0.002,
        data_loss_window=0.0, lost_writes=0, acked_before_fault=20,
        unacknowledged_attempts=0, resolution=0.1)
    verdicts = [] if recovery is None else [
        ObjectiveVerdict(objective="rto", target=30.0, measured=recovery,
                         status=Status.MET if recovery <= 30 else Status.MISSED,
                         margin=30.0 - recovery, reason="measured"),
        ObjectiveVerdict(objective="rpo", target=5.0, measured=0.0, status=Status.MET,
                         margin=5.0, reason="measured")]
    phases = [PhaseRecord(phase=PhaseName.PREFLIGHT, status=PhaseStatus.OK, started_at=started,
                          ended_at=started + timedelta(seconds=2)),
              PhaseRecord(phase=PhaseName.INJECT, status=PhaseStatus.OK,
                          started_at=started + timedelta(seconds=4),
                          ended_at=started + timedelta(seconds=5))]
    return RunResult(
        run_id=run_id, drill=drill, topology=topology, scenario=Scenario.FAILOVER,
        environment="lab-hot-warm", owner="sre", trigger=Trigger.SCHEDULE, operator="scheduler",
        spec_hash="cd" * 32, started_at=started, ended_at=started + timedelta(seconds=30),
        outcome=outcome, objectives={"rto": 30.0, "rpo": 5.0}, measurements=measured,
        verdicts=verdicts, phases=phases, steady_state_restored=True,
        evidence_dir=str(evidence))


def record_runs(url: str, runs: list[RunResult]) -> None:
    """Record (and so seal) finished runs in the history at ``url``."""
    _record(open_store(url), runs)


def _record(store: HistoryStore, runs: list[RunResult]) -> None:
    try:
        for run in runs:
            store.begin(run.model_copy(update={"outcome": Outcome.RUNNING, "ended_at": None}),
                        json.dumps({"name": run.drill}))
            store.finish(run)
    finally:
        store.close()


def fill_history(base: Path) -> str:
    """Four sealed runs of 2026 under ``base``/results; returns the store URL."""
    url = f"sqlite:///{base / 'results' / 'history.sqlite'}"
    record_runs(url, [
        make_run(base, "20260115T030000Z-aaaaaa", "hot-warm-failover",
                 datetime(2026, 1, 15, 3, tzinfo=UTC), Outcome.PASSED, 1.2),
        make_run(base, "20260401T030000Z-bbbbbb", "hot-warm-failover",
                 datetime(2026, 4, 1, 3, tzinfo=UTC), Outcome.MISSED, 45.0),
        make_run(base, "20260701T030000Z-cccccc", "hot-cold-restore",
                 datetime(2026, 7, 1, 3, tzinfo=UTC), Outcome.PASSED, 300.0,
                 topology=Topology.HOT_COLD),
        make_run(base, "20261001T030000Z-dddddd", "hot-warm-failover",
                 datetime(2026, 10, 1, 3, tzinfo=UTC), Outcome.MISSED_SCHEDULE, None),
    ])
    return url


def pin_history() -> None:
    """Pin the configured history as an operator would: 'keys init' (a new key under the
    configured keys directory, unless there is one), then 'history checkpoint --sign' of its
    head."""
    from dalp_dr.config import load_settings
    from dalp_dr.history import checkpointer
    from dalp_dr.history.views import audit

    settings = load_settings()
    if not (settings.keys_dir / keys.PRIVATE).exists():
        keys.init(settings.keys_dir)
    store = open_store(settings.store_url, results_dir=settings.results_dir)
    try:
        head = audit(store, checkpointer(settings), check_evidence=False)
    finally:
        store.close()
    checkpointer(settings).sign_head(head.head_seq, head.head)


def select(url: str, **query: object) -> records.Selection:
    store = open_store(url)
    try:
        return records.select(store, records.Query(**query),  # type: ignore[arg-type,unused-ignore]
                              now=datetime(2026, 11, 27, tzinfo=UTC))
    finally:
        store.close()


def signed_bundle(url: str, tmp_path: Path, name: str = "x.tar.gz") -> tuple[Path, Path]:
    """A bundle of the whole history signed by a new key in ``tmp_path``/keys; returns the
    bundle and the signer's public key file."""
    keydir = tmp_path / "keys"
    keys.init(keydir)
    target = tmp_path / name
    bundle.write_bundle(select(url), target, keydir, ["hot-warm-failover"])
    return target, keydir / keys.PUBLIC


# --- the configured history (DALP_DR_RESULTS, DALP_DR_KEYS, DALP_DR_WITNESS) ------------------

SEALED_RUNS = [
    ("20260115T030000Z-aaaaaa", "hot-warm-failover", datetime(2026, 1, 15, 3, tzinfo=UTC),
     Outcome.PASSED, 1.2),
    ("20260401T030000Z-bbbbbb", "hot-warm-failover", datetime(2026, 4, 1, 3, tzinfo=UTC),
     Outcome.MISSED, 2400.0),
    ("20260701T030000Z-cccccc", "hot-cold-restore", datetime(2026, 7, 1, 3, tzinfo=UTC),
     Outcome.PASSED, 300.0),
]
"""a passed run, a missed 40-minute run, a hot-cold restore"""


def sealed_runs(base: Path, count: int = len(SEALED_RUNS)) -> list[RunResult]:
    """The first ``count`` of SEALED_RUNS, their evidence under ``base``/results."""
    return [make_run(base, run_id, drill, started, outcome, recovery,
                     Topology.HOT_COLD if "cold" in drill else Topology.HOT_WARM)
            for run_id, drill, started, outcome, recovery in SEALED_RUNS[:count]]


def record_configured(runs: list[RunResult]) -> None:
    """Record finished runs in the history the environment configures, as a drill does:
    evidence under the results directory, every seal signed into a checkpoint."""
    from dalp_dr.config import load_settings
    from dalp_dr.history import open_history

    _record(open_history(load_settings()), runs)


def reseal_from(sqlite_path: Path, run_id: str, edit: dict[str, object]) -> None:
    """What an attacker with write access to the store (not the key) does: change a sealed
    record, then recompute every chain entry so the chain links again."""
    import sqlite3

    from dalp_dr import integrity

    conn = sqlite3.connect(sqlite_path)
    rows = conn.execute("select c.seq, c.run_id, r.result_json, r.spec_json, c.evidence_json"
                        " from chain c join runs r using (run_id) order by c.seq").fetchall()
    prev = integrity.GENESIS
    for seq, rid, result_json, spec_json, evidence_json in rows:
        if rid == run_id:
            result = json.loads(result_json)
            result.update(edit)
            result_json = json.dumps(result)
            conn.execute("update runs set result_json = ?, outcome = ? where run_id = ?",
                         (result_json, result["outcome"], rid))
        entry = integrity.seal(seq, rid, result_json, spec_json, json.loads(evidence_json),
                               prev, datetime.now(UTC))
        conn.execute("update chain set record_digest = ?, evidence_digest = ?,"
                     " prev_digest = ?, digest = ? where seq = ?",
                     (entry.record_digest, entry.evidence_digest, entry.prev_digest,
                      entry.digest, seq))
        prev = entry.digest
    conn.commit()
    conn.close()


# The smallest valid drill document (its inventory and playbooks are not resolved).
MINIMAL_DRILL = """\
name: x
topology: hot-warm
scenario: failover
owner: sre
objectives: {rto: 30m, rpo: 5m}
inventory: inv.yml
endpoint: {from_inventory: dsn}
phases:
  preflight: {playbook: p.yml}
  inject: {playbook: p.yml}
  verify: {playbook: p.yml}
  steady_state: {playbook: p.yml}
"""


# --- an auditor's sample history: mixed outcomes over two years, an approval -------------------

AUDITOR_RUN_ID = "20260401T030000Z-hot-warm-failover-with-a-rather-long-run-identifier-0002"
"""the missed run (a long id: it must wrap, not overflow)"""
FAILURE_REASON = "ansible play recover failed: patroni switchover timed out"


def fill_auditor_history(base: Path) -> str:
    """Eight sealed runs over 2025Q4..2026Q3 of two drills (passed, missed, inconclusive,
    failed with a reason, aborted, preflight_failed, missed schedule), one with a recovery
    timeline, and a reviewer's approval of the missed run; returns the store URL."""
    from dalp_dr.history.approvals import Approval
    from dalp_dr.results import TimelineEvent

    url = f"sqlite:///{base / 'results' / 'history.sqlite'}"
    hw, cold = "hot-warm-failover", "hot-cold-restore"
    plan = [("20251015T030000Z-r0001", hw, datetime(2025, 10, 15, 3, tzinfo=UTC),
             Outcome.PASSED, 1.4),
            (AUDITOR_RUN_ID, hw, datetime(2026, 4, 1, 3, tzinfo=UTC), Outcome.MISSED, 41.0),
            ("20260402T030000Z-r0003", hw, datetime(2026, 4, 2, 3, tzinfo=UTC),
             Outcome.PASSED, 2.2),
            ("20260410T030000Z-r0004", hw, datetime(2026, 4, 10, 3, tzinfo=UTC),
             Outcome.INCONCLUSIVE, None),
            ("20260701T030000Z-r0005", hw, datetime(2026, 7, 1, 3, tzinfo=UTC),
             Outcome.FAILED, None),
            ("20251101T030000Z-r0006", cold, datetime(2025, 11, 1, 3, tzinfo=UTC),
             Outcome.PASSED, 12.0),
            ("20260115T030000Z-r0007", cold, datetime(2026, 1, 15, 3, tzinfo=UTC),
             Outcome.ABORTED, None),
            ("20260215T030000Z-r0008", cold, datetime(2026, 2, 15, 3, tzinfo=UTC),
             Outcome.PREFLIGHT_FAILED, None),
            ("20260801T030000Z-r0009", cold, datetime(2026, 8, 1, 3, tzinfo=UTC),
             Outcome.MISSED_SCHEDULE, None)]
    runs = []
    for run_id, drill, started, outcome, recovery in plan:
        run = make_run(base, run_id, drill, started, outcome, recovery,
                       Topology.HOT_COLD if drill == cold else Topology.HOT_WARM)
        update: dict[str, object] = {}
        if outcome is Outcome.FAILED:
            update["message"] = FAILURE_REASON
        if run_id == AUDITOR_RUN_ID:
            update["operator"] = "alice"
            update["timeline"] = [
                TimelineEvent(name="fault injected", at=started + timedelta(seconds=5),
                              source="inject"),
                TimelineEvent(name="new primary promoted",
                              at=started + timedelta(seconds=38), source="patroni"),
                TimelineEvent(name="first write acknowledged",
                              at=started + timedelta(seconds=46), source="client")]
        runs.append(run.model_copy(update=update))
    store = open_store(url, results_dir=base / "results")
    for run in runs:
        store.begin(run.model_copy(update={"outcome": Outcome.RUNNING, "ended_at": None}),
                    json.dumps({"name": run.drill}))
        store.finish(run)
    store.approve(Approval.new(AUDITOR_RUN_ID, "Jane Doe (internal audit)",
                               "RTO miss reviewed; remediation tracked in CHG-1234",
                               datetime(2026, 4, 3, 9, tzinfo=UTC)))
    store.close()
    return url
