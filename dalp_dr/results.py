"""What a drill run produces: samples, measurements, verdicts, phase records, the run result."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel

from dalp_dr.provenance import Provenance
from dalp_dr.spec import PhaseName, Scenario, Topology


class Frozen(BaseModel, frozen=True):
    """The base of the run records: frozen (a changed copy is a new record)."""


class HeartbeatSample(Frozen):
    """One write attempt through the service endpoint.

    ``ended_at`` is when the client saw the outcome: the commit acknowledgement when
    ``acked`` is true, the error otherwise. An attempt without acknowledgement may or may not
    have committed; it never counts as a loss.
    """

    seq: int
    sent_at: datetime
    ended_at: datetime
    acked: bool
    error: str | None = None
    timeline: int | None = None
    """the accepting server's WAL timeline (acknowledged writes; None in evidence from
    before it was recorded)"""
    server: str | None = None
    """the accepting server's address:port (None over a Unix socket)"""

    @property
    def acked_at(self) -> datetime | None:
        return self.ended_at if self.acked else None


class Status(StrEnum):
    MET = "met"
    MISSED = "missed"
    UNKNOWN = "unknown"


class SplitBrain(Frozen):
    """Split brain as one client population saw it: writes the old primary acknowledged
    after the new primary was promoted, and whether the old primary was fenced (stopped
    accepting writes). The old primary is the timeline of the population's newest write
    acknowledged before the fault; the promotion instant is the earliest "new primary
    promoted" on the recovery timeline or, when earlier, the first write any population had
    acknowledged on another timeline (dalp_dr/split_brain.py)."""

    promoted_at: datetime | None
    old_timeline: int | None
    old_server: str | None = None
    """the address:port that acknowledged that newest write before the fault"""
    writes: int | None
    """split-brain writes: acknowledged on the old timeline after ``promoted_at`` (None: not
    measurable, ``reason`` says why)"""
    first_at: datetime | None = None
    last_at: datetime | None = None
    span: float | None = None
    """seconds from the first split-brain write to the last (None when there was none)"""
    fenced: bool | None = None
    """True: the population kept attempting after the old primary's last acknowledged write
    and none of those attempts was accepted on the old timeline; False: not shown (it
    accepted every write to the end, or the population stopped attempting); None: unknown,
    or not this population's to answer (a drill with isolated populations asks only them)"""
    last_old_primary_ack: datetime | None = None
    """the old primary's last acknowledged write (this population's): when it was fenced,
    at the latest, when ``fenced``"""
    reason: str | None = None
    """why a figure is not known"""


class Basis(StrEnum):
    """What a run's recovery time and data-loss window were measured from."""

    CLIENTS = "clients"
    """the clients' heartbeat: the fault was real, and they saw it"""
    RESTORE = "restore"
    """the restore itself (the fault was simulated: the clients' database was never lost):
    fault -> restored database verified, and the restored point's distance from the fault"""


class LossBasis(StrEnum):
    """What a run's data-loss window was taken from."""

    SAMPLED = "sampled"
    """the heartbeat's markers: one interval's resolution, and only the drill's own writes"""
    EXACT = "exact"
    """the old primary's WAL past the fork: every transaction it committed that the new
    timeline does not have, by commit time (the divergence probe)"""


class TableLoss(Frozen):
    table: str
    """database.schema.table, or the relation's file number when the catalog no longer
    knows it"""
    commits: int
    """lost transactions that wrote it"""


