"""PlaybookRunner on ansible-runner.

ansible-runner runs ``ansible-playbook`` in a child process and reports every event. The
private data directory (which holds extravars and environment) is a temporary directory that
is removed afterwards; the events we keep are passed to ``on_event`` for the journal, which
redacts them.

Extra vars are data, never templates: what a phase publishes with ``set_stats`` may quote a
target's output, and is handed to the next phase. Every string reaches Ansible marked unsafe
(``__ansible_unsafe`` in a JSON vars file of our own, ``-e @file``), so a
``{{ lookup('pipe', ...) }}`` in a leader name stays those characters.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import sys
import tempfile
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from dalp_dr.adapters.base import CancelCheck, EventSink, PlaybookResult
from dalp_dr.clock import utcnow
from dalp_dr.config import ansible_roles_path
from dalp_dr.errors import PlaybookFailed
from dalp_dr.vault import VaultIdentities, active

UNSAFE = "__ansible_unsafe"
"""Ansible's JSON marker for a string it must never template. (The YAML ``!unsafe`` tag is no
substitute: ansible-core 2.19 still resolves such a scalar's type, so ``'12'`` arrives as an
int and a timestamp as a datetime.)"""


def _as_data(value: Any) -> Any:
    """Every string in ``value`` (keys excepted: Ansible does not template them) unsafe."""
    if isinstance(value, str):
        return {UNSAFE: value}
    if isinstance(value, Mapping):
        return {str(k): _as_data(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_as_data(v) for v in value]
    if value is None or isinstance(value, (bool, int, float)):
        return value
    return {UNSAFE: str(value)}  # datetimes, paths: their text


def write_extravars(path: Path, extravars: Mapping[str, Any]) -> None:
    """The extra vars as a JSON vars file in which every string is marked unsafe."""
    text = json.dumps(_as_data(dict(extravars)), ensure_ascii=False, sort_keys=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)


def _when(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


def kill_leftovers(private: Path) -> list[int]:
    """SIGKILL every process still running for this playbook run once ansible-runner has
    returned. Ansible's task workers start their own sessions (os.setsid), so the process
    group kill ansible-runner does on cancel or timeout misses them, and a canceled phase's
    task would keep running (a promote after steady state began). They are found by the
    run's private data directory on their command line (forked workers share it)."""
    marker = str(private)
    killed = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(
                errors="replace")
        except OSError:
            continue
        if marker in cmdline:
            try:
                os.kill(int(entry.name), signal.SIGKILL)
                killed.append(int(entry.name))
            except ProcessLookupError:
                continue
    return killed


def ansible_environment(playbook: Path | None = None) -> dict[str, str]:
    """Environment for ansible-playbook: our venv first on PATH, a UTF-8 locale, no colour,
    ansible-runner's own stdout callback whatever an enclosing Ansible job set;
    for ``playbook``, the roles path it resolves its roles with (config.ansible_roles_path:
    the same one the provenance manifest hashes)."""
    bindir = str(Path(sys.executable).parent)
    path = os.environ.get("PATH", "")
    roles = ({"ANSIBLE_ROLES_PATH": os.pathsep.join(
        str(p) for p in ansible_roles_path(playbook.parent))} if playbook is not None else {})
    return {
        **roles,
        "PATH": f"{bindir}:{path}" if path else bindir,
        "LC_ALL": "C.UTF-8",
        "LANG": "C.UTF-8",
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_RETRY_FILES_ENABLED": "0",
        "ANSIBLE_PIPELINING": "1",
        "ANSIBLE_DEPRECATION_WARNINGS": "0",
        "ANSIBLE_SYSTEM_WARNINGS": "0",
        "ANSIBLE_LOCALHOST_WARNING": "0",
        "ANSIBLE_INVENTORY_UNPARSED_WARNING": "0",
        "ANSIBLE_FORKS": "10",
        # inside an Ansible job of ansible-runner's (an AWX job running the dalp.dr.drill
        # module) the job's own stdout callback, awx_display, is in the environment:
        # ansible-runner would make it the "original" callback its awx_display wraps, and
        # every playbook would fail loading it. Our runs' stdout callback is ansible-runner's.
        "ANSIBLE_STDOUT_CALLBACK": "",
        "ORIGINAL_STDOUT_CALLBACK": "",
    }


