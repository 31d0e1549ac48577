"""Where each setting comes from, lowest precedence first: its default, the system file
``/etc/dalp-dr/config.yaml``, the user's ``$XDG_CONFIG_HOME/dalp-dr/config.yaml`` (default
``~/.config``), a ``DALP_DR_*`` environment variable, a command-line flag. Read with
pydantic-settings' YAML and environment sources; ``dalp_dr.config`` is the only user.

A config file is a YAML mapping whose keys are the variables' names without ``DALP_DR_``, in
lower case (``results``, ``store``, ``lock_ttl``, ``webhook_url``...); a list is accepted
where the variable takes several values. A key no variable has is refused naming the file
and the key (with the nearest known key). ``DALP_DR_SYSTEM_CONFIG`` names another system
file (tests, or a host that keeps its configuration elsewhere).
"""

from __future__ import annotations

import difflib
import os
from enum import StrEnum
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    SettingsConfigDict,
    YamlConfigSettingsSource,
)

from dalp_dr.errors import ConfigError

PREFIX = "DALP_DR_"
SYSTEM_FILE = Path("/etc/dalp-dr/config.yaml")
SYSTEM_FILE_VARIABLE = f"{PREFIX}SYSTEM_CONFIG"

LIST_SEPARATORS = {"allowed_dirs": os.pathsep, "webhook_url": ",", "slack_webhook_url": ","}
"""keys whose value is a list (joined as their variable is written)"""


class Raw(BaseSettings):
    """Every setting a file or the environment can give, as the text of its variable."""

    model_config = SettingsConfigDict(env_prefix=PREFIX, env_ignore_empty=True,
                                      extra="forbid", frozen=True)

    results: str | None = None
    store: str | None = None
    project: str | None = None
    allowed_dirs: str | None = None
    lock_ttl: str | None = None
    keys: str | None = None
    key_passphrase: str | None = None
    witness: str | None = None
    witness_retain_days: str | None = None
    witness_lock_mode: str | None = None
    s3_endpoint: str | None = None
    group_access: str | None = None
    operator: str | None = None
    metrics_textfile: str | None = None
    webhook_url: str | None = None
    slack_webhook_url: str | None = None
    debug: str | None = None


KEYS: tuple[str, ...] = tuple(Raw.model_fields)


class Source(StrEnum):
    DEFAULT = "default"
    SYSTEM_FILE = "system file"
    USER_FILE = "user file"
    ENV = "env"
    FLAG = "flag"


class Origin(BaseModel, frozen=True):
    source: Source
    where: str | None = None
    """the file, the variable or the flag"""

    def __str__(self) -> str:
        return f"{self.source} {self.where}" if self.where else str(self.source)


class Value(BaseModel, frozen=True):
    text: str
    origin: Origin


def key_of(variable: str) -> str:
    """``DALP_DR_LOCK_TTL`` -> ``lock_ttl``."""
    return variable.removeprefix(PREFIX).lower()


def system_file() -> Path:
    return Path(os.environ.get(SYSTEM_FILE_VARIABLE) or SYSTEM_FILE)


def user_file() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "dalp-dr" / "config.yaml"


class _CheckedYaml(YamlConfigSettingsSource):
    """pydantic-settings' YAML source, strict: a file that is not a mapping of known keys
    to scalars (or lists, where a list is taken) is refused naming the file and the key."""

    def _read_file(self, file_path: Any) -> dict[str, Any]:
        import yaml

        where = str(file_path)
        try:
            data = super()._read_file(file_path)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            line = f" (line {mark.line + 1})" if mark is not None else ""
            tab = " (a tab: YAML indents with spaces)" if "\t" in str(exc) \
                or "'\\t'" in str(exc) else ""
            raise ConfigError(f"not valid YAML{line}: {getattr(exc, 'problem', exc)}{tab}",
                              source=where, hint="key: value lines, e.g. results: "
                                                 "/var/lib/dalp-dr/results") from None
        except OSError as exc:
            raise ConfigError(f"cannot read it: {exc.strerror or exc}", source=where) from None
        if not isinstance(data, dict):
            raise ConfigError("is not a mapping of settings", source=where,
                              hint="key: value lines, e.g. results: /var/lib/dalp-dr/results")
        return {str(key): _text(where, str(key), value) for key, value in data.items()}


def _text(where: str, key: str, value: Any) -> str | None:
    if key not in KEYS:
        near = difflib.get_close_matches(key, KEYS, n=1)
        raise ConfigError(f"unknown key '{key}'", source=where, field=key,
                          hint=f"did you mean '{near[0]}'?" if near
                          else "known keys: " + ", ".join(KEYS))
    if value is None:
        return None
    if isinstance(value, list) and key in LIST_SEPARATORS:
        if not all(isinstance(v, str | int | float) for v in value):
            raise ConfigError("a list of plain values only", source=where, field=key)
        return LIST_SEPARATORS[key].join(str(v) for v in value)
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, str | int | float):
        return str(value)
    raise ConfigError(f"is a {type(value).__name__}, not a plain value", source=where,
                      field=key, hint="a string or a number"
                      + (" (or a list of them)" if key in LIST_SEPARATORS else ""))


_FILES: dict[tuple[str, int, int], dict[str, str]] = {}
"""files read, by (path, mtime, size): a process reads each version once"""


def read_file(path: Path) -> dict[str, str]:
    """A config file's settings (nothing when it does not exist)."""
    try:
        stat = path.stat()
    except OSError:
        return {}
    cache_key = (str(path), stat.st_mtime_ns, stat.st_size)
    if cache_key not in _FILES:
        values = _CheckedYaml(Raw, yaml_file=path)()
        _FILES[cache_key] = {k: v for k, v in values.items() if v is not None}
    return _FILES[cache_key]


def read_environment() -> dict[str, str]:
    """The ``DALP_DR_*`` variables that are set (and not empty)."""
    values = EnvSettingsSource(Raw, env_prefix=PREFIX, env_ignore_empty=True)()
    return {k: str(v) for k, v in values.items() if v is not None and str(v) != ""}


def layers(flags: dict[str, tuple[str, str]] | None = None) -> dict[str, Value]:
    """Every key set anywhere with the value that wins and where it came from. ``flags``:
    key -> (flag name, value) for the flags given on the command line."""
    found: dict[str, Value] = {}
    system, user = system_file(), user_file()
    for origin, values in (
            (Origin(source=Source.SYSTEM_FILE, where=str(system)), read_file(system)),
            (Origin(source=Source.USER_FILE, where=str(user)), read_file(user))):
        for key, text in values.items():
            found[key] = Value(text=text, origin=origin)
    for key, text in read_environment().items():
        found[key] = Value(text=text, origin=Origin(source=Source.ENV,
                                                    where=f"{PREFIX}{key.upper()}"))
    for key, (flag, text) in (flags or {}).items():
        found[key] = Value(text=text, origin=Origin(source=Source.FLAG, where=flag))
    return found