class Divergence(Frozen):
    """What the divergence probe read from the old primary's WAL (``dalp_dr/divergence.py``).
    When ``available`` is false, ``reason`` says why and the sampled figure stands."""

    available: bool
    reason: str | None = None
    old_primary: str | None = None
    new_primary: str | None = None
    fork_lsn: str | None = None
    old_timeline: int | None = None
    new_timeline: int | None = None
    lost_transactions: int | None = None
    """commits the old primary wrote at or after the fork"""
    listed: int | None = None
    """how many of them the evidence lists one by one (all, up to 20000)"""
    aborted_after_fork: int | None = None
    unfinished_after_fork: int | None = None
    """transactions with records after the fork but no commit: never committed, not lost"""
    newest_surviving_commit_at: datetime | None = None
    """the old primary's newest commit before the fork (the fork's time)"""
    oldest_lost_commit_at: datetime | None = None
    newest_lost_commit_at: datetime | None = None
    window: float | None = None
    """newest lost commit - newest surviving commit (0 when nothing was lost), seconds, on
    the old primary's own clock"""
    window_lower_bound: float | None = None
    """lost commits but no commit before the fork in the WAL read: at least this"""
    tables: list[TableLoss] = []
    """the tables the lost transactions wrote, most first (the top 10)"""
    evidence: str | None = None
    """the evidence file listing every lost transaction"""
    contradicted: str | None = None
    """the heartbeat saw more loss than the WAL shows: the sampled window is judged"""
    never_acknowledged: str | None = None
    """why no commit past the fork was confirmed to its client: the promoted node was a
    synchronous standby the old primary waited for. The acknowledged loss judged is then 0
    (``window`` stays the span the lost commits cover). None when that cannot be said, or
    when the heartbeat contradicted it (``contradicted``)"""


class Measurements(Frozen):
    """Figures measured from the client's side (``basis``), or, where the fault was
    simulated, from the restore. Seconds; None when evidence is missing."""

    fault_at: datetime | None
    recovered_at: datetime | None
    """first write acknowledged after the fault"""
    verified_at: datetime | None
    recovery_time: float | None
    """fault instant -> first write acknowledged again"""
    recovery_time_lower_bound: float | None = None
    """when not recovered: how long the service was observed down at least"""
    write_outage: float | None = None
    """last write acknowledged before the outage -> first acknowledged after it"""
    longest_write_wait: float | None = None
    """the longest any one write attempt waited for its answer (acknowledgement or error), of
    those under way between the fault and recovery: a route that holds writes through the
    switch (pgbouncer) shows the clients' stall here, while the write outage, which starts
    only at a failed write, stays 0"""
    rtt: float | None
    """fault instant -> verify passed and every converge probe met"""
    rtt_lower_bound: float | None = None
    """not measured (a converge probe timed out, verify never passed): at least this"""
    data_loss_window: float | None
    data_loss_window_lower_bound: float | None = None
    """when no pre-fault write survived: the loss reaches at least back this far"""
    lost_writes: int | None
    acked_before_fault: int
    unacknowledged_attempts: int
    resolution: float
    """heartbeat interval: no figure is finer than this"""
    last_ack_before_fault: datetime | None = None
    newest_surviving_ack: datetime | None = None
    surviving_checked: bool = False
    split_brain: SplitBrain | None = None
    """measured when the drill declares the split_brain objective"""
    basis: Basis = Basis.CLIENTS
    data_loss_basis: LossBasis = LossBasis.SAMPLED
    """where ``data_loss_window`` comes from: the heartbeat (sampled) or the WAL (exact)"""
    sampled_data_loss_window: float | None = None
    """the heartbeat's window, kept for comparison when the exact one is used"""
    divergence: Divergence | None = None


class ClockOffset(Frozen):
    """One target's clock against the run's timeline, estimated the NTP way: the target read
    its clock inside a task whose start and end the controller knows; offset = the reading -
    the task's midpoint, uncertainty = half the task (the best of a few reads)."""

    host: str
    when: str
    """preflight, or after verify"""
    offset: float
    """seconds the target's clock is ahead of the controller's timeline"""
    uncertainty: float


class TimelineEvent(Frozen):
    """One moment of a recovery: the fault, what the platform did (as the playbooks'
    observers saw it), what the client saw. ``source`` says who observed it."""

    name: str
    at: datetime
    source: str
    detail: str | None = None