class AnsibleRunner:
    """Runs playbooks with ansible_runner.run(); see PlaybookRunner for the contract.

    ``vault``: the identities ansible-playbook gets (``--vault-id``); by default the ones
    this process activated, so the controller and the playbooks decrypt alike."""

    def __init__(self, *, workdir: Path | None = None,
                 vault: VaultIdentities | None = None) -> None:
        self._workdir = workdir
        self._vault = vault  # None: the identities this process activated (dalp_dr.vault)

    def run(self, playbook: Path, inventory: Path, *, extravars: Mapping[str, Any],
            timeout: float, on_event: EventSink | None = None,
            cancel: CancelCheck | None = None, check: bool = False) -> PlaybookResult:
        import ansible_runner

        if not playbook.is_file():
            raise PlaybookFailed(f"playbook {playbook} not found", playbook=str(playbook),
                                 status="missing")
        if shutil.which("ansible-playbook", path=ansible_environment()["PATH"]) is None:
            raise PlaybookFailed("ansible-playbook is not on PATH (install ansible-core)",
                                 playbook=str(playbook), status="missing")

        artifacts: dict[str, Any] = {}
        failed: list[tuple[str, str]] = []
        errors: list[str] = []
        unreachable: list[str] = []
        windows: dict[str, tuple[datetime, datetime]] = {}

        def handle(event: dict[str, Any]) -> bool:
            data = event.get("event_data") or {}
            kind = event.get("event", "")
            if kind == "runner_on_ok" or kind == "runner_on_failed":
                start, end = _when(data.get("start")), _when(data.get("end"))
                task = str(data.get("task") or "")
                if start and end and task not in windows:
                    windows[task] = (start, end)
            if kind == "runner_on_failed" and not data.get("ignore_errors"):
                res = data.get("res") or {}
                msg = str(res.get("msg") or "").strip()
                stderr = str(res.get("stderr") or "").strip()
                if stderr and (not msg or msg == "non-zero return code"):
                    msg = stderr  # the command's own words, e.g. which object is corrupt
                failed.append((str(data.get("task") or ""), msg[:2000]))
            elif kind in ("verbose", "error") and "[ERROR]" in str(event.get("stdout", "")):
                # a playbook that cannot even load (syntax, undefined include): no task failed
                text = str(event.get("stdout", "")).strip()
                if not errors:
                    errors.append(text[:2000])
            elif kind == "runner_on_unreachable":
                unreachable.append(str(data.get("host") or "?"))
            elif kind == "playbook_on_stats":
                artifacts.update(data.get("artifact_data") or {})
            if on_event is not None:
                on_event(event)
            return False  # do not keep event files in the (temporary) artifact dir

        private = Path(tempfile.mkdtemp(prefix="dalp-dr-runner-", dir=self._workdir))
        started = utcnow()
        try:
            extra_file = private / "dalp-extravars.json"
            write_extravars(extra_file, extravars)
            cmdline = ["-e", f"@{extra_file}", *(self._vault or active()).argv(),
                       *(["--check"] if check else [])]
            runner = ansible_runner.run(
                private_data_dir=str(private),
                playbook=str(playbook),
                inventory=str(inventory),
                cmdline=shlex.join(cmdline),
                envvars=ansible_environment(playbook),
                timeout=max(1, round(timeout)),
                quiet=True,
                event_handler=handle,
                cancel_callback=cancel if cancel is not None else (lambda: False),
                rotate_artifacts=1,
            )
        except Exception as exc:  # ansible-runner raises ConfigurationError, OSError, ...
            raise PlaybookFailed(f"could not run {playbook.name}: {exc}", playbook=str(playbook),
                                 status="error") from exc
        finally:
            ended = utcnow()
            stragglers = kill_leftovers(private)
            shutil.rmtree(private, ignore_errors=True)

        status = str(runner.status)
        rc = int(runner.rc) if runner.rc is not None else -1
        # the last failure: a failure a block rescued is followed by the rescue's own
        # (deliberate, explanatory) one; unrescued failures end the play anyway
        task, message = failed[-1] if failed else (None, errors[0] if errors else None)
        if runner.rc is None and status == "failed" and message is None:
            message = ("ansible-playbook ended without an exit status: killed by a signal "
                       "(the out-of-memory killer, an operator)")
        if stragglers:
            artifacts = {**artifacts, "killed_stragglers": stragglers}
        return PlaybookResult(
            playbook=playbook.name, status=status, rc=rc, started_at=started, ended_at=ended,
            artifact_data=artifacts, failed_task=task, failure_message=message,
            unreachable_hosts=tuple(dict.fromkeys(unreachable)), task_windows=windows,
        )
