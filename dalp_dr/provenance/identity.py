"""Who and what produced a record: the operator, the controller host, the tool versions.

``resolve_operator`` names the person behind a run or an export: ``--operator``, then
``DALP_DR_OPERATOR``, then ``SUDO_USER`` (the invoking user under ``sudo``/``sudo -u``, not
"root"), then the OS user. ``operator_and_source`` also says which of those it came from.
"""

from __future__ import annotations

import getpass
import os
import socket
from enum import StrEnum
from importlib import metadata

from dalp_dr import __version__, config


class OperatorSource(StrEnum):
    """Where the operator's name came from."""

    FLAG = "flag"
    """--operator"""
    ENV = "DALP_DR_OPERATOR"
    SUDO = "SUDO_USER"
    OS_USER = "os user"
    SCHEDULER = "scheduler"
    """a scheduled run: no person started it"""


def operator_and_source(explicit: str | None = None) -> tuple[str, OperatorSource]:
    """The operator's name and where it came from (see the module docstring for the order)."""
    for candidate, source in ((explicit, OperatorSource.FLAG),
                              (config.operator(), OperatorSource.ENV),
                              (os.environ.get("SUDO_USER"), OperatorSource.SUDO)):
        if candidate and candidate.strip():
            return candidate.strip(), source
    try:
        return getpass.getuser(), OperatorSource.OS_USER
    except (KeyError, OSError):  # no passwd entry for the uid (containers)
        return f"uid {os.getuid()}", OperatorSource.OS_USER


def resolve_operator(explicit: str | None = None) -> str:
    return operator_and_source(explicit)[0]


def tool_version() -> str:
    """This dalp-dr's version (the installed distribution's, else the package's)."""
    try:
        return metadata.version("dalp-dr")
    except metadata.PackageNotFoundError:
        return __version__


def ansible_core_version() -> str | None:
    try:
        return metadata.version("ansible-core")
    except metadata.PackageNotFoundError:
        return None


def controller_host() -> str:
    """This host's name: its FQDN when DNS gives one, else the host name (getfqdn answers
    "localhost" where /etc/hosts maps the host name to 127.0.0.1 after localhost)."""
    name = socket.gethostname()
    fqdn = socket.getfqdn(name)
    if fqdn and not fqdn.startswith("localhost") and (fqdn.startswith(name) or not name):
        return fqdn
    return name or fqdn
