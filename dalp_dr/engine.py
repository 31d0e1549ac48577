"""Moved to ``dalp_dr.drill`` (temporary re-exports while callers move; removed with them)."""

from dalp_dr.drill.context import PreparedDrill
from dalp_dr.drill.engine import DrillEngine, DrillRun
from dalp_dr.drill.outcome import new_run_id, not_started
from dalp_dr.drill.steps import phase_extravars
from dalp_dr.measure import fault_instant, pitr_check, recovery_target_time

__all__ = ["DrillEngine", "DrillRun", "PreparedDrill", "fault_instant", "new_run_id",
           "not_started", "phase_extravars", "pitr_check", "recovery_target_time"]
