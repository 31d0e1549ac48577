"""The one exception tree of dalp-dr.

Library code raises these; only the CLI maps them to exit codes and prints them.
Errors from psycopg, ansible-runner and boto3 are translated where they enter our code
(see ``dalp_dr.adapters``), so nothing above the adapters catches third-party exceptions.

Exit code mapping (chosen by the CLI, documented here so it lives next to the classes):

* :class:`InvalidInput` and subclasses -> 2 (nothing was started or changed)
* :class:`DrillFailed` and subclasses  -> 1
* :class:`Interrupted`                 -> 130

Library errors never spell a command line: an error about a command-line input names it by
:class:`Flag`, and what to do next is a :class:`HintKey` (with parameters). The CLI's table
(``dalp_dr.commands.hints``) gives both their text; it is installed with
:func:`use_renderer` when the CLI loads. Without it an error reads in neutral words.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import Any, Protocol

from pydantic import BaseModel


class Flag(StrEnum):
    """A command-line input an error is about (the CLI knows its option name)."""

    TO_S3 = "to_s3"
    KEYS = "keys"
    KEYS_INIT = "keys_init"
    BUNDLE = "bundle"
    FINGERPRINT = "fingerprint"
    PERIOD = "period"
    DRILL = "drill"
    ENVIRONMENT = "environment"


class HintKey(StrEnum):
    """What to do about an error, said by the CLI in its own words (parameters in
    :class:`Hint`)."""

    S3_URL = "s3_url"
    """an s3:// URL is expected"""
    OBJECT_LOCK_BUCKET = "object_lock_bucket"
    REPLACE_SIGNING_KEY = "replace_signing_key"
    CREATE_SIGNING_KEY = "create_signing_key"
    FINGERPRINT_FORMAT = "fingerprint_format"
    PERIOD_ORDER = "period_order"
    KNOWN_VALUES = "known_values"
    """params: known (comma-separated, or 'none')"""
    PIN_HISTORY = "pin_history"
    VERIFY_HISTORY = "verify_history"
    LIST_DRILLS = "list_drills"
    VAULT_PASSWORD_FILE = "vault_password_file"
    """a vault id or password file named is not a readable file"""
    VAULT_PASSWORD = "vault_password"
    """a vaulted value cannot be decrypted: give its password"""
    S3_ENDPOINT = "s3_endpoint"
    BUNDLE_FORMAT = "bundle_format"
    """what a bundle is (a path that is not one was given)"""
    VALIDATE_DRILL = "validate_drill"
    ENDPOINT_UNREACHABLE = "endpoint_unreachable"
    """doctor could not reach a drill's endpoint"""
    SET_UP_SIGNING = "set_up_signing"
    """no signing key yet: create one, pin the history sealed before"""
    START_HOT_COLD_LAB = "start_hot_cold_lab"
    STORE_UNUSABLE = "store_unusable"
    ENVIRONMENT_UP = "environment_up"
    """params: topology (the drill's endpoint does not answer)"""
    DRILL_RECOVER = "drill_recover"
    """params: run_id (put back the environment of a run whose orchestrator died)"""
    CHECK_ENVIRONMENT = "check_environment"
    """steady state may not be restored: look before the next drill"""
    LIST_RUNS = "list_runs"
    MIGRATE_STORE = "migrate_store"
    INSTALL_TOOL = "install_tool"
    """params: package (a packaging tool is missing: what to pip install)"""


class Renderer(Protocol):
    """Gives flags and hints their text."""

    def flag(self, flag: Flag) -> str: ...

    def hint(self, hint: Hint) -> str: ...


class Hint(BaseModel, frozen=True):
    """A hint key and its parameters."""

    key: HintKey
    params: dict[str, str] = {}


class NeutralRenderer:
    """Flags and hints in plain words, for errors read outside the CLI."""

    def flag(self, flag: Flag) -> str:
        return flag.value.replace("_", " ")

    def hint(self, hint: Hint) -> str:
        params = ", ".join(f"{k}: {v}" for k, v in sorted(hint.params.items()))
        return hint.key.value.replace("_", " ") + (f" ({params})" if params else "")


_renderer: Renderer = NeutralRenderer()


