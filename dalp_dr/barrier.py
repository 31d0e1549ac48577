"""The fault barrier: a phase playbook started ahead of the fault and held until the engine
reports the fault, so that what the drill measures is the recovery procedure, not
ansible-playbook's start-up (about a second: the interpreter, Ansible's imports, the
inventory and the playbook).

The engine starts the recover playbook before inject, with the extra var
``dalp_fault_barrier``: a shell command (every word quoted) the playbook's first task runs on
the controller through the ``pipe`` lookup. The command is this module: it waits until the
engine releases the barrier, then prints the facts the engine hands over (JSON) and exits 0.
When the drill stops before the fault (inject failed, an interrupt), the engine abandons the
barrier instead: the command exits non-zero, the task fails and the playbook ends having
done nothing. It also gives up at its own deadline and when the barrier's directory is gone
(the engine died and its temporary directory was removed).

    python -m dalp_dr.barrier GO-FILE DEADLINE-EPOCH
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import sys
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

GO = "go"
POLL_SECONDS = 0.002
"""How often the held task looks: the most the release can add to the measured recovery."""


class FaultBarrier:
    """One barrier: a private directory and the file whose appearance releases it."""

    def __init__(self) -> None:
        self._dir = Path(tempfile.mkdtemp(prefix="dalp-dr-barrier-"))  # 0700

    @property
    def go_file(self) -> Path:
        return self._dir / GO

    def command(self, wait_seconds: float) -> str:
        """The shell command that waits for the release, for at most ``wait_seconds``."""
        deadline = time.time() + wait_seconds
        return shlex.join([sys.executable, "-m", "dalp_dr.barrier", str(self.go_file),
                           f"{deadline:.3f}"])

    def release(self, facts: Mapping[str, Any]) -> None:
        """Let the held playbook go on, handing it ``facts`` (JSON-serialisable)."""
        self._write({"go": True, "facts": dict(facts)})

    def abandon(self, reason: str) -> None:
        """The held playbook must do nothing: its wait fails with ``reason``."""
        self._write({"go": False, "reason": reason})

    def close(self) -> None:
        shutil.rmtree(self._dir, ignore_errors=True)

    def _write(self, document: dict[str, Any]) -> None:
        temp = self._dir / f".{GO}.tmp"
        temp.write_text(json.dumps(document, default=str), encoding="utf-8")
        os.replace(temp, self.go_file)  # whole or not at all


def wait(go_file: Path, deadline: float, *, poll: float = POLL_SECONDS) -> tuple[int, str]:
    """Wait for the release. Returns (exit code, what to print: the facts as JSON on 0, the
    reason otherwise)."""
    while True:
        try:
            text = go_file.read_text(encoding="utf-8")
        except FileNotFoundError:
            if not go_file.parent.is_dir():
                return 3, "abandoned: the barrier is gone (the orchestrator stopped)"
            if time.time() > deadline:
                return 3, "abandoned: no fault was reported before the barrier's deadline"
            time.sleep(poll)
            continue
        try:
            document = json.loads(text)
        except json.JSONDecodeError:
            return 3, "abandoned: the barrier's release is unreadable"
        if not isinstance(document, dict) or document.get("go") is not True:
            reason = document.get("reason") if isinstance(document, dict) else None
            return 3, f"abandoned: {reason or 'the drill stopped before the fault'}"
        return 0, json.dumps(document.get("facts") or {})


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: python -m dalp_dr.barrier GO-FILE DEADLINE-EPOCH", file=sys.stderr)
        return 2
    try:
        deadline = float(argv[1])
    except ValueError:
        print(f"not an epoch time: {argv[1]!r}", file=sys.stderr)
        return 2
    code, text = wait(Path(argv[0]), deadline)
    print(text, file=sys.stdout if code == 0 else sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
