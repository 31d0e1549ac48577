"""The write-marker heartbeat: the client's-eye view of the service during a drill.

A background thread inserts one sequence-numbered marker per interval through the service
endpoint and records, for every attempt, when it was sent and when the client saw its
acknowledgement or its error, and which server (WAL timeline, address) took each write. On
error the connection is dropped and the next tick reconnects, as a well-behaved client
would. Each sample goes to ``sink`` as it happens.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import datetime

from dalp_dr.adapters.base import EndpointSession, ServiceEndpoint
from dalp_dr.clock import SYSTEM_CLOCK, Clock
from dalp_dr.errors import EndpointError, MarkerTableMissing
from dalp_dr.results import HeartbeatSample

Sink = Callable[[HeartbeatSample], None]


class Heartbeat:
    def __init__(self, endpoint: ServiceEndpoint, run_id: str, *, interval: float,
                 sink: Sink, connect_timeout: float = 2.0, clock: Clock = SYSTEM_CLOCK) -> None:
        """``clock``: what stamps each attempt (the run's timeline, ``clock.RunClock``)."""
        self._endpoint = endpoint
        self._run_id = run_id
        self._interval = interval
        self._sink = sink
        self._connect_timeout = connect_timeout
        self._clock = clock
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._samples: list[HeartbeatSample] = []
        self._thread = threading.Thread(target=self._loop, name="dalp-dr-heartbeat",
                                        daemon=True)
        self._sink_error: Exception | None = None
        self._table_error: str | None = None

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=self._connect_timeout + 10)

    def pause(self, seconds: float) -> None:
        """Sleep while the heartbeat keeps writing (returns early once stopped)."""
        self._stop.wait(seconds)

    @property
    def samples(self) -> list[HeartbeatSample]:
        with self._lock:
            return list(self._samples)

    def acked_since(self, when: datetime) -> int:
        with self._lock:
            return sum(1 for s in self._samples if s.acked and s.ended_at >= when)

    def wait_for_recovery(self, fault_at: datetime, *, timeout: float,
                          cancel: Callable[[], bool] | None = None) -> datetime | None:
        """Block until an attempt started after the outage (or fault) is acknowledged."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self._thread.is_alive():
            if cancel is not None and cancel():
                return None
            with self._lock:
                failures = [s.ended_at for s in self._samples
                            if not s.acked and s.ended_at >= fault_at]
                start = min(failures) if failures else fault_at
                for sample in self._samples:
                    if sample.acked and sample.sent_at >= start and sample.ended_at >= fault_at:
                        return sample.ended_at
            time.sleep(min(self._interval, 0.05))
        return None

    def _record(self, sample: HeartbeatSample) -> None:
        with self._lock:
            self._samples.append(sample)
        try:
            self._sink(sample)
        except Exception as exc:  # evidence write failed: keep measuring, report at the end
            self._sink_error = exc

    @property
    def sink_error(self) -> Exception | None:
        return self._sink_error

    def _recreate_table(self) -> None:
        try:
            self._endpoint.ensure_schema()
        except EndpointError as exc:
            self._table_error = str(exc)  # the next tick tries again; samples show the errors

    def _loop(self) -> None:
        session: EndpointSession | None = None
        seq = 0
        next_tick = time.monotonic()
        try:
            while not self._stop.is_set():
                seq += 1
                sent = self._clock.now()
                try:
                    if session is None:
                        session = self._endpoint.connect(timeout=self._connect_timeout)
                    ack = session.write_marker(self._run_id, seq, sent)
                    self._record(HeartbeatSample(seq=seq, sent_at=sent, ended_at=self._clock.now(),
                                                 acked=True, timeline=ack.timeline,
                                                 server=ack.server))
                except EndpointError as exc:
                    if session is not None:
                        session.close()
                    session = None
                    self._record(HeartbeatSample(seq=seq, sent_at=sent, ended_at=self._clock.now(),
                                                 acked=False, error=str(exc)[:500]))
                    if isinstance(exc, MarkerTableMissing):
                        self._recreate_table()
                next_tick += self._interval
                now = time.monotonic()
                if next_tick < now:  # fell behind (a call blocked): no burst, resume cadence
                    next_tick = now
                self._stop.wait(next_tick - now)
        finally:
            if session is not None:
                session.close()