def use_renderer(renderer: Renderer) -> None:
    """The CLI installs its flag names and hint texts (``dalp_dr.commands.hints``)."""
    global _renderer
    _renderer = renderer


def renderer() -> Renderer:
    return _renderer


def words(key: HintKey, **params: str) -> str:
    """A hint as text (through the installed renderer), for what is shown rather than raised
    (doctor's fixes)."""
    return _renderer.hint(Hint(key=key, params=params))


def as_hint(key: HintKey | Hint | None, params: Mapping[str, str] | None = None
            ) -> Hint | None:
    if key is None or isinstance(key, Hint):
        return key
    return Hint(key=key, params=dict(params or {}))


class DalpDrError(Exception):
    """Base of every error dalp-dr raises on purpose. ``hint_key``: what to do next (see
    :class:`HintKey`); the message itself holds no command line."""

    hint_ref: Hint | None = None

    def __init__(self, *args: Any, hint_key: HintKey | Hint | None = None,
                 hint_params: Mapping[str, str] | None = None) -> None:
        super().__init__(*args)
        self.hint_ref = as_hint(hint_key, hint_params)

    def __str__(self) -> str:
        text = super().__str__()
        if self.hint_ref is not None:
            text += f" ({_renderer.hint(self.hint_ref)})"
        return text


# --- invalid input: exit 2, nothing started -------------------------------------------------


class InvalidInput(DalpDrError):
    """The user gave us something we cannot act on. Nothing was started or changed."""

    def __init__(self, message: str, *, source: str | None = None, field: str | None = None,
                 hint: str | None = None, flag: Flag | None = None,
                 hint_key: HintKey | Hint | None = None,
                 hint_params: Mapping[str, str] | None = None) -> None:
        """``field``: where in the input (a drill file field, an inventory variable), or
        ``flag``: the command-line input. ``hint``: plain text; ``hint_key``: a hint the CLI
        words (preferred for anything that names a command or an option)."""
        self.source = source
        self.field = field
        self.flag = flag
        self.hint = hint
        self.detail = message
        super().__init__(message, hint_key=hint_key, hint_params=hint_params)

    def where(self) -> str | None:
        """The field, or the flag as the installed renderer names it."""
        return self.field or (_renderer.flag(self.flag) if self.flag is not None else None)

    def __str__(self) -> str:
        where = ": ".join(p for p in (self.source, self.where()) if p)
        text = f"{where}: {self.detail}" if where else self.detail
        hint = _renderer.hint(self.hint_ref) if self.hint_ref is not None else self.hint
        if hint:
            text += f" ({hint})"
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


class EnvironmentNeedsRecovery(EnvironmentBusy):
    """A run that waited for the environment's lock got it from a holder that died (its
    lease expired): that run's fault may still be in place. The lock was released, nothing
    started or recorded; ``run_ids``: the dead runs to recover first."""

    def __init__(self, message: str, *, run_ids: tuple[str, ...]) -> None:
        self.run_ids = run_ids
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


class NoHistory(StoreError):
    """A read found no store at all (an embedded store's file does not exist): nothing was
    recorded there yet, and the read created nothing."""

    def __init__(self, url: str) -> None:
        super().__init__(f"no history yet at {url}")
        self.url = url


class ResultNotRecorded(StoreError):
    """A drill ended but the history store could not take its result; the result is kept in
    the run's evidence directory (result.json) to be recorded when the store is back."""

    def __init__(self, message: str, *, result: Any) -> None:
        self.result = result
        super().__init__(message)


class PrintFailed(DalpDrError):
    """Headless Chromium did not print the report to PDF (crashed, timed out, no file)."""


class TamperedHistory(DalpDrError):
    """The history's hash chain, a record or an evidence file does not match what was
    sealed; nothing is exported or signed on top of it."""


class LabError(DalpDrError):
    """Bringing the local lab up or down failed."""


class PackagingError(DalpDrError):
    """Building the Ansible collection (or what goes beside it) failed."""


# --- interrupts: exit 130 ---------------------------------------------------------------------


class Interrupted(DalpDrError):
    """The operator interrupted the run (SIGINT/SIGTERM)."""
