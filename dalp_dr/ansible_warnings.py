"""Ansible used inside this process (reading inventories, templating their variables,
loading vault secrets) prints its own ``[WARNING]:`` and ``[DEPRECATION WARNING]:`` lines
straight to stderr, where they would interleave with a JSON-lines stream. Each such call
runs under :func:`captured`: what Ansible printed is taken apart, and every warning is
logged on the ``dalp_dr.ansible`` logger (WARNING level) instead, one record per warning,
for the CLI to route (a ``warning`` event on a JSON stream, a ``warning:`` line otherwise).
Anything else printed meanwhile goes on to stderr unchanged.

(Playbooks run through ansible-runner are another process: their warnings arrive as
``warning`` events of the runner's event stream, never on this process's stderr.)
"""

from __future__ import annotations

import contextlib
import functools
import io
import logging
import sys
import threading
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

LOGGER = logging.getLogger("dalp_dr.ansible")

PREFIXES = ("[WARNING]: ", "[DEPRECATION WARNING]: ")

F = TypeVar("F", bound=Callable[..., Any])

_LOCK = threading.RLock()
_DEPTH = threading.local()


def split(text: str) -> tuple[list[str], str]:
    """Ansible's output as its warnings (a warning runs until the next one: its origin and
    source lines belong to it) and the rest."""
    warnings: list[list[str]] = []
    rest: list[str] = []
    for line in text.replace("\r\n", "\n").splitlines(keepends=True):
        if line.startswith(PREFIXES):
            warnings.append([line])
        elif warnings:
            warnings[-1].append(line)
        else:
            rest.append(line)
    return ["".join(w).strip() for w in warnings], "".join(rest)


@contextlib.contextmanager
def captured() -> Iterator[None]:
    """Run in-process Ansible code with its warnings logged, not printed (nested calls and
    threads share one capture)."""
    if getattr(_DEPTH, "value", 0):
        yield
        return
    with _LOCK:
        _display_ready()
        _DEPTH.value = 1
        real = sys.stderr
        buffer = io.StringIO()
        try:
            with contextlib.redirect_stderr(buffer):
                yield
        finally:
            _DEPTH.value = 0
            warnings, rest = split(buffer.getvalue())
            if rest:
                real.write(rest)
                real.flush()
            for warning in warnings:
                LOGGER.warning("%s", warning)


@functools.cache
def _display_ready() -> None:
    """Ansible's display is made (once, on the real stderr) before any capture: made under
    one, it would try to reconfigure the capture buffer and warn about that."""
    from ansible.utils.display import Display

    Display()


def quiet_ansible(function: F) -> F:
    """:func:`captured` around a function that calls Ansible in-process."""

    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with captured():
            return function(*args, **kwargs)

    return wrapper  # type: ignore[return-value]
