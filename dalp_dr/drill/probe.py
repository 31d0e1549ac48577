"""The divergence phase: after measure, before steady state rewinds or rebuilds the old
primary, the drill's probe playbook reads what the failover lost from the old primary's WAL
(``dalp_dr/divergence.py``). It never fails the drill: a probe that cannot read the WAL (the
disk is gone, the node was rewound) says why, and the data-loss window stays the heartbeat's
sampled one, marked so."""

from __future__ import annotations

from dalp_dr import divergence
from dalp_dr.drill import steps
from dalp_dr.drill.context import RunContext
from dalp_dr.journal import EventKind
from dalp_dr.results import Divergence
from dalp_dr.spec import PhaseName

REPORT_KEY = "dalp_divergence"


def probe(ctx: RunContext) -> None:
    """Run the drill's divergence probe, if it has one; its figures into the run state and
    the lost transactions into the evidence."""
    if ctx.drill.phase(PhaseName.DIVERGENCE) is None:
        return
    state, journal = ctx.state, ctx.journal
    steps.begin(ctx, PhaseName.DIVERGENCE)
    started = ctx.clock.now()
    result = steps.run_playbook(ctx, PhaseName.DIVERGENCE, state.cancel.is_set)
    report = dict(result.artifact_data)
    published = report.pop(REPORT_KEY, None)
    lost: list[dict[str, object]] = []
    if not result.ok:
        found = Divergence(available=False,
                           reason=f"the probe failed: {result.describe_failure()}")
    else:
        try:
            found, lost = divergence.read(published)
        except Exception as exc:  # a bug reading what a target said: no figure, no failure
            found = Divergence(available=False, reason=f"the probe's report could not be "
                               f"read ({type(exc).__name__}: {exc})"[:500])
    if found.available:
        try:
            journal.write_document(divergence.EVIDENCE, divergence.evidence_lines(
                lost, unlisted=(found.lost_transactions or 0) - len(lost)))
        except OSError as exc:
            journal.record(EventKind.EVIDENCE_NOT_WRITTEN, document=divergence.EVIDENCE,
                           error=str(exc)[:300])
            found = found.model_copy(update={"evidence": None})
    state.divergence = found
    report[REPORT_KEY] = found.model_dump(mode="json")
    steps.end(ctx, PhaseName.DIVERGENCE, steps.status_of(result), started, playbook=result,
              message=None if result.ok else result.describe_failure(), report=report)
    if found.available:
        said = (f"divergence: {found.lost_transactions} transactions lost after the fork at "
                f"{found.fork_lsn}")
        if found.never_acknowledged:
            said += (f", spanning {found.window:.3f} s" if found.window is not None else "") \
                + ("; none of them acknowledged (the promoted node was a synchronous standby "
                   "the old primary waited for)")
        elif found.window is not None:
            said += f", exact window {found.window:.3f} s"
        ctx.progress(said)
    else:
        ctx.progress(f"divergence: WAL of the old primary unavailable ({found.reason}); the "
                     "heartbeat's sampled window stands")
