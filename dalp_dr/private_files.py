"""Evidence, history and checkpoint files are readable by their owner only.

Directories 0700 and files 0600; with ``DALP_DR_GROUP_ACCESS=1`` (a team that shares a
results directory through a group) 0750 and 0640. Nothing dalp-dr writes is ever readable
or writable by others. Files a playbook fetched into a run's evidence directory are brought
to the same modes when the run is sealed.
"""

from __future__ import annotations

import fcntl
import os
import stat
import time
from pathlib import Path
from typing import IO, Any

from dalp_dr.config import group_access
from dalp_dr.errors import ConfigError


def file_mode() -> int:
    return 0o640 if group_access() else 0o600


def dir_mode() -> int:
    return 0o750 if group_access() else 0o700


def make_dir(path: Path) -> Path:
    """Create ``path`` (and missing parents) and give it the private directory mode. A link
    in its place is refused (ConfigError): a mode is never set through one."""
    if path.is_symlink():
        raise ConfigError(f"{path} is a symbolic link; dalp-dr keeps its evidence in a real "
                          "directory", hint="replace the link by the directory it points to")
    path.mkdir(parents=True, exist_ok=True)
    os.chmod(path, dir_mode())
    return path


def open_for_write(path: Path, append: bool = False) -> int:
    """A file descriptor for writing ``path``, created with the private file mode; never
    through a link (OSError ELOOP)."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | (os.O_APPEND if append else os.O_TRUNC)
    fd = os.open(path, flags, file_mode())
    os.fchmod(fd, file_mode())
    return fd


def replaceable(path: Path) -> Path:
    """``path``, when a file written beside it may be renamed over it: it does not exist, or
    is a regular file. A device, a FIFO, a directory or a symbolic link is never replaced
    (``-o /dev/null`` must not turn a device node into a file)."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return path
    if not stat.S_ISREG(st.st_mode):
        raise ConfigError("exists and is not a regular file: it is not replaced",
                          field=str(path), hint="name a new file or a regular file")
    return path


def atomic_write(path: Path, data: str) -> None:
    """``path`` holds ``data`` whole or keeps what it held: written to a private temporary
    file beside it, flushed to disk, renamed over it (never over a link or a device). One
    writer at a time per path (the temporary file's name is fixed)."""
    replaceable(path)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        with os.fdopen(open_for_write(tmp), "w", encoding="utf-8") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def chmod_file(path: Path) -> None:
    """The private file mode on an existing file, never through a link. By path, never
    through a descriptor: closing any descriptor of a SQLite database (or its -wal/-shm)
    drops every POSIX lock this process holds on it, and the store's other connections
    (the scheduler's job store) then corrupt it."""
    if path.is_symlink():
        raise ConfigError(f"{path} is a symbolic link; dalp-dr keeps its files as real "
                          "files", hint="replace the link by the file it points to")
    os.chmod(path, file_mode())


def tighten(root: Path) -> None:
    """Every directory and file under ``root`` (itself included) to the private modes;
    symlinks are left alone (never followed)."""
    if not root.is_dir() or root.is_symlink():
        return
    os.chmod(root, dir_mode())
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames:
            path = os.path.join(dirpath, name)
            if not os.path.islink(path):
                os.chmod(path, dir_mode())
        for name in filenames:
            path = os.path.join(dirpath, name)
            if not os.path.islink(path):
                os.chmod(path, file_mode())


def too_open(path: Path) -> str | None:
    """Why ``path`` is readable or writable beyond what it should be, or None."""
    try:
        mode = stat.S_IMODE(path.lstat().st_mode)
    except FileNotFoundError:
        return None
    allowed = dir_mode() if path.is_dir() else file_mode()
    extra = mode & ~allowed
    if extra:
        return f"{path} has mode {mode:o} (at most {allowed:o}: chmod {allowed:o} {path})"
    return None


def flock_within(handle: int | IO[Any], mode: int, seconds: float) -> bool:
    """An flock (``fcntl.LOCK_EX`` or ``LOCK_SH``) on ``handle`` within ``seconds``: a
    deadline, never a blocking wait on whoever holds it. False when it stayed held."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            fcntl.flock(handle, mode | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.05)
