"""How a run shows itself while it happens: a live panel on a terminal (rich), plain lines
otherwise, or JSON lines for log aggregation (``--log-format json``).

All three are observers of the journal (``dalp_dr.journal.Observer``): they see what is
written as evidence, already redacted, and nothing else. What they show is data: the live
panel gives it to Rich as Text, never as markup.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from datetime import UTC, datetime
from typing import IO, Any

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from dalp_dr.clock import utcnow
from dalp_dr.durations import format_duration


def _now() -> str:
    return utcnow().isoformat()


class JsonLines:
    """One JSON object per line and event: run id, phase, playbook task, timing. Heartbeats
    are reported when they change between acknowledged and failing, not ten times a
    second."""

    def __init__(self, stream: IO[str]) -> None:
        self._stream = stream
        self._lock = threading.Lock()
        self._acked: dict[str | None, bool] = {}

    def emit(self, event: str, **body: Any) -> None:
        line = json.dumps({**body, "ts": _now(), "event": event}, default=str,
                          sort_keys=True)
        with self._lock:
            self._stream.write(line + "\n")
            self._stream.flush()

    def __call__(self, kind: str, body: dict[str, Any]) -> None:
        if kind == "heartbeat":
            population = body.get("population")
            acked = bool(body.get("acked"))
            if self._acked.get(population) == acked:
                return
            self._acked[population] = acked
            self.emit("heartbeat.changed", run_id=body.get("run_id"), acked=acked,
                      seq=body.get("seq"), population=population, error=body.get("error"),
                      at=body.get("ended_at"))
            return
        self.emit(kind, **{k: v for k, v in body.items() if k not in ("kind", "event", "ts")})

    def progress(self, message: str) -> None:
        self.emit("progress", message=message)


class LiveView:
    """The terminal panel: current phase and its elapsed time, heartbeat acknowledgements
    and errors, the moment the fault was injected and recovery was seen."""

    def __init__(self, console: Console) -> None:
        self._console = console
        self._lock = threading.Lock()
        self.run_id = "-"
        self.drill = ""
        self.phase = "starting"
        self.phase_started = time.monotonic()
        self.acks = 0
        self.errors = 0
        self.last_error: str | None = None
        self.failing = False
        self.fault_at: str | None = None
        self.recovered_at: str | None = None
        self.task: str | None = None
        self.lines: list[str] = []
        self._live = Live(self, console=console, refresh_per_second=4, transient=True)

    def __enter__(self) -> LiveView:
        self._live.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._live.stop()

    def __call__(self, kind: str, body: dict[str, Any]) -> None:
        with self._lock:
            if kind == "heartbeat":
                if body.get("acked"):
                    self.acks += 1
                    if self.failing and self.fault_at and self.recovered_at is None:
                        self.recovered_at = str(body.get("ended_at"))[11:23]
                    self.failing = False
                else:
                    self.errors += 1
                    self.failing = True
                    self.last_error = str(body.get("error") or "")[:100]
            elif kind == "run.started":
                self.run_id, self.drill = str(body.get("run_id")), str(body.get("drill"))
            elif kind == "phase.started":
                self.phase, self.phase_started = str(body.get("phase")), time.monotonic()
                self.task = None
            elif kind == "phase.finished":
                self.lines.append(f"{body.get('phase')}: {body.get('status')}")
            elif kind == "fault.injected":
                self.fault_at = str(body.get("at"))[11:23]
            elif kind == "ansible.task" and body.get("ansible_event") == "playbook_on_task_start":
                self.task = str(body.get("task"))

    def progress(self, message: str) -> None:
        with self._lock:
            self.lines.append(message)

    def __rich__(self) -> Group:
        """Everything shown comes from the journal (run ids, drill, phase, Ansible task
        names, errors a target returned): Text with styles, never markup."""
        with self._lock:
            table = Table.grid(padding=(0, 2))
            table.add_row("run", Text(f"{self.run_id} {self.drill}"))
            table.add_row("phase", Text.assemble(
                (self.phase, "bold"),
                f" {format_duration(time.monotonic() - self.phase_started)}",
                f"  task: {self.task}" if self.task else ""))
            table.add_row("heartbeat", Text.assemble(
                (f"{self.acks} acknowledged", "green"), "  ", (f"{self.errors} failed", "red"),
                ("  FAILING", "bold red") if self.failing else ""))
            if self.last_error:
                table.add_row("last error", Text(self.last_error, style="dim"))
            table.add_row("fault", Text(self.fault_at or "-"))
            table.add_row("recovery seen", Text(self.recovered_at or "-"))
            recent = Text("\n".join(self.lines[-6:]), style="dim")
            return Group(table, recent)


class JsonLogFormatter(logging.Formatter):
    """The scheduler's log records as JSON lines."""

    def format(self, record: logging.LogRecord) -> str:
        return json.dumps({"ts": datetime.fromtimestamp(record.created, UTC).isoformat(),
                           "level": record.levelname.lower(), "logger": record.name,
                           "event": "log", "message": record.getMessage()}, sort_keys=True)
