"""Contracts the engine relies on. Implementations live one per file next to this one."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from pydantic import BaseModel


class PlaybookResult(BaseModel, frozen=True):
    """What one playbook run produced.

    ``status`` is ansible-runner's: successful, failed, timeout or canceled.
    ``artifact_data`` is what the playbook published with ``set_stats`` (its report to us).
    """

    playbook: str
    status: str
    rc: int
    started_at: datetime
    ended_at: datetime
    artifact_data: dict[str, Any]
    failed_task: str | None = None
    failure_message: str | None = None
    unreachable_hosts: tuple[str, ...] = ()
    task_windows: dict[str, tuple[datetime, datetime]] = {}
    """Controller-side start/end of each task by name (first host), from runner events."""

    @property
    def ok(self) -> bool:
        return self.status == "successful" and self.rc == 0

    def describe_failure(self) -> str:
        if self.status == "timeout":
            return f"{self.playbook} timed out"
        if self.status == "canceled":
            return f"{self.playbook} was canceled"
        parts = [f"{self.playbook} {self.status} (rc={self.rc})"]
        if self.unreachable_hosts:
            parts.append("unreachable: " + ", ".join(self.unreachable_hosts))
        if self.failed_task:
            parts.append(f"task '{self.failed_task}'")
        if self.failure_message:
            parts.append(self.failure_message)
        return "; ".join(parts)


EventSink = Callable[[dict[str, Any]], None]
CancelCheck = Callable[[], bool]


class PlaybookRunner(Protocol):
    """Runs one playbook to completion.

    Contract: never raises for a playbook that ran and failed (that is a result with a
    status); raises ``PlaybookFailed`` only when the playbook could not be started at all.
    Calls ``on_event`` for every runner event as it happens, in order. Stops the playbook
    when ``timeout`` seconds pass (status ``timeout``) or ``cancel()`` returns True
    (status ``canceled``). ``check`` runs it in Ansible check mode (``--check``): tasks
    report what they would change and change nothing.
    """

    def run(self, playbook: Path, inventory: Path, *, extravars: Mapping[str, Any],
            timeout: float, on_event: EventSink | None = None,
            cancel: CancelCheck | None = None, check: bool = False) -> PlaybookResult: ...


class ServerIdentity(BaseModel, frozen=True):
    port: int | None
    timeline: int | None
    in_recovery: bool
    system_identifier: str | None = None


class WriteAck(BaseModel, frozen=True):
    """Which server acknowledged a heartbeat write: its WAL timeline and its address:port
    (None for a Unix socket, or when the server did not say). Two servers on the same
    timeline are one history; an acknowledgement on the old primary's timeline after the
    new primary was promoted is a split-brain write."""

    timeline: int | None = None
    server: str | None = None


class EndpointSession(Protocol):
    """One client connection through the service endpoint.

    Contract: every method raises ``EndpointError`` on any database or network failure
    and leaves the session unusable (callers open a new one); nothing else escapes.
    """

    def write_marker(self, run_id: str, seq: int, sent_at: datetime) -> WriteAck:
        """Insert one marker; what the accepting server said about itself."""
        ...

    def surviving_markers(self, run_id: str) -> set[int]: ...

    def identity(self) -> ServerIdentity: ...

    def query_value(self, sql: str, *, timeout: float | None = None,
                    params: tuple[Any, ...] = ()) -> Any:
        """First column of the first row of ``sql``, run read-only (verify checks);
        ``params`` fill PostgreSQL's ``$1``, ``$2``..."""
        ...

    def close(self) -> None: ...


class ServiceEndpoint(Protocol):
    """How dalp-dr reaches the database the way clients do (through the route)."""

    @property
    def display(self) -> str:
        """A description safe for logs and evidence (no credentials)."""
        ...

    def connect(self, *, timeout: float) -> EndpointSession: ...

    def ensure_schema(self) -> None:
        """Create the heartbeat marker table when missing (through the endpoint)."""
        ...
