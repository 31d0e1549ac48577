"""dalp-dr: disaster-recovery drill orchestrator for self-hosted DALP deployments."""

__version__ = "0.1.0"
