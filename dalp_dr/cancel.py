"""Cooperative cancellation of a drill run.

The CLI (or the scheduler) calls ``request`` from a signal handler; the engine checks the
token between phases and passes ``is_set`` to the playbook runner, which stops the running
playbook. The return-to-steady-state phase is then run with no token: a first interrupt
never skips it.
"""

from __future__ import annotations

import threading


class CancelToken:
    def __init__(self) -> None:
        self._event = threading.Event()
        self.reason: str | None = None

    def request(self, reason: str) -> None:
        if not self._event.is_set():
            self.reason = reason
            self._event.set()

    def is_set(self) -> bool:
        return self._event.is_set()

    def wait(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for the cancel (at once when it comes); whether it
        was requested."""
        return self._event.wait(max(timeout, 0.0))


class RunCancelled(Exception):
    """Raised inside the engine when the token is set; never escapes ``DrillEngine.run``."""