class ObjectiveVerdict(Frozen):
    objective: str
    population: str | None = None
    """the client population judged, in a drill with several (hot-hot); None otherwise"""
    target: float
    measured: float | None
    status: Status
    margin: float | None
    """target - measured (positive: headroom; negative: by how much it was missed)"""
    reason: str


class CheckOutcome(Frozen):
    """One declarative verify check: what it saw and whether that is healthy."""

    name: str
    kind: str
    ok: bool
    value: str | None
    detail: str


class ConvergeOutcome(Frozen):
    """One converge probe: met (when, seconds after the fault) or not, what it last read."""

    name: str
    met: bool
    at: datetime | None
    """when it was met, or when it gave up"""
    seconds: float | None
    """seconds from the fault to the probe met"""
    value: str | None
    reference: str | None = None
    """a ``near`` probe's reference value at the last poll"""
    polls: int
    detail: str


class PhaseStatus(StrEnum):
    OK = "ok"
    FAILED = "failed"
    SKIPPED = "skipped"
    TIMEOUT = "timeout"
    CANCELED = "canceled"


class PhaseRecord(Frozen):
    phase: PhaseName
    status: PhaseStatus
    started_at: datetime
    ended_at: datetime
    playbook: str | None = None
    message: str | None = None
    report: dict[str, Any] = {}

    @property
    def duration(self) -> float:
        return (self.ended_at - self.started_at).total_seconds()


class Outcome(StrEnum):
    PASSED = "passed"
    """every objective met, on evidence"""
    MISSED = "missed"
    """at least one objective missed"""
    INCONCLUSIVE = "inconclusive"
    """the drill ran but evidence is insufficient for at least one objective"""
    FAILED = "failed"
    """a phase failed (the fault was injected)"""
    PREFLIGHT_FAILED = "preflight_failed"
    """fail closed: no fault was injected"""
    ABORTED = "aborted"
    RUNNING = "running"
    REFUSED = "refused"
    """a guardrail refused the run before anything started (production without --confirm,
    a change freeze); the reason is the message"""
    MISSED_SCHEDULE = "missed_schedule"
    """a scheduled run that did not happen (the scheduler was down past the grace period, or
    the environment was busy); started_at is the planned time"""


class Trigger(StrEnum):
    CLI = "cli"
    SCHEDULE = "schedule"


class RunResult(Frozen):
    run_id: str
    drill: str
    topology: Topology
    scenario: Scenario
    environment: str
    owner: str
    trigger: Trigger
    operator: str
    spec_hash: str
    started_at: datetime
    ended_at: datetime | None
    outcome: Outcome
    objectives: dict[str, float]
    measurements: Measurements | None
    """the figures of the (first judged) client population"""
    populations: dict[str, Measurements] = {}
    """every population's figures, in a drill with several (hot-hot); empty otherwise"""
    verdicts: list[ObjectiveVerdict]
    phases: list[PhaseRecord]
    steady_state_restored: bool | None
    evidence_dir: str
    message: str | None = None
    planned_at: datetime | None = None
    """the schedule's fire time this run answers (scheduled and missed runs)"""
    drill_file: str | None = None
    """the drill definition the run was started from (crash recovery reloads it)"""
    checks: list[CheckOutcome] = []
    """the drill's declarative verify checks, in order"""
    clock_offsets: list[ClockOffset] = []
    """every reachable target's clock offset, at preflight and after verify"""
    clock_note: str | None = None
    """how the fault instant a target reported was mapped onto the timeline, and what the
    offsets' uncertainty means for the figures"""
    convergence: list[ConvergeOutcome] = []
    """the drill's converge probes, in order"""
    timeline: list[TimelineEvent] = []
    """the recovery decomposed, in time order (fault first)"""
    provenance: Provenance | None = None
    """versions, controller, operator and the sha256 of every file the run read (sealed
    with the record; records from before it have none)"""
