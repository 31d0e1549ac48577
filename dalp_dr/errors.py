"""The one exception tree of dalp-dr.

Library code raises these; only the CLI maps them to exit codes and prints them.
Errors from psycopg, ansible-runner and boto3 are translated where they enter our code
(see ``dalp_dr.adapters``), so nothing above the adapters catches third-party exceptions.

Exit code mapping (chosen by the CLI, documented here so it lives next to the classes):

* :class:`InvalidInput` and subclasses -> 2 (nothing was started or changed)
* :class:`DrillFailed` and subclasses  -> 1
* :class:`Interrupted`                 -> 130
"""

from __future__ import annotations

from typing import Any


class DalpDrError(Exception):
    """Base of every error dalp-dr raises on purpose."""


# --- invalid input: exit 2, nothing started -------------------------------------------------


class InvalidInput(DalpDrError):
    """The user gave us something we cannot act on. Nothing was started or changed."""

    def __init__(self, message: str, *, source: str | None = None, field: str | None = None,
                 hint: str | None = None) -> None:
        self.source = source
        self.field = field
        self.hint = hint
        self.detail = message
        super().__init__(self._render())

    def _render(self) -> str:
        where = ": ".join(p for p in (self.source, self.field) if p)
        text = f"{where}: {self.detail}" if where else self.detail
        if self.hint:
            text += f" ({self.hint})"
        return text


class SpecError(InvalidInput):
    """A drill definition is malformed, has unknown fields, or names missing files."""


class InventoryError(InvalidInput):
    """An inventory cannot be read, or lacks a variable a drill needs."""


class TargetUnreachable(InvalidInput):
    """The environment a drill points at is not there (lab not up, host unreachable)."""


class ConfigError(InvalidInput):
    """dalp-dr's own configuration (store URL, directories) is unusable."""


class GuardrailRefused(InvalidInput):
    """A production guardrail refused the run (recorded as ``refused``); nothing started."""


class UnknownRun(InvalidInput):
    """A run id that is not in the history."""


# --- operational failures: exit 1 -------------------------------------------------------------


class DrillFailed(DalpDrError):
    """A drill could not complete or its objectives were not shown to be met."""


class EnvironmentBusy(DrillFailed):
    """Another drill holds the environment's lock (its lease has not expired). Nothing was
    started or recorded for this run."""

    def __init__(self, message: str, *, holder: object = None) -> None:
        self.holder = holder
        super().__init__(message)


class PreflightFailed(DrillFailed):
    """Preflight could not prove it is safe to inject the fault. No fault was injected."""


class PlaybookFailed(DalpDrError):
    """An Ansible playbook ended in failure, timed out or could not start."""

    def __init__(self, message: str, *, playbook: str, status: str,
                 failed_task: str | None = None, unreachable_hosts: tuple[str, ...] = ()) -> None:
        self.playbook = playbook
        self.status = status
        self.failed_task = failed_task
        self.unreachable_hosts = unreachable_hosts
        super().__init__(message)


class EndpointError(DalpDrError):
    """The service endpoint (PostgreSQL through the route) refused or failed an operation."""


class ObjectStoreError(DalpDrError):
    """Object storage (S3) answered, but with an error about the objects themselves."""


class ManagedDbError(DalpDrError):
    """A managed database API (AWS RDS, Aurora) refused or failed a request, or a failover
    it was asked for did not happen."""


class MarkerTableMissing(EndpointError):
    """The heartbeat marker table does not exist on the server the endpoint reaches."""


class StoreError(DalpDrError):
    """The history store cannot be opened, read or written."""


class ResultNotRecorded(StoreError):
    """A drill ended but the history store could not take its result; the result is kept in
    the run's evidence directory (result.json) to be recorded when the store is back."""

    def __init__(self, message: str, *, result: Any) -> None:
        self.result = result
        super().__init__(message)


class TamperedHistory(DalpDrError):
    """The history's hash chain, a record or an evidence file does not match what was
    sealed; nothing is exported or signed on top of it."""


class LabError(DalpDrError):
    """Bringing the local lab up or down failed."""


# --- interrupts: exit 130 ---------------------------------------------------------------------


class Interrupted(DalpDrError):
    """The operator interrupted the run (SIGINT/SIGTERM)."""
